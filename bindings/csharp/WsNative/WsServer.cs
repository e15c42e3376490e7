// A listening server. It stays alive while it listens (native code holds a strong GCHandle
// to it, freed by the server's release hook) until Dispose. Events of its connections reach
// their WsConnection through each connection's user_data; stopping and freeing deliver every
// connection's real CLOSE event (the core's), so nothing here keeps a table of connections.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using WsNative.Native;
using static WsNative.Native.NativeMethods;

namespace WsNative
{
    public sealed partial class WsServer : IDisposable
    {
        private readonly Action<WsConnection> _onConnection;
        private readonly Action<WsAcceptRequest> _onAccept;
        private Action<WsHttpRequest> _onHttp;
        private ServerHandle _handle;
        private int _disposed;

        private WsServer(Action<WsConnection> onConnection, Action<WsAcceptRequest> onAccept)
        {
            _onConnection = onConnection;
            _onAccept = onAccept;
        }

        /// <summary>
        /// Listens on host:port (port 0 picks a free one: see Port). <paramref name="onConnection"/>
        /// runs on a callback thread for each new connection before any of its messages: subscribe
        /// to its events there. <paramref name="onAccept"/> (optional) sees each upgrade request first
        /// and may refuse it, or accept and close it with a 4000-4999 code; if it throws, the request
        /// is refused with HTTP 500.
        /// </summary>
        public static WsServer Listen(string host, int port, Action<WsConnection> onConnection,
                                      WsServerOptions options = null, Action<WsAcceptRequest> onAccept = null)
        {
            if (host == null) throw new ArgumentNullException(nameof(host));
            if (port < 0 || port > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(port));
            MonoExit.Ensure();
            var server = new WsServer(onConnection, onAccept);
            server._onHttp = options?.HttpHandler;
            var gch = GCHandle.Alloc(server); // strong: a listening server is not collected
            try
            {
                IntPtr ptr;
                var accept = onAccept != null ? Trampolines.ServerAccept : null;
                using (var o = (options ?? new WsServerOptions()).ToNative())
                    Status.Check(wsn_server_listen(Utf8.Z(host), (ushort)port, o, accept, Trampolines.ServerEvent, GCHandle.ToIntPtr(gch), out ptr));
                wsn_server_set_release_hook(ptr, Trampolines.Release, GCHandle.ToIntPtr(gch)); // frees gch
                server._handle = new ServerHandle(ptr);
                server.Port = wsn_server_get_port(server._handle);
                return server;
            }
            catch
            {
                gch.Free();
                throw;
            }
        }

        /// <summary>The port the server listens on.</summary>
        public int Port { get; private set; }

        /// <summary>An onConnection or onAccept handler threw.</summary>
        public event EventHandler<WsErrorEventArgs> Error;

        /// <summary>
        /// Stops accepting, closes every connection with 1001 and completes when they are closed or
        /// the drain timeout passed (the rest are aborted), once every connection's Closed event was
        /// delivered.
        /// </summary>
        public Task StopAsync(TimeSpan drainTimeout)
        {
            var h = _handle;
            if (h == null || _disposed != 0) return Task.CompletedTask;
            var ms = WsClientOptions.Ms(drainTimeout, 0);
            return Task.Factory.StartNew(() =>
            {
                try { Status.Check(wsn_server_stop(h, ms)); }
                catch (ObjectDisposedException) { }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        /// <summary>
        /// Stops (with the options' drain timeout, as StopAsync) and frees the server. When it
        /// returns, every connection's Closed event was delivered and no handler of the server runs.
        /// Called from inside a handler it never waits: the stop and the Closed events follow.
        /// </summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _handle?.Dispose();
        }

        /// <summary>The OPEN event of a new connection: its WsConnection, or null when nobody will own it.</summary>
        internal WsConnection OnNativeOpen(IntPtr conn)
        {
            if (_disposed != 0) return null;
            var c = new WsConnection(this, _onConnection);
            c.AttachServerHandle(conn);
            return c;
        }

        internal void OnNativeAccept(IntPtr request)
        {
            var r = new WsAcceptRequest(request);
            try
            {
                _onAccept(r);
            }
            catch (Exception e)
            {
                if (!r.Decided)
                {
                    try { r.Reject(500, "internal error"); }
                    catch (Exception again) { Report.Swallowed("reject after a throwing accept handler", again); }
                }
                RaiseError(e);
            }
            finally
            {
                r.Invalidate();
            }
        }

        internal void OnNativeHttp(IntPtr request)
        {
            var handler = _onHttp;
            if (handler == null) return; // not answered: the default 426
            var r = new WsHttpRequest(request);
            try
            {
                handler(r);
            }
            catch (Exception e)
            {
                if (!r.Answered)
                {
                    try { r.Respond(500, "internal error"); }
                    catch (Exception again) { Report.Swallowed("answer after a throwing http handler", again); }
                }
                RaiseError(e);
            }
            finally
            {
                r.Invalidate();
            }
        }

        internal void RaiseError(Exception ex)
        {
            var handlers = Error;
            if (handlers == null)
            {
                Report.Swallowed("a WsServer handler (no Error handler)", ex);
                return;
            }
            var args = new WsErrorEventArgs(ex);
            foreach (EventHandler<WsErrorEventArgs> d in handlers.GetInvocationList())
            {
                try { d(this, args); }
                catch (Exception again) { Report.Swallowed("WsServer.Error handler", again); }
            }
        }
    }

    /// <summary>An upgrade request, valid only while the accept handler runs.</summary>
    public sealed partial class WsAcceptRequest
    {
        private IntPtr _request;

        internal WsAcceptRequest(IntPtr request)
        {
            _request = request;
            Method = Utf8.FromPtr(wsn_request_get_method(request));
            Path = Utf8.FromPtr(wsn_request_get_path(request));
            Query = Utf8.FromPtr(wsn_request_get_query(request));
            PeerAddress = Utf8.FromPtr(wsn_request_get_peer_addr(request));
            Headers = WsHttpRequest.ReadHeaders(request);
            var protocols = new List<string>();
            var n = (long)wsn_request_get_subprotocol_count(request).ToUInt64();
            for (long i = 0; i < n; i++) protocols.Add(Utf8.FromPtr(wsn_request_get_subprotocol(request, (UIntPtr)(ulong)i)));
            SubProtocols = protocols.AsReadOnly();
            PeerCertificateSubject = Utf8.FromPtr(Native.CertNative.wsn_request_get_peer_cert_subject(request)); // client-reach
        }

        /// <summary>The request method (always GET for an upgrade).</summary>
        public string Method { get; }
        /// <summary>The subject of the client certificate the server verified ("CN=alice, O=Example"), or null.</summary>
        public string PeerCertificateSubject { get; }

        public string Path { get; }
        public string Query { get; }
        public string PeerAddress { get; }
        public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }
        public IReadOnlyList<string> SubProtocols { get; }

        /// <summary>Adds a header to the response this handler leads to: the 101 (a Set-Cookie, for example) or the refusal. Headers wsnative writes itself (Content-Length, Connection, Upgrade, Sec-WebSocket-*) and invalid ones throw ArgumentException.</summary>
        public void AddResponseHeader(string name, string value)
        {
            if (name == null) throw new ArgumentNullException(nameof(name));
            if (value == null) throw new ArgumentNullException(nameof(value));
            Status.Check(wsn_request_add_response_header(Live, Utf8.Z(name), Utf8.Z(value)));
        }
        internal bool Decided { get; private set; }

        /// <summary>The first header called <paramref name="name"/> (case-insensitive), or null.</summary>
        public string GetHeader(string name)
        {
            foreach (var h in Headers)
                if (string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)) return h.Value;
            return null;
        }

        /// <summary>Accepts, choosing one of the offered subprotocols (null: none).</summary>
        public void Accept(string subProtocol = null)
        {
            Status.Check(wsn_request_accept(Live, Utf8.Z(subProtocol)));
            Decided = true;
        }

        /// <summary>Refuses with an HTTP status (400-599). Browsers do not show it to scripts: see AcceptAndClose.</summary>
        public void Reject(int httpStatus, string body = null)
        {
            if (httpStatus < 0 || httpStatus > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(httpStatus));
            Status.Check(wsn_request_reject(Live, (ushort)httpStatus, Utf8.Z(body)));
            Decided = true;
        }

        /// <summary>Accepts and closes at once with <paramref name="code"/> (4000-4999), which browsers can read.</summary>
        public void AcceptAndClose(int code, string reason = null)
        {
            if (code < 0 || code > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(code));
            Status.Check(wsn_request_accept_and_close(Live, (ushort)code, Utf8.Z(reason)));
            Decided = true;
        }

        private IntPtr Live
        {
            get
            {
                if (_request == IntPtr.Zero)
                    throw new InvalidOperationException("the request is only valid while the accept handler runs");
                return _request;
            }
        }

        internal void Invalidate() => _request = IntPtr.Zero;
    }

    /// <summary>A plain HTTP request (not a WebSocket upgrade), valid only while the HTTP handler runs.</summary>
    public sealed class WsHttpRequest
    {
        private IntPtr _request;

        internal WsHttpRequest(IntPtr request)
        {
            _request = request;
            Method = Utf8.FromPtr(wsn_request_get_method(request));
            Path = Utf8.FromPtr(wsn_request_get_path(request));
            Query = Utf8.FromPtr(wsn_request_get_query(request));
            PeerAddress = Utf8.FromPtr(wsn_request_get_peer_addr(request));
            Headers = ReadHeaders(request);
        }

        internal static IReadOnlyList<KeyValuePair<string, string>> ReadHeaders(IntPtr request)
        {
            var headers = new List<KeyValuePair<string, string>>();
            var n = (long)wsn_request_get_header_count(request).ToUInt64();
            for (long i = 0; i < n; i++)
                headers.Add(new KeyValuePair<string, string>(
                    Utf8.FromPtr(wsn_request_get_header_name(request, (UIntPtr)(ulong)i)),
                    Utf8.FromPtr(wsn_request_get_header_value(request, (UIntPtr)(ulong)i))));
            return headers.AsReadOnly();
        }

        public string Method { get; }
        public string Path { get; }
        public string Query { get; }
        public string PeerAddress { get; }
        public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }
        internal bool Answered { get; private set; }

        /// <summary>The first header called <paramref name="name"/> (case-insensitive), or null.</summary>
        public string GetHeader(string name)
        {
            foreach (var h in Headers)
                if (string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)) return h.Value;
            return null;
        }

        /// <summary>Adds a header to the answer (Content-Length, Connection and the like are wsnative's: they and invalid ones throw ArgumentException).</summary>
        public void AddResponseHeader(string name, string value)
        {
            if (name == null) throw new ArgumentNullException(nameof(name));
            if (value == null) throw new ArgumentNullException(nameof(value));
            Status.Check(wsn_request_add_response_header(Live, Utf8.Z(name), Utf8.Z(value)));
        }

        /// <summary>Answers with <paramref name="status"/> (200-599) and a body (at most 1 MiB; not sent to HEAD); the connection then closes.</summary>
        public void Respond(int status, byte[] body)
        {
            if (status < 0 || status > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(status));
            var b = body ?? new byte[0];
            Status.Check(wsn_request_respond(Live, (ushort)status, b, (UIntPtr)(ulong)b.Length));
            Answered = true;
        }

        /// <summary>Answers with <paramref name="status"/> and a UTF-8 text body, of <paramref name="contentType"/> (default text/plain; charset=utf-8).</summary>
        public void Respond(int status, string body, string contentType = null)
        {
            if (contentType != null) AddResponseHeader("Content-Type", contentType);
            Respond(status, System.Text.Encoding.UTF8.GetBytes(body ?? ""));
        }

        private IntPtr Live
        {
            get
            {
                if (_request == IntPtr.Zero)
                    throw new InvalidOperationException("the request is only valid while the HTTP handler runs");
                return _request;
            }
        }

        internal void Invalidate() => _request = IntPtr.Zero;
    }
}
