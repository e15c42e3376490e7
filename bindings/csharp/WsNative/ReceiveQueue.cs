// The messages a connection received while no MessageReceived handler took them, and the
// ReceiveAsync calls waiting for one. Each message leaves the core's receive budget (one
// wsn_conn_ack) when it leaves this queue; the flow control itself is the core's.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using WsNative.Native;

namespace WsNative
{
    internal sealed class ReceiveQueue
    {
        private readonly object _lock = new object();
        private readonly Queue<WsMessage> _messages = new Queue<WsMessage>();
        private readonly LinkedList<Waiter> _waiters = new LinkedList<Waiter>();
        private readonly Action _taken;
        private readonly Roots _roots;
        private WsMessage _end;      // the Close message, once the connection ended
        private Exception _failure;  // once the connection was disposed

        /// <param name="taken">Acknowledges one message to the core.</param>
        /// <param name="roots">The connection's roots: held while a ReceiveAsync waits.</param>
        internal ReceiveQueue(Action taken, Roots roots)
        {
            _taken = taken;
            _roots = roots;
        }

        internal int Count
        {
            get { lock (_lock) return _messages.Count; }
        }

        internal Task<WsMessage> TakeAsync(CancellationToken cancellationToken)
        {
            Waiter w;
            lock (_lock)
            {
                if (_failure != null) throw _failure;
                if (_messages.Count > 0)
                {
                    var ready = _messages.Dequeue();
                    _taken();
                    return Task.FromResult(ready);
                }
                if (_end != null) return Task.FromResult(_end);
                if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<WsMessage>(cancellationToken);
                w = new Waiter { Tcs = Tasks.New<WsMessage>(), Token = cancellationToken };
                w.Node = _waiters.AddLast(w);
                _roots.Add();
                // A cancellation racing this runs Cancel inline: the lock is re-entrant.
                if (cancellationToken.CanBeCanceled)
                    w.Registration = cancellationToken.Register(s => Cancel((Waiter)s), w);
            }
            return w.Tcs.Task;
        }

        /// <summary>A message arrived: the oldest waiter gets it, or it waits in the queue.</summary>
        internal void Add(WsMessage msg)
        {
            Waiter w = null;
            lock (_lock)
            {
                if (_failure != null) return;
                if (_waiters.Count > 0)
                {
                    w = _waiters.First.Value;
                    _waiters.RemoveFirst();
                    _roots.Remove();
                }
                else _messages.Enqueue(msg); // acknowledged when TakeAsync takes it
            }
            if (w == null) return;
            _taken();
            w.Tcs.TrySetResult(msg);
            w.Release();
        }

        /// <summary>The connection ended: waiters, and every later TakeAsync once the queue is empty, get <paramref name="closeMessage"/>.</summary>
        internal void End(WsMessage closeMessage)
        {
            foreach (var w in Finish(() => _end = closeMessage)) { w.Tcs.TrySetResult(closeMessage); w.Release(); }
        }

        /// <summary>The connection was disposed: waiters and later calls fail with <paramref name="failure"/>.</summary>
        internal void Fail(Exception failure)
        {
            foreach (var w in Finish(() => _failure = failure)) { w.Tcs.TrySetException(failure); w.Release(); }
        }

        private List<Waiter> Finish(Action set)
        {
            lock (_lock)
            {
                set();
                var all = new List<Waiter>(_waiters);
                foreach (var unused in all) _roots.Remove();
                _waiters.Clear();
                return all;
            }
        }

        private void Cancel(Waiter w)
        {
            lock (_lock)
            {
                if (w.Node.List == null) return; // already given a message
                _waiters.Remove(w.Node);
                _roots.Remove();
            }
            w.Tcs.TrySetCanceled(w.Token);
        }

        private sealed class Waiter
        {
            public TaskCompletionSource<WsMessage> Tcs;
            public CancellationToken Token;
            public CancellationTokenRegistration Registration; // set under the lock
            public LinkedListNode<Waiter> Node;

            /// <summary>Drops the cancellation registration once the wait is over (never under the lock: it may wait for Cancel).</summary>
            public void Release() => Registration.Dispose();
        }
    }

    internal static class Tasks
    {
        /// <summary>Continuations never run on the completing thread (a wsnative callback thread).</summary>
        internal static TaskCompletionSource<T> New<T>() =>
            new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
