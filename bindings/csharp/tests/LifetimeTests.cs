// Lifetime under pressure: GC during 100,000 callbacks, Dispose from inside handlers, double
// Dispose, finalizer-only cleanup, and handlers that throw.
using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class LifetimeTests
    {
        [Fact]
        public async Task GcStress_100000MessagesThroughCallbacks_WhileCollecting()
        {
            const int n = 100000;
            int received = 0, bad = 0;
            var done = T.Tcs<bool>();
            var stop = 0;
            int collections = 0;
            var gc = new Thread(() =>
            {
                while (Volatile.Read(ref stop) == 0)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    Interlocked.Increment(ref collections);
                    Thread.Sleep(1);
                }
            });
            using (var echo = new EchoServer())
            {
                var conn = await T.Within(WsClient.ConnectAsync(echo.Url, null, c =>
                {
                    c.MessageReceived += (s, m) =>
                    {
                        var i = Volatile.Read(ref received);
                        if (m.Text != "msg " + i) Interlocked.Increment(ref bad);
                        if (Interlocked.Increment(ref received) == n) done.TrySetResult(true);
                    };
                }, CancellationToken.None), 10, "connect");
                gc.Start();
                var churn = new Thread(() => ConnectAndForget(echo.Url, 20));
                churn.Start();
                try
                {
                    using (conn)
                    {
                        for (int i = 0; i < n; i++)
                        {
                            conn.Send("msg " + i);
                            if (i % 1000 == 999)
                            {
                                GC.Collect(); // at least 100 full collections while messages are in flight
                                GC.WaitForPendingFinalizers();
                                Interlocked.Increment(ref collections);
                            }
                        }
                        await T.Within(done.Task, 120, "100,000 echoes (got " + Volatile.Read(ref received) + ")");
                        Assert.Equal(0, bad);
                        await T.Within(conn.CloseAsync(), 10, "close");
                        Assert.True(conn.CloseInfo.WasClean, conn.CloseInfo.ToString());
                    }
                }
                finally
                {
                    Volatile.Write(ref stop, 1);
                    gc.Join(10000);
                }
                Assert.True(Volatile.Read(ref collections) >= 100, "the collector ran " + collections + " times");
                Console.WriteLine("  (" + collections + " forced collections during the run)");
                Assert.True(churn.Join(20000), "throwaway connections made");
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (echo.Closes.Count < 21 && DateTime.UtcNow < deadline)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    Thread.Sleep(20);
                }
                Assert.Equal(21, echo.Closes.Count); // 20 freed by finalizers + the closed one
            }
        }

        [Fact]
        public async Task Dispose_InsideMessageReceived_StopsEventsAndFreesTheConnection()
        {
            using (var echo = new EchoServer())
            {
                int calls = 0;
                var closedEvents = 0;
                var conn = await T.Within(WsClient.ConnectAsync(echo.Url, null, c =>
                {
                    c.MessageReceived += (s, m) => { Interlocked.Increment(ref calls); c.Dispose(); };
                    c.Closed += (s, e) => Interlocked.Increment(ref closedEvents);
                }, CancellationToken.None), 10, "connect");
                conn.Send("one");
                try
                {
                    conn.Send("two");   // the echo of "one" may already have disposed it
                    conn.Send("three");
                }
                catch (ObjectDisposedException) { }
                var sc = await T.Within(echo.FirstClose.Task, 10, "server sees the disposed client close");
                Assert.Equal(1001, sc.Code);
                await Task.Delay(100);
                Assert.Equal(1, calls);
                Assert.Equal(0, closedEvents);
                Assert.Equal(WsState.Closed, conn.State);
                Assert.Throws<ObjectDisposedException>(() => conn.Send("after"));
                conn.Dispose();
            }
        }

        [Fact]
        public async Task Dispose_InsideClosed_IsHarmless()
        {
            using (var echo = new EchoServer())
            {
                var disposedInClosed = T.Tcs<WsClosedEventArgs>();
                var conn = await T.Within(WsClient.ConnectAsync(echo.Url, null, c =>
                {
                    c.Closed += (s, e) => { c.Dispose(); c.Dispose(); disposedInClosed.TrySetResult(e); };
                }, CancellationToken.None), 10, "connect");
                WsConnection sconn = null;
                T.Wait(() => echo.Connections.TryPeek(out sconn), 5, "server connection");
                sconn.Dispose(); // server side frees its handle: closes with 1001
                var e2 = await T.Within(disposedInClosed.Task, 10, "client Closed");
                Assert.Equal(1001, e2.Code);
                Assert.Equal(WsState.Closed, conn.State);
                Assert.Equal(0L, conn.BufferedAmount);
                Assert.Throws<ObjectDisposedException>(() => conn.Send("x"));
                await T.Within(conn.CloseAsync(), 5, "CloseAsync after dispose");
            }
        }

        [Fact]
        public async Task Dispose_Twice_AndFromAnotherThreadWhileSending()
        {
            using (var echo = new EchoServer())
            {
                var conn = await T.Within(WsClient.ConnectAsync(echo.Url), 10, "connect");
                var pending = conn.ReceiveAsync();
                var sender = Task.Run(() =>
                {
                    try { for (int i = 0; i < 100000; i++) conn.Send("spam"); }
                    catch (InvalidOperationException) { /* disposed (ObjectDisposedException) or closing */ }
                });
                await Task.Delay(20);
                conn.Dispose();
                conn.Dispose();
                await T.Within(sender, 10, "sender stops");
                try
                {
                    var m = await T.Within(pending, 5, "pending receive ends");
                    Assert.True(m.Type == WsMessageType.Text, "a message that arrived before the Dispose");
                }
                catch (ObjectDisposedException) { /* Dispose ends a pending receive: no made-up close */ }
                await T.Within(echo.FirstClose.Task, 10, "server sees the close");
                Assert.Throws<ObjectDisposedException>(() => conn.Send("x"));
                Assert.Throws<ObjectDisposedException>(() => { conn.ReceiveAsync(); });
            }
        }

        // Dispose (and so the SafeHandle release, also on the finalizer thread) never waits for a
        // handler running on another thread.
        [Fact]
        public async Task Dispose_WhileAHandlerRunsOnAnotherThread_DoesNotBlock()
        {
            using (var echo = new EchoServer())
            {
                var inHandler = T.Tcs<bool>();
                var release = new ManualResetEventSlim(false);
                int calls = 0;
                var conn = await T.Within(WsClient.ConnectAsync(echo.Url, null, c =>
                {
                    c.MessageReceived += (s, m) =>
                    {
                        Interlocked.Increment(ref calls);
                        inHandler.TrySetResult(true);
                        release.Wait(10000);
                    };
                }, CancellationToken.None), 10, "connect");
                conn.Send("block");
                conn.Send("never delivered");
                await T.Within(inHandler.Task, 10, "handler entered");
                var sw = System.Diagnostics.Stopwatch.StartNew();
                conn.Dispose();
                Assert.True(sw.ElapsedMilliseconds < 500, "Dispose took " + sw.ElapsedMilliseconds + " ms");
                release.Set();
                await T.Within(echo.FirstClose.Task, 10, "server sees the close");
                await Task.Delay(50);
                Assert.Equal(1, calls);
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void ConnectAndForget(Uri url, int count)
        {
            // On a thread of its own, so no stack slot of the test keeps a connection alive.
            var t = new Thread(() =>
            {
                for (int i = 0; i < count; i++)
                {
                    var c = WsClient.ConnectAsync(url).GetAwaiter().GetResult();
                    c.Send("hello " + i);
                }
            });
            t.Start();
            t.Join();
        }

        [Fact]
        public void Finalizer_FreesUndisposedConnections()
        {
            const int count = 6;
            using (var echo = new EchoServer())
            {
                ConnectAndForget(echo.Url, count);
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (echo.Closes.Count < count && DateTime.UtcNow < deadline)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    Thread.Sleep(50);
                }
                Assert.Equal(count, echo.Closes.Count);
                Assert.True(echo.Closes.All(e => e.Code == 1001), string.Join(", ", echo.Closes));
            }
        }

        [Fact]
        public async Task Handler_ThatThrows_IsReportedAndDeliveryContinues()
        {
            using (var echo = new EchoServer())
            {
                var errors = new ConcurrentQueue<Exception>();
                var got = new ConcurrentQueue<string>();
                var third = T.Tcs<bool>();
                var closed = T.Tcs<WsClosedEventArgs>();
                var conn = await T.Within(WsClient.ConnectAsync(echo.Url, null, c =>
                {
                    c.MessageReceived += (s, m) => { if (m.Text == "boom") throw new InvalidOperationException("handler failed"); };
                    c.MessageReceived += (s, m) => { got.Enqueue(m.Text); if (m.Text == "three") third.TrySetResult(true); };
                    c.Error += (s, e) => { errors.Enqueue(e.Exception); throw new Exception("Error handler failed too"); };
                    c.Closed += (s, e) => { closed.TrySetResult(e); throw new Exception("Closed handler failed"); };
                }, CancellationToken.None), 10, "connect");
                using (conn)
                {
                    conn.Send("boom");
                    conn.Send("two");
                    conn.Send("three");
                    await T.Within(third.Task, 10, "messages after the throw");
                    Assert.Equal("boom,two,three", string.Join(",", got));
                    Assert.Equal(1, errors.Count);
                    Assert.Equal("handler failed", errors.First().Message);
                    await T.Within(conn.CloseAsync(), 10, "close");
                    await T.Within(closed.Task, 10, "Closed");
                    T.Wait(() => errors.Count == 2, 5, "Closed handler's exception reported");
                }
            }
        }

        [Fact]
        public async Task Server_ThrowingOnConnection_AndServerDispose()
        {
            var server = WsServer.Listen("127.0.0.1", 0, c => { throw new Exception("onConnection failed"); });
            var errors = new ConcurrentQueue<Exception>();
            var errored = T.Tcs<Exception>();
            server.Error += (s, e) => { errors.Enqueue(e.Exception); errored.TrySetResult(e.Exception); };
            var closed = T.Tcs<WsClosedEventArgs>();
            var conn = await T.Within(WsClient.ConnectAsync(T.Url(server), null, c => c.Closed += (s, e) => closed.TrySetResult(e),
                                                            CancellationToken.None), 10, "connect");
            using (conn)
            {
                conn.Send("still served");
                await T.Within(server.StopAsync(TimeSpan.FromSeconds(2)), 10, "StopAsync");
                var e = await T.Within(closed.Task, 10, "client sees the stop");
                Assert.Equal(1001, e.Code);
                // The server's handler runs on a callback thread, which may come after the client
                // saw the stop (the Close frame does not wait for it): wait for its Error event.
                await T.Within(errored.Task, 10, "server Error event");
                Assert.True(errors.Any(x => x.Message == "onConnection failed"), "server Error event");
                server.Dispose();
                server.Dispose();
                await T.Within(server.StopAsync(TimeSpan.FromSeconds(1)), 5, "StopAsync after Dispose");
            }
        }

        // The server's strong GCHandle is freed by the core's release hook after wsn_server_free:
        // a disposed server (and the connections it served) can be collected.
        [Fact]
        public async Task Server_AfterDispose_IsCollected()
        {
            // Three servers, one after the other: Mono's collector scans stacks conservatively,
            // and a stale word on some thread's stack can keep one object alive (seen twice in
            // about 40 CI runs, only on Mono). A release hook that never ran keeps all three.
            const int servers = 3;
            var weak = new WeakReference[servers];
            Exception error = null;
            // On a thread of its own, so no stack slot of the test's keeps a server alive.
            var t = new Thread(() =>
            {
                try { for (int i = 0; i < servers; i++) weak[i] = ServeOneConnectionAndDispose(); }
                catch (Exception e) { error = e; }
            });
            t.Start();
            Assert.True(t.Join(60000), "served one connection per server");
            if (error != null) throw error;
            Func<int> alive = () => weak.Count(w => w.IsAlive);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (alive() > 0 && DateTime.UtcNow < deadline)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                await Task.Delay(20);
            }
            Assert.True(alive() <= 1, alive() + " of " + servers + " disposed servers are still referenced (their release hooks did not run)");
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static WeakReference ServeOneConnectionAndDispose()
        {
            var server = WsServer.Listen("127.0.0.1", 0, c => c.MessageReceived += (s, m) => c.Send(m.Data));
            using (var conn = WsClient.ConnectAsync(T.Url(server)).GetAwaiter().GetResult())
            {
                conn.Send(new byte[] { 1, 2, 3 });
                var m = T.Within(conn.ReceiveAsync(), 10, "echo").GetAwaiter().GetResult();
                Assert.Equal(3, m.Data.Length);
                server.Dispose();
            }
            return new WeakReference(server);
        }

        // Frees race messages, handlers and the collector: 4 threads send to and dispose 100
        // connections at random while handlers dispose their own connection now and then and the
        // echo server keeps answering. A Dispose during a handler on another thread leaves the
        // native free to the end of that callback. Nothing crashes or hangs, and the server sees
        // every connection close.
        [Fact]
        public async Task Dispose_RacingSendsHandlersAndTheCollector_From4Threads()
        {
            const int count = 100;
            using (var echo = new EchoServer())
            {
                var conns = new WsConnection[count];
                int handled = 0;
                for (int i = 0; i < count; i++)
                {
                    conns[i] = await T.Within(WsClient.ConnectAsync(echo.Url, null, c =>
                    {
                        c.MessageReceived += (s, m) =>
                        {
                            if (Interlocked.Increment(ref handled) % 4999 == 0) c.Dispose();
                            else if (m.Data.Length > 0 && m.Data[0] == 1) Thread.Sleep(1); // a slow handler
                        };
                    }, CancellationToken.None), 10, "connect " + i);
                }
                var stop = 0;
                var workers = Enumerable.Range(0, 4).Select(t => new Thread(() =>
                {
                    var rnd = new Random(t);
                    while (Volatile.Read(ref stop) == 0)
                    {
                        var c = conns[rnd.Next(count)];
                        try
                        {
                            if (rnd.Next(50000) == 0) c.Dispose();
                            else c.Send(new byte[] { (byte)rnd.Next(3), 0, 0, 0 });
                        }
                        catch (InvalidOperationException) { /* disposed (ObjectDisposedException) or closing */ }
                        catch (WsException e) when (e.Error == WsError.WouldBlock) { }
                        if (rnd.Next(500) == 0) GC.Collect();
                    }
                })).ToList();
                workers.ForEach(w => w.Start());
                await Task.Delay(3000);
                Volatile.Write(ref stop, 1);
                workers.ForEach(w => Assert.True(w.Join(10000), "worker stopped"));
                foreach (var c in conns) c.Dispose();
                T.Wait(() => echo.Closes.Count == count, 30, "the server sees " + count + " closes (saw " + echo.Closes.Count + ")");
                Console.WriteLine("  (" + Volatile.Read(ref handled) + " messages handled)");
            }
        }
    }
}
