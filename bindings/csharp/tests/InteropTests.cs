// A foreign client: the runtime's own System.Net.WebSockets.ClientWebSocket against WsServer.
using System;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class InteropTests
    {
        private static async Task<string> ReceiveText(ClientWebSocket ws, CancellationToken ct)
        {
            var buf = new byte[64 * 1024];
            var sb = new StringBuilder();
            while (true)
            {
                var r = await ws.ReceiveAsync(new ArraySegment<byte>(buf), ct);
                if (r.MessageType == WebSocketMessageType.Close) return null;
                sb.Append(Encoding.UTF8.GetString(buf, 0, r.Count));
                if (r.EndOfMessage) return sb.ToString();
            }
        }

        private static async Task<ClientWebSocket> ConnectAndEcho(EchoServer echo, CancellationToken ct)
        {
            var ws = new ClientWebSocket();
            await ws.ConnectAsync(echo.Url, ct);
            foreach (var text in new[] { "hello", "wörld ✓", new string('x', 100000) })
            {
                await ws.SendAsync(new ArraySegment<byte>(Encoding.UTF8.GetBytes(text)), WebSocketMessageType.Text, true, ct);
                Assert.Equal(text, await ReceiveText(ws, ct));
            }
            var bin = new byte[] { 0, 1, 2, 255 };
            await ws.SendAsync(new ArraySegment<byte>(bin), WebSocketMessageType.Binary, true, ct);
            var rb = new byte[16];
            var r = await ws.ReceiveAsync(new ArraySegment<byte>(rb), ct);
            Assert.Equal(WebSocketMessageType.Binary, r.MessageType);
            Assert.Equal(4, r.Count);
            Assert.Equal(255, (int)rb[3]);
            return ws;
        }

        [Fact]
        public async Task ClientWebSocket_Echo_ThenCloseAsync_IsCleanOnBothSides()
        {
            using (var echo = new EchoServer())
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            using (var ws = await ConnectAndEcho(echo, cts.Token))
            {
                await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "client done", cts.Token);
                Assert.Equal(WebSocketState.Closed, ws.State);
                Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
                var sc = await T.Within(echo.FirstClose.Task, 10, "server Closed");
                Assert.True(sc.WasClean, sc.ToString());
                Assert.Equal(1000, sc.Code);
                Assert.Equal("client done", sc.Reason);
            }
        }

        [Fact]
        public async Task ClientWebSocket_Echo_ThenCloseOutputAsync_IsCleanOnBothSides()
        {
            using (var echo = new EchoServer())
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            using (var ws = await ConnectAndEcho(echo, cts.Token))
            {
                await ws.CloseOutputAsync(WebSocketCloseStatus.EndpointUnavailable, "output closed", cts.Token);
                // wsnative answers the Close frame by itself; the client reads it
                var r = await ws.ReceiveAsync(new ArraySegment<byte>(new byte[16]), cts.Token);
                Assert.Equal(WebSocketMessageType.Close, r.MessageType);
                Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, r.CloseStatus);
                var sc = await T.Within(echo.FirstClose.Task, 10, "server Closed");
                Assert.True(sc.WasClean, sc.ToString());
                Assert.Equal(1001, sc.Code);
                Assert.Equal("output closed", sc.Reason);
                // (Mono's ClientWebSocket may stay in CloseReceived here; CoreCLR's reaches Closed)
            }
        }

        [Fact]
        public async Task ClientWebSocket_ServerInitiatedClose_IsClean()
        {
            using (var echo = new EchoServer())
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            using (var ws = await ConnectAndEcho(echo, cts.Token))
            {
                WsConnection sconn = null;
                T.Wait(() => echo.Connections.TryPeek(out sconn), 5, "server connection");
                var closing = sconn.CloseAsync(4000, "server says bye");
                var r = await ws.ReceiveAsync(new ArraySegment<byte>(new byte[16]), cts.Token);
                Assert.Equal(WebSocketMessageType.Close, r.MessageType);
                Assert.Equal(4000, (int)r.CloseStatus);
                Assert.Equal("server says bye", r.CloseStatusDescription);
                if (ws.State == WebSocketState.CloseReceived)
                    await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", cts.Token);
                await T.Within(closing, 10, "server CloseAsync");
                var sc = await T.Within(echo.FirstClose.Task, 10, "server Closed");
                Assert.True(sc.WasClean, sc.ToString());
                Assert.Equal(4000, sc.Code);
            }
        }
    }
}
