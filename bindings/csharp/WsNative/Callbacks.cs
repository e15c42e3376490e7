// The only entry points native code calls. Each delegate lives in a static readonly field, so
// it can never be collected; the target object travels as a GCHandle in user_data. Every body
// catches everything: no exception may unwind into wsnative.
using System;
using System.Runtime.InteropServices;

namespace WsNative.Native
{
    internal static class Trampolines
    {
        internal static readonly EventCallback ClientEvent = OnClientEvent;
        internal static readonly EventCallback ServerEvent = OnServerEvent;
        internal static readonly AcceptCallback ServerAccept = OnServerAccept;

        // user_data: a weak GCHandle to the WsConnection (null once it was collected).
        private static unsafe void OnClientEvent(IntPtr userData, IntPtr conn, IntPtr evt)
        {
            try
            {
                var c = GCHandle.FromIntPtr(userData).Target as WsConnection;
                if (c != null) c.OnNativeEvent(conn, (WsnEvent*)evt);
            }
            catch (Exception e) { Report.Swallowed("event callback", e); }
        }

        // user_data: a strong GCHandle to the WsServer; each connection's own GCHandle (weak) is
        // stored with wsn_conn_set_user_data at its OPEN event.
        private static unsafe void OnServerEvent(IntPtr userData, IntPtr conn, IntPtr evt)
        {
            try
            {
                var e = (WsnEvent*)evt;
                if (e->Kind == EventKind.Open)
                {
                    var server = GCHandle.FromIntPtr(userData).Target as WsServer;
                    if (server == null || !server.OnNativeOpen(conn, e))
                        NativeMethods.wsn_conn_free(conn); // nobody will own it; never waits inside its own callback
                    return;
                }
                var ud = NativeMethods.wsn_conn_get_user_data(conn);
                if (ud == IntPtr.Zero) return;
                var c = GCHandle.FromIntPtr(ud).Target as WsConnection;
                if (c != null) c.OnNativeEvent(conn, e);
            }
            catch (Exception e) { Report.Swallowed("server event callback", e); }
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
    }
}
