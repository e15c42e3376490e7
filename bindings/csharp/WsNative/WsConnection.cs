// A WebSocket connection, client or server side.
//
// Lifetime: native code reaches this object through a *weak* GCHandle, so a connection nobody
// references is collected and its SafeHandle frees the native handle (closing it with 1001).
// While something waits on it (ConnectAsync, ReceiveAsync, SendAsync, CloseAsync) it is rooted
// in a static set; a server keeps its connections until they close.
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
        private static readonly WsMessage s_disposedClose =
            new WsMessage(WsMessageType.Close, new byte[0], new WsClosedEventArgs(1001, "", false, "disposed", WsError.Aborted, 0));
        private static readonly TimerCallback s_pollSends = o => ((WsConnection)o).PollSends();

        private readonly object _lock = new object();
        private readonly WsServer _server;
        private readonly uint _closeTimeoutMs;
        private readonly ManualResetEventSlim _handleReady = new ManualResetEventSlim(false);
        private ConnHandle _handle;
        private int _disposed;
        private int _roots;

        private Action<WsConnection> _onOpen;
        private TaskCompletionSource<bool> _openTcs;
        private readonly TaskCompletionSource<bool> _closedTcs = NewTcs();
        private volatile WsClosedEventArgs _closeInfo;
        private string _subProtocol = "";
        private string _peerAddress = "";

        private readonly Queue<WsMessage> _inbox = new Queue<WsMessage>();
        private bool _readingPaused;
        private int _maxQueue = 1024;
        private readonly LinkedList<ReceiveWaiter> _receivers = new LinkedList<ReceiveWaiter>();

        // SendAsync: payload bytes whose send started (minus failed ones) and whose send was
        // accepted; native buffered amount = accepted - written, so written >= accepted - buffered.
        private long _sendStarted, _sendAccepted;
        private readonly List<PendingSend> _pendingSends = new List<PendingSend>();
        private Timer _sendTimer;

        internal WsConnection(WsServer server, uint closeTimeoutMs, Action<WsConnection> onOpen)
        {
            _server = server;
            _closeTimeoutMs = closeTimeoutMs;
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

        /// <summary>The peer's "ip:port".</summary>
        public string PeerAddress => _peerAddress;

        /// <summary>The close code once closed, else null.</summary>
        public int? CloseStatus => _closeInfo?.Code;
        public string CloseStatusDescription => _closeInfo?.Reason;

        /// <summary>How the connection ended, once it has.</summary>
        public WsClosedEventArgs CloseInfo => _closeInfo;

        // ---------------------------------------------------------------- sending

        /// <summary>Queues a text message and returns at once (thread-safe, never blocks on the network).</summary>
        public void Send(string text)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            var b = Utf8.Bytes(text);
            SendCore(b, 0, b.Length, true);
        }

        /// <summary>Queues a binary message and returns at once; the bytes are copied.</summary>
        public void Send(byte[] data)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            SendCore(data, 0, data.Length, false);
        }

        public void Send(ArraySegment<byte> data)
        {
            if (data.Array == null) throw new ArgumentNullException(nameof(data));
            SendCore(data.Array, data.Offset, data.Count, false);
        }

        /// <summary>Queues a text message; the task completes when it was written to the socket.</summary>
        public Task SendAsync(string text)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            var b = Utf8.Bytes(text);
            return Track(SendCore(b, 0, b.Length, true));
        }

        public Task SendAsync(byte[] data)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            return Track(SendCore(data, 0, data.Length, false));
        }

        public Task SendAsync(ArraySegment<byte> data)
        {
            if (data.Array == null) throw new ArgumentNullException(nameof(data));
            return Track(SendCore(data.Array, data.Offset, data.Count, false));
        }

        private unsafe long SendCore(byte[] buf, int offset, int count, bool text)
        {
            var h = Handle;
            Interlocked.Add(ref _sendStarted, count);
            int st;
            fixed (byte* p = buf)
            {
                st = text ? wsn_conn_send_text(h, p + offset, (UIntPtr)count)
                          : wsn_conn_send_binary(h, p + offset, (UIntPtr)count);
            }
            if (st != Status.Ok)
            {
                var e = Status.Error(st);
                Interlocked.Add(ref _sendStarted, -count);
                throw e;
            }
            Interlocked.Add(ref _sendAccepted, count);
            // Everything queued before this message had started before this point.
            return Volatile.Read(ref _sendStarted);
        }

        private long WrittenAtLeast()
        {
            var accepted = Volatile.Read(ref _sendAccepted);
            return accepted - BufferedAmount;
        }

        private Task Track(long target)
        {
            if (WrittenAtLeast() >= target) return Task.CompletedTask;
            var p = new PendingSend { Target = target, Tcs = NewTcs() };
            lock (_lock)
            {
                if (_closeInfo == null && _disposed == 0)
                {
                    _pendingSends.Add(p);
                    RootLocked();
                    if (_sendTimer == null) _sendTimer = new Timer(s_pollSends, this, 1, 1);
                    else if (_pendingSends.Count == 1) _sendTimer.Change(1, 1);
                    return p.Tcs.Task;
                }
            }
            FinishSend(p, _closeInfo);
            return p.Tcs.Task;
        }

        private void PollSends()
        {
            try
            {
                long written = WrittenAtLeast();
                lock (_lock)
                {
                    for (int i = _pendingSends.Count - 1; i >= 0; i--)
                    {
                        if (_pendingSends[i].Target > written) continue;
                        _pendingSends[i].Tcs.TrySetResult(true);
                        _pendingSends.RemoveAt(i);
                        UnrootLocked();
                    }
                    if (_pendingSends.Count == 0) _sendTimer?.Change(Timeout.Infinite, Timeout.Infinite);
                }
            }
            catch (Exception e) { Report.Swallowed("SendAsync poll", e); }
        }

        private void FinishSend(PendingSend p, WsClosedEventArgs close)
        {
            if (close == null) p.Tcs.TrySetException(new ObjectDisposedException(nameof(WsConnection)));
            else if (close.WasClean) p.Tcs.TrySetResult(true); // queued data goes out before the Close frame
            else p.Tcs.TrySetException(close.ToException());
        }

        // ---------------------------------------------------------------- receiving

        /// <summary>
        /// The next message (only messages that arrived while MessageReceived had no handler).
        /// After the close, returns a message of type Close. Cancelling stops this wait only:
        /// the connection stays open and no message is lost.
        /// </summary>
        public Task<WsMessage> ReceiveAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            WsMessage ready;
            ReceiveWaiter w;
            lock (_lock)
            {
                if (_disposed != 0) throw new ObjectDisposedException(nameof(WsConnection));
                if (_inbox.Count > 0)
                {
                    ready = _inbox.Dequeue();
                    if (_readingPaused && _inbox.Count <= _maxQueue / 2) SetReadingPausedLocked(false);
                    return Task.FromResult(ready);
                }
                var close = _closeInfo;
                if (close != null) return Task.FromResult(new WsMessage(WsMessageType.Close, new byte[0], close));
                if (cancellationToken.IsCancellationRequested)
                {
                    var t = new TaskCompletionSource<WsMessage>();
                    t.SetCanceled();
                    return t.Task;
                }
                w = new ReceiveWaiter { Tcs = NewTcs<WsMessage>(), Token = cancellationToken };
                w.Node = _receivers.AddLast(w);
                RootLocked();
            }
            if (cancellationToken.CanBeCanceled)
            {
                var reg = cancellationToken.Register(s => CancelReceive((ReceiveWaiter)s), w);
                bool done;
                lock (w)
                {
                    done = w.Done;
                    if (!done) w.Registration = reg;
                }
                if (done) reg.Dispose();
            }
            return w.Tcs.Task;
        }

        /// <summary>
        /// Most messages waiting for ReceiveAsync (default 1024): past it the connection stops
        /// reading, so TCP slows the peer down, and it reads again once half of them were taken.
        /// </summary>
        public int MaxQueue
        {
            get { lock (_lock) return _maxQueue; }
            set
            {
                if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), "MaxQueue must be at least 1");
                lock (_lock) _maxQueue = value;
            }
        }

        /// <summary>Messages waiting for ReceiveAsync.</summary>
        public int QueuedMessages
        {
            get { lock (_lock) return _inbox.Count; }
        }

        // Under _lock, so that pause and resume reach the library in the order they were decided.
        private void SetReadingPausedLocked(bool paused)
        {
            _readingPaused = paused;
            var h = _handle;
            if (h == null) return;
            try { wsn_conn_set_reading_paused(h, paused); }
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
        /// at the latest after the close timeout (then the connection is aborted). Never hangs.
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
            lock (_lock) RootLocked();
            try
            {
                var closed = _closedTcs.Task;
                // wsnative bounds the close itself; the managed bound is a second fence.
                if (await Task.WhenAny(closed, Task.Delay((int)Math.Min(int.MaxValue, _closeTimeoutMs + 2000L))).ConfigureAwait(false) != closed)
                {
                    Abort();
                    await Task.WhenAny(closed, Task.Delay(2000)).ConfigureAwait(false);
                }
            }
            finally
            {
                lock (_lock) UnrootLocked();
            }
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
        /// No handler starts after this returns. Safe to call twice and from inside any handler.
        /// </summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _handle?.Dispose(); // the native free runs on the thread pool: never blocks here
            List<ReceiveWaiter> receivers;
            List<PendingSend> sends;
            lock (_lock)
            {
                receivers = new List<ReceiveWaiter>(_receivers);
                _receivers.Clear();
                sends = new List<PendingSend>(_pendingSends);
                _pendingSends.Clear();
                _sendTimer?.Dispose();
                UnrootAllLocked();
            }
            foreach (var w in receivers)
            {
                w.Tcs.TrySetResult(s_disposedClose);
                w.Release();
            }
            foreach (var p in sends) FinishSend(p, _closeInfo);
            _openTcs?.TrySetException(new ObjectDisposedException(nameof(WsConnection)));
            _closedTcs.TrySetResult(true);
            _server?.Forget(this);
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

        internal bool IsDisposed => _disposed != 0;

        /// <summary>Client: starts wsn_connect; events may arrive before this returns.</summary>
        internal void StartConnect(string url, WsClientOptions options)
        {
            MonoExit.Ensure();
            _openTcs = NewTcs();
            var urlZ = Utf8.Z(url);
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            lock (_lock) RootLocked(); // until the open or close event
            try
            {
                IntPtr conn;
                int st;
                if (options != null)
                    using (var o = options.ToNative())
                        st = wsn_connect(urlZ, o, Trampolines.ClientEvent, GCHandle.ToIntPtr(gch), out conn);
                else
                    st = wsn_connect(urlZ, IntPtr.Zero, Trampolines.ClientEvent, GCHandle.ToIntPtr(gch), out conn);
                Status.Check(st);
                _handle = new ConnHandle(conn, GCHandle.ToIntPtr(gch));
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

        /// <summary>Server: called in the OPEN event, before any other event of this connection.</summary>
        internal void AttachServerHandle(IntPtr conn)
        {
            var gch = GCHandle.Alloc(this, GCHandleType.Weak);
            Status.Check(wsn_conn_set_user_data(conn, GCHandle.ToIntPtr(gch)));
            _handle = new ConnHandle(conn, GCHandle.ToIntPtr(gch));
            _handleReady.Set();
        }

        internal unsafe void OnNativeEvent(IntPtr conn, WsnEvent* e)
        {
            switch (e->Kind)
            {
                case EventKind.Open: OnOpen(conn); break;
                case EventKind.Message: OnMessage(e); break;
                case EventKind.Close: OnClose(e); break;
            }
        }

        private void OnOpen(IntPtr conn)
        {
            _handleReady.Wait(10000); // a client's OPEN can race wsn_connect's return by microseconds
            _subProtocol = Utf8.FromPtr(wsn_conn_get_subprotocol(conn)) ?? "";
            var h = _handle;
            if (h != null)
            {
                try { _peerAddress = Utf8.FromPtr(wsn_conn_get_peer_addr(h)) ?? ""; }
                catch (ObjectDisposedException) { }
            }
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
            var len = checked((int)e->Len.ToUInt64());
            var data = new byte[len];
            if (len > 0) Marshal.Copy(e->Data, data, 0, len); // borrowed until we return: copy now
            var msg = new WsMessage(e->IsText != 0 ? WsMessageType.Text : WsMessageType.Binary, data, null);
            if (_disposed != 0) return;

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
                else
                {
                    _inbox.Enqueue(msg);
                    if (!_readingPaused && _inbox.Count >= _maxQueue) SetReadingPausedLocked(true);
                }
            }
            if (w != null)
            {
                w.Tcs.TrySetResult(msg);
                w.Release();
            }
        }

        private unsafe void OnClose(WsnEvent* e)
        {
            var info = new WsClosedEventArgs(e->CloseCode, Utf8.FromPtr(e->Reason), e->WasClean != 0,
                                             Utf8.FromPtr(e->Error), (WsError)e->ErrorStatus, e->HttpStatus);
            List<ReceiveWaiter> receivers;
            List<PendingSend> sends;
            long written = 0;
            try { written = WrittenAtLeast(); } catch (ObjectDisposedException) { }
            lock (_lock)
            {
                _closeInfo = info;
                receivers = new List<ReceiveWaiter>(_receivers);
                _receivers.Clear();
                sends = new List<PendingSend>(_pendingSends);
                _pendingSends.Clear();
                _sendTimer?.Dispose();
                UnrootAllLocked();
            }
            var closeMsg = new WsMessage(WsMessageType.Close, new byte[0], info);
            foreach (var w in receivers)
            {
                w.Tcs.TrySetResult(closeMsg);
                w.Release();
            }
            foreach (var p in sends)
            {
                if (p.Target <= written) p.Tcs.TrySetResult(true);
                else FinishSend(p, info);
            }
            _openTcs?.TrySetException(info.ToException()); // a failed connect (no effect once open)
            _closedTcs.TrySetResult(true);
            _server?.Forget(this);

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

        private static TaskCompletionSource<bool> NewTcs() => NewTcs<bool>();

        private static TaskCompletionSource<T> NewTcs<T>() =>
            new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);

        private sealed class ReceiveWaiter
        {
            public TaskCompletionSource<WsMessage> Tcs;
            public CancellationToken Token;
            public CancellationTokenRegistration Registration;
            public LinkedListNode<ReceiveWaiter> Node;
            public bool Done;

            /// <summary>Drops the cancellation registration once the wait is over (never under the connection's lock).</summary>
            public void Release()
            {
                CancellationTokenRegistration reg;
                lock (this)
                {
                    Done = true;
                    reg = Registration;
                    Registration = default(CancellationTokenRegistration);
                }
                reg.Dispose();
            }
        }

        private sealed class PendingSend
        {
            public long Target;
            public TaskCompletionSource<bool> Tcs;
        }
    }
}
