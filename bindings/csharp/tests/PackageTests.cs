// When the tests run from the NuGet package's unpacked layout (tests/packaging/nuget.sh sets
// WSNATIVE_EXPECT_PACKAGE to its root), the assembly and the native library come from there.
using System;
using System.IO;
using System.Linq;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class PackageTests
    {
        [Fact]
        public void AssemblyAndNativeLibrary_ComeFromTheUnpackedPackage()
        {
            var root = Environment.GetEnvironmentVariable("WSNATIVE_EXPECT_PACKAGE");
            if (string.IsNullOrEmpty(root)) return; // the source-built lanes
            var asm = typeof(WsLog).Assembly.Location;
            Assert.Equal(Path.Combine(root, "lib", "netstandard2.0", "WsNative.dll"), asm);
            Assert.Equal(Environment.GetEnvironmentVariable("WSNATIVE_EXPECT_VERSION"), WsRuntime.Version);
            var native = Path.Combine(root, "runtimes", "linux-x64", "native", "libwsnative.so");
            var maps = File.ReadAllLines("/proc/self/maps");
            Assert.True(maps.Any(l => l.EndsWith(native, StringComparison.Ordinal)), "libwsnative.so mapped from " + native);
        }
    }
}
