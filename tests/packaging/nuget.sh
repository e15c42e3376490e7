#!/usr/bin/env bash
# The NuGet package: WsNative.dll (compiled once, by Mono's mcs) and libwsnative.so packed with
# Debian's nuget CLI from bindings/csharp/WsNative.nuspec, unpacked the way NuGet restores a
# package (PACKAGES/wsnative/VERSION/...), then the C# tests compiled against the unpacked
# lib/netstandard2.0/WsNative.dll and run on both lanes:
#   mono:    the assembly from the package (MONO_PATH), the native library from
#            runtimes/linux-x64/native (LD_LIBRARY_PATH: Mono does not read runtimes/);
#   coreclr: .NET Core 3.1 resolving both from the package through a deps.json and
#            additionalProbingPaths, as an application restored with the SDK does.
# PackageTests checks that the assembly and the library were loaded from the unpacked layout.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. tests/lib/install.sh
# mono-devel: the .NET Framework 4.7.1 reference assemblies WsNative.dll is compiled against.
wsn_apt_install mono-mcs mono-devel nuget unzip binutils python3 python3-venv gcc libc6-dev
wsn_apt_install_bullseye libssl1.1
OUT="$ROOT/target/packaging/nuget"
rm -rf "$OUT"; mkdir -p "$OUT/build" "$OUT/feed" "$OUT/mono" "$OUT/core"
VENV="$ROOT/build/csharp/venv"
DOTNET=$(ls "$VENV"/lib/python3*/site-packages/dotnetcore2/bin/dotnet 2>/dev/null | head -1 || true)
if [ -z "$DOTNET" ]; then
  mkdir -p "$(dirname "$VENV")"; python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps dotnetcore2==3.1.23
  DOTNET=$(ls "$VENV"/lib/python3*/site-packages/dotnetcore2/bin/dotnet | head -1)
fi
FW=$(ls -d "$(dirname "$DOTNET")"/shared/Microsoft.NETCore.App/3.1.* | head -1)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)

cargo build --release --quiet --lib
FLAGS=(-langversion:7.2 -unsafe -debug -d:TRACE -warnaserror+ -nowarn:649)
# One assembly for both runtimes. Debian has no .NET SDK, hence no netstandard.dll reference
# assembly (Mono's and CoreCLR's are facades): it is compiled against the .NET Framework 4.7.1
# reference assemblies (the API netstandard2.0 maps onto), so its type references are where
# .NET Framework has them, which Mono has natively and .NET Core through its compatibility
# facades (mscorlib, System, System.Core). `dotnet pack` of WsNative.csproj, where an SDK
# exists, makes a genuine netstandard2.0 build of the same sources into the same layout.
REF=/usr/lib/mono/4.7.1-api
mcs "${FLAGS[@]}" -nostdlib -noconfig -r:"$REF/mscorlib.dll" -r:"$REF/System.dll" -r:"$REF/System.Core.dll" \
  -target:library -out:"$OUT/build/WsNative.dll" bindings/csharp/WsNative/*.cs
cp target/release/libwsnative.so "$OUT/build/"
strip --strip-debug "$OUT/build/libwsnative.so"  # the package ships without the line tables
nuget pack bindings/csharp/WsNative.nuspec -NonInteractive -NoPackageAnalysis -BasePath "$OUT/build" -OutputDirectory "$OUT/feed" \
  -Properties "version=$VERSION;dll=WsNative.dll;lib=libwsnative.so" >"$OUT/pack.log" 2>&1 \
  || { cat "$OUT/pack.log"; exit 1; }
NUPKG="$OUT/feed/WsNative.$VERSION.nupkg"
PKG="$OUT/packages/wsnative/$VERSION"
mkdir -p "$PKG"
unzip -q "$NUPKG" -d "$PKG"
for f in lib/netstandard2.0/WsNative.dll runtimes/linux-x64/native/libwsnative.so WsNative.nuspec; do
  [ -f "$PKG/$f" ] || { echo "nuget: $f missing from the package"; unzip -l "$NUPKG"; exit 1; }
done
grep -q "<version>$VERSION</version>" "$PKG/WsNative.nuspec" || { echo "nuget: the nuspec's version is not $VERSION"; exit 1; }
cp "$NUPKG" "$PKG/wsnative.$VERSION.nupkg"
echo "nuget: packed $(basename "$NUPKG"): $(unzip -Z1 "$NUPKG" | grep -v -e '^_rels' -e '^package/' -e Content_Types | tr '\n' ' ')"

TESTS=(bindings/csharp/tests/*.cs)
mcs "${FLAGS[@]}" -target:exe -r:"$PKG/lib/netstandard2.0/WsNative.dll" -out:"$OUT/mono/tests.exe" "${TESTS[@]}"
refs=(); for f in "$FW"/*.dll; do case "$f" in *WindowsRuntime*) continue;; esac; refs+=("-r:$f"); done
mcs -nostdlib -noconfig "${FLAGS[@]}" -nowarn:1702 -target:exe "${refs[@]}" -r:"$PKG/lib/netstandard2.0/WsNative.dll" \
  -out:"$OUT/core/tests.dll" "${TESTS[@]}"
cat >"$OUT/core/tests.runtimeconfig.json" <<JSON
{ "runtimeOptions": { "tfm": "netcoreapp3.1",
    "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" },
    "additionalProbingPaths": [ "$OUT/packages" ],
    "configProperties": { "System.Globalization.Invariant": true } } }
JSON
cat >"$OUT/core/tests.deps.json" <<JSON
{ "runtimeTarget": { "name": ".NETCoreApp,Version=v3.1", "signature": "" },
  "compilationOptions": {},
  "targets": { ".NETCoreApp,Version=v3.1": {
      "tests/1.0.0": { "dependencies": { "WsNative": "$VERSION" }, "runtime": { "tests.dll": {} } },
      "WsNative/$VERSION": {
        "runtime": { "lib/netstandard2.0/WsNative.dll": { "assemblyVersion": "0.0.0.0", "fileVersion": "0.0.0.0" } },
        "runtimeTargets": { "runtimes/linux-x64/native/libwsnative.so": { "rid": "linux-x64", "assetType": "native" } } } } },
  "libraries": {
    "tests/1.0.0": { "type": "project", "serviceable": false, "sha512": "" },
    "WsNative/$VERSION": { "type": "package", "serviceable": false, "sha512": "",
      "path": "wsnative/$VERSION", "hashPath": "wsnative.$VERSION.nupkg.sha512" } } }
JSON

export WSNATIVE_EXPECT_PACKAGE="$PKG" WSNATIVE_EXPECT_VERSION="$VERSION" TEST_TIMEOUT_S=${TEST_TIMEOUT_S:-150}
P=0; F=0; RC=0
lane() {  # a crash without a summary line counts as one failure
  local name=$1; shift; echo "== nuget lane $name"
  set +e; timeout 300 "$@" 2>&1 | tee "$OUT/$name.log" | tail -n 3; local rc=${PIPESTATUS[0]}; set -e
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/$name.log" | tail -1 || true)
  if [ -z "$line" ]; then F=$((F + 1)); RC=1; echo "$name: no summary (exit $rc)"; tail -n 30 "$OUT/$name.log"; return; fi
  grep -E '^FAIL' "$OUT/$name.log" | head -n 30 || true
  P=$((P + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"))); F=$((F + $(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")))
  [ "$rc" -eq 0 ] || RC=1
}
lane mono env MONO_PATH="$PKG/lib/netstandard2.0" LD_LIBRARY_PATH="$PKG/runtimes/linux-x64/native" \
  mono --debug "$OUT/mono/tests.exe" "$@"
lane coreclr "$DOTNET" "$OUT/core/tests.dll" "$@"
echo "nuget: $P passed, $F failed"
exit $RC
