// Shared test helpers: bounded waits, an echo server, a raw TCP "peer" that completes the
// handshake and then goes silent. Loopback only; every wait has a timeout.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    internal static class T
    {
        public static async Task Within(Task task, int seconds, string what)
        {
            if (await Task.WhenAny(task, Task.Delay(seconds * 1000)).ConfigureAwait(false) != task)
                throw new TimeoutException(what + " did not happen within " + seconds + " s");
            await task.ConfigureAwait(false);
        }

        public static async Task<TR> Within<TR>(Task<TR> task, int seconds, string what)
        {
            if (await Task.WhenAny(task, Task.Delay(seconds * 1000)).ConfigureAwait(false) != task)
                throw new TimeoutException(what + " did not happen within " + seconds + " s");
            return await task.ConfigureAwait(false);
        }

        public static void Wait(Func<bool> condition, int seconds, string what)
        {
            var deadline = DateTime.UtcNow.AddSeconds(seconds);
            while (!condition())
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException(what + " did not happen within " + seconds + " s");
                Thread.Sleep(5);
            }
        }

        public static Uri Url(WsServer s, string path = "/") => new Uri("ws://127.0.0.1:" + s.Port + path);

        public static TaskCompletionSource<TR> Tcs<TR>() =>
            new TaskCompletionSource<TR>(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A WsServer that echoes every message and records each connection's close.</summary>
    internal sealed class EchoServer : IDisposable
    {
        public readonly WsServer Server;
        public readonly ConcurrentQueue<WsConnection> Connections = new ConcurrentQueue<WsConnection>();
        public readonly ConcurrentQueue<WsClosedEventArgs> Closes = new ConcurrentQueue<WsClosedEventArgs>();
        public readonly TaskCompletionSource<WsClosedEventArgs> FirstClose = T.Tcs<WsClosedEventArgs>();

        public EchoServer(WsServerOptions options = null)
        {
            Server = WsServer.Listen("127.0.0.1", 0, c =>
            {
                Connections.Enqueue(c);
                c.MessageReceived += (s, m) =>
                {
                    try
                    {
                        if (m.IsText) c.Send(m.Text);
                        else c.Send(m.Data);
                    }
                    catch (InvalidOperationException) { /* closing, or disposed */ }
                };
                c.Closed += (s, e) =>
                {
                    Closes.Enqueue(e);
                    FirstClose.TrySetResult(e);
                };
            }, options);
        }

        public Uri Url => T.Url(Server);

        public void Dispose()
        {
            Server.Dispose();
            WsConnection c;
            while (Connections.TryDequeue(out c)) c.Dispose();
        }
    }

    /// <summary>Completes the WebSocket handshake on a raw socket and then never reads or writes again.</summary>
    internal sealed class SilentPeer : IDisposable
    {
        private readonly TcpListener _listener = new TcpListener(IPAddress.Loopback, 0);
        private readonly Task<Socket> _accepted;

        public SilentPeer()
        {
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _accepted = Task.Run(() => Handshake());
        }

        public int Port { get; }
        public Uri Url => new Uri("ws://127.0.0.1:" + Port + "/");
        public Task<Socket> Accepted => _accepted;

        private Socket Handshake()
        {
            var s = _listener.AcceptSocket();
            s.ReceiveTimeout = 10000;
            var buf = new byte[8192];
            int n = 0;
            while (true)
            {
                var r = s.Receive(buf, n, buf.Length - n, SocketFlags.None);
                if (r <= 0) throw new Exception("peer closed during the handshake");
                n += r;
                if (Encoding.ASCII.GetString(buf, 0, n).Contains("\r\n\r\n")) break;
            }
            string key = null;
            foreach (var line in Encoding.ASCII.GetString(buf, 0, n).Split(new[] { "\r\n" }, StringSplitOptions.None))
                if (line.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))
                    key = line.Substring(18).Trim();
            string accept;
            using (var sha1 = SHA1.Create())
                accept = Convert.ToBase64String(sha1.ComputeHash(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
            s.Send(Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                                           "Sec-WebSocket-Accept: " + accept + "\r\n\r\n"));
            return s; // from here on: silence, no FIN
        }

        /// <summary>Reads one frame the client sent (masked): its opcode and unmasked payload.</summary>
        public static KeyValuePair<int, byte[]> ReadFrame(Socket s)
        {
            var head = ReadExactly(s, 2);
            int opcode = head[0] & 0x0f;
            long len = head[1] & 0x7f;
            if (len == 126) { var b = ReadExactly(s, 2); len = (b[0] << 8) | b[1]; }
            else if (len == 127) { var b = ReadExactly(s, 8); len = 0; for (int i = 0; i < 8; i++) len = (len << 8) | b[i]; }
            var mask = (head[1] & 0x80) != 0 ? ReadExactly(s, 4) : null;
            var payload = ReadExactly(s, checked((int)len));
            if (mask != null) for (int i = 0; i < payload.Length; i++) payload[i] ^= mask[i & 3];
            return new KeyValuePair<int, byte[]>(opcode, payload);
        }

        private static byte[] ReadExactly(Socket s, int n)
        {
            var buf = new byte[n];
            for (int got = 0; got < n;)
            {
                var r = s.Receive(buf, got, n - got, SocketFlags.None);
                if (r <= 0) throw new Exception("the client closed the stream");
                got += r;
            }
            return buf;
        }

        public void Dispose()
        {
            try { if (_accepted.IsCompleted && !_accepted.IsFaulted) _accepted.Result.Close(); } catch { }
            _listener.Stop();
        }
    }
}
