// Issue 15 §3 for C#: session deadlines, tags and close by tag, broadcast with a stalled
// connection, the staggered drain, stats and pings; wsnative clients and a raw socket on loopback.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class OpsTests
    {
        /// <summary>?tag=T (repeatable) tags the connection; ?deadline=MS sets its session deadline.</summary>
        private static void TaggingAccept(WsAcceptRequest r)
        {
            foreach (var kv in r.Query.Split('&'))
            {
                if (kv.StartsWith("tag=")) r.AddTag(kv.Substring(4));
                else if (kv.StartsWith("deadline=")) r.SetDeadline(TimeSpan.FromMilliseconds(int.Parse(kv.Substring(9))));
            }
        }

        private static WsServer Server(ConcurrentQueue<WsConnection> conns, WsServerOptions options = null) =>
            WsServer.Listen("127.0.0.1", 0, c => conns.Enqueue(c), options, TaggingAccept);

        private static Task<WsConnection> Connect(WsServer s, string query = "", WsClientOptions o = null) =>
            T.Within(WsClient.ConnectAsync(T.Url(s, "/?" + query), o), 10, "connect " + query);

        private static Task<WsClosedEventArgs> ClosedTask(WsConnection c)
        {
            var tcs = T.Tcs<WsClosedEventArgs>();
            c.Closed += (s, e) => tcs.TrySetResult(e);
            if (c.CloseInfo != null) tcs.TrySetResult(c.CloseInfo);
            return tcs.Task;
        }

        [Fact]
        public async Task Deadline_FromTheAcceptHandlerAndLater_ClosesWithTheChosenCode()
        {
            var conns = new ConcurrentQueue<WsConnection>();
            using (var server = Server(conns))
            using (var a = await Connect(server, "deadline=1000"))
            using (var b = await Connect(server, "tag=user:b"))
            using (var c = await Connect(server, "tag=user:c"))
            {
                var sw = Stopwatch.StartNew();
                var ca = ClosedTask(a);
                var cb = ClosedTask(b);
                T.Wait(() => server.CountTag("user:b") == 1 && server.CountTag("user:c") == 1, 10, "tagged");
                var sb = server.ConnectionsWithTag("user:b").Single();
                sb.SetDeadline(TimeSpan.FromSeconds(60));
                sb.SetDeadline(TimeSpan.FromSeconds(1), 4402, "token expired"); // replaces
                var sc = server.ConnectionsWithTag("user:c").Single();
                sc.SetDeadline(TimeSpan.FromMilliseconds(300));
                sc.SetDeadline(null); // clears
                var ea = await T.Within(ca, 10, "a closed");
                var eb = await T.Within(cb, 10, "b closed");
                Console.WriteLine("  (closed after " + sw.ElapsedMilliseconds + " ms)");
                Assert.Equal(4401, ea.Code);
                Assert.Equal("session expired", ea.Reason);
                Assert.True(ea.WasClean, ea.ToString());
                Assert.Equal(4402, eb.Code);
                Assert.Equal("token expired", eb.Reason);
                Assert.True(sw.ElapsedMilliseconds >= 900, sw.ElapsedMilliseconds + " ms");
                Assert.Equal(WsState.Open, c.State);
                Assert.Throws<ArgumentException>(() => sc.SetDeadline(TimeSpan.FromSeconds(1), 1006));
            }
        }

        [Fact]
        public async Task CloseTag_ClosesExactlyTheTaggedConnections()
        {
            var conns = new ConcurrentQueue<WsConnection>();
            using (var server = Server(conns))
            {
                var tagged = new[] { await Connect(server, "tag=user:a&tag=room:1"), await Connect(server, "tag=user:a") };
                var others = new[] { await Connect(server, "tag=user:b"), await Connect(server) };
                try
                {
                    T.Wait(() => conns.Count == 4, 10, "4 server connections");
                    var untagged = conns.Single(x => !x.HasTag("user:a") && !x.HasTag("user:b"));
                    untagged.AddTag("room:1");
                    Assert.Equal(2, server.CountTag("room:1"));
                    untagged.RemoveTag("room:1");
                    Assert.Equal(1, server.CountTag("room:1"));
                    Assert.Equal(2, server.ConnectionsWithTag("user:a").Count);
                    var closes = tagged.Select(ClosedTask).ToArray();
                    Assert.Equal(2, server.CloseTag("user:a", 4000, "logged out"));
                    foreach (var t in closes)
                    {
                        var e = await T.Within(t, 10, "tagged closed");
                        Assert.Equal(4000, e.Code);
                        Assert.Equal("logged out", e.Reason);
                    }
                    await Task.Delay(300);
                    foreach (var o in others) Assert.Equal(WsState.Open, o.State);
                    T.Wait(() => server.CountTag("user:a") == 0, 10, "the tag is gone");
                    Assert.Equal(1, server.CountTag("user:b"));
                    Assert.Throws<ArgumentException>(() => untagged.AddTag(""));
                }
                finally
                {
                    foreach (var c in tagged.Concat(others)) c.Dispose();
                }
            }
        }

        private static Socket StalledClient(int port)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
            s.Connect("127.0.0.1", port);
            s.Send(Encoding.ASCII.GetBytes(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
            return s;
        }

        [Fact]
        public async Task Broadcast_ReachesEveryReaderInOrder_AndAStalledConnectionIsRefused()
        {
            var conns = new ConcurrentQueue<WsConnection>();
            using (var server = Server(conns, new WsServerOptions { MaxSendQueue = 64 << 10 }))
            {
                var readers = new List<WsConnection>();
                for (int i = 0; i < 5; i++) readers.Add(await Connect(server, i == 0 ? "tag=room:1" : ""));
                using (var stalled = StalledClient(server.Port))
                {
                    try
                    {
                        T.Wait(() => conns.Count == 6, 10, "6 server connections");
                        // 8 MiB in one message (one always fits an empty queue) fill the stalled
                        // connection's kernel buffers and leave its queue over the limit.
                        var big = new byte[8 << 20];
                        var r0 = server.Broadcast(big);
                        Assert.Equal(6, r0.Queued);
                        foreach (var r in readers)
                            Assert.Equal(big.Length, (await T.Within(r.ReceiveAsync(), 20, "big")).Data.Length);
                        T.Wait(() => conns.Count(x => x.Stats.QueuedBytes > 0) == 1, 20, "the stalled queue");
                        var stalledConn = conns.Single(x => x.Stats.QueuedBytes > 0);
                        var held = stalledConn.Stats.QueuedBytes;
                        for (int i = 0; i < 1000; i++)
                        {
                            var r = server.Broadcast("m" + i);
                            Assert.Equal(5, r.Queued);
                            Assert.Equal(1, r.Refused);
                        }
                        foreach (var r in readers)
                            for (int i = 0; i < 1000; i++)
                                Assert.Equal("m" + i, (await T.Within(r.ReceiveAsync(), 10, "m" + i)).Text);
                        Assert.Equal(held, stalledConn.Stats.QueuedBytes);
                        Assert.Equal(1, server.Broadcast(Encoding.UTF8.GetBytes("room only"), "room:1").Queued);
                        Assert.Equal("room only", Encoding.UTF8.GetString((await T.Within(readers[0].ReceiveAsync(), 10, "room")).Data));
                    }
                    finally
                    {
                        readers.ForEach(c => c.Dispose());
                    }
                }
            }
        }

        [Fact]
        public async Task DrainAsync_SpreadsTheClosesOverTheWindow_AndReports()
        {
            var conns = new ConcurrentQueue<WsConnection>();
            var server = Server(conns);
            var clients = new List<WsConnection>();
            try
            {
                for (int i = 0; i < 40; i++) clients.Add(await Connect(server));
                T.Wait(() => conns.Count == 40, 10, "40 server connections");
                var times = new ConcurrentQueue<long>();
                var sw = Stopwatch.StartNew();
                foreach (var c in clients) c.Closed += (s, e) => times.Enqueue(sw.ElapsedMilliseconds);
                var report = await T.Within(server.DrainAsync(TimeSpan.FromSeconds(2), 1012, "restarting"), 20, "drain");
                T.Wait(() => times.Count == 40, 10, "every client closed");
                Console.WriteLine("  (drain: " + report + "; closes from " + times.Min() + " to " + times.Max() + " ms)");
                Assert.Equal(40, report.Connections);
                Assert.Equal(40, report.ClosedClean);
                Assert.Equal(0, report.Aborted);
                foreach (var c in clients) Assert.Equal(1012, c.CloseInfo.Code);
                Assert.True(times.Max() - times.Min() >= 1000, "spread over at least half the window");
            }
            finally
            {
                server.Dispose();
                clients.ForEach(c => c.Dispose());
            }
        }

        [Fact]
        public async Task Stats_CountMessagesAndBytes_AndPingsMeasureTheRoundTrip()
        {
            var conns = new ConcurrentQueue<WsConnection>();
            var options = new WsServerOptions();
            options.AllowedOrigins.Add("https://good.example");
            using (var server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                conns.Enqueue(c);
                c.MessageReceived += (s, e) => c.Send(e.Message.Text);
            }, options))
            using (var client = await Connect(server))
            {
                foreach (var m in new[] { "one", "two", "three" })
                {
                    client.Send(m);
                    Assert.Equal(m, (await T.Within(client.ReceiveAsync(), 10, "echo")).Text);
                }
                var sc = conns.Single();
                T.Wait(() => sc.Stats.MessagesSent == 3, 10, "3 sent");
                var st = sc.Stats;
                Assert.Equal(3, st.MessagesReceived);
                Assert.Equal(3 * 2 + 11, st.BytesSent);
                Assert.Equal(st.BytesSent, client.Stats.BytesReceived);
                foreach (var c in new[] { sc, client })
                {
                    var before = c.Stats.RoundTrips;
                    c.Ping();
                    T.Wait(() => c.Stats.RoundTrips > before, 10, "a round trip");
                    Assert.True(c.Stats.LastRoundTrip > TimeSpan.Zero);
                }
                var evil = new WsClientOptions { Origin = "https://evil.example" };
                await Assert.ThrowsAsync<WsException>(() => WsClient.ConnectAsync(T.Url(server), evil));
                var closed = ClosedTask(client);
                await client.CloseAsync(4000, "bye");
                await T.Within(closed, 10, "closed");
                T.Wait(() => server.Stats.ClosedTotal == 1, 10, "the close counted");
                var ss = server.Stats;
                Assert.Equal(0, ss.OpenConnections);
                Assert.Equal(1, ss.AcceptedTotal);
                Assert.Equal(1, ss.Refusals[403]);
                Assert.Equal(1, ss.Closes[4000]);
            }
        }
    }
}
