// SafeHandle subclasses, one per native handle type, and the helpers they share: UTF-8 strings
// and the status-to-exception table.
//
// Release rule: ReleaseHandle calls wsn_conn_free / wsn_server_free in place. The native
// user_data of a handle is a GCHandle that is freed by the handle's release hook (Trampolines.
// Release), which wsnative runs once the handle was freed and its last callback ended, so no
// managed code has to wait for that. A callback holds a reference on its connection's
// SafeHandle while it runs (Trampolines), so a Dispose on another thread during a handler only
// marks the handle: the free then runs when the handler returns, on the callback thread, where
// wsn_conn_free never waits. Elsewhere (the disposing thread, the finalizer) wsn_conn_free waits
// at most for the few instructions a trampoline runs outside that reference.
// wsn_server_free waits, from a thread that is not a callback, until every connection's CLOSE
// event was delivered (bounded by the drain timeout); a server is never finalized (it is held by
// a strong GCHandle until its release hook runs), so only WsServer.Dispose calls it.
using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace WsNative.Native
{
    internal sealed class ConnHandle : SafeHandle
    {
        internal ConnHandle(IntPtr conn) : base(IntPtr.Zero, true) { SetHandle(conn); }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMethods.wsn_conn_free(handle);
            return true;
        }
    }

    internal sealed class ServerHandle : SafeHandle
    {
        internal ServerHandle(IntPtr server) : base(IntPtr.Zero, true) { SetHandle(server); }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMethods.wsn_server_free(handle);
            return true;
        }
    }

    /// <summary>Options objects: their free never blocks, so it runs in place.</summary>
    internal sealed class ClientOptionsHandle : SafeHandle
    {
        private ClientOptionsHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() { NativeMethods.wsn_client_options_free(handle); return true; }
    }

    internal sealed class ServerOptionsHandle : SafeHandle
    {
        private ServerOptionsHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() { NativeMethods.wsn_server_options_free(handle); return true; }
    }

    internal static class Report
    {
        /// <summary>Last resort for an exception nobody can receive: trace it, never throw.</summary>
        internal static void Swallowed(string where, Exception e)
        {
            try { System.Diagnostics.Trace.TraceError("wsnative: unhandled exception in {0}: {1}", where, e); }
            catch { /* nothing may escape into native code */ }
        }
    }

    internal static class Utf8
    {
        private static readonly UTF8Encoding s_strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8, or null for null.</summary>
        internal static byte[] Z(string s)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0) throw new ArgumentException("string contains a NUL character");
            var n = s_strict.GetByteCount(s);
            var b = new byte[n + 1];
            s_strict.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        internal static byte[] Bytes(string s) => s_strict.GetBytes(s);

        /// <summary>A borrowed NUL-terminated UTF-8 string (null for NULL).</summary>
        internal static unsafe string FromPtr(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            var b = (byte*)p;
            int n = 0;
            while (b[n] != 0) n++;
            return n == 0 ? "" : Encoding.UTF8.GetString(b, n);
        }
    }

    /// <summary>wsn_status to exception, in one table.</summary>
    internal static class Status
    {
        internal const int Ok = 0, InvalidArgument = -1, InvalidState = -2, WouldBlock = -12;

        internal static void Check(int status)
        {
            if (status != Ok) throw Error(status);
        }

        /// <summary>Call on the thread that made the failing call (wsn_last_error is per thread).</summary>
        internal static Exception Error(int status)
        {
            var msg = Utf8.FromPtr(NativeMethods.wsn_last_error());
            if (string.IsNullOrEmpty(msg)) msg = "wsnative error " + status;
            switch (status)
            {
                case InvalidArgument: return new ArgumentException(msg);
                case InvalidState: return new InvalidOperationException(msg);
                default: return new WsException((WsError)status, msg, 0);
            }
        }
    }
}
