// One [DllImport] per function of include/wsnative.h, in the header's order. Nothing else lives
// here: argument checks, handles and callbacks are in Handles.cs and Callbacks.cs.
using System;
using System.Runtime.InteropServices;

namespace WsNative.Native
{
    /// <summary>wsn_event_cb: (void *user_data, wsn_conn *conn, const wsn_event *event).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void EventCallback(IntPtr userData, IntPtr conn, IntPtr evt);

    /// <summary>wsn_accept_cb: (void *user_data, wsn_request *request).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void AcceptCallback(IntPtr userData, IntPtr request);

    /// <summary>wsn_http_cb: (void *user_data, wsn_request *request), for plain HTTP requests.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void HttpCallback(IntPtr userData, IntPtr request);

    /// <summary>wsn_release_cb: (void *arg), once, after a freed handle's last callback.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void ReleaseCallback(IntPtr arg);

    /// <summary>wsn_log_fn: level, target, message (UTF-8, borrowed), connection id (0: none).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void LogCallback(IntPtr userData, int level, IntPtr target, IntPtr message, ulong connId);

    /// <summary>struct wsn_event, field for field (C bools read as bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct WsnEvent
    {
        public uint Kind;           // wsn_event_kind
        public byte IsText;         // bool
        public IntPtr Data;         // const uint8_t *
        public UIntPtr Len;         // size_t
        public ushort CloseCode;    // uint16_t
        public byte WasClean;       // bool
        public IntPtr Reason;       // const char *
        public IntPtr Error;        // const char * (NULL when none)
        public int ErrorStatus;     // wsn_status
        public ushort HttpStatus;   // uint16_t
        public ulong SentId;        // uint64_t (DRAIN: the last message id handed to the kernel)
        public uint Attempt;        // uint32_t (client-reach: RECONNECTING, RECONNECT_GAVE_UP)
        public uint DelayMs;        // uint32_t (RECONNECTING: the delay before the attempt)
    }

    internal static class EventKind
    {
        public const uint Open = 1, Message = 2, Close = 3, Drain = 4;
    }

    /// <summary>wsn_conn_send flags and the send queue policies.</summary>
    internal static class SendFlags
    {
        public const uint Text = 1, NoCompress = 2;
        public const uint QueueRefuse = 0, QueueClose = 1;
    }

    internal static class NativeMethods
    {
        internal const string Lib = "wsnative";

        // ---- errors, version, runtime ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_last_error();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_runtime_set_io_threads(uint threads);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_runtime_set_callback_threads(uint threads);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_runtime_set_callback_spin_us(uint microseconds);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_shutdown(uint graceMs);

        // ---- connections ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_connect(byte[] urlUtf8Z, ClientOptionsHandle options, EventCallback onEvent,
                                               IntPtr userData, out IntPtr connOut);

        /// <summary>wsn_connect with default options (a SafeHandle argument may not be null).</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_connect(byte[] urlUtf8Z, IntPtr noOptions, EventCallback onEvent,
                                               IntPtr userData, out IntPtr connOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern unsafe int wsn_conn_send_text(ConnHandle conn, byte* data, UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern unsafe int wsn_conn_send_binary(ConnHandle conn, byte* data, UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern unsafe int wsn_conn_send(ConnHandle conn, byte* data, UIntPtr len, uint flags, out ulong idOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ulong wsn_conn_get_sent_id(ConnHandle conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_set_drain_events(ConnHandle conn, [MarshalAs(UnmanagedType.I1)] bool enabled, UIntPtr lowWater);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_conn_get_extensions(IntPtr conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_compression(ClientOptionsHandle options, [MarshalAs(UnmanagedType.I1)] bool enabled);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_compression(ServerOptionsHandle options, [MarshalAs(UnmanagedType.I1)] bool enabled);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_ack(ConnHandle conn, UIntPtr count);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_close(ConnHandle conn, ushort code, byte[] reasonUtf8Z);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_abort(ConnHandle conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_set_reading_paused(ConnHandle conn, [MarshalAs(UnmanagedType.U1)] bool paused);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint wsn_conn_get_state(ConnHandle conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_conn_get_buffered_amount(ConnHandle conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_conn_get_peer_addr(ConnHandle conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ulong wsn_conn_get_id(IntPtr conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_log_set_callback(LogCallback callback, uint maxLevel, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_conn_get_subprotocol(IntPtr conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_set_user_data(IntPtr conn, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_conn_get_user_data(IntPtr conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_conn_free(IntPtr conn);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_conn_set_release_hook(IntPtr conn, ReleaseCallback release, IntPtr arg);

        // ---- client options ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ClientOptionsHandle wsn_client_options_new();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_client_options_free(IntPtr options);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_connect_timeout_ms(ClientOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_handshake_timeout_ms(ClientOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_close_timeout_ms(ClientOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_close_max_ms(ClientOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_max_receive_messages(ClientOptionsHandle o, UIntPtr messages);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_manual_ack(ClientOptionsHandle o, [MarshalAs(UnmanagedType.U1)] bool manual);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_max_send_queue(ClientOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_send_queue_policy(ClientOptionsHandle o, uint policy);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_drain_events(ClientOptionsHandle o, [MarshalAs(UnmanagedType.U1)] bool enabled, UIntPtr lowWater);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_max_message_size(ClientOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_ping_interval_ms(ClientOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_pong_timeout_ms(ClientOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_heartbeat(ClientOptionsHandle o, uint kind);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_max_receive_queue(ClientOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_add_header(ClientOptionsHandle o, byte[] nameZ, byte[] valueZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_add_subprotocol(ClientOptionsHandle o, byte[] protocolZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_origin(ClientOptionsHandle o, byte[] originZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_tls_roots(ClientOptionsHandle o, uint roots);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_add_ca_file(ClientOptionsHandle o, byte[] pathZ);

        // ---- server options ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ServerOptionsHandle wsn_server_options_new();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_server_options_free(IntPtr options);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_handshake_timeout_ms(ServerOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_header_size(ServerOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_close_timeout_ms(ServerOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_close_max_ms(ServerOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_receive_messages(ServerOptionsHandle o, UIntPtr messages);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_manual_ack(ServerOptionsHandle o, [MarshalAs(UnmanagedType.U1)] bool manual);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_send_queue(ServerOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_send_queue_policy(ServerOptionsHandle o, uint policy);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_drain_events(ServerOptionsHandle o, [MarshalAs(UnmanagedType.U1)] bool enabled, UIntPtr lowWater);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_drain_timeout_ms(ServerOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_message_size(ServerOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_ping_interval_ms(ServerOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_pong_timeout_ms(ServerOptionsHandle o, uint ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_heartbeat(ServerOptionsHandle o, uint kind);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_receive_queue(ServerOptionsHandle o, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_add_subprotocol(ServerOptionsHandle o, byte[] protocolZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_add_allowed_origin(ServerOptionsHandle o, byte[] originZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_connections(ServerOptionsHandle o, UIntPtr max);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_tls(ServerOptionsHandle o, byte[] certZ, byte[] keyZ);

        // ---- servers ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_listen(byte[] hostZ, ushort port, ServerOptionsHandle options,
                                                     AcceptCallback onAccept, EventCallback onEvent, IntPtr userData,
                                                     out IntPtr serverOut);

        // ---- poll mode (declared for completeness; this wrapper uses callbacks) ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_queue_new(out IntPtr queueOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_queue_get_fd(IntPtr queue);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_queue_poll(IntPtr queue, IntPtr events, UIntPtr max, int timeoutMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_queue_wake(IntPtr queue);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_queue_free(IntPtr queue);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_connect_queued(byte[] urlUtf8Z, IntPtr options, IntPtr queue, IntPtr userData,
                                                      out IntPtr connOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_listen_queued(byte[] hostZ, ushort port, IntPtr options,
                                                            AcceptCallback onAccept, IntPtr queue, IntPtr userData,
                                                            out IntPtr serverOut);

        /// <summary>wsn_server_listen with default options.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_listen(byte[] hostZ, ushort port, IntPtr noOptions,
                                                     AcceptCallback onAccept, EventCallback onEvent, IntPtr userData,
                                                     out IntPtr serverOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ushort wsn_server_get_port(ServerHandle server);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_stop(ServerHandle server, uint drainTimeoutMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_server_free(IntPtr server);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_set_release_hook(IntPtr server, ReleaseCallback release, IntPtr arg);

        // ---- upgrade requests (valid only inside the accept callback: raw pointers) ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_path(IntPtr request);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_query(IntPtr request);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_header(IntPtr request, byte[] nameZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_request_get_header_count(IntPtr request);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_header_name(IntPtr request, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_header_value(IntPtr request, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_peer_addr(IntPtr request);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_request_get_subprotocol_count(IntPtr request);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_subprotocol(IntPtr request, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_accept(IntPtr request, byte[] subprotocolZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_reject(IntPtr request, ushort httpStatus, byte[] bodyZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_accept_and_close(IntPtr request, ushort code, byte[] reasonZ);

        // ---- srv-defense (issue 15 sections 2 and 3.5): handshake caps, plain HTTP, response headers ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_pending_handshakes(ServerOptionsHandle o, UIntPtr max);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_max_pending_handshakes_per_ip(ServerOptionsHandle o, UIntPtr max);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_pending_handshake_policy(ServerOptionsHandle o, uint policy);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_http_handler(ServerOptionsHandle o, HttpCallback onHttp);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_method(IntPtr request);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_add_response_header(IntPtr request, byte[] nameZ, byte[] valueZ);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_request_respond(IntPtr request, ushort httpStatus, byte[] body, UIntPtr bodyLen);
    }
}
