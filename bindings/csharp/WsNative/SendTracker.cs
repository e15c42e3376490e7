// SendAsync's bookkeeping over the core's send completion: the core numbers every message
// (wsn_conn_send's id) and reports, in DRAIN events, the id of the last one handed to the
// kernel; a SendAsync completes when that reaches its id. A message the full send queue refused
// (WOULD_BLOCK) waits here, in order, for the DRAIN that says there is room. Drain events are on
// only while something waits (they cost a callback each).
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using WsNative.Native;
using static WsNative.Native.NativeMethods;

namespace WsNative
{
    internal sealed class SendTracker
    {
        private readonly object _lock = new object();
        private readonly Roots _roots;
        private readonly List<Waiter> _pending = new List<Waiter>(); // queued, waiting for the kernel
        private readonly Queue<Waiter> _blocked = new Queue<Waiter>(); // waiting for room, in order
        private volatile int _blockedCount;
        private volatile bool _ended;
        private WsClosedEventArgs _close; // null after Fail (disposed)

        /// <param name="roots">The connection's roots: held while a SendAsync waits.</param>
        internal SendTracker(Roots roots) { _roots = roots; }

        /// <summary>Send: queued at once, or an exception (messages waiting for room go first).</summary>
        internal void Send(ConnHandle h, ArraySegment<byte> data, uint flags)
        {
            ulong id;
            if (_blockedCount != 0) // a Send may not overtake messages waiting for room
                throw new WsException(WsError.WouldBlock, "earlier messages are waiting for room in the send queue", 0);
            Status.Check(NativeSend(h, data, flags, out id));
        }

        /// <summary>SendAsync: completes once the message was handed to the kernel.</summary>
        internal Task SendAsync(ConnHandle h, ArraySegment<byte> data, uint flags)
        {
            ulong id;
            if (_blockedCount == 0)
            {
                int st = NativeSend(h, data, flags, out id);
                if (st == Status.Ok) return Track(h, id);
                if (st != Status.WouldBlock) throw Status.Error(st);
            }
            var copy = new byte[data.Count];
            Buffer.BlockCopy(data.Array, data.Offset, copy, 0, data.Count);
            var b = new Waiter { Data = new ArraySegment<byte>(copy), Flags = flags, Tcs = Tasks.New<bool>() };
            lock (_lock)
            {
                if (_ended) return Task.FromException(NotSent(_close));
                _blocked.Enqueue(b);
                _blockedCount = _blocked.Count;
                _roots.Add();
                PumpBlockedLocked(h); // the DRAIN it waits for may have come already
            }
            return b.Tcs.Task;
        }

        private static unsafe int NativeSend(ConnHandle h, ArraySegment<byte> data, uint flags, out ulong id)
        {
            if (data.Array == null) throw new ArgumentNullException(nameof(data));
            fixed (byte* p = data.Array) return wsn_conn_send(h, p + data.Offset, (UIntPtr)data.Count, flags, out id);
        }

        private Task Track(ConnHandle h, ulong id)
        {
            if (wsn_conn_get_sent_id(h) >= id) return Task.CompletedTask;
            var p = new Waiter { Id = id, Tcs = Tasks.New<bool>() };
            lock (_lock)
            {
                // A DRAIN that reached `id` before this registration changed the sent id first.
                if (wsn_conn_get_sent_id(h) >= id) return Task.CompletedTask;
                if (_ended) return Closing(_close);
                _pending.Add(p);
                _roots.Add();
                ArmDrain(h);
            }
            return p.Tcs.Task;
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
                _roots.Remove();
                if (st != Status.Ok) b.Tcs.TrySetException(Status.Error(st));
                else if (wsn_conn_get_sent_id(h) >= b.Id) b.Tcs.TrySetResult(true);
                else
                {
                    _pending.Add(b);
                    _roots.Add();
                    ArmDrain(h);
                }
            }
        }

        // Turning drain events on arms one, which comes once everything queued was handed to the
        // kernel (at once when that is so already).
        private static void ArmDrain(ConnHandle h)
        {
            try { wsn_conn_set_drain_events(h, true, UIntPtr.Zero); }
            catch (ObjectDisposedException) { }
        }

        /// <summary>DRAIN: every message up to sentId was handed to the kernel, and there is room again.</summary>
        internal void OnDrain(ConnHandle h, ulong sentId)
        {
            // Nothing waits (the usual case without SendAsync): a registration racing this DRAIN
            // checks the sent id itself after registering (Track, SendAsync).
            Thread.MemoryBarrier();
            if (_pending.Count == 0 && _blockedCount == 0) return;
            lock (_lock)
            {
                for (int i = _pending.Count - 1; i >= 0; i--)
                {
                    if (_pending[i].Id > sentId) continue;
                    _pending[i].Tcs.TrySetResult(true);
                    _pending[i] = _pending[_pending.Count - 1];
                    _pending.RemoveAt(_pending.Count - 1);
                    _roots.Remove();
                }
                if (_blocked.Count > 0) PumpBlockedLocked(h);
                // Still waiting: the next drain is armed; nothing waits: drain events off.
                try
                {
                    if (_pending.Count > 0 || _blocked.Count > 0) ArmDrain(h);
                    else wsn_conn_set_drain_events(h, false, UIntPtr.Zero);
                }
                catch (ObjectDisposedException) { }
            }
        }

        /// <summary>
        /// The connection ended. A queued message completes when it reached the kernel (`sent`)
        /// or the close was clean (queued data goes out before the Close frame), else fails;
        /// a message that never found room fails.
        /// </summary>
        internal void End(WsClosedEventArgs info, ulong sent)
        {
            List<Waiter> pending, blocked;
            lock (_lock)
            {
                _close = info;
                _ended = true;
                pending = Take(out blocked);
            }
            foreach (var p in pending)
            {
                if (p.Id <= sent || info.WasClean) p.Tcs.TrySetResult(true);
                else p.Tcs.TrySetException(info.ToException());
            }
            foreach (var b in blocked) b.Tcs.TrySetException(NotSent(info));
        }

        /// <summary>The connection was disposed: everything waiting fails with <paramref name="failure"/>.</summary>
        internal void Fail(Exception failure)
        {
            List<Waiter> pending, blocked;
            lock (_lock)
            {
                _ended = true;
                pending = Take(out blocked);
            }
            foreach (var p in pending) p.Tcs.TrySetException(failure);
            foreach (var b in blocked) b.Tcs.TrySetException(failure);
        }

        private List<Waiter> Take(out List<Waiter> blocked)
        {
            var pending = new List<Waiter>(_pending);
            blocked = new List<Waiter>(_blocked);
            for (int i = 0; i < pending.Count + blocked.Count; i++) _roots.Remove();
            _pending.Clear();
            _blocked.Clear();
            _blockedCount = 0;
            return pending;
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

        /// <summary>A SendAsync: waiting for a DRAIN to reach Id, or (with Data) for room in the send queue.</summary>
        private sealed class Waiter
        {
            public ulong Id;
            public ArraySegment<byte> Data;
            public uint Flags;
            public TaskCompletionSource<bool> Tcs;
        }
    }
}
