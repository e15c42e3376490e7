// Echo server: listens on 127.0.0.1 at the port given as the first argument (or $PORT, or
// 9001) and sends every message back. Ctrl+C (or SIGTERM) stops it gracefully.
//
//   mcs -langversion:7.2 -r:WsNative.dll EchoServer.cs && mono EchoServer.exe 9001
//   (libwsnative.so next to the exe, or on LD_LIBRARY_PATH)
using System;
using System.Threading;
using WsNative;

static class EchoServer
{
    static int Main(string[] args)
    {
        var port = args.Length > 0 ? int.Parse(args[0])
                 : int.Parse(Environment.GetEnvironmentVariable("PORT") ?? "9001");
        var stop = new ManualResetEventSlim(false);
        Console.CancelKeyPress += (s, e) => { e.Cancel = true; stop.Set(); };
        AppDomain.CurrentDomain.ProcessExit += (s, e) => stop.Set();

        using (var server = WsServer.Listen("127.0.0.1", port, conn =>
        {
            // Runs on a wsnative callback thread before any message of this connection:
            // subscribe here. The server keeps the connection alive until it closes.
            Console.WriteLine("open   " + conn.PeerAddress);
            conn.MessageReceived += (s, m) =>
            {
                try
                {
                    if (m.IsText) conn.Send(m.Text); // queues and returns at once
                    else conn.Send(m.Data);
                }
                catch (InvalidOperationException) { } // the connection is closing
            };
            conn.Closed += (s, e) =>
            {
                Console.WriteLine("closed " + conn.PeerAddress + ": " + e);
                conn.Dispose();
            };
        }))
        {
            Console.WriteLine("echo server on ws://127.0.0.1:" + server.Port + "/");
            stop.Wait();
            server.StopAsync(TimeSpan.FromSeconds(2)).Wait();
        }
        return 0;
    }
}
