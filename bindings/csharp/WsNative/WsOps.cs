// Operations (issue 15 §3) for C#: session deadlines, tags and close by tag, broadcast, the
// staggered drain, stats and pings. Thin: every call is one native call (OpsNative.cs).
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using WsNative.Native;
using static WsNative.Native.OpsNative;

namespace WsNative
{
    /// <summary>A connection's counters (WsConnection.Stats).</summary>
    public sealed class WsConnectionStats
    {
        internal WsConnectionStats(WsnConnStats s)
        {
            BytesSent = (long)s.BytesSent;
            BytesReceived = (long)s.BytesReceived;
            MessagesSent = (long)s.MessagesSent;
            MessagesReceived = (long)s.MessagesReceived;
            QueuedBytes = (long)s.QueuedBytes;
            LastRoundTrip = s.LastRttUs == 0 ? (TimeSpan?)null : TimeSpan.FromTicks((long)s.LastRttUs * 10);
            RoundTrips = (long)s.RttCount;
            Age = TimeSpan.FromMilliseconds(s.AgeMs);
        }

        /// <summary>Bytes the socket took (frame headers included).</summary>
        public long BytesSent { get; }
        /// <summary>Bytes read from the socket.</summary>
        public long BytesReceived { get; }
        /// <summary>Messages handed to the kernel.</summary>
        public long MessagesSent { get; }
        /// <summary>Whole messages received.</summary>
        public long MessagesReceived { get; }
        /// <summary>Bytes queued and not yet handed to the kernel.</summary>
        public long QueuedBytes { get; }
        /// <summary>Round-trip time of the last answered ping (null before the first).</summary>
        public TimeSpan? LastRoundTrip { get; }
        /// <summary>How many round trips were measured (grows with each answered ping).</summary>
        public long RoundTrips { get; }
        /// <summary>Time since the connection was made.</summary>
        public TimeSpan Age { get; }
    }

    /// <summary>A server's counters (WsServer.Stats).</summary>
    public sealed class WsServerStats
    {
        internal WsServerStats(WsnServerStats s, IReadOnlyDictionary<int, long> refusals, IReadOnlyDictionary<int, long> closes)
        {
            OpenConnections = (long)s.OpenConnections;
            HandshakesInProgress = (long)s.HandshakesInProgress;
            AcceptedTotal = (long)s.AcceptedTotal;
            RefusedTotal = (long)s.RefusedTotal;
            ClosedTotal = (long)s.ClosedTotal;
            Refusals = refusals;
            Closes = closes;
        }

        public long OpenConnections { get; }
        public long HandshakesInProgress { get; }
        public long AcceptedTotal { get; }
        public long RefusedTotal { get; }
        public long ClosedTotal { get; }
        /// <summary>Refused upgrade requests by HTTP status.</summary>
        public IReadOnlyDictionary<int, long> Refusals { get; }
        /// <summary>Ended connections by close code.</summary>
        public IReadOnlyDictionary<int, long> Closes { get; }
    }

    /// <summary>What WsServer.Broadcast did.</summary>
    public struct WsBroadcastReport
    {
        internal WsBroadcastReport(WsnBroadcastReport r)
        {
            Queued = (long)r.Queued;
            Refused = (long)r.Refused;
            NotOpen = (long)r.NotOpen;
        }

        /// <summary>Connections whose send queue took the message.</summary>
        public long Queued { get; }
        /// <summary>Connections whose send queue was full (refused, or closing with 1008 under the Close policy).</summary>
        public long Refused { get; }
        /// <summary>Connections already closing or closed.</summary>
        public long NotOpen { get; }

        public override string ToString() => "queued " + Queued + ", refused " + Refused + ", not open " + NotOpen;
    }

    /// <summary>What WsServer.DrainAsync did.</summary>
    public sealed class WsDrainReport
    {
        internal WsDrainReport(WsnDrainReport r)
        {
            Connections = (long)r.Connections;
            ClosedClean = (long)r.ClosedClean;
            Aborted = (long)r.Aborted;
            Failed = (long)r.Failed;
        }

        /// <summary>Connections open when the drain began.</summary>
        public long Connections { get; }
        /// <summary>Those whose closing handshake completed.</summary>
        public long ClosedClean { get; }
        /// <summary>Those still open at the end of the window, aborted then.</summary>
        public long Aborted { get; }
        /// <summary>Those that ended otherwise (the peer vanished, a close timeout).</summary>
        public long Failed { get; }

        public override string ToString() =>
            Connections + " connections: " + ClosedClean + " clean, " + Aborted + " aborted, " + Failed + " failed";
    }

    internal static class Ops
    {
        internal static ulong Ms(TimeSpan? t)
        {
            if (!t.HasValue || t.Value <= TimeSpan.Zero) return 0;
            return (ulong)Math.Max(1, Math.Round(t.Value.TotalMilliseconds));
        }

        internal static ushort Code(int code)
        {
            if (code < 0 || code > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(code));
            return (ushort)code;
        }

        internal static byte[] Tag(string tag) => Utf8.Z(tag ?? throw new ArgumentNullException(nameof(tag)));

        internal static IReadOnlyDictionary<int, long> Pairs(Func<ushort[], ulong[], UIntPtr, UIntPtr> get)
        {
            var d = new Dictionary<int, long>();
            var n = (int)get(null, null, UIntPtr.Zero).ToUInt64();
            if (n == 0) return d;
            var codes = new ushort[n];
            var counts = new ulong[n];
            n = Math.Min(n, (int)get(codes, counts, (UIntPtr)(ulong)n).ToUInt64());
            for (int i = 0; i < n; i++) d[codes[i]] = (long)counts[i];
            return d;
        }
    }

    public sealed partial class WsConnection
    {
        /// <summary>
        /// The session deadline: once <paramref name="after"/> has passed the connection is closed
        /// with <paramref name="code"/> and <paramref name="reason"/>. Setting it again replaces it;
        /// null (or zero) clears it.
        /// </summary>
        public void SetDeadline(TimeSpan? after, int code = 4401, string reason = "session expired") =>
            Status.Check(wsn_conn_set_deadline(Handle, Ops.Ms(after), Ops.Code(code), Utf8.Z(reason)));

        /// <summary>Adds a tag (a user id, a session id, a room) by which the server finds this connection.</summary>
        public void AddTag(string tag) => Status.Check(wsn_conn_add_tag(Handle, Ops.Tag(tag)));

        /// <summary>Removes a tag (nothing happens when the connection did not carry it).</summary>
        public void RemoveTag(string tag) => Status.Check(wsn_conn_remove_tag(Handle, Ops.Tag(tag)));

        /// <summary>Whether the connection carries <paramref name="tag"/>.</summary>
        public bool HasTag(string tag) => wsn_conn_has_tag(Handle, Ops.Tag(tag));

        /// <summary>Sends a Ping; its round-trip time shows in Stats.LastRoundTrip once the Pong came (Stats.RoundTrips grows by one).</summary>
        public void Ping() => Status.Check(wsn_conn_ping(Handle));

        /// <summary>The connection's counters now.</summary>
        public WsConnectionStats Stats
        {
            get
            {
                var s = new WsnConnStats { Size = (uint)Marshal.SizeOf(typeof(WsnConnStats)) };
                Status.Check(wsn_conn_get_stats(Handle, ref s));
                return new WsConnectionStats(s);
            }
        }
    }

    public sealed partial class WsServer
    {
        private ServerHandle LiveHandle
        {
            get
            {
                var h = _handle;
                if (h == null || _disposed != 0) throw new ObjectDisposedException(nameof(WsServer));
                return h;
            }
        }

        /// <summary>Closes every connection carrying <paramref name="tag"/> (a log-out); returns how many.</summary>
        public int CloseTag(string tag, int code = 4000, string reason = null)
        {
            UIntPtr n;
            Status.Check(wsn_server_close_tag(LiveHandle, Ops.Tag(tag), Ops.Code(code), Utf8.Z(reason), out n));
            return (int)n.ToUInt64();
        }

        /// <summary>How many open connections carry <paramref name="tag"/>.</summary>
        public int CountTag(string tag) => (int)wsn_server_count_tag(LiveHandle, Ops.Tag(tag)).ToUInt64();

        /// <summary>The open connections carrying <paramref name="tag"/>, oldest first.</summary>
        public IReadOnlyList<WsConnection> ConnectionsWithTag(string tag)
        {
            var h = LiveHandle;
            var t = Ops.Tag(tag);
            var n = (int)wsn_server_list_tag(h, t, null, UIntPtr.Zero).ToUInt64();
            var ptrs = new IntPtr[Math.Max(n, 1)];
            n = Math.Min(n, (int)wsn_server_list_tag(h, t, ptrs, (UIntPtr)(ulong)n).ToUInt64());
            var list = new List<WsConnection>(n);
            for (int i = 0; i < n; i++)
            {
                var ud = NativeMethods.wsn_conn_get_user_data(ptrs[i]);
                if (ud == IntPtr.Zero) continue;
                if (GCHandle.FromIntPtr(ud).Target is WsConnection c) list.Add(c);
            }
            return list.AsReadOnly();
        }

        /// <summary>
        /// Sends a text message to every open connection, or to those carrying <paramref name="tag"/>:
        /// the frame is built once and shared; each connection's send limit and policy apply and none
        /// waits for another.
        /// </summary>
        public WsBroadcastReport Broadcast(string text, string tag = null)
        {
            var data = Utf8.Bytes(text ?? throw new ArgumentNullException(nameof(text)));
            return BroadcastNative(data, SendFlags.Text, tag);
        }

        /// <summary>Sends a binary message to every open connection, or to those carrying <paramref name="tag"/> (see the text overload).</summary>
        public WsBroadcastReport Broadcast(byte[] data, string tag = null) =>
            BroadcastNative(data ?? throw new ArgumentNullException(nameof(data)), 0, tag);

        private WsBroadcastReport BroadcastNative(byte[] data, uint flags, string tag)
        {
            var r = new WsnBroadcastReport { Size = (uint)Marshal.SizeOf(typeof(WsnBroadcastReport)) };
            Status.Check(wsn_server_broadcast(LiveHandle, tag == null ? null : Utf8.Z(tag), data, (UIntPtr)(ulong)data.Length, flags, ref r));
            return new WsBroadcastReport(r);
        }

        /// <summary>
        /// Drains the server for a deploy: stops accepting, closes the open connections with
        /// <paramref name="code"/> (1001, 1012 or the application's) spread evenly over the first three
        /// quarters of <paramref name="window"/> so clients do not reconnect all at once, aborts what is
        /// still open at its end, and completes once every connection's Closed event was delivered.
        /// </summary>
        public Task<WsDrainReport> DrainAsync(TimeSpan window, int code = 1001, string reason = null)
        {
            var h = LiveHandle;
            var ms = WsClientOptions.Ms(window, 0);
            var c = Ops.Code(code);
            var reasonZ = Utf8.Z(reason);
            return Task.Factory.StartNew(() =>
            {
                var r = new WsnDrainReport { Size = (uint)Marshal.SizeOf(typeof(WsnDrainReport)) };
                Status.Check(wsn_server_drain(h, ms, c, reasonZ, ref r));
                return new WsDrainReport(r);
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        /// <summary>The server's counters now.</summary>
        public WsServerStats Stats
        {
            get
            {
                var h = LiveHandle;
                var s = new WsnServerStats { Size = (uint)Marshal.SizeOf(typeof(WsnServerStats)) };
                Status.Check(wsn_server_get_stats(h, ref s));
                return new WsServerStats(s,
                    Ops.Pairs((a, b, n) => wsn_server_get_refusals(h, a, b, n)),
                    Ops.Pairs((a, b, n) => wsn_server_get_closes(h, a, b, n)));
            }
        }
    }

    public sealed partial class WsAcceptRequest
    {
        /// <summary>The session deadline of the connection if accepted (counted from now). Does not decide.</summary>
        public void SetDeadline(TimeSpan after, int code = 4401, string reason = "session expired") =>
            Status.Check(wsn_request_set_deadline(Live, Ops.Ms(after), Ops.Code(code), Utf8.Z(reason)));

        /// <summary>A tag the connection carries from its open on, if accepted. Does not decide.</summary>
        public void AddTag(string tag) => Status.Check(wsn_request_add_tag(Live, Ops.Tag(tag)));
    }
}
