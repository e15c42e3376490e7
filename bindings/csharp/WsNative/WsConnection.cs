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
    public sealed class WsConnection : IDisposable
    {
        private static readonly HashSet<WsConnection> s_rooted = new HashSet<WsConnection>();

        private readonly object _lock = new object();
        private readonly WsServer _server;
        private readonly ManualResetEventSlim _handleReady = new ManualResetEventSlim(false);
        private ConnHandle _handle;
        private int _disposed;
        private int _roots;

        private Action<WsConnection> _onOpen;
        private TaskCompletionSource<bool> _openTcs;
        private readonly TaskCompletionSource<bool> _closedTcs = NewTcs<bool>();
        private volatile WsClosedEventArgs _closeInfo;
        private string _subProtocol = "";
        private string _extensions = "";
        private string _peerAddress = "";

        private readonly Queue<WsMessage> _inbox = new Queue<WsMessage>();
        private readonly LinkedList<ReceiveWaiter> _receivers = new LinkedList<ReceiveWaiter>();

        // SendAsync: tasks waiting for a DRAIN that reaches their message id, and messages the
        // full send queue refused, waiting (in order) for a DRAIN to be queued. Both under _lock.
        private readonly List<SendWaiter> _pendingSends = new List<SendWaiter>();
        private readonly Queue<SendWaiter> _blocked = new Queue<SendWaiter>();
        private volatile int _blockedCount;

        internal WsConnection(WsServer server, Action<WsConnection> onOpen)
        {
            _server = server;
            _onOpen = onOpen;
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
        public void Send(string text) => SendNow(Text(text), SendFlags.Text);

        /// <summary>Queues a binary message and returns at once; the bytes are copied. See Send(string).</summary>
        public void Send(byte[] data) => SendNow(new ArraySegment<byte>(data ?? throw new ArgumentNullException(nameof(data))), 0);

        public void Send(ArraySegment<byte> data) => SendNow(data, 0);

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

        private void SendNow(ArraySegment<byte> data, uint flags)
        {
            var h = Handle;
            ulong id;
            if (_blockedCount != 0) // messages waiting for room go first: a Send may not overtake them
                throw new WsException(WsError.WouldBlock, "earlier messages are waiting for room in the send queue", 0);
            Status.Check(NativeSend(h, data, flags, out id));
        }

        private static unsafe int NativeSend(ConnHandle h, ArraySegment<byte> data, uint flags, out ulong id)
        {
            if (data.Array == null) throw new ArgumentNullException(nameof(data));
            fixed (byte* p = data.Array) return wsn_conn_send(h, p + data.Offset, (UIntPtr)data.Count, flags, out id);
        }

        private Task SendTracked(ArraySegment<byte> data, uint flags)
        {
            var h = Handle;
            ulong id;
            if (_blockedCount == 0)
            {
                int st = NativeSend(h, data, flags, out id);
                if (st == Status.Ok) return Track(h, id);
                if (st != Status.WouldBlock) throw Status.Error(st);
            }
            var copy = new byte[data.Count];
            Buffer.BlockCopy(data.Array, data.Offset, copy, 0, data.Count);
            var b = new SendWaiter { Data = new ArraySegment<byte>(copy), Flags = flags, Tcs = NewTcs<bool>() };
            lock (_lock)
            {
                if (_closeInfo != null || _disposed != 0) return Task.FromException(NotSent(_closeInfo));
                _blocked.Enqueue(b);
                _blockedCount = _blocked.Count;
                RootLocked();
                PumpBlockedLocked(h); // the DRAIN it waits for may have come already
            }
            return b.Tcs.Task;
        }

        // Under _lock: queue what waits for room, in order, until the queue refuses again.
        private void PumpBlockedLocked(ConnHandle h)
        {
            while (_blocked.Count > 0)
            {
                var b = _blocked.Peek();
                int st;
                try { st = NativeSend(h, b.Data, b.Flags, out b.Id); }
                catch (ObjectDisposedException) { return; }
                if (st == Status.WouldBlock)
                {
                    ArmDrain(h); // the refusal armed one: make sure drain events are on
                    return;
                }
                _blocked.Dequeue();
                _blockedCount = _blocked.Count;
                UnrootLocked();
                if (st != Status.Ok) b.Tcs.TrySetException(Status.Error(st));
                else if (wsn_conn_get_sent_id(h) >= b.Id) b.Tcs.TrySetResult(true);
                else
                {
                    _pendingSends.Add(b);
                    RootLocked();
                    ArmDrain(h);
                }
            }
        }

        // Drain events are on only while a SendAsync waits (they cost a callback each): turning
        // them on arms one, which comes once everything queued was handed to the kernel (at once
        // when that is so already).
        private static void ArmDrain(ConnHandle h)
        {
            try { wsn_conn_set_drain_events(h, true, UIntPtr.Zero); }
            catch (ObjectDisposedException) { }
        }

        private Task Track(ConnHandle h, ulong id)
        {
            if (wsn_conn_get_sent_id(h) >= id) return Task.CompletedTask;
            var p = new SendWaiter { Id = id, Tcs = NewTcs<bool>() };
            lock (_lock)
            {
                // A DRAIN that reached `id` before this registration changed the sent id first.
                if (wsn_conn_get_sent_id(h) >= id) return Task.CompletedTask;
                if (_closeInfo != null || _disposed != 0) return Closing(_closeInfo);
                _pendingSends.Add(p);
                RootLocked();
                ArmDrain(h);
            }
            return p.Tcs.Task;
        }

        private static Task Closing(WsClosedEventArgs close)
        {
            if (close == null) return Task.FromException(new ObjectDisposedException(nameof(WsConnection)));
            if (close.WasClean) return Task.CompletedTask; // queued data goes out before the Close frame
            return Task.FromException(close.ToException());
        }

        // For a message that never got into the send queue.
        private static Exception NotSent(WsClosedEventArgs close) =>
            close == null ? (Exception)new ObjectDisposedException(nameof(WsConnection))
                          : new InvalidOperationException("the connection closed (" + close + ") before the send queue had room for the message");

        // DRAIN: every message up to sentId was handed to the kernel, and there is room again.
        private void OnDrain(ulong sentId)
        {
            // Nothing waits (the usual case without SendAsync): a registration racing this DRAIN
            // checks the sent id itself after registering (Track, SendTracked).
            Thread.MemoryBarrier();
            if (_pendingSends.Count == 0 && _blockedCount == 0) return;
            lock (_lock)
            {
                for (int i = _pendingSends.Count - 1; i >= 0; i--)
                {
                    if (_pendingSends[i].Id > sentId) continue;
                    _pendingSends[i].Tcs.TrySetResult(true);
                    _pendingSends[i] = _pendingSends[_pendingSends.Count - 1];
                    _pendingSends.RemoveAt(_pendingSends.Count - 1);
                    UnrootLocked();
                }
                if (_blocked.Count > 0) PumpBlockedLocked(_handle);
                // Still waiting: the next drain is armed; nothing waits: drain events off.
                try
                {
                    if (_pendingSends.Count > 0 || _blocked.Count > 0) ArmDrain(_handle);
                    else wsn_conn_set_drain_events(_handle, false, UIntPtr.Zero);
                }
                catch (ObjectDisposedException) { }
            }
        }

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
            ReceiveWaiter w;
            lock (_lock)
            {
                if (_disposed != 0) throw new ObjectDisposedException(nameof(WsConnection));
                if (_inbox.Count > 0)
                {
                    var ready = _inbox.Dequeue();
                    Ack();
                    return Task.FromResult(ready);
                }
                var close = _closeInfo;
                if (close != null) return Task.FromResult(new WsMessage(WsMessageType.Close, new byte[0], close));
                if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<WsMessage>(cancellationToken);
                w = new ReceiveWaiter { Tcs = NewTcs<WsMessage>(), Token = cancellationToken };
                w.Node = _receivers.AddLast(w);
                RootLocked();
                // A cancellation racing this runs CancelReceive inline: the lock is re-entrant.
                if (cancellationToken.CanBeCanceled)
                    w.Registration = cancellationToken.Register(s => CancelReceive((ReceiveWaiter)s), w);
            }
            return w.Tcs.Task;
        }

        /// <summary>Messages waiting for ReceiveAsync.</summary>
        public int QueuedMessages
        {
            get { lock (_lock) return _inbox.Count; }
        }

        // One message left the application's hands: it leaves the core's receive budget.
        private void Ack()
        {
            var h = _handle;
            if (h == null) return;
            try { wsn_conn_ack(h, (UIntPtr)1); }
            catch (ObjectDisposedException) { }
        }

        private void CancelReceive(ReceiveWaiter w)
        {
            lock (_lock)
            {
                if (w.Node.List == null) return; // already given a message
                _receivers.Remove(w.Node);
                UnrootLocked();
            }
            w.Tcs.TrySetCanceled(w.Token);
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
            lock (_lock) RootLocked(); // native code holds this object only weakly
            try { await _closedTcs.Task.ConfigureAwait(false); }
            finally { lock (_lock) UnrootLocked(); }
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
            foreach (var o in TakeWaitersLocked())
            {
                var w = o as ReceiveWaiter;
                if (w != null) { w.Tcs.TrySetException(disposed); w.Release(); }
                else ((TaskCompletionSource<bool>)o).TrySetException(disposed);
            }
            _openTcs?.TrySetException(disposed);
            _closedTcs.TrySetResult(true);
        }

        // Everything waiting on this connection (receivers, sends), taken under the lock.
        private List<object> TakeWaitersLocked()
        {
            var all = new List<object>();
            lock (_lock)
            {
                all.AddRange(_receivers);
                _receivers.Clear();
                foreach (var p in _pendingSends) all.Add(p.Tcs);
                _pendingSends.Clear();
                foreach (var b in _blocked) all.Add(b.Tcs);
                _blocked.Clear();
                _blockedCount = 0;
                UnrootAllLocked();
            }
            return all;
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
            _openTcs = NewTcs<bool>();
            var urlZ = Utf8.Z(url);
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            lock (_lock) RootLocked(); // until the open or close event
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
                lock (_lock) UnrootAllLocked();
                throw;
            }
        }

        internal Task OpenTask => _openTcs.Task;

        /// <summary>client-reach (issue 13): takes a ready connection of a native pool; false when none is ready.</summary>
        internal bool StartTake(IntPtr pool)
        {
            MonoExit.Ensure();
            _openTcs = NewTcs<bool>();
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            lock (_lock) RootLocked(); // until the open or close event
            IntPtr conn;
            int st = CertNative.wsn_pool_take(pool, Trampolines.ClientEvent, GCHandle.ToIntPtr(gch), out conn);
            if (st != Status.Ok)
            {
                gch.Free();
                lock (_lock) UnrootAllLocked();
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
            lock (_lock) RootLocked(); // until its close: nobody else may hold it yet
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
                case EventKind.Drain: OnDrain(e->SentId); break;
                case EventKind.Close: if (_response == null) _response = CertNative.ReadResponse(conn); OnClose(e); break;
            }
        }

        private void OnOpen(IntPtr conn)
        {
            _subProtocol = Utf8.FromPtr(wsn_conn_get_subprotocol(conn)) ?? "";
            _extensions = Utf8.FromPtr(wsn_conn_get_extensions(conn)) ?? "";
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
                lock (_lock) UnrootLocked();
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

            ReceiveWaiter w = null;
            lock (_lock)
            {
                if (_receivers.Count > 0)
                {
                    w = _receivers.First.Value;
                    _receivers.RemoveFirst();
                    UnrootLocked();
                }
                else _inbox.Enqueue(msg); // acknowledged when ReceiveAsync takes it
            }
            if (w != null)
            {
                Ack();
                w.Tcs.TrySetResult(msg);
                w.Release();
            }
        }

        private unsafe void OnClose(WsnEvent* e)
        {
            var info = new WsClosedEventArgs(e->CloseCode, Utf8.FromPtr(e->Reason), e->WasClean != 0,
                                             Utf8.FromPtr(e->Error), (WsError)e->ErrorStatus, e->HttpStatus);
            ulong sent = 0;
            try { if (_handle != null) sent = wsn_conn_get_sent_id(_handle); } catch (ObjectDisposedException) { }
            List<SendWaiter> sends;
            lock (_lock)
            {
                _closeInfo = info;
                sends = new List<SendWaiter>(_pendingSends);
                _pendingSends.Clear();
            }
            foreach (var p in sends)
            {
                if (p.Id <= sent || info.WasClean) p.Tcs.TrySetResult(true);
                else p.Tcs.TrySetException(info.ToException());
            }
            var closeMsg = new WsMessage(WsMessageType.Close, new byte[0], info);
            foreach (var o in TakeWaitersLocked()) // receivers, and messages that never found room
            {
                var w = o as ReceiveWaiter;
                if (w != null) { w.Tcs.TrySetResult(closeMsg); w.Release(); }
                else ((TaskCompletionSource<bool>)o).TrySetException(NotSent(info));
            }
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

        // ---------------------------------------------------------------- rooting

        private void RootLocked()
        {
            if (_roots++ == 0) lock (s_rooted) s_rooted.Add(this);
        }

        private void UnrootLocked()
        {
            if (_roots > 0 && --_roots == 0) lock (s_rooted) s_rooted.Remove(this);
        }

        private void UnrootAllLocked()
        {
            if (_roots == 0) return;
            _roots = 0;
            lock (s_rooted) s_rooted.Remove(this);
        }

        private static TaskCompletionSource<T> NewTcs<T>() =>
            new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);

        private sealed class ReceiveWaiter
        {
            public TaskCompletionSource<WsMessage> Tcs;
            public CancellationToken Token;
            public CancellationTokenRegistration Registration; // set under the lock
            public LinkedListNode<ReceiveWaiter> Node;

            /// <summary>Drops the cancellation registration once the wait is over (never under the lock: it may wait for CancelReceive).</summary>
            public void Release() => Registration.Dispose();
        }

        /// <summary>A SendAsync: waiting for a DRAIN to reach Id, or (with Data) for room in the send queue.</summary>
        private sealed class SendWaiter
        {
            public ulong Id;
            public ArraySegment<byte> Data;
            public uint Flags;
            public TaskCompletionSource<bool> Tcs;
        }
    }
}
