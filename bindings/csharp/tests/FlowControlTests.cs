// Issue 16 for C#: flow control, send completion, closes and server stops come from the core.
// (2) closing while reading is paused, (3) server stop/free deliver the core's CLOSE events, a
// 60 MiB flood into a process that does not read, SendAsync on DRAIN, and WOULD_BLOCK.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class FlowControlTests
    {
        // Defect (2): the binding used to pause reading itself past MaxQueue, so closing a
        // connection to a chatty server waited for the close timeout and ended unclean. The core's
        // pause (manual ack) gives way to a close: it completes cleanly with 1000 at once.
        [Fact]
        public async Task Close_WhileReadingIsPaused_IsCleanWith1000_AtOnce()
        {
            var serverClosed = T.Tcs<WsClosedEventArgs>();
            using (var server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                c.Closed += (s, e) => serverClosed.TrySetResult(e);
                Task.Run(async () => // chatty: sends until the connection closes
                {
                    var payload = new byte[16 * 1024];
                    try { while (c.State == WsState.Open) await c.SendAsync(payload); }
                    catch (Exception) { /* closing or closed */ }
                });
            }))
            {
                var options = new WsClientOptions { MaxQueue = 8 }; // CloseTimeout stays 5 s
                using (var conn = await T.Within(WsClient.ConnectAsync(T.Url(server), options), 10, "connect"))
                {
                    T.Wait(() => conn.QueuedMessages >= 8, 10, "8 unread messages");
                    await Task.Delay(300);
                    int queued = conn.QueuedMessages;
                    Assert.True(queued < 64, "reading did not pause: " + queued + " unread");
                    var sw = Stopwatch.StartNew();
                    await T.Within(conn.CloseAsync(1000, "enough"), 3, "CloseAsync while reading is paused");
                    Console.WriteLine("  (closed in " + sw.ElapsedMilliseconds + " ms with " + queued + " unread messages)");
                    Assert.Equal(1000, conn.CloseInfo.Code);
                    Assert.True(conn.CloseInfo.WasClean, conn.CloseInfo.ToString());
                    var sc = await T.Within(serverClosed.Task, 5, "server Closed");
                    Assert.Equal(1000, sc.Code);
                    Assert.True(sc.WasClean, sc.ToString());
                }
            }
        }

        // Defect (3): stopping and freeing a server lost the server side's CLOSE events. Now
        // Dispose (and StopAsync) return once the core delivered every connection's real Closed,
        // and pending ReceiveAsync calls end with that close, not one the binding made up.
        [Fact]
        public async Task Server_DisposeAndStop_DeliverEveryConnectionsCloseFromTheCore()
        {
            foreach (var viaStop in new[] { false, true })
            {
                var closes = new ConcurrentQueue<WsClosedEventArgs>();
                var receives = new ConcurrentQueue<Task<WsMessage>>();
                var server = WsServer.Listen("127.0.0.1", 0, c =>
                {
                    c.Closed += (s, e) => closes.Enqueue(e);
                    receives.Enqueue(c.ReceiveAsync());
                });
                var clients = new List<WsConnection>();
                try
                {
                    for (int i = 0; i < 3; i++)
                        clients.Add(await T.Within(WsClient.ConnectAsync(T.Url(server)), 10, "connect " + i));
                    T.Wait(() => receives.Count == 3, 10, "three server connections");
                    if (viaStop) await T.Within(server.StopAsync(TimeSpan.FromSeconds(5)), 20, "StopAsync");
                    server.Dispose(); // returns once every Closed was delivered
                    Assert.Equal(3, closes.Count);
                    foreach (var e in closes)
                    {
                        Assert.Equal(1001, e.Code);
                        Assert.True(e.WasClean, e.ToString());
                    }
                    foreach (var r in receives)
                    {
                        Assert.True(r.IsCompleted, "a pending ReceiveAsync ended with the close");
                        Assert.Equal(WsMessageType.Close, r.Result.Type);
                        Assert.Equal(1001, r.Result.Close.Code);
                        Assert.Null(r.Result.Close.Error);
                    }
                }
                finally
                {
                    server.Dispose();
                    clients.ForEach(c => c.Dispose());
                }
            }
        }

        // A peer sends 300 messages of 60 MiB to an application that never reads: the core reads
        // one (manual ack: ReceiveAsync never took it) and stops. Measured in a fresh process of
        // this test runner, so the peak resident memory (VmHWM) is this scenario's alone.
        [Fact]
        public void Flood_300x60MiB_IntoAnApplicationThatDoesNotRead_StaysUnder200MiB()
        {
            // In a child only under MiniXunit (an entry point that takes test-name filters).
            if (Environment.GetEnvironmentVariable("WSN_FLOOD_CHILD") == "1" ||
                Assembly.GetEntryAssembly() != typeof(FlowControlTests).Assembly)
            {
                FloodInThisProcess();
                return;
            }
            var runtime = Process.GetCurrentProcess().MainModule.FileName; // mono or dotnet
            var assembly = Assembly.GetEntryAssembly().Location;
            var psi = new ProcessStartInfo(runtime, "\"" + assembly + "\" Flood_300x60MiB")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(assembly),
            };
            psi.EnvironmentVariables["WSN_FLOOD_CHILD"] = "1";
            using (var child = Process.Start(psi))
            {
                var stdout = child.StandardOutput.ReadToEndAsync();
                var stderr = child.StandardError.ReadToEndAsync();
                if (!child.WaitForExit(90000))
                {
                    child.Kill();
                    throw new TimeoutException("the flood process did not end within 90 s");
                }
                child.WaitForExit();
                var output = stdout.Result + stderr.Result;
                foreach (var line in output.Split('\n').Where(l => l.Contains("flood:") || l.Contains("FAIL")))
                    Console.WriteLine("  " + line.Trim());
                Assert.True(child.ExitCode == 0 && output.Contains("1 passed, 0 failed"), "flood process:\n" + output);
            }
        }

        private static void FloodInThisProcess()
        {
            const int size = 60 << 20;
            var script = @"
import socket, base64, hashlib, struct, time
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
l.settimeout(30); c, _ = l.accept(); c.settimeout(30)
head = b''
while b'\r\n\r\n' not in head:
    head += c.recv(4096)
key = [h.split(b':', 1)[1].strip() for h in head.split(b'\r\n') if h.lower().startswith(b'sec-websocket-key:')][0]
acc = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
c.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + acc + b'\r\n\r\n')
frame = struct.pack('!BBQ', 0x82, 127, SIZE) + bytes(SIZE)
end = time.time() + 20
try:
    for i in range(300):
        if time.time() > end: break
        c.sendall(frame)
except Exception:
    pass
".Replace("SIZE", size.ToString());
            var file = Path.Combine(Path.GetTempPath(), "wsn_flood_" + Process.GetCurrentProcess().Id + ".py");
            File.WriteAllText(file, script);
            var psi = new ProcessStartInfo("python3", "\"" + file + "\"") { UseShellExecute = false, RedirectStandardOutput = true };
            using (var peer = Process.Start(psi))
            {
                try
                {
                    var portLine = peer.StandardOutput.ReadLineAsync();
                    if (!portLine.Wait(10000)) throw new TimeoutException("the flooding peer did not start");
                    var port = int.Parse(portLine.Result.Trim());
                    var before = StatusKiB("VmRSS:");
                    var conn = WsClient.ConnectAsync(new Uri("ws://127.0.0.1:" + port + "/")).GetAwaiter().GetResult();
                    using (conn)
                    {
                        Thread.Sleep(6000); // the application never calls ReceiveAsync
                        var peak = StatusKiB("VmHWM:");
                        var got = conn.QueuedMessages;
                        Console.WriteLine("flood: " + got + " messages of 60 MiB read; RSS before " + before + " KiB, peak " + peak + " KiB (" + RuntimeName + ")");
                        Assert.True(got >= 1, "no message arrived");
                        Assert.True(got <= 2, got + " messages were read although none was received");
                        Assert.True(peak < 200 << 10, "peak resident memory " + peak + " KiB (limit 200 MiB)");
                        conn.Abort();
                    }
                }
                finally
                {
                    try { peer.Kill(); } catch (Exception) { }
                    peer.WaitForExit(5000);
                    File.Delete(file);
                }
            }
        }

        private static string RuntimeName => Type.GetType("Mono.Runtime") != null ? "Mono" : "CoreCLR";

        private static long StatusKiB(string field)
        {
            foreach (var line in File.ReadAllLines("/proc/self/status"))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return long.Parse(line.Substring(field.Length).Trim().Split(' ')[0]);
            throw new InvalidOperationException(field + " not in /proc/self/status");
        }

        // SendAsync completes on the core's DRAIN events: not while the peer reads nothing, and all
        // of them (in order) once it reads. A full send queue makes Send throw WouldBlock and queue
        // nothing; SendAsync instead waits for room, and a later Send may not overtake it.
        [Fact]
        public async Task SendAsync_CompletesOnDrain_AndWaitsForRoomWhenTheQueueIsFull()
        {
            using (var peer = new SilentPeer())
            {
                var options = new WsClientOptions { MaxSendQueue = 256 * 1024, PingInterval = TimeSpan.Zero };
                using (var conn = await T.Within(WsClient.ConnectAsync(peer.Url, options), 10, "connect"))
                {
                    var socket = await T.Within(peer.Accepted, 10, "peer socket");
                    var payload = new byte[64 * 1024];
                    // Fill the kernel's buffers and the queue: send until refused, until a send
                    // is refused even after a pause (the I/O thread writes in the background).
                    int seq = 0;
                    WsException refused = null;
                    for (int round = 0; round < 500; round++)
                    {
                        int before = seq;
                        refused = null;
                        while (refused == null && seq < 100000)
                        {
                            BitConverter.GetBytes(seq).CopyTo(payload, 0);
                            try { conn.Send(payload); seq++; }
                            catch (WsException e) { refused = e; }
                        }
                        if (refused != null && seq == before) break;
                        await Task.Delay(100);
                    }
                    Assert.NotNull(refused);
                    Assert.Equal(WsError.WouldBlock, refused.Error);
                    int sentBySend = seq;
                    Console.WriteLine("  (" + sentBySend + " messages of 64 KiB queued before WouldBlock: " + refused.Message + ")");

                    var tasks = new List<Task>();
                    for (int i = 0; i < 20; i++, seq++)
                    {
                        BitConverter.GetBytes(seq).CopyTo(payload, 0);
                        tasks.Add(conn.SendAsync(payload)); // copies what must wait: the buffer is ours again
                    }
                    BitConverter.GetBytes(-1).CopyTo(payload, 0);
                    var e2 = Assert.Throws<WsException>(() => conn.Send(payload)); // may not overtake them
                    Assert.Equal(WsError.WouldBlock, e2.Error);
                    await Task.Delay(300);
                    Assert.True(tasks.All(t => !t.IsCompleted), "a SendAsync completed although the peer reads nothing");

                    // The peer reads: every message arrives once, in order, and every SendAsync completes.
                    var reader = Task.Run(() =>
                    {
                        for (int expect = 0; expect < seq; expect++)
                        {
                            var f = SilentPeer.ReadFrame(socket);
                            Assert.Equal(2, f.Key);
                            Assert.Equal(64 * 1024, f.Value.Length);
                            Assert.Equal(expect, BitConverter.ToInt32(f.Value, 0));
                        }
                    });
                    await T.Within(Task.WhenAll(tasks), 20, "SendAsync tasks after the peer read");
                    await T.Within(reader, 20, "the peer reads every message in order");
                    Assert.Equal(0L, conn.BufferedAmount);
                    conn.Abort();
                }
            }
        }

        // SendQueuePolicy.Close: a server's answer to a client that reads too slowly is a close
        // with 1008, its Closed carrying WsError.WouldBlock; MaxSendQueue reaches the core.
        [Fact]
        public async Task Server_SendQueuePolicyClose_ClosesASlowReaderWith1008()
        {
            var closed = T.Tcs<WsClosedEventArgs>();
            var opened = T.Tcs<WsConnection>();
            var options = new WsServerOptions
            {
                MaxSendQueue = 256 * 1024,
                SendQueuePolicy = WsSendQueuePolicy.Close,
                CloseTimeout = TimeSpan.FromMilliseconds(500),
            };
            using (var server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                c.Closed += (s, e) => closed.TrySetResult(e);
                opened.TrySetResult(c);
            }, options))
            using (var client = new System.Net.Sockets.TcpClient())
            {
                await client.ConnectAsync("127.0.0.1", server.Port);
                var upgrade = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
                var bytes = Encoding.ASCII.GetBytes(upgrade);
                client.GetStream().Write(bytes, 0, bytes.Length); // and never reads
                var conn = await T.Within(opened.Task, 10, "server connection");
                var chunk = new byte[64 * 1024];
                Exception refused = null;
                for (int i = 0; i < 4000 && refused == null; i++)
                {
                    try { conn.Send(chunk); }
                    catch (Exception e) { refused = e; }
                }
                Assert.NotNull(refused);
                var e2 = await T.Within(closed.Task, 10, "Closed of the slow reader");
                Assert.Equal(1008, e2.Code);
                Assert.Equal(WsError.WouldBlock, e2.ErrorKind);
                Assert.False(e2.WasClean);
                conn.Dispose();
            }
        }
    }
}
