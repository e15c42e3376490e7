// Client and server options. Unset values keep wsnative's defaults; the native options object
// lives only for the duration of ConnectAsync/Listen (the library copies it).
using System;
using System.Collections.Generic;
using WsNative.Native;
using static WsNative.Native.NativeMethods;

namespace WsNative
{
    public sealed class WsClientOptions
    {
        /// <summary>DNS and TCP connect (default 10 s).</summary>
        public TimeSpan? ConnectTimeout { get; set; }
        /// <summary>TLS and WebSocket handshakes (default 10 s).</summary>
        public TimeSpan? HandshakeTimeout { get; set; }
        /// <summary>How long a close may go without progress (default 5 s); CloseAsync is bounded by it.</summary>
        public TimeSpan? CloseTimeout { get; set; }
        /// <summary>The longest a close may take in all, however slowly the peer reads (default 30 s).</summary>
        public TimeSpan? CloseMaxTime { get; set; }
        /// <summary>Largest incoming message; larger closes with 1009 (default 64 MiB).</summary>
        public long? MaxMessageSize { get; set; }
        /// <summary>Most bytes of received messages not yet handled (handlers running, or waiting for ReceiveAsync); above it reading pauses (TCP slows the peer) until half were taken. Default 32 MiB.</summary>
        public long? MaxReceiveQueue { get; set; }
        /// <summary>Most received messages not yet handled (handlers running, or waiting for ReceiveAsync); above it reading pauses until half were taken. Default 1024.</summary>
        public int? MaxQueue { get; set; }
        /// <summary>Bytes queued for sending above which Send throws (WsError.WouldBlock) and SendAsync waits (default 64 MiB).</summary>
        public long? MaxSendQueue { get; set; }
        /// <summary>What a send to a full queue does (default Refuse).</summary>
        public WsSendQueuePolicy? SendQueuePolicy { get; set; }
        /// <summary>Heartbeat interval (default 30 s; TimeSpan.Zero turns it off).</summary>
        public TimeSpan? PingInterval { get; set; }
        public TimeSpan? PongTimeout { get; set; }
        public WsHeartbeat? Heartbeat { get; set; }
        public IList<KeyValuePair<string, string>> Headers { get; } = new List<KeyValuePair<string, string>>();
        public IList<string> SubProtocols { get; } = new List<string>();
        public string Origin { get; set; }
        public WsTlsRoots? TlsRoots { get; set; }
        public IList<string> CaFiles { get; } = new List<string>();
        /// <summary>
        /// Offers permessage-deflate (RFC 7692; off by default: it costs CPU, and secrets next to
        /// attacker-chosen text must not be compressed: send those with compress: false).
        /// The agreed extension is WsConnection.Extensions.
        /// </summary>
        public bool Compression { get; set; }

        // ---- client-reach (issue 13): certificates ----
        /// <summary>The client's certificate chain (PEM file, its own first) for mutual TLS; with ClientKeyPemPath.</summary>
        public string ClientCertificatePemPath { get; set; }
        /// <summary>The private key (PEM file) of ClientCertificatePemPath.</summary>
        public string ClientKeyPemPath { get; set; }
        /// <summary>The client's certificate chain as PEM text (instead of a file); with ClientKeyPem.</summary>
        public string ClientCertificatePem { get; set; }
        /// <summary>The private key as PEM text, for a key kept in a secret store.</summary>
        public string ClientKeyPem { get; set; }
        /// <summary>
        /// PEM files of certificates trusted exactly, whoever issued them (development, pinning);
        /// their name and dates are still checked. With TlsRoots = None they are the only trust.
        /// </summary>
        public IList<string> TrustedCertificateFiles { get; } = new List<string>();
        /// <summary>SHA-256 fingerprints ("AB:CD:...") of certificates trusted exactly, as TrustedCertificateFiles.</summary>
        public IList<string> TrustedFingerprints { get; } = new List<string>();
        /// <summary>
        /// The application's check of the server's certificate, which has the last word: return
        /// true to accept. It runs on a wsnative thread after the TLS handshake and before the
        /// upgrade request is sent. WARNING: returning true whatever DefaultError says turns
        /// certificate validation off, as ServerCertificateCustomValidationCallback returning
        /// true does in .NET: anyone on the network path can then impersonate the server and
        /// read and change everything. Accept only what you checked (a pinned fingerprint, your
        /// own CA); TrustedFingerprints does pinning without a callback.
        /// </summary>
        public Func<WsCertificateCheck, bool> ServerCertificateCheck { get; set; }

        // ---- client-reach (issue 13): proxies ----
        /// <summary>
        /// Connect through a proxy: "http://user:password@host:3128" (HTTP CONNECT, Basic
        /// credentials) or "socks5://user:password@host:1080" (SOCKS5). A refusal fails
        /// ConnectAsync with WsError.Handshake and the proxy's HTTP status (407, 403, 502) in
        /// WsException.HttpStatus. Null (the default): direct, unless UseEnvironmentProxy.
        /// </summary>
        public string Proxy { get; set; }
        /// <summary>
        /// Read the proxy from HTTPS_PROXY (wss://), HTTP_PROXY (ws://) or ALL_PROXY, lower case
        /// first, with NO_PROXY (hosts, domain suffixes, CIDR blocks) as curl does. Default false.
        /// </summary>
        public bool UseEnvironmentProxy { get; set; }
        /// <summary>Extra headers of the proxy's CONNECT request (not of the WebSocket upgrade).</summary>
        public IList<KeyValuePair<string, string>> ProxyHeaders { get; } = new List<KeyValuePair<string, string>>();

        // ---- client-reach (issue 13): reconnect ----
        /// <summary>Reconnect after a drop with the same WsConnection (null: never, the default).</summary>
        public WsReconnectPolicy Reconnect { get; set; }

        private void CertificatesToNative(ClientOptionsHandle o)
        {
            if (Reconnect != null) Reconnect.Apply(o);
            if (Proxy != null) Status.Check(CertNative.wsn_client_options_set_proxy(o, Utf8.Z(Proxy)));
            if (UseEnvironmentProxy) Status.Check(CertNative.wsn_client_options_set_proxy_from_env(o, true));
            foreach (var h in ProxyHeaders) Status.Check(CertNative.wsn_client_options_add_proxy_header(o, Utf8.Z(h.Key), Utf8.Z(h.Value)));
            if ((ClientCertificatePemPath == null) != (ClientKeyPemPath == null))
                throw new ArgumentException("ClientCertificatePemPath and ClientKeyPemPath go together");
            if ((ClientCertificatePem == null) != (ClientKeyPem == null))
                throw new ArgumentException("ClientCertificatePem and ClientKeyPem go together");
            if (ClientCertificatePemPath != null)
                Status.Check(CertNative.wsn_client_options_set_client_cert_files(o, Utf8.Z(ClientCertificatePemPath), Utf8.Z(ClientKeyPemPath)));
            if (ClientCertificatePem != null)
                Status.Check(CertNative.wsn_client_options_set_client_cert_pem(o, Utf8.Z(ClientCertificatePem), Utf8.Z(ClientKeyPem)));
            foreach (var f in TrustedCertificateFiles) Status.Check(CertNative.wsn_client_options_add_trusted_cert_file(o, Utf8.Z(f)));
            foreach (var fp in TrustedFingerprints) Status.Check(CertNative.wsn_client_options_add_trusted_fingerprint(o, Utf8.Z(fp)));
        }

        internal ClientOptionsHandle ToNative()
        {
            var o = wsn_client_options_new();
            try
            {
                // What the binding relies on: ReceiveAsync acknowledges; SendAsync turns drain
                // events on per connection while it waits.
                Status.Check(wsn_client_options_set_manual_ack(o, true));
                Status.Check(wsn_client_options_set_compression(o, Compression));
                if (MaxQueue.HasValue) Status.Check(wsn_client_options_set_max_receive_messages(o, Size(MaxQueue.Value)));
                if (MaxSendQueue.HasValue) Status.Check(wsn_client_options_set_max_send_queue(o, Size(MaxSendQueue.Value)));
                if (SendQueuePolicy.HasValue) Status.Check(wsn_client_options_set_send_queue_policy(o, (uint)SendQueuePolicy.Value));
                if (CloseMaxTime.HasValue) Status.Check(wsn_client_options_set_close_max_ms(o, Ms(CloseMaxTime, 0)));
                if (ConnectTimeout.HasValue) Status.Check(wsn_client_options_set_connect_timeout_ms(o, Ms(ConnectTimeout, 0)));
                if (HandshakeTimeout.HasValue) Status.Check(wsn_client_options_set_handshake_timeout_ms(o, Ms(HandshakeTimeout, 0)));
                if (CloseTimeout.HasValue) Status.Check(wsn_client_options_set_close_timeout_ms(o, Ms(CloseTimeout, 0)));
                if (MaxMessageSize.HasValue) Status.Check(wsn_client_options_set_max_message_size(o, Size(MaxMessageSize.Value)));
                if (MaxReceiveQueue.HasValue) Status.Check(wsn_client_options_set_max_receive_queue(o, Size(MaxReceiveQueue.Value)));
                if (PingInterval.HasValue) Status.Check(wsn_client_options_set_ping_interval_ms(o, Ms(PingInterval, 0)));
                if (PongTimeout.HasValue) Status.Check(wsn_client_options_set_pong_timeout_ms(o, Ms(PongTimeout, 0)));
                if (Heartbeat.HasValue) Status.Check(wsn_client_options_set_heartbeat(o, (uint)Heartbeat.Value));
                foreach (var h in Headers) Status.Check(wsn_client_options_add_header(o, Utf8.Z(h.Key), Utf8.Z(h.Value)));
                foreach (var p in SubProtocols) Status.Check(wsn_client_options_add_subprotocol(o, Utf8.Z(p)));
                if (Origin != null) Status.Check(wsn_client_options_set_origin(o, Utf8.Z(Origin)));
                if (TlsRoots.HasValue) Status.Check(wsn_client_options_set_tls_roots(o, (uint)TlsRoots.Value));
                foreach (var f in CaFiles) Status.Check(wsn_client_options_add_ca_file(o, Utf8.Z(f)));
                CertificatesToNative(o); // client-reach (issue 13)
                return o;
            }
            catch
            {
                o.Dispose();
                throw;
            }
        }

        internal static uint Ms(TimeSpan? t, uint dflt)
        {
            if (!t.HasValue) return dflt;
            var ms = t.Value.TotalMilliseconds;
            if (ms < 0 || ms > uint.MaxValue) throw new ArgumentOutOfRangeException(nameof(t), "timeout out of range");
            return (uint)Math.Ceiling(ms);
        }

        internal static UIntPtr Size(long n)
        {
            if (n < 0) throw new ArgumentOutOfRangeException(nameof(n));
            return new UIntPtr((ulong)n);
        }
    }

    public sealed class WsServerOptions
    {
        public TimeSpan? HandshakeTimeout { get; set; }
        /// <summary>Largest upgrade request; larger gets HTTP 431 (default 16 KiB).</summary>
        public int? MaxHeaderSize { get; set; }
        /// <summary>How long a close may go without progress (default 5 s).</summary>
        public TimeSpan? CloseTimeout { get; set; }
        /// <summary>The longest a close may take in all, however slowly the peer reads (default 30 s).</summary>
        public TimeSpan? CloseMaxTime { get; set; }
        /// <summary>How long stopping waits for connections to close (default 5 s).</summary>
        public TimeSpan? DrainTimeout { get; set; }
        public long? MaxMessageSize { get; set; }
        /// <summary>Most bytes of received messages not yet handled (handlers running, or waiting for ReceiveAsync); above it reading pauses (TCP slows the peer) until half were taken. Default 32 MiB.</summary>
        public long? MaxReceiveQueue { get; set; }
        /// <summary>Most received messages not yet handled (handlers running, or waiting for ReceiveAsync); above it reading pauses until half were taken. Default 1024.</summary>
        public int? MaxQueue { get; set; }
        /// <summary>Bytes queued for sending above which Send throws (WsError.WouldBlock) and SendAsync waits (default 64 MiB).</summary>
        public long? MaxSendQueue { get; set; }
        /// <summary>What a send to a full queue does (default Refuse; Close ends connections that read too slowly with 1008).</summary>
        public WsSendQueuePolicy? SendQueuePolicy { get; set; }
        public TimeSpan? PingInterval { get; set; }
        public TimeSpan? PongTimeout { get; set; }
        public WsHeartbeat? Heartbeat { get; set; }
        public IList<string> SubProtocols { get; } = new List<string>();
        /// <summary>Once any is listed, browser requests from other origins get HTTP 403.</summary>
        public IList<string> AllowedOrigins { get; } = new List<string>();
        /// <summary>Most connections at once; more get HTTP 503 (default 0: no limit).</summary>
        public int? MaxConnections { get; set; }
        public string TlsCertificatePemPath { get; set; }
        public string TlsKeyPemPath { get; set; }
        /// <summary>Accepts clients' permessage-deflate offers (browsers always offer it); off by default.</summary>
        public bool Compression { get; set; }
        /// <summary>Most handshakes in progress at once (default 512; 0: no limit).</summary>
        public int? MaxPendingHandshakes { get; set; }
        /// <summary>Most handshakes in progress from one client address, IPv6 by /64 (default 0: no limit, as behind a proxy or NAT clients share one address).</summary>
        public int? MaxPendingHandshakesPerIp { get; set; }
        /// <summary>What happens to a new connection at either cap (default DropOldest).</summary>
        public WsPendingHandshakePolicy? PendingHandshakePolicy { get; set; }
        /// <summary>
        /// Answers requests that are not WebSocket upgrades (a load balancer's GET /healthz) with
        /// <see cref="WsHttpRequest.Respond(int, string, string)"/>, on a callback thread while the client
        /// waits; a request it does not answer, or every such request without a handler, gets 426. If it
        /// throws, the answer is 500 and WsServer.Error is raised.
        /// </summary>
        public Action<WsHttpRequest> HttpHandler { get; set; }

        // ---- client-reach (issue 13): mutual TLS ----
        /// <summary>
        /// A PEM file of CAs: clients must present a certificate they issued (mutual TLS; see
        /// ClientCertificateRequired). WsAcceptRequest.PeerCertificateSubject shows its subject.
        /// </summary>
        public string ClientCaPemPath { get; set; }
        /// <summary>With ClientCaPemPath: refuse clients without a certificate (default true).</summary>
        public bool ClientCertificateRequired { get; set; } = true;

        internal ServerOptionsHandle ToNative()
        {
            var o = wsn_server_options_new();
            try
            {
                Status.Check(wsn_server_options_set_manual_ack(o, true));
                Status.Check(wsn_server_options_set_compression(o, Compression));
                if (MaxQueue.HasValue) Status.Check(wsn_server_options_set_max_receive_messages(o, WsClientOptions.Size(MaxQueue.Value)));
                if (MaxSendQueue.HasValue) Status.Check(wsn_server_options_set_max_send_queue(o, WsClientOptions.Size(MaxSendQueue.Value)));
                if (SendQueuePolicy.HasValue) Status.Check(wsn_server_options_set_send_queue_policy(o, (uint)SendQueuePolicy.Value));
                if (CloseMaxTime.HasValue) Status.Check(wsn_server_options_set_close_max_ms(o, WsClientOptions.Ms(CloseMaxTime, 0)));
                if (HandshakeTimeout.HasValue) Status.Check(wsn_server_options_set_handshake_timeout_ms(o, WsClientOptions.Ms(HandshakeTimeout, 0)));
                if (MaxHeaderSize.HasValue) Status.Check(wsn_server_options_set_max_header_size(o, WsClientOptions.Size(MaxHeaderSize.Value)));
                if (CloseTimeout.HasValue) Status.Check(wsn_server_options_set_close_timeout_ms(o, WsClientOptions.Ms(CloseTimeout, 0)));
                if (DrainTimeout.HasValue) Status.Check(wsn_server_options_set_drain_timeout_ms(o, WsClientOptions.Ms(DrainTimeout, 0)));
                if (MaxMessageSize.HasValue) Status.Check(wsn_server_options_set_max_message_size(o, WsClientOptions.Size(MaxMessageSize.Value)));
                if (MaxReceiveQueue.HasValue) Status.Check(wsn_server_options_set_max_receive_queue(o, WsClientOptions.Size(MaxReceiveQueue.Value)));
                if (PingInterval.HasValue) Status.Check(wsn_server_options_set_ping_interval_ms(o, WsClientOptions.Ms(PingInterval, 0)));
                if (PongTimeout.HasValue) Status.Check(wsn_server_options_set_pong_timeout_ms(o, WsClientOptions.Ms(PongTimeout, 0)));
                if (Heartbeat.HasValue) Status.Check(wsn_server_options_set_heartbeat(o, (uint)Heartbeat.Value));
                foreach (var p in SubProtocols) Status.Check(wsn_server_options_add_subprotocol(o, Utf8.Z(p)));
                foreach (var a in AllowedOrigins) Status.Check(wsn_server_options_add_allowed_origin(o, Utf8.Z(a)));
                if (MaxConnections.HasValue) Status.Check(wsn_server_options_set_max_connections(o, WsClientOptions.Size(MaxConnections.Value)));
                if (TlsCertificatePemPath != null || TlsKeyPemPath != null)
                    Status.Check(wsn_server_options_set_tls(o, Utf8.Z(TlsCertificatePemPath), Utf8.Z(TlsKeyPemPath)));
                if (MaxPendingHandshakes.HasValue) Status.Check(wsn_server_options_set_max_pending_handshakes(o, WsClientOptions.Size(MaxPendingHandshakes.Value)));
                if (MaxPendingHandshakesPerIp.HasValue) Status.Check(wsn_server_options_set_max_pending_handshakes_per_ip(o, WsClientOptions.Size(MaxPendingHandshakesPerIp.Value)));
                if (PendingHandshakePolicy.HasValue) Status.Check(wsn_server_options_set_pending_handshake_policy(o, (uint)PendingHandshakePolicy.Value));
                if (HttpHandler != null) Status.Check(wsn_server_options_set_http_handler(o, Trampolines.ServerHttp));
                if (ClientCaPemPath != null) // client-reach (issue 13)
                    Status.Check(CertNative.wsn_server_options_set_client_auth(o, Utf8.Z(ClientCaPemPath), ClientCertificateRequired));
                return o;
            }
            catch
            {
                o.Dispose();
                throw;
            }
        }
    }

    /// <summary>Process-wide settings of wsnative's background runtime.</summary>
    public static class WsRuntime
    {
        /// <summary>The native library's version ("major.minor.patch").</summary>
        public static string Version => Utf8.FromPtr(wsn_version());

        /// <summary>I/O threads (0: one per two cores, at least 1, at most 4). Before the first connection or server.</summary>
        public static void SetIoThreads(int threads) => Status.Check(wsn_runtime_set_io_threads(checked((uint)threads)));

        /// <summary>Threads that run event handlers (0: 2). Before the first connection or server.</summary>
        public static void SetCallbackThreads(int threads) => Status.Check(wsn_runtime_set_callback_threads(checked((uint)threads)));

        /// <summary>Closes everything with 1001, waits up to the grace period, aborts the rest. Blocks.</summary>
        public static void Shutdown(TimeSpan grace) => wsn_shutdown(WsClientOptions.Ms(grace, 0));
    }
}
