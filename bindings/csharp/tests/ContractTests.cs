// The seed scenarios: large stream then close, close from either side, concurrent senders,
// a vanished peer, cancelling a receive, and CloseAsync/SendAsync that always complete.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class ContractTests
    {
        // Flow control: messages nobody receives yet stop the reading past MaxQueue (the core's
        // receive budget, acknowledged by ReceiveAsync), so the peer's data waits with the peer;
        // receiving them lets everything arrive in order.
        [Fact]
        public async Task UnreadMessages_PauseReading_UntilReceived()
        {
            using (var server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                var payload = new byte[65536];
                for (int i = 0; i < 300; i++)
                {
                    payload[0] = (byte)(i >> 8);
                    payload[1] = (byte)i;
                    c.Send(payload);
                }
                c.Closed += (s, e) => c.Dispose();
            }))
            {
                var conn = await T.Within(WsClient.ConnectAsync(T.Url(server), new WsClientOptions { MaxQueue = 8 }), 10, "connect");
                using (conn)
                {
                    for (int i = 0; i < 500 && conn.QueuedMessages < 8; i++) await Task.Delay(10);
                    await Task.Delay(300);
                    int settled = conn.QueuedMessages; // what was read before the pause still came
                    await Task.Delay(300);
                    Assert.Equal(settled, conn.QueuedMessages);
                    Assert.True(settled < 300, "reading did not pause: " + settled + " queued");
                    for (int i = 0; i < 300; i++)
                    {
                        var m = await T.Within(conn.ReceiveAsync(), 10, "message " + i);
                        Assert.Equal(i, (m.Data[0] << 8) | m.Data[1]);
                    }
                }
            }
        }

        // seeds/002: the client streams 1024 x 128 KiB, the server replies every 4 MiB, then the
        // client closes. Nothing blocks, every reply arrives (also the replies to the last chunks:
        // the core holds the peer's Close until replies to earlier messages are out), and both
        // sides close cleanly.
        [Fact]
        public async Task Stream_1024x128KiB_WithPeriodicReplies_ThenClose_Completes()
        {
            const int chunk = 128 * 1024, count = 1024, every = 4 * 1024 * 1024;
            var serverClosed = T.Tcs<WsClosedEventArgs>();
            long serverBytes = 0;
            int badChunks = 0;
            var lateSends = new ConcurrentQueue<string>();
            using (var server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                long pending = 0;
                c.MessageReceived += (s, m) =>
                {
                    if (m.Data.Length != chunk || m.Data[0] != (byte)(m.Data[chunk - 1] ^ 0x5a)) Interlocked.Increment(ref badChunks);
                    Interlocked.Add(ref serverBytes, m.Data.Length);
                    pending += m.Data.Length;
                    if (pending >= every)
                    {
                        pending -= every;
                        try { c.Send("Server got " + every + " bytes\n"); }
                        catch (InvalidOperationException e) { lateSends.Enqueue(e.Message); }
                    }
                };
                c.Closed += (s, e) => { serverClosed.TrySetResult(e); c.Dispose(); };
            }))
            {
                int replies = 0;
                var clientClosed = T.Tcs<WsClosedEventArgs>();
                var conn = await T.Within(WsClient.ConnectAsync(T.Url(server), null, c =>
                {
                    c.MessageReceived += (s, m) => Interlocked.Increment(ref replies);
                    c.Closed += (s, e) => clientClosed.TrySetResult(e);
                }, CancellationToken.None), 10, "connect");
                using (conn)
                {
                    var data = new byte[chunk];
                    for (int i = 0; i < count; i++)
                    {
                        data[0] = (byte)i;
                        data[chunk - 1] = (byte)(i ^ 0x5a);
                        // copies and returns at once; past the send queue's 64 MiB, wait for room
                        try { conn.Send(data); }
                        catch (WsException e) when (e.Error == WsError.WouldBlock) { await conn.SendAsync(data); }
                    }
                    await T.Within(conn.CloseAsync(1000, "done"), 60, "CloseAsync after the stream");
                    var cc = await T.Within(clientClosed.Task, 10, "client Closed");
                    var sc = await T.Within(serverClosed.Task, 10, "server Closed");
                    Assert.True(cc.WasClean, "client close: " + cc);
                    Assert.True(sc.WasClean, "server close: " + sc);
                    Assert.Equal(1000, cc.Code);
                    Assert.Equal("done", sc.Reason);
                    Assert.Equal((long)chunk * count, Interlocked.Read(ref serverBytes));
                    Assert.Equal(0, badChunks);
                    Assert.True(lateSends.IsEmpty, "server replies refused: " + string.Join(" | ", lateSends));
                    Assert.Equal(32, Volatile.Read(ref replies));
                    Assert.Equal(WsState.Closed, conn.State);
                    Assert.Equal(1000, conn.CloseStatus);
                    Assert.Equal("done", conn.CloseStatusDescription);
                }
            }
        }

        [Fact]
        public async Task Close_FromClient_IsCleanOnBothSides()
        {
            using (var echo = new EchoServer())
            {
                var clientClosed = T.Tcs<WsClosedEventArgs>();
                using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url), 10, "connect"))
                {
                    conn.Closed += (s, e) => clientClosed.TrySetResult(e);
                    await T.Within(conn.CloseAsync(4001, "bye from client"), 10, "CloseAsync");
                    var cc = await T.Within(clientClosed.Task, 10, "client Closed");
                    var sc = await T.Within(echo.FirstClose.Task, 10, "server Closed");
                    Assert.True(cc.WasClean && sc.WasClean, "client " + cc + ", server " + sc);
                    Assert.Equal(4001, cc.Code);
                    Assert.Equal(4001, sc.Code);
                    Assert.Equal("bye from client", cc.Reason);
                    Assert.Equal("bye from client", sc.Reason);
                    Assert.Null(cc.Error);
                    // closing again, and after the close, is harmless
                    await T.Within(conn.CloseAsync(), 5, "second CloseAsync");
                    Assert.Throws<InvalidOperationException>(() => conn.Send("late"));
                }
            }
        }

        [Fact]
        public async Task Compression_NegotiatedBothEnds_MessagesRoundTrip_AndOptOutWorks()
        {
            using (var echo = new EchoServer(new WsServerOptions { Compression = true }))
            {
                using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url, new WsClientOptions { Compression = true }), 10, "connect"))
                {
                    Assert.True(conn.Extensions.StartsWith("permessage-deflate"), "extensions: " + conn.Extensions);
                    var got = new System.Collections.Concurrent.BlockingCollection<string>();
                    conn.MessageReceived += (s, m) => got.Add(m.Text);
                    var big = new string('z', 1 << 20);
                    await T.Within(conn.SendAsync(big), 10, "SendAsync big");
                    await T.Within(conn.SendAsync("secret=" + new string('s', 1000), false), 10, "SendAsync opt-out");
                    string a, b;
                    Assert.True(got.TryTake(out a, 10000) && a == big, "the 1 MiB message came back");
                    Assert.True(got.TryTake(out b, 10000) && b == "secret=" + new string('s', 1000), "the opted-out message came back");
                    await T.Within(conn.CloseAsync(), 10, "CloseAsync");
                }
            }
            // Off on the server: nothing agreed.
            using (var echo = new EchoServer())
            using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url, new WsClientOptions { Compression = true }), 10, "connect"))
                Assert.Equal("", conn.Extensions);
        }

        [Fact]
        public async Task Close_FromServer_IsCleanOnBothSides()
        {
            using (var echo = new EchoServer())
            {
                var clientClosed = T.Tcs<WsClosedEventArgs>();
                using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url), 10, "connect"))
                {
                    conn.Closed += (s, e) => clientClosed.TrySetResult(e);
                    WsConnection sconn = null;
                    T.Wait(() => echo.Connections.TryPeek(out sconn), 5, "server connection");
                    await T.Within(sconn.CloseAsync(1000, "bye from server"), 10, "server CloseAsync");
                    var cc = await T.Within(clientClosed.Task, 10, "client Closed");
                    var sc = await T.Within(echo.FirstClose.Task, 10, "server Closed");
                    Assert.True(cc.WasClean && sc.WasClean, "client " + cc + ", server " + sc);
                    Assert.Equal(1000, cc.Code);
                    Assert.Equal(1000, sc.Code);
                    Assert.Equal("bye from server", cc.Reason);
                    Assert.Equal("bye from server", sc.Reason);
                    Assert.True(sconn.IsServerSide);
                    Assert.False(conn.IsServerSide);
                }
            }
        }

        [Fact]
        public async Task Send_From8ThreadsAtOnce_ArrivesIntactAndInPerThreadOrder()
        {
            const int threads = 8, perThread = 2000;
            var got = new List<string>();
            var all = T.Tcs<bool>();
            using (var server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                c.MessageReceived += (s, m) =>
                {
                    lock (got)
                    {
                        got.Add(m.Text);
                        if (got.Count == threads * perThread) all.TrySetResult(true);
                    }
                };
            }))
            using (var conn = await T.Within(WsClient.ConnectAsync(T.Url(server)), 10, "connect"))
            {
                var start = new Barrier(threads);
                var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
                {
                    start.SignalAndWait();
                    for (int i = 0; i < perThread; i++)
                        conn.Send(t + ":" + i + ":" + new string((char)('a' + t), i % 100));
                })).ToList();
                workers.ForEach(w => w.Start());
                workers.ForEach(w => Assert.True(w.Join(30000), "sender thread finished"));
                await T.Within(all.Task, 30, "all messages");
                var next = new int[threads];
                lock (got)
                {
                    foreach (var m in got)
                    {
                        var parts = m.Split(':');
                        int t = int.Parse(parts[0]), i = int.Parse(parts[1]);
                        Assert.Equal(next[t], i);
                        Assert.Equal(new string((char)('a' + t), i % 100), parts[2]);
                        next[t]++;
                    }
                }
                Assert.True(next.All(n => n == perThread), "every thread's messages arrived");
            }
        }

        // The peer completes the handshake and then vanishes without a FIN: the heartbeat ends the
        // connection with an abnormal code and says why.
        [Fact]
        public async Task VanishedPeer_GivesClosedWithAbnormalStatusAndErrorText()
        {
            using (var peer = new SilentPeer())
            {
                var closed = T.Tcs<WsClosedEventArgs>();
                var errors = new ConcurrentQueue<Exception>();
                var options = new WsClientOptions { PingInterval = TimeSpan.FromMilliseconds(200), PongTimeout = TimeSpan.FromMilliseconds(500) };
                using (var conn = await T.Within(WsClient.ConnectAsync(peer.Url, options, c =>
                {
                    c.Closed += (s, e) => closed.TrySetResult(e);
                    c.Error += (s, e) => errors.Enqueue(e.Exception);
                }, CancellationToken.None), 10, "connect"))
                {
                    var e = await T.Within(closed.Task, 10, "Closed after the peer vanished");
                    Assert.Equal(1006, e.Code);
                    Assert.False(e.WasClean);
                    Assert.NotNull(e.Error);
                    Assert.True(e.Error.Length > 0, "error text");
                    Assert.Equal(WsError.Timeout, e.ErrorKind);
                    Assert.True(errors.Any(x => x is WsException), "Error event raised with a WsException");
                    Assert.Equal(WsState.Closed, conn.State);
                    var m = await T.Within(conn.ReceiveAsync(), 5, "ReceiveAsync after close");
                    Assert.Equal(WsMessageType.Close, m.Type);
                    Assert.Equal(1006, m.Close.Code);
                }
            }
        }

        // G3: CloseAsync completes even when the peer never answers the Close frame.
        [Fact]
        public async Task CloseAsync_WithSilentPeer_CompletesWithinTheCloseTimeout()
        {
            using (var peer = new SilentPeer())
            {
                var options = new WsClientOptions { CloseTimeout = TimeSpan.FromMilliseconds(500), PingInterval = TimeSpan.Zero };
                using (var conn = await T.Within(WsClient.ConnectAsync(peer.Url, options), 10, "connect"))
                {
                    var started = DateTime.UtcNow;
                    await T.Within(conn.CloseAsync(1000, "anyone?"), 5, "CloseAsync");
                    Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(4), "bounded close");
                    Assert.Equal(WsState.Closed, conn.State);
                    Assert.False(conn.CloseInfo.WasClean);
                    Assert.NotNull(conn.CloseInfo.Error);
                }
            }
        }

        [Fact]
        public async Task ReceiveAsync_Cancelled_DoesNotAbortTheConnection()
        {
            using (var echo = new EchoServer())
            using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url), 10, "connect"))
            {
                using (var cts = new CancellationTokenSource())
                {
                    var pending = conn.ReceiveAsync(cts.Token);
                    await Task.Delay(50);
                    Assert.False(pending.IsCompleted);
                    cts.Cancel();
                    try { await T.Within(pending, 5, "cancelled receive"); Assert.True(false, "expected cancellation"); }
                    catch (OperationCanceledException) { }
                    Assert.True(pending.IsCanceled);
                }
                Assert.Equal(WsState.Open, conn.State);
                conn.Send("still here");
                var m = await T.Within(conn.ReceiveAsync(), 5, "echo after the cancel");
                Assert.Equal("still here", m.Text);

                // cancellations racing deliveries lose nothing and keep the order
                const int n = 300;
                var sender = Task.Run(() => { for (int i = 0; i < n; i++) conn.Send("m" + i); });
                int next = 0;
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (next < n && DateTime.UtcNow < deadline)
                {
                    using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(next % 3)))
                    {
                        try
                        {
                            var msg = await conn.ReceiveAsync(cts.Token);
                            Assert.Equal("m" + next, msg.Text);
                            next++;
                        }
                        catch (OperationCanceledException) { }
                    }
                }
                await T.Within(sender, 5, "sender");
                Assert.Equal(n, next);
                Assert.Equal(WsState.Open, conn.State);
            }
        }

        [Fact]
        public async Task SendAsync_CompletesOnceWritten()
        {
            using (var echo = new EchoServer())
            using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url), 10, "connect"))
            {
                var big = new byte[8 * 1024 * 1024];
                var tasks = Enumerable.Range(0, 8).Select(i => conn.SendAsync(big)).ToList();
                tasks.Add(conn.SendAsync("last"));
                await T.Within(Task.WhenAll(tasks), 30, "SendAsync tasks");
                Assert.True(conn.BufferedAmount <= 0 || conn.BufferedAmount < big.Length, "queue drained past the messages");
                await T.Within(conn.CloseAsync(), 30, "close");
                Assert.True(conn.CloseInfo.WasClean, conn.CloseInfo.ToString());
                await Assert.ThrowsAsync<ObjectDisposedException>(() => { conn.Dispose(); return conn.SendAsync("x"); });
            }
        }

        [Fact]
        public async Task Server_AcceptHandler_RejectsWithStatus_OrAcceptsAndCloses()
        {
            var seen = new ConcurrentQueue<string>();
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, null, r =>
            {
                seen.Enqueue(r.Path + "?" + r.Query + " proto=" + string.Join(",", r.SubProtocols) + " x=" + r.GetHeader("X-Test"));
                if (r.Path == "/refuse") r.Reject(403, "no");
                else if (r.Path == "/later") r.AcceptAndClose(4003, "go away");
                else if (r.Path == "/throw") throw new Exception("handler bug");
                else r.Accept(r.SubProtocols.Count > 0 ? r.SubProtocols[r.SubProtocols.Count - 1] : null);
            }))
            {
                var serverErrors = new ConcurrentQueue<Exception>();
                server.Error += (s, e) => serverErrors.Enqueue(e.Exception);
                var ex = await Assert.ThrowsAsync<WsException>(() => WsClient.ConnectAsync(T.Url(server, "/refuse?a=1")));
                Assert.Equal(403, ex.HttpStatus);
                Assert.Equal(WsError.Handshake, ex.Error);

                var ex2 = await Assert.ThrowsAsync<WsException>(() => WsClient.ConnectAsync(T.Url(server, "/throw")));
                Assert.Equal(500, ex2.HttpStatus);
                Assert.True(serverErrors.Any(e => e.Message == "handler bug"), "server Error event");

                var closed = T.Tcs<WsClosedEventArgs>();
                WsConnection later;
                try
                {
                    later = await T.Within(WsClient.ConnectAsync(T.Url(server, "/later"), null,
                        c => c.Closed += (s, e) => closed.TrySetResult(e), CancellationToken.None), 10, "connect /later");
                    await T.Within(closed.Task, 10, "Closed of /later");
                    later.Dispose();
                }
                catch (WsException) { /* closed before ConnectAsync saw it open */ }
                var ce = await T.Within(closed.Task, 10, "Closed of /later");
                Assert.Equal(4003, ce.Code);
                Assert.Equal("go away", ce.Reason);

                var options = new WsClientOptions();
                options.SubProtocols.Add("chat.v1");
                options.SubProtocols.Add("chat.v2");
                options.Headers.Add(new KeyValuePair<string, string>("X-Test", "yes"));
                using (var conn = await T.Within(WsClient.ConnectAsync(T.Url(server, "/ok"), options), 10, "connect /ok"))
                {
                    Assert.Equal("chat.v2", conn.SubProtocol);
                    Assert.True(conn.PeerAddress.StartsWith("127.0.0.1:"), conn.PeerAddress);
                }
                Assert.True(seen.Contains("/ok? proto=chat.v1,chat.v2 x=yes"), string.Join(" | ", seen));
            }
        }

        [Fact]
        public async Task Abort_EndsAtOnce_WithAbnormalCloseOnBothSides()
        {
            using (var echo = new EchoServer())
            using (var conn = await T.Within(WsClient.ConnectAsync(echo.Url), 10, "connect"))
            {
                var closed = T.Tcs<WsClosedEventArgs>();
                conn.Closed += (s, e) => closed.TrySetResult(e);
                conn.Abort();
                var cc = await T.Within(closed.Task, 5, "client Closed");
                Assert.Equal(1006, cc.Code);
                Assert.False(cc.WasClean);
                Assert.Equal(WsError.Aborted, cc.ErrorKind);
                var sc = await T.Within(echo.FirstClose.Task, 10, "server Closed");
                Assert.False(sc.WasClean);
                Assert.Equal(1006, sc.Code);
                conn.Abort(); // again: harmless
                await T.Within(conn.CloseAsync(), 5, "CloseAsync after abort");
            }
        }

        [Fact]
        public async Task Connect_Refused_And_Cancelled()
        {
            int port;
            var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            l.Start();
            port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            var ex = await Assert.ThrowsAsync<WsException>(() => WsClient.ConnectAsync(new Uri("ws://127.0.0.1:" + port + "/")));
            Assert.Equal(WsError.Connect, ex.Error);
            Assert.True(ex.Message.Length > 0);

            // a peer that accepts TCP but never answers the upgrade: cancel the connect
            var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            silent.Start();
            try
            {
                using (var cts = new CancellationTokenSource(200))
                {
                    var url = new Uri("ws://127.0.0.1:" + ((System.Net.IPEndPoint)silent.LocalEndpoint).Port + "/");
                    var t = WsClient.ConnectAsync(url, null, cts.Token);
                    try { await T.Within(t, 5, "cancelled connect"); Assert.True(false, "expected cancellation"); }
                    catch (OperationCanceledException) { }
                }
            }
            finally { silent.Stop(); }
            Assert.Throws<ArgumentException>(() => WsClient.ConnectAsync(new Uri("http://127.0.0.1:1/")).GetAwaiter().GetResult());
        }
    }
}
