// Client throughput with W messages in flight against an echo server, for the figures in
// bindings/csharp/README.md (run by bench/run.sh). Prints messages per second.
//   Bench MODE URL [N] [SIZE] [W]
// MODE: "pull"   WsNative, Send + ReceiveAsync (the ClientWebSocket-shaped use)
//       "async"  WsNative, SendAsync (not awaited one by one) + ReceiveAsync
//       "events" WsNative, MessageReceived handler sends the next message
//       "cws"    System.Net.WebSockets.ClientWebSocket: a sender loop awaiting SendAsync (at most
//                W ahead of the receiver) and a receiver loop
using System;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;
using WsNative;

public static class Bench
{
    public static int Main(string[] args)
    {
        var mode = args[0];
        var uri = new Uri(args[1]);
        int n = args.Length > 2 ? int.Parse(args[2]) : 200000;
        int size = args.Length > 3 ? int.Parse(args[3]) : 64;
        int w = args.Length > 4 ? int.Parse(args[4]) : 16;
        var payload = new byte[size];
        double rate;
        switch (mode)
        {
            case "pull": rate = Pull(uri, n, payload, w, false).GetAwaiter().GetResult(); break;
            case "async": rate = Pull(uri, n, payload, w, true).GetAwaiter().GetResult(); break;
            case "events": rate = Events(uri, n, payload, w).GetAwaiter().GetResult(); break;
            case "cws": rate = Cws(uri, n, payload, w).GetAwaiter().GetResult(); break;
            default: Console.Error.WriteLine("unknown mode " + mode); return 2;
        }
        Console.WriteLine(((long)rate).ToString());
        return 0;
    }

    private static async Task<double> Pull(Uri uri, int n, byte[] payload, int w, bool sendAsync)
    {
        using (var conn = await WsClient.ConnectAsync(uri))
        {
            var sw = Stopwatch.StartNew();
            int sent = 0;
            Task last = Task.CompletedTask;
            for (; sent < w && sent < n; sent++)
                if (sendAsync) last = conn.SendAsync(payload); else conn.Send(payload);
            for (int got = 0; got < n; got++)
            {
                var m = await conn.ReceiveAsync();
                if (m.Type == WsMessageType.Close) throw new Exception("closed: " + m.Close);
                if (sent < n)
                {
                    if (sendAsync) last = conn.SendAsync(payload); else conn.Send(payload);
                    sent++;
                }
            }
            await last;
            var rate = n / sw.Elapsed.TotalSeconds;
            await conn.CloseAsync();
            return rate;
        }
    }

    private static async Task<double> Events(Uri uri, int n, byte[] payload, int w)
    {
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        int got = 0, sent = 0;
        var conn = await WsClient.ConnectAsync(uri, null, c =>
        {
            c.MessageReceived += (s, m) =>
            {
                if (++got >= n) done.TrySetResult(true);
                else if (Interlocked.Increment(ref sent) <= n) c.Send(payload);
            };
            c.Closed += (s, e) => done.TrySetException(new Exception("closed: " + e));
        }, CancellationToken.None);
        using (conn)
        {
            var sw = Stopwatch.StartNew();
            int first = Math.Min(w, n);
            Interlocked.Add(ref sent, first);
            for (int i = 0; i < first; i++) conn.Send(payload);
            await done.Task;
            var rate = n / sw.Elapsed.TotalSeconds;
            await conn.CloseAsync();
            return rate;
        }
    }

    private static async Task<double> Cws(Uri uri, int n, byte[] payload, int w)
    {
        using (var ws = new ClientWebSocket())
        {
            await ws.ConnectAsync(uri, CancellationToken.None);
            var window = new SemaphoreSlim(w);
            var sw = Stopwatch.StartNew();
            var sender = Task.Run(async () =>
            {
                for (int i = 0; i < n; i++)
                {
                    await window.WaitAsync();
                    await ws.SendAsync(new ArraySegment<byte>(payload), WebSocketMessageType.Binary, true, CancellationToken.None);
                }
            });
            var buf = new byte[Math.Max(payload.Length, 1) + 16];
            for (int got = 0; got < n; got++)
            {
                WebSocketReceiveResult r;
                do r = await ws.ReceiveAsync(new ArraySegment<byte>(buf), CancellationToken.None);
                while (!r.EndOfMessage);
                if (r.MessageType == WebSocketMessageType.Close) throw new Exception("closed");
                window.Release();
            }
            await sender;
            var rate = n / sw.Elapsed.TotalSeconds;
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
            return rate;
        }
    }
}
