// Issue 15 sections 2 and 3.5 for C#: WsServerOptions.HttpHandler answers plain HTTP requests
// (a health check) with status, headers and body; WsAcceptRequest.AddResponseHeader adds a
// Set-Cookie to the 101; the caps on handshakes in progress (per address, drop-oldest) and the
// refuse policy. Raw sockets on loopback; every wait has a timeout.
using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class ServerDefenseTests
    {
        private const string Upgrade =
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

        /// <summary>Sends a request and reads the answer: to the end, or to the end of a 101's head.</summary>
        private static string Exchange(int port, string request)
        {
            using (var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                s.ReceiveTimeout = 20000;
                s.Connect("127.0.0.1", port);
                s.Send(Encoding.ASCII.GetBytes(request));
                var sb = new StringBuilder();
                var buf = new byte[8192];
                while (true)
                {
                    int n = s.Receive(buf);
                    if (n <= 0) break;
                    sb.Append(Encoding.UTF8.GetString(buf, 0, n));
                    var text = sb.ToString();
                    if (text.StartsWith("HTTP/1.1 101") && text.Contains("\r\n\r\n")) break;
                }
                return sb.ToString();
            }
        }

        private static Socket SlowClient(int port)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Connect("127.0.0.1", port);
            s.Send(new[] { (byte)'G' });
            return s;
        }

        private static bool ClosedByServer(Socket s, int withinMs)
        {
            s.ReceiveTimeout = withinMs;
            var buf = new byte[256];
            try
            {
                while (true)
                    if (s.Receive(buf) <= 0) return true;
            }
            catch (SocketException e)
            {
                return e.SocketErrorCode != SocketError.TimedOut && e.SocketErrorCode != SocketError.WouldBlock;
            }
        }

        [Fact]
        public void HttpHandler_AnswersPlainRequests_AndWithoutAnswerTheyGet426()
        {
            var errors = new ConcurrentQueue<Exception>();
            var options = new WsServerOptions
            {
                HttpHandler = r =>
                {
                    if (r.Path == "/healthz")
                    {
                        r.AddResponseHeader("X-Up", r.Method + " " + r.GetHeader("User-Agent"));
                        r.Respond(200, "{\"ok\":true}", "application/json");
                    }
                    else if (r.Path == "/throw") throw new Exception("http handler bug");
                },
            };
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, options))
            {
                server.Error += (s, e) => errors.Enqueue(e.Exception);
                var a = Exchange(server.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: lb\r\n\r\n");
                Assert.True(a.StartsWith("HTTP/1.1 200 OK\r\n"), a);
                Assert.True(a.Contains("\r\nX-Up: GET lb\r\n") && a.Contains("\r\nContent-Type: application/json\r\n"), a);
                Assert.True(a.EndsWith("\r\n\r\n{\"ok\":true}"), a);
                var d = Exchange(server.Port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
                Assert.True(d.StartsWith("HTTP/1.1 426 "), d);
                var t = Exchange(server.Port, "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
                Assert.True(t.StartsWith("HTTP/1.1 500 "), t);
                T.Wait(() => errors.Any(e => e.Message == "http handler bug"), 10, "the server's Error event");
                Assert.True(Exchange(server.Port, Upgrade).StartsWith("HTTP/1.1 101 "), "upgrades still upgrade");
            }
            using (var plain = WsServer.Listen("127.0.0.1", 0, c => { }))
            {
                var a = Exchange(plain.Port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                Assert.True(a.StartsWith("HTTP/1.1 426 Upgrade Required\r\n"), a);
            }
        }

        [Fact]
        public void AcceptHandler_AddsSetCookieToThe101()
        {
            var misuse = new ConcurrentQueue<string>();
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, null, r =>
            {
                r.AddResponseHeader("Set-Cookie", "sid=7; HttpOnly");
                try { r.AddResponseHeader("Upgrade", "h2c"); misuse.Enqueue("accepted a reserved header"); }
                catch (ArgumentException e) { misuse.Enqueue("ArgumentException: " + e.Message); }
            }))
            {
                var a = Exchange(server.Port, Upgrade);
                Assert.True(a.StartsWith("HTTP/1.1 101 ") && a.Contains("\r\nSet-Cookie: sid=7; HttpOnly\r\n"), a);
                Assert.True(!a.Contains("h2c"), a);
                var m = misuse.Single();
                Assert.True(m.StartsWith("ArgumentException: ") && m.Contains("Upgrade"), m);
            }
        }

        [Fact]
        public async Task PerAddressCap_DropsTheOldestHandshake_AndRefusePolicyAnswers503()
        {
            var options = new WsServerOptions { MaxPendingHandshakesPerIp = 2 };
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, options))
            {
                var slow = Enumerable.Range(0, 3).Select(_ => SlowClient(server.Port)).ToList();
                Assert.True(ClosedByServer(slow[0], 10000), "the oldest was dropped");
                Assert.False(ClosedByServer(slow[1], 200), "the second is held");
                using (var conn = await T.Within(WsClient.ConnectAsync(T.Url(server)), 10, "a legitimate client"))
                    Assert.Equal(WsState.Open, conn.State);
                foreach (var s in slow) s.Dispose();
            }
            var refuse = new WsServerOptions { MaxPendingHandshakes = 1, PendingHandshakePolicy = WsPendingHandshakePolicy.Refuse };
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, refuse))
            using (var held = SlowClient(server.Port))
            {
                var a = Exchange(server.Port, Upgrade);
                Assert.True(a.StartsWith("HTTP/1.1 503 "), a);
            }
        }
    }
}
