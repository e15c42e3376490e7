// Operations (issue 15 §3) for C#: the [DllImport]s of src/ffi/server_ops.rs (in the header's
// order) and their structs. The public API is in WsOps.cs.
using System;
using System.Runtime.InteropServices;

namespace WsNative.Native
{
    /// <summary>wsn_conn_stats (size and version first).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct WsnConnStats
    {
        public uint Size, Version;
        public ulong BytesSent, BytesReceived, MessagesSent, MessagesReceived, QueuedBytes, LastRttUs, RttCount, AgeMs;
    }

    /// <summary>wsn_server_stats.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct WsnServerStats
    {
        public uint Size, Version;
        public ulong OpenConnections, HandshakesInProgress, AcceptedTotal, RefusedTotal, ClosedTotal;
    }

    /// <summary>wsn_broadcast_report.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct WsnBroadcastReport
    {
        public uint Size, Version;
        public ulong Queued, Refused, NotOpen;
    }

    /// <summary>wsn_drain_report.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct WsnDrainReport
    {
        public uint Size, Version;
        public ulong Connections, ClosedClean, Aborted, Failed;
    }

    internal static class OpsNative
    {
        private const string Lib = NativeMethods.Lib;

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_set_deadline(ConnHandle conn, ulong afterMs, ushort code, byte[] reasonZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_set_deadline(IntPtr request, ulong afterMs, ushort code, byte[] reasonZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_add_tag(IntPtr request, byte[] tagZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_add_tag(ConnHandle conn, byte[] tagZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_remove_tag(ConnHandle conn, byte[] tagZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        [return: MarshalAs(UnmanagedType.I1)]
        internal static extern bool wsn_conn_has_tag(ConnHandle conn, byte[] tagZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_close_tag(ServerHandle server, byte[] tagZ, ushort code, byte[] reasonZ, out UIntPtr closed);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_server_count_tag(ServerHandle server, byte[] tagZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_server_list_tag(ServerHandle server, byte[] tagZ, IntPtr[] conns, UIntPtr capacity);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_broadcast(ServerHandle server, byte[] tagZ, byte[] data, UIntPtr len, uint flags, ref WsnBroadcastReport report);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_drain(ServerHandle server, uint windowMs, ushort code, byte[] reasonZ, ref WsnDrainReport report);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_get_stats(ConnHandle conn, ref WsnConnStats stats);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_ping(ConnHandle conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_get_stats(ServerHandle server, ref WsnServerStats stats);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_server_get_refusals(ServerHandle server, ushort[] statuses, ulong[] counts, UIntPtr capacity);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_server_get_closes(ServerHandle server, ushort[] codes, ulong[] counts, UIntPtr capacity);
    }
}
