// client-reach (issue 13): reconnect through the C# binding: the same WsConnection across a
// server restart, Reconnecting events, the Reconnected handler's message before the offline
// queue, and a 4001 close that stops it.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class ReconnectTests
    {
        private static WsServer Recording(int port, ConcurrentQueue<string> got, Action<WsAcceptRequest> accept = null)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                try
                {
                    return WsServer.Listen("127.0.0.1", port, c =>
                    {
                        c.MessageReceived += (s, m) => got.Enqueue(m.Text);
                        c.Closed += (s, e) => c.Dispose();
                    }, null, accept);
                }
                catch (WsException)
                {
                    if (DateTime.UtcNow > deadline) throw;
                    Thread.Sleep(50);
                }
            }
        }

        [Fact]
        public async Task Reconnect_ToARestartedServer_SameConnection_HandlerFirstThenTheQueue()
        {
            var got = new ConcurrentQueue<string>();
            var server = Recording(0, got);
            int port = server.Port;
            var attempts = new ConcurrentQueue<WsReconnectingEventArgs>();
            var reconnected = T.Tcs<bool>();
            var o = new WsClientOptions { Reconnect = new WsReconnectPolicy { InitialDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(300) } };
            using (var c = await T.Within(WsClient.ConnectAsync(new Uri("ws://127.0.0.1:" + port + "/"), o, conn =>
            {
                conn.Reconnecting += (s, a) => attempts.Enqueue(a);
                conn.Reconnected += (s, a) => { conn.Send("auth"); reconnected.TrySetResult(true); };
            }, CancellationToken.None), 20, "connect"))
            {
                c.Send("before");
                T.Wait(() => got.Count == 1, 20, "before");
                server.Dispose();
                T.Wait(() => attempts.Count >= 1, 20, "the first attempt");
                Assert.Equal(WsState.Connecting, c.State);
                c.Send("q1");
                c.Send("q2");
                T.Wait(() => attempts.Count >= 3, 20, "three attempts");
                var got2 = new ConcurrentQueue<string>();
                using (Recording(port, got2))
                {
                    await T.Within(reconnected.Task, 20, "reconnected");
                    T.Wait(() => got2.Count == 3, 20, "auth and the queue");
                    Assert.Equal("auth,q1,q2", string.Join(",", got2));
                    Assert.Equal(WsState.Open, c.State);
                    int n = 1;
                    foreach (var a in attempts)
                    {
                        if (n > 3) break;
                        Assert.Equal(n, a.Attempt);
                        Assert.True(a.Delay <= TimeSpan.FromMilliseconds(Math.Min(300, 50 << (n - 1))), "delay over its cap");
                        n++;
                    }
                }
            }
        }

        [Fact]
        public async Task A4001Close_StopsReconnecting()
        {
            var got = new ConcurrentQueue<string>();
            using (var server = Recording(0, got, r => r.AcceptAndClose(4001, "not allowed")))
            {
                var policy = new WsReconnectPolicy { InitialDelay = TimeSpan.FromMilliseconds(50) };
                policy.StopCodes.Add(4001);
                var gaveUp = T.Tcs<WsReconnectGaveUpEventArgs>();
                var closed = T.Tcs<WsClosedEventArgs>();
                using (var c = await T.Within(WsClient.ConnectAsync(T.Url(server), new WsClientOptions { Reconnect = policy }, conn =>
                {
                    conn.ReconnectGaveUp += (s, a) => gaveUp.TrySetResult(a);
                    conn.Closed += (s, e) => closed.TrySetResult(e);
                }, CancellationToken.None), 20, "connect"))
                {
                    var g = await T.Within(gaveUp.Task, 20, "gave up");
                    Assert.True(g.Error.Contains("4001"), g.Error);
                    var e = await T.Within(closed.Task, 20, "closed");
                    Assert.Equal(4001, e.Code);
                }
            }
        }
    }
}
