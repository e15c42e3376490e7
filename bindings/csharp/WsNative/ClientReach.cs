// client-reach (issue 13): certificates, proxies, the handshake response. The P/Invoke declarations, the certificate check's
// trampoline, and the public types (WsCertificateCheck, WsCertificates). The option properties
// are in WsOptions.cs, each in a block of its own.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using WsNative.Native;

namespace WsNative.Native
{
    /// <summary>wsn_cert_check_cb: (user_data, host, certs, cert_lens, count, default_error) -> bool.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.I1)]
    internal delegate bool CertCheckCallback(IntPtr userData, IntPtr host, IntPtr certs, IntPtr certLens,
                                             UIntPtr count, IntPtr defaultError);

    internal static class CertNative
    {
        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_client_cert_files(ClientOptionsHandle o, byte[] chainZ, byte[] keyZ);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_client_cert_pem(ClientOptionsHandle o, byte[] chainZ, byte[] keyZ);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_add_trusted_cert_file(ClientOptionsHandle o, byte[] pathZ);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_add_trusted_fingerprint(ClientOptionsHandle o, byte[] hexZ);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_cert_check(ClientOptionsHandle o, CertCheckCallback check, IntPtr userData);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_server_options_set_client_auth(ServerOptionsHandle o, byte[] caZ,
                                                                      [MarshalAs(UnmanagedType.I1)] bool required);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_request_get_peer_cert_subject(IntPtr request);

        // proxies
        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_proxy(ClientOptionsHandle o, byte[] urlZ);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_proxy_from_env(ClientOptionsHandle o, [MarshalAs(UnmanagedType.I1)] bool enabled);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_add_proxy_header(ClientOptionsHandle o, byte[] nameZ, byte[] valueZ);

        // the handshake response
        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ushort wsn_conn_get_response_status(IntPtr conn);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_conn_get_response_header_count(IntPtr conn);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_conn_get_response_header_name(IntPtr conn, UIntPtr index);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_conn_get_response_header_value(IntPtr conn, UIntPtr index);

        /// <summary>The handshake response of a native client connection, or null (called in its OPEN or CLOSE event).</summary>
        internal static WsHandshakeResponse ReadResponse(IntPtr conn)
        {
            int status = wsn_conn_get_response_status(conn);
            if (status == 0) return null;
            var headers = new List<KeyValuePair<string, string>>();
            var n = (long)wsn_conn_get_response_header_count(conn).ToUInt64();
            for (long i = 0; i < n; i++)
                headers.Add(new KeyValuePair<string, string>(
                    Utf8.FromPtr(wsn_conn_get_response_header_name(conn, (UIntPtr)(ulong)i)),
                    Utf8.FromPtr(wsn_conn_get_response_header_value(conn, (UIntPtr)(ulong)i))));
            return new WsHandshakeResponse(status, headers.AsReadOnly());
        }

        // reconnect
        internal const uint EventReconnecting = 5, EventReconnectGaveUp = 6;

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr wsn_reconnect_policy_new();

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_reconnect_policy_free(IntPtr p);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_reconnect_policy_set_delays(IntPtr p, uint initialMs, uint maxMs);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_reconnect_policy_set_budget(IntPtr p, uint maxAttempts, uint maxTotalMs);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_reconnect_policy_add_stop_code(IntPtr p, ushort code);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_reconnect_policy_add_stop_status(IntPtr p, ushort status);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_reconnect_policy_set_offline_queue(IntPtr p, UIntPtr maxBytes, uint whenFull);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_client_options_set_reconnect(ClientOptionsHandle o, IntPtr p);

        // pool
        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_pool_new(byte[] urlZ, ClientOptionsHandle options, UIntPtr size, out IntPtr poolOut);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_pool_take(IntPtr pool, EventCallback onEvent, IntPtr userData, out IntPtr connOut);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr wsn_pool_ready(IntPtr pool);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void wsn_pool_free(IntPtr pool);

        [DllImport(NativeMethods.Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int wsn_cert_fingerprint_sha256(byte[] der, UIntPtr len, byte[] output, UIntPtr outLen);

        // Never collected. user_data: the weak GCHandle of the WsConnection (its event user_data),
        // which holds the check until the connection opened or closed.
        internal static readonly CertCheckCallback Trampoline = OnCertCheck;

        private static bool OnCertCheck(IntPtr userData, IntPtr host, IntPtr certs, IntPtr lens, UIntPtr count, IntPtr defaultError)
        {
            try
            {
                var c = GCHandle.FromIntPtr(userData).Target as WsConnection;
                var check = c?.CertificateCheck;
                if (check == null) return false;
                int n = checked((int)count.ToUInt64());
                var chain = new List<byte[]>(n);
                for (int i = 0; i < n; i++)
                {
                    var p = Marshal.ReadIntPtr(certs, i * IntPtr.Size);
                    var len = checked((int)(IntPtr.Size == 8 ? Marshal.ReadInt64(lens, i * 8) : Marshal.ReadInt32(lens, i * 4)));
                    var der = new byte[len];
                    Marshal.Copy(p, der, 0, len);
                    chain.Add(der);
                }
                var info = new WsCertificateCheck(Utf8.FromPtr(host), chain.AsReadOnly(),
                                                  defaultError == IntPtr.Zero ? null : Utf8.FromPtr(defaultError));
                return check(info);
            }
            catch (Exception e)
            {
                Report.Swallowed("certificate check (the server is refused)", e);
                return false;
            }
        }
    }
}

namespace WsNative
{
    /// <summary>
    /// What WsClientOptions.ServerCertificateCheck sees: the host connected to, the certificates
    /// the server sent (DER, its own first), and the default validation's verdict.
    /// </summary>
    public sealed class WsCertificateCheck
    {
        internal WsCertificateCheck(string host, IReadOnlyList<byte[]> chain, string defaultError)
        {
            Host = host;
            Chain = chain;
            DefaultError = defaultError;
        }

        /// <summary>The host name connected to.</summary>
        public string Host { get; }
        /// <summary>The certificates the server sent, DER, its own first.</summary>
        public IReadOnlyList<byte[]> Chain { get; }
        /// <summary>Null when the default validation accepted the chain; otherwise why it refused it.</summary>
        public string DefaultError { get; }
        /// <summary>The SHA-256 fingerprint of the server's own certificate ("AB:CD:...").</summary>
        public string Fingerprint => WsCertificates.Sha256Fingerprint(Chain[0]);
    }

    /// <summary>
    /// The server's answer to the upgrade: 101 and its headers (a Set-Cookie, a header of the
    /// server's choosing) on WsConnection.HandshakeResponse, or a refusal on WsException.Response.
    /// </summary>
    public sealed class WsHandshakeResponse
    {
        internal WsHandshakeResponse(int statusCode, IReadOnlyList<KeyValuePair<string, string>> headers)
        {
            StatusCode = statusCode;
            Headers = headers;
        }

        /// <summary>The HTTP status (101 when accepted).</summary>
        public int StatusCode { get; }
        /// <summary>Every header in order, names as sent.</summary>
        public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

        /// <summary>The first header called <paramref name="name"/> (case-insensitive), or null.</summary>
        public string GetHeader(string name)
        {
            foreach (var h in Headers)
                if (string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)) return h.Value;
            return null;
        }
    }

    /// <summary>What a send does while reconnecting and the offline queue is full.</summary>
    public enum WsOfflinePolicy
    {
        /// <summary>Send throws WsException (WsError.WouldBlock); nothing is queued.</summary>
        Refuse = 0,
        /// <summary>The oldest queued messages are dropped.</summary>
        DropOldest = 1,
        /// <summary>The new message is dropped (the send returns; it never goes out).</summary>
        DropNewest = 2,
    }

    /// <summary>
    /// Reconnect after a drop, keeping the same WsConnection (WsClientOptions.Reconnect). Attempt
    /// n waits a delay drawn uniformly from 0 to min(MaxDelay, InitialDelay * 2^(n-1)) (full
    /// jitter). It stops after MaxAttempts attempts or MaxTime since the drop, on a close code
    /// in StopCodes (added to 1002, 1003, 1007-1010), an HTTP status in StopStatuses (added to
    /// 401 and 403), and never after Close/Abort/Dispose. Meanwhile sends wait in an offline
    /// queue of OfflineQueueBytes (WhenFull when it is full). WsConnection.Reconnecting tells of
    /// each attempt, Reconnected runs after each success before the queued messages go out (what
    /// its handlers send goes first), ReconnectGaveUp when it stops (Closed follows).
    /// </summary>
    public sealed class WsReconnectPolicy
    {
        public TimeSpan InitialDelay { get; set; } = TimeSpan.FromMilliseconds(500);
        public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(30);
        /// <summary>0: no limit.</summary>
        public int MaxAttempts { get; set; }
        /// <summary>Null: no limit.</summary>
        public TimeSpan? MaxTime { get; set; }
        public IList<int> StopCodes { get; } = new List<int>();
        public IList<int> StopStatuses { get; } = new List<int>();
        public long OfflineQueueBytes { get; set; } = 1 << 20;
        public WsOfflinePolicy WhenFull { get; set; }

        internal void Apply(ClientOptionsHandle o)
        {
            var p = CertNative.wsn_reconnect_policy_new();
            try
            {
                Status.Check(CertNative.wsn_reconnect_policy_set_delays(p, WsClientOptions.Ms(InitialDelay, 0), WsClientOptions.Ms(MaxDelay, 0)));
                Status.Check(CertNative.wsn_reconnect_policy_set_budget(p, checked((uint)MaxAttempts), WsClientOptions.Ms(MaxTime, 0)));
                foreach (var c in StopCodes) Status.Check(CertNative.wsn_reconnect_policy_add_stop_code(p, checked((ushort)c)));
                foreach (var s in StopStatuses) Status.Check(CertNative.wsn_reconnect_policy_add_stop_status(p, checked((ushort)s)));
                Status.Check(CertNative.wsn_reconnect_policy_set_offline_queue(p, WsClientOptions.Size(OfflineQueueBytes), (uint)WhenFull));
                Status.Check(CertNative.wsn_client_options_set_reconnect(o, p));
            }
            finally
            {
                CertNative.wsn_reconnect_policy_free(p);
            }
        }
    }

    /// <summary>A reconnect attempt about to start (WsConnection.Reconnecting).</summary>
    public sealed class WsReconnectingEventArgs : EventArgs
    {
        internal WsReconnectingEventArgs(int attempt, TimeSpan delay, int closeCode, string error)
        {
            Attempt = attempt; Delay = delay; CloseCode = closeCode; Error = error;
        }

        /// <summary>The attempt's number, from 1 after each drop.</summary>
        public int Attempt { get; }
        /// <summary>How long it waits first.</summary>
        public TimeSpan Delay { get; }
        /// <summary>The close code of the connection that dropped (1006 for a failed attempt).</summary>
        public int CloseCode { get; }
        /// <summary>Why the last connection or attempt ended, or null.</summary>
        public string Error { get; }
    }

    /// <summary>Reconnecting stopped (WsConnection.ReconnectGaveUp); Closed follows.</summary>
    public sealed class WsReconnectGaveUpEventArgs : EventArgs
    {
        internal WsReconnectGaveUpEventArgs(int attempts, string error) { Attempts = attempts; Error = error; }

        public int Attempts { get; }
        public string Error { get; }
    }

    /// <summary>
    /// Keeps Size connections to one URL open and ready, so that TryTake hands one out without
    /// the connect and upgrade round trips; each one taken is replaced in the background.
    /// Dispose closes the connections still waiting (1001); taken ones are not affected.
    /// </summary>
    public sealed class WsPool : IDisposable
    {
        private IntPtr _pool;
        private readonly object _lock = new object();

        public WsPool(Uri uri, int size, WsClientOptions options = null)
        {
            if (uri == null) throw new ArgumentNullException(nameof(uri));
            MonoExit.Ensure();
            using (var o = (options ?? new WsClientOptions()).ToNative())
                Status.Check(CertNative.wsn_pool_new(Utf8.Z(uri.AbsoluteUri), o, WsClientOptions.Size(size), out _pool));
        }

        /// <summary>Connections ready now.</summary>
        public int Ready
        {
            get { lock (_lock) return _pool == IntPtr.Zero ? 0 : (int)CertNative.wsn_pool_ready(_pool).ToUInt64(); }
        }

        /// <summary>
        /// An open connection at once, or null when none is ready (connect with WsClient then).
        /// <paramref name="onOpen"/> runs on the callback thread before any message is delivered:
        /// subscribe to events there to see every message.
        /// </summary>
        public WsConnection TryTake(Action<WsConnection> onOpen = null)
        {
            lock (_lock)
            {
                if (_pool == IntPtr.Zero) throw new ObjectDisposedException(nameof(WsPool));
                var conn = new WsConnection(null, onOpen);
                return conn.StartTake(_pool) ? conn : null;
            }
        }

        public void Dispose()
        {
            lock (_lock)
            {
                if (_pool == IntPtr.Zero) return;
                CertNative.wsn_pool_free(_pool);
                _pool = IntPtr.Zero;
            }
        }
    }

    public static class WsCertificates
    {
        /// <summary>
        /// The SHA-256 fingerprint of a DER certificate, "AB:CD:...", as
        /// WsClientOptions.TrustedFingerprints takes it and
        /// <c>openssl x509 -noout -fingerprint -sha256</c> prints it.
        /// </summary>
        public static string Sha256Fingerprint(byte[] der)
        {
            if (der == null) throw new ArgumentNullException(nameof(der));
            var output = new byte[96];
            Status.Check(Native.CertNative.wsn_cert_fingerprint_sha256(der, (UIntPtr)(ulong)der.Length, output, (UIntPtr)96u));
            return System.Text.Encoding.ASCII.GetString(output, 0, 95);
        }
    }
}
