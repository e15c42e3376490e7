// A WebSocket connection, client or server side.
//
// Lifetime: native code reaches this object through a *weak* GCHandle (freed by the native
// release hook), so a connection nobody references is collected and its SafeHandle frees the
// native handle (closing it with 1001). While something waits on it (ConnectAsync, ReceiveAsync,
// SendAsync, CloseAsync) it is rooted in a static set; a server connection is rooted from its
// open to its close.
//
// What the core does and this class only converts: receive flow control (manual ack: a message
// leaves the core's receive budget when ReceiveAsync hands it out or its handlers return),
// send completion (DRAIN events carry the id of the last message handed to the kernel), the
// bounded send queue (WOULD_BLOCK), the close timeout, and the events of a server's stop.
// Its helpers: ReceiveQueue (messages waiting for ReceiveAsync), SendTracker (SendAsync's
// waits), Roots (what keeps it alive while something waits).
//
// Events run on a wsnative callback thread, one at a time per connection, in order: messages,
// then exactly one Closed. Tasks complete with RunContinuationsAsynchronously, so awaiting code
// never runs on that thread.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using WsNative.Native;
using static WsNative.Native.NativeMethods;

namespace WsNative
{
    public sealed partial class WsConnection : IDisposable
    {
        private readonly WsServer _server;
        private readonly ManualResetEventSlim _handleReady = new ManualResetEventSlim(false);
        private ConnHandle _handle;
        private int _disposed;
        private readonly Roots _roots;
        private readonly ReceiveQueue _inbox;
        private readonly SendTracker _sends;

        private Action<WsConnection> _onOpen;
        private TaskCompletionSource<bool> _openTcs;
        private readonly TaskCompletionSource<bool> _closedTcs = Tasks.New<bool>();
        private volatile WsClosedEventArgs _closeInfo;
        private string _subProtocol = "";
        private string _extensions = "";
        private string _peerAddress = "";
        private ulong _id;

        internal WsConnection(WsServer server, Action<WsConnection> onOpen)
        {
            _server = server;
            _onOpen = onOpen;
            _roots = new Roots(this);
            _inbox = new ReceiveQueue(Ack, _roots);
            _sends = new SendTracker(_roots);
        }

        /// <summary>A message arrived. While this event has no handler, messages wait for ReceiveAsync instead.</summary>
        public event EventHandler<WsMessageEventArgs> MessageReceived;

        /// <summary>The connection ended (always the last event, exactly once).</summary>
        public event EventHandler<WsClosedEventArgs> Closed;

        /// <summary>A handler threw (the exception), or the connection ended with an error (a WsException), raised before Closed.</summary>
        public event EventHandler<WsErrorEventArgs> Error;

        public bool IsServerSide => _server != null;

        public WsState State
        {
            get
            {
                var h = _handle;
                if (h == null) return _closeInfo != null ? WsState.Closed : WsState.Connecting;
                try { return (WsState)wsn_conn_get_state(h); }
                catch (ObjectDisposedException) { return WsState.Closed; }
            }
        }

        /// <summary>Bytes queued by Send and not yet handed to the socket.</summary>
        public long BufferedAmount
        {
            get
            {
                var h = _handle;
                if (h == null) return 0;
                try { return (long)wsn_conn_get_buffered_amount(h).ToUInt64(); }
                catch (ObjectDisposedException) { return 0; }
            }
        }

        /// <summary>The negotiated subprotocol ("" when none).</summary>
        public string SubProtocol => _subProtocol;

        /// <summary>
        /// The extensions agreed in the handshake as its header said them (for example
        /// "permessage-deflate; server_no_context_takeover; client_no_context_takeover"), or "".
        /// </summary>
        public string Extensions => _extensions;

        /// <summary>The peer's "ip:port".</summary>
        public string PeerAddress => _peerAddress;

        /// <summary>The connection's id (wsn_conn_get_id): unique in the process, never 0 once
        /// open; <see cref="WsLog"/> records about this connection carry it.</summary>
        public ulong Id => _id;

        /// <summary>The close code once closed, else null.</summary>
        public int? CloseStatus => _closeInfo?.Code;
        public string CloseStatusDescription => _closeInfo?.Reason;

        /// <summary>How the connection ended, once it has.</summary>
        public WsClosedEventArgs CloseInfo => _closeInfo;

        // ---------------------------------------------------------------- sending

        /// <summary>
        /// Queues a text message and returns at once (thread-safe, never blocks on the network).
        /// Throws a WsException with WsError.WouldBlock when the send queue is full (MaxSendQueue):
        /// nothing was queued; await SendAsync to wait for room instead.
        /// </summary>
        public void Send(string text) => Send(Text(text), SendFlags.Text);

        /// <summary>Queues a binary message and returns at once; the bytes are copied. See Send(string).</summary>
        public void Send(byte[] data) => Send(new ArraySegment<byte>(data ?? throw new ArgumentNullException(nameof(data))), 0);

        public void Send(ArraySegment<byte> data) => Send(data, 0);

        /// <summary>
        /// Queues a text message; the task completes when it was handed to the socket. When the
        /// send queue is full, the message waits (copied, in order) until there is room.
        /// </summary>
        public Task SendAsync(string text) => SendTracked(Text(text), SendFlags.Text);

        public Task SendAsync(byte[] data) => SendTracked(new ArraySegment<byte>(data ?? throw new ArgumentNullException(nameof(data))), 0);

        public Task SendAsync(ArraySegment<byte> data) => SendTracked(data, 0);

        /// <summary>
        /// As SendAsync, with <paramref name="compress"/> false keeping the message uncompressed
        /// even when permessage-deflate was negotiated: for secrets sent next to text an attacker
        /// controls (CRIME/BREACH).
        /// </summary>
        public Task SendAsync(string text, bool compress) => SendTracked(Text(text), SendFlags.Text | (compress ? 0 : SendFlags.NoCompress));

        public Task SendAsync(ArraySegment<byte> data, bool compress) => SendTracked(data, compress ? 0 : SendFlags.NoCompress);

        private static ArraySegment<byte> Text(string text) =>
            new ArraySegment<byte>(Utf8.Bytes(text ?? throw new ArgumentNullException(nameof(text))));

        private void Send(ArraySegment<byte> data, uint flags) => _sends.Send(Handle, data, flags);

        private Task SendTracked(ArraySegment<byte> data, uint flags) => _sends.SendAsync(Handle, data, flags);

        // ---------------------------------------------------------------- receiving

        /// <summary>
        /// The next message (only messages that arrived while MessageReceived had no handler).
        /// After the close, returns a message of type Close. Cancelling stops this wait only:
        /// the connection stays open and no message is lost. Messages not received yet count
        /// against the options' MaxQueue and MaxReceiveQueue; past either, wsnative stops reading
        /// (TCP slows the peer down) until ReceiveAsync took half of them.
        /// </summary>
        public Task<WsMessage> ReceiveAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            if (_disposed != 0) throw new ObjectDisposedException(nameof(WsConnection));
            return _inbox.TakeAsync(cancellationToken);
        }

        /// <summary>Messages waiting for ReceiveAsync.</summary>
        public int QueuedMessages => _inbox.Count;

        // One message left the application's hands: it leaves the core's receive budget.
        private void Ack()
        {
            var h = _handle;
            if (h == null) return;
            try { wsn_conn_ack(h, (UIntPtr)1); }
            catch (ObjectDisposedException) { }
        }

        // ---------------------------------------------------------------- closing

        /// <summary>
        /// Sends what is queued, then a Close frame, and completes when the connection has closed:
        /// at the latest after the close timeouts (then the connection is aborted). Never hangs.
        /// </summary>
        public Task CloseAsync(int code = 1000, string reason = null)
        {
            if (code < 0 || code > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(code));
            if (_closeInfo != null) return Task.CompletedTask;
            Status.Check(wsn_conn_close(Handle, (ushort)code, Utf8.Z(reason)));
            return WaitClosed();
        }

        private async Task WaitClosed()
        {
            _roots.Add(); // native code holds this object only weakly
            try { await _closedTcs.Task.ConfigureAwait(false); }
            finally { _roots.Remove(); }
        }

        /// <summary>Ends the connection at once without a closing handshake (Closed follows: 1006).</summary>
        public void Abort()
        {
            var h = _handle;
            if (h == null || h.IsClosed) return;
            try { wsn_conn_abort(h); }
            catch (ObjectDisposedException) { }
        }

        /// <summary>
        /// Frees the native handle (an open connection is closed with 1001 in the background).
        /// No handler starts after this returns, and pending ReceiveAsync/SendAsync/ConnectAsync
        /// fail with ObjectDisposedException (CloseAsync completes). Safe to call twice and from
        /// inside any handler; never waits for a handler running on another thread.
        /// </summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _handle?.Dispose(); // deferred to the end of a running handler's callback (Trampolines)
            var disposed = new ObjectDisposedException(nameof(WsConnection));
            _inbox.Fail(disposed);
            _sends.Fail(disposed);
            _roots.Clear();
            _openTcs?.TrySetException(disposed);
            _closedTcs.TrySetResult(true);
        }

        // ---------------------------------------------------------------- native side

        private ConnHandle Handle
        {
            get
            {
                var h = _handle;
                if (h == null || _disposed != 0) throw new ObjectDisposedException(nameof(WsConnection));
                return h;
            }
        }

        /// <summary>The SafeHandle for a callback; a client's first event can race wsn_connect's return.</summary>
        internal ConnHandle HandleForCallback()
        {
            var h = _handle;
            if (h != null) return h;
            _handleReady.Wait(10000);
            return _handle;
        }

        /// <summary>Client: starts wsn_connect; events may arrive before this returns.</summary>
        internal void StartConnect(string url, WsClientOptions options)
        {
            MonoExit.Ensure();
            _openTcs = Tasks.New<bool>();
            var urlZ = Utf8.Z(url);
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            _roots.Add(); // until the open or close event
            try
            {
                IntPtr conn;
                using (var o = (options ?? new WsClientOptions()).ToNative())
                {
                    // client-reach (issue 13): the certificate check reaches this connection
                    // through its event user_data; the connection holds the delegate.
                    CertificateCheck = options?.ServerCertificateCheck;
                    if (CertificateCheck != null)
                        Status.Check(CertNative.wsn_client_options_set_cert_check(o, CertNative.Trampoline, GCHandle.ToIntPtr(gch)));
                    Status.Check(wsn_connect(urlZ, o, Trampolines.ClientEvent, GCHandle.ToIntPtr(gch), out conn));
                }
                wsn_conn_set_release_hook(conn, Trampolines.Release, GCHandle.ToIntPtr(gch)); // frees gch
                _handle = new ConnHandle(conn);
                _handleReady.Set();
            }
            catch
            {
                gch.Free();
                _roots.Clear();
                throw;
            }
        }

        internal Task OpenTask => _openTcs.Task;

        /// <summary>client-reach (issue 13): takes a ready connection of a native pool; false when none is ready.</summary>
        internal bool StartTake(IntPtr pool)
        {
            MonoExit.Ensure();
            _openTcs = Tasks.New<bool>();
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            _roots.Add(); // until the open or close event
            IntPtr conn;
            int st = CertNative.wsn_pool_take(pool, Trampolines.ClientEvent, GCHandle.ToIntPtr(gch), out conn);
            if (st != Status.Ok)
            {
                gch.Free();
                _roots.Clear();
                if (st == (int)WsError.WouldBlock) return false;
                throw Status.Error(st);
            }
            wsn_conn_set_release_hook(conn, Trampolines.Release, GCHandle.ToIntPtr(gch)); // frees gch
            _handle = new ConnHandle(conn);
            _handleReady.Set();
            return true;
        }

        private WsHandshakeResponse _response;
        private bool _everOpened;

        /// <summary>With WsClientOptions.Reconnect: a reconnect attempt is about to start (the connection is Connecting; sends wait in the offline queue).</summary>
        public event EventHandler<WsReconnectingEventArgs> Reconnecting;
        /// <summary>With WsClientOptions.Reconnect: reconnected. Runs before the queued messages go out; what its handlers send goes first (authenticate, resubscribe).</summary>
        public event EventHandler Reconnected;
        /// <summary>With WsClientOptions.Reconnect: reconnecting stopped; Closed follows.</summary>
        public event EventHandler<WsReconnectGaveUpEventArgs> ReconnectGaveUp;

        private void OnReconnected()
        {
            var h = Reconnected;
            if (h == null || _disposed != 0) return;
            try { h(this, EventArgs.Empty); }
            catch (Exception ex) { RaiseError(ex); }
        }

        private void Raise<TArgs>(EventHandler<TArgs> h, TArgs args)
        {
            if (h == null || _disposed != 0) return;
            try { h(this, args); }
            catch (Exception ex) { RaiseError(ex); }
        }

        /// <summary>
        /// The server's answer to the upgrade (status 101 and its headers: a Set-Cookie, a
        /// header of the server's choosing), from the open on; null on server connections.
        /// </summary>
        public WsHandshakeResponse HandshakeResponse => _response;

        /// <summary>client-reach (issue 13): WsClientOptions.ServerCertificateCheck of this connect.</summary>
        internal Func<WsCertificateCheck, bool> CertificateCheck { get; private set; }

        /// <summary>Server: called in the OPEN event, before any other event of this connection.</summary>
        internal void AttachServerHandle(IntPtr conn)
        {
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            wsn_conn_set_user_data(conn, GCHandle.ToIntPtr(gch));
            wsn_conn_set_release_hook(conn, Trampolines.Release, GCHandle.ToIntPtr(gch));
            _handle = new ConnHandle(conn);
            _handleReady.Set();
            _roots.Add(); // until its close: nobody else may hold it yet
        }

        internal unsafe void OnNativeEvent(IntPtr conn, WsnEvent* e)
        {
            switch (e->Kind)
            {
                case EventKind.Open:
                    if (_everOpened) { OnReconnected(); break; } // client-reach (issue 13): the reconnect hook
                    _everOpened = true;
                    _response = CertNative.ReadResponse(conn);
                    OnOpen(conn);
                    break;
                case CertNative.EventReconnecting:
                    Raise(Reconnecting, new WsReconnectingEventArgs((int)e->Attempt, TimeSpan.FromMilliseconds(e->DelayMs), e->CloseCode, Utf8.FromPtr(e->Error)));
                    break;
                case CertNative.EventReconnectGaveUp:
                    Raise(ReconnectGaveUp, new WsReconnectGaveUpEventArgs((int)e->Attempt, Utf8.FromPtr(e->Error)));
                    break;
                case EventKind.Message: OnMessage(e); break;
                case EventKind.Drain: if (_handle != null) _sends.OnDrain(_handle, e->SentId); break;
                case EventKind.Close: if (_response == null) _response = CertNative.ReadResponse(conn); OnClose(e); break;
            }
        }

        private void OnOpen(IntPtr conn)
        {
            _subProtocol = Utf8.FromPtr(wsn_conn_get_subprotocol(conn)) ?? "";
            _extensions = Utf8.FromPtr(wsn_conn_get_extensions(conn)) ?? "";
            _id = wsn_conn_get_id(conn);
            try { _peerAddress = Utf8.FromPtr(wsn_conn_get_peer_addr(_handle)) ?? ""; }
            catch (ObjectDisposedException) { }
            var onOpen = _onOpen;
            _onOpen = null;
            if (onOpen != null && _disposed == 0)
            {
                try { onOpen(this); }
                catch (Exception ex)
                {
                    if (_server != null) _server.RaiseError(ex); // the server's onConnection
                    else RaiseError(ex);
                }
            }
            if (_openTcs != null)
            {
                _openTcs.TrySetResult(true);
                _roots.Remove();
            }
        }

        private unsafe void OnMessage(WsnEvent* e)
        {
            if (_disposed != 0) return;
            var len = checked((int)e->Len.ToUInt64());
            var data = new byte[len];
            if (len > 0) Marshal.Copy(e->Data, data, 0, len); // borrowed until we return: copy now
            var msg = new WsMessage(e->IsText != 0 ? WsMessageType.Text : WsMessageType.Binary, data, null);

            var handlers = MessageReceived;
            if (handlers != null)
            {
                var args = new WsMessageEventArgs(msg);
                foreach (EventHandler<WsMessageEventArgs> d in handlers.GetInvocationList())
                {
                    if (_disposed != 0) return;
                    try { d(this, args); }
                    catch (Exception ex) { RaiseError(ex); }
                }
                Ack();
                return;
            }

            _inbox.Add(msg);
        }

        private unsafe void OnClose(WsnEvent* e)
        {
            var info = new WsClosedEventArgs(e->CloseCode, Utf8.FromPtr(e->Reason), e->WasClean != 0,
                                             Utf8.FromPtr(e->Error), (WsError)e->ErrorStatus, e->HttpStatus);
            ulong sent = 0;
            try { if (_handle != null) sent = wsn_conn_get_sent_id(_handle); } catch (ObjectDisposedException) { }
            _closeInfo = info;
            _sends.End(info, sent);
            _inbox.End(new WsMessage(WsMessageType.Close, new byte[0], info));
            _roots.Clear();
            if (_openTcs != null && !_openTcs.Task.IsCompleted) // a failed connect (no effect once open)
            {
                var failure = info.ToException();
                var wse = failure as WsException;
                if (wse != null) wse.Response = _response; // client-reach (issue 13): a refusal's headers
                _openTcs.TrySetException(failure);
            }
            _closedTcs.TrySetResult(true);

            if (_disposed != 0) return;
            if (info.Error != null) RaiseError(info.ToException());
            var closed = Closed;
            if (closed == null) return;
            foreach (EventHandler<WsClosedEventArgs> d in closed.GetInvocationList())
            {
                if (_disposed != 0) return;
                try { d(this, info); }
                catch (Exception ex) { RaiseError(ex); }
            }
        }

        private void RaiseError(Exception ex)
        {
            var handlers = Error;
            if (handlers == null || _disposed != 0)
            {
                Report.Swallowed("a WsConnection handler (no Error handler)", ex);
                return;
            }
            var args = new WsErrorEventArgs(ex);
            foreach (EventHandler<WsErrorEventArgs> d in handlers.GetInvocationList())
            {
                try { d(this, args); }
                catch (Exception again) { Report.Swallowed("WsConnection.Error handler", again); }
            }
        }
    }
}
