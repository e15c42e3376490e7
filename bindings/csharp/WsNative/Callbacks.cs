// The only entry points native code calls. Each delegate lives in a static readonly field, so
// it can never be collected; the target object travels as a GCHandle in user_data, and the
// release hook (Release) frees that GCHandle once wsnative is done with it. Every body catches
// everything: no exception may unwind into wsnative.
using System;
using System.Runtime.InteropServices;

namespace WsNative.Native
{
    internal static class Trampolines
    {
        internal static readonly EventCallback ClientEvent = OnClientEvent;
        internal static readonly EventCallback ServerEvent = OnServerEvent;
        internal static readonly AcceptCallback ServerAccept = OnServerAccept;
        internal static readonly ReleaseCallback Release = OnRelease;
        internal static readonly HttpCallback ServerHttp = OnServerHttp;

        // user_data: a weak GCHandle to the WsConnection (null once it was collected).
        private static unsafe void OnClientEvent(IntPtr userData, IntPtr conn, IntPtr evt)
        {
            try
            {
                var c = GCHandle.FromIntPtr(userData).Target as WsConnection;
                if (c != null) Dispatch(c, conn, (WsnEvent*)evt);
            }
            catch (Exception e) { Report.Swallowed("event callback", e); }
        }

        // user_data: the strong GCHandle of the WsServer; each connection's own (weak) GCHandle
        // is its wsn_conn_set_user_data from its OPEN event on.
        private static unsafe void OnServerEvent(IntPtr userData, IntPtr conn, IntPtr evt)
        {
            try
            {
                var e = (WsnEvent*)evt;
                if (e->Kind == EventKind.Open)
                {
                    var server = GCHandle.FromIntPtr(userData).Target as WsServer;
                    var c = server?.OnNativeOpen(conn);
                    if (c == null) NativeMethods.wsn_conn_free(conn); // nobody will own it; never waits in a callback
                    else Dispatch(c, conn, e);
                    return;
                }
                var ud = NativeMethods.wsn_conn_get_user_data(conn);
                if (ud == IntPtr.Zero) return;
                var target = GCHandle.FromIntPtr(ud).Target as WsConnection;
                if (target != null) Dispatch(target, conn, e);
            }
            catch (Exception e) { Report.Swallowed("server event callback", e); }
        }

        // Holds a reference on the SafeHandle while the handlers run: a Dispose on another thread
        // meanwhile defers the native free to the end of this callback, where it never waits.
        private static unsafe void Dispatch(WsConnection c, IntPtr conn, WsnEvent* e)
        {
            var h = c.HandleForCallback();
            bool added = false;
            try
            {
                if (h != null)
                {
                    try { h.DangerousAddRef(ref added); }
                    catch (ObjectDisposedException) { return; } // freed: no handler starts
                }
                c.OnNativeEvent(conn, e);
            }
            finally
            {
                if (added) h.DangerousRelease();
            }
        }

        private static void OnServerAccept(IntPtr userData, IntPtr request)
        {
            try
            {
                var server = GCHandle.FromIntPtr(userData).Target as WsServer;
                if (server != null) server.OnNativeAccept(request);
            }
            catch (Exception e) { Report.Swallowed("accept callback", e); }
        }

        private static void OnServerHttp(IntPtr userData, IntPtr request)
        {
            try
            {
                var server = GCHandle.FromIntPtr(userData).Target as WsServer;
                if (server != null) server.OnNativeHttp(request);
            }
            catch (Exception e) { Report.Swallowed("http callback", e); }
        }

        // arg: the GCHandle given as user_data; wsnative calls this once, after the handle was
        // freed and its last callback ended.
        private static void OnRelease(IntPtr arg)
        {
            try
            {
                if (arg != IntPtr.Zero) GCHandle.FromIntPtr(arg).Free();
            }
            catch (Exception e) { Report.Swallowed("release hook", e); }
        }
    }
}
