// SafeHandle subclasses, one per native handle type, and the helpers they share: UTF-8 strings
// and the status-to-exception table.
//
// Release rule: wsn_conn_free may wait for a callback of that connection running on another
// thread, and wsn_server_free waits for the server to drain. ReleaseHandle can run on the
// finalizer thread (or inside a callback, when Dispose is called from a handler), so it never
// calls them itself: it hands the pointer to a thread-pool work item (Reaper), which frees it and
// only then frees the GCHandle that native code used as user_data.
using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace WsNative.Native
{
    internal sealed class ConnHandle : SafeHandle
    {
        private readonly IntPtr _userData; // GCHandle given to native code for this connection

        internal ConnHandle(IntPtr conn, IntPtr userData) : base(IntPtr.Zero, true)
        {
            SetHandle(conn);
            _userData = userData;
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            Reaper.FreeConn(handle, _userData);
            return true;
        }
    }

    internal sealed class ServerHandle : SafeHandle
    {
        private readonly IntPtr _userData;

        internal ServerHandle(IntPtr server, IntPtr userData) : base(IntPtr.Zero, true)
        {
            SetHandle(server);
            _userData = userData;
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            Reaper.FreeServer(handle, _userData);
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

    /// <summary>Frees native handles off the caller's thread (see the file comment).</summary>
    internal static class Reaper
    {
        private static readonly WaitCallback s_freeConn = FreeConnNow;
        private static readonly WaitCallback s_freeServer = FreeServerNow;
        private static int s_pending;

        /// <summary>Frees queued but not yet run (tests use it to wait for the finalizer's work).</summary>
        internal static int Pending => Volatile.Read(ref s_pending);

        internal static void FreeConn(IntPtr conn, IntPtr userData)
        {
            Interlocked.Increment(ref s_pending);
            ThreadPool.UnsafeQueueUserWorkItem(s_freeConn, new IntPtr[] { conn, userData });
        }

        internal static void FreeServer(IntPtr server, IntPtr userData)
        {
            Interlocked.Increment(ref s_pending);
            ThreadPool.UnsafeQueueUserWorkItem(s_freeServer, new IntPtr[] { server, userData });
        }

        private static void FreeConnNow(object state)
        {
            var p = (IntPtr[])state;
            try
            {
                NativeMethods.wsn_conn_free(p[0]); // after this, no callback uses p[1]
                FreeGCHandle(p[1]);
            }
            catch (Exception e) { Report.Swallowed("wsn_conn_free", e); }
            finally { Interlocked.Decrement(ref s_pending); }
        }

        private static void FreeServerNow(object state)
        {
            var p = (IntPtr[])state;
            try
            {
                NativeMethods.wsn_server_free(p[0]);
                FreeGCHandle(p[1]);
            }
            catch (Exception e) { Report.Swallowed("wsn_server_free", e); }
            finally { Interlocked.Decrement(ref s_pending); }
        }

        private static void FreeGCHandle(IntPtr p)
        {
            if (p != IntPtr.Zero) GCHandle.FromIntPtr(p).Free();
        }
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
        internal const int Ok = 0, InvalidArgument = -1, InvalidState = -2;

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
