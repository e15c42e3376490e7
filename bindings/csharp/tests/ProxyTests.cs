// client-reach (issue 13): proxies through the C# binding, against tinyproxy (HTTP CONNECT)
// and microsocks (SOCKS5) started here (test.sh installs them).
using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class ProxyTests
    {
        private static int FreePort()
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return port;
        }

        private static Process Start(string file, string args, int port)
        {
            var p = Process.Start(new ProcessStartInfo(file, args) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true });
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                if (p.HasExited) throw new Exception(file + " exited at start");
                try
                {
                    using (var c = new TcpClient()) { c.Connect(IPAddress.Loopback, port); return p; }
                }
                catch (SocketException)
                {
                    if (DateTime.UtcNow > deadline) throw new TimeoutException(file + " did not listen within 20 s");
                    Thread.Sleep(20);
                }
            }
        }

        private static Process Tinyproxy(string dir, string extra, out int port)
        {
            port = FreePort();
            var conf = Path.Combine(dir, "tp" + port + ".conf");
            File.WriteAllText(conf, "Port " + port + "\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n" + extra + "\n");
            return Start("tinyproxy", "-d -c " + conf, port);
        }

        private static async Task Echo(Uri url, WsClientOptions o)
        {
            using (var c = await T.Within(WsClient.ConnectAsync(url, o), 20, "connect"))
            {
                c.Send("via proxy");
                var m = await T.Within(c.ReceiveAsync(), 20, "echo");
                Assert.Equal("via proxy", m.Text);
            }
        }

        private static async Task<WsException> Refused(Uri url, WsClientOptions o)
        {
            try
            {
                using (await T.Within(WsClient.ConnectAsync(url, o), 20, "connect")) { }
            }
            catch (WsException e) { return e; }
            throw new Exception("the connection opened");
        }

        [Fact]
        public async Task HttpConnectProxy_WithBasicAuth_And407WithoutIt()
        {
            var dir = Path.Combine(Path.GetTempPath(), "wsn-cs-proxy-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            int open, locked;
            using (var server = new EchoServer())
            using (var p1 = Tinyproxy(dir, "", out open))
            using (var p2 = Tinyproxy(dir, "BasicAuth alice s3cret", out locked))
            {
                try
                {
                    await Echo(server.Url, new WsClientOptions { Proxy = "http://127.0.0.1:" + open });
                    await Echo(server.Url, new WsClientOptions { Proxy = "http://alice:s3cret@127.0.0.1:" + locked });
                    var e = await Refused(server.Url, new WsClientOptions { Proxy = "http://127.0.0.1:" + locked });
                    Assert.Equal(WsError.Handshake, e.Error);
                    Assert.Equal(407, e.HttpStatus);
                    Assert.True(e.Message.Contains("127.0.0.1:" + locked), e.Message);
                }
                finally
                {
                    p1.Kill(); p2.Kill();
                    p1.WaitForExit(10000); p2.WaitForExit(10000);
                }
            }
            Directory.Delete(dir, true);
        }

        [Fact]
        public async Task Socks5Proxy_WithAndWithoutAPassword()
        {
            int open = FreePort(), locked = FreePort();
            using (var server = new EchoServer())
            using (var p1 = Start("microsocks", "-i 127.0.0.1 -p " + open, open))
            using (var p2 = Start("microsocks", "-i 127.0.0.1 -p " + locked + " -u bob -P pa55", locked))
            {
                try
                {
                    await Echo(server.Url, new WsClientOptions { Proxy = "socks5://127.0.0.1:" + open });
                    await Echo(server.Url, new WsClientOptions { Proxy = "socks5://bob:pa55@127.0.0.1:" + locked });
                    var e = await Refused(server.Url, new WsClientOptions { Proxy = "socks5://bob:wrong@127.0.0.1:" + locked });
                    Assert.True(e.Message.Contains("refused the user name and password"), e.Message);
                }
                finally
                {
                    p1.Kill(); p2.Kill();
                    p1.WaitForExit(10000); p2.WaitForExit(10000);
                }
            }
        }
    }
}
