//! The connection task's inboxes: unbounded queues that cost nothing until used (a tokio
//! channel allocates a block of 32 slots per channel up front, about 2 KiB each, which is most
//! of an idle connection's memory), and give their memory back whenever drained (an idle
//! connection holds none: measured at 10,000 idle connections, keeping 4 slots of each inbox
//! cost 480 bytes per connection).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// Wakes a connection's task. A wake from inside that task's own turn (an inline callback
/// that sends or acknowledges) is only noted: the turn looks again before it ends (see
/// [`TaskWaker::take_woken_in_turn`]). Waking a running task through tokio would schedule it
/// once more after the turn and, on the multi-thread runtime, wake a second worker thread to
/// steal it: a futex and an eventfd write per echoed message.
pub(crate) struct TaskWaker {
    waker: AtomicWaker,
}

thread_local! {
    /// The task waker of the connection whose turn this thread is running (its address; 0:
    /// none), and whether it was woken during that turn.
    static IN_TURN: std::cell::Cell<(usize, bool)> = const { std::cell::Cell::new((0, false)) };
}

/// Marks the calling thread as running the turn of the task `waker` wakes, until dropped.
pub(crate) struct InTurn((usize, bool));

impl InTurn {
    pub(crate) fn enter(waker: &TaskWaker) -> InTurn {
        let me = waker as *const TaskWaker as usize;
        InTurn(
            IN_TURN
                .try_with(|t| t.replace((me, false)))
                .unwrap_or((0, false)),
        )
    }

    /// Whether the task was woken from inside this turn (and forgets it): the turn must then
    /// look at its inboxes again instead of returning `Pending`.
    pub(crate) fn take_woken(&self) -> bool {
        IN_TURN
            .try_with(|t| {
                let (who, woken) = t.get();
                t.set((who, false));
                woken
            })
            .unwrap_or(false)
    }
}

impl Drop for InTurn {
    fn drop(&mut self) {
        let _ = IN_TURN.try_with(|t| t.set(self.0));
    }
}

impl TaskWaker {
    pub(crate) fn new() -> Self {
        TaskWaker {
            waker: AtomicWaker::new(),
        }
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    pub(crate) fn wake(&self) {
        let me = self as *const TaskWaker as usize;
        let noted = IN_TURN
            .try_with(|t| {
                let (who, _) = t.get();
                if who == me {
                    t.set((me, true));
                }
                who == me
            })
            .unwrap_or(false);
        if !noted {
            self.waker.wake();
        }
    }
}

/// An inbox; the waker of the task that reads it is passed in (one per connection serves all
/// of the task's inboxes and the receive room: 24 bytes each saved on every connection).
pub(crate) struct Inbox<T> {
    /// How many items wait, and [`CLOSED`]; written under the lock, read without it: an empty
    /// inbox is seen without taking the lock (the connection task looks several times per
    /// turn). Beside the mutex it costs no room: a `closed` flag inside took the same bytes.
    state: AtomicU32,
    queue: Mutex<VecDeque<T>>,
}

/// `Inbox::state`: sends are refused.
const CLOSED: u32 = 1 << 31;

impl<T> Inbox<T> {
    pub(crate) fn new() -> Self {
        Inbox {
            state: AtomicU32::new(0),
            queue: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `v` and wakes the task; gives `v` back once the inbox is closed.
    pub(crate) fn send(&self, v: T, waker: &TaskWaker) -> Result<(), T> {
        let mut q = self.lock();
        if self.state.load(Ordering::Relaxed) & CLOSED != 0 {
            return Err(v);
        }
        q.push_back(v);
        self.state.store(q.len() as u32, Ordering::Release);
        drop(q);
        waker.wake();
        Ok(())
    }

    /// The next item, or `Pending` (the task is woken by the next `send`).
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>, waker: &TaskWaker) -> Poll<T> {
        if let Some(v) = self.try_recv() {
            return Poll::Ready(v);
        }
        waker.register(cx.waker());
        // Checked again: a send between the first look and the registration is not lost.
        match self.try_recv() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }

    /// The next item, if one waits.
    pub(crate) fn try_recv(&self) -> Option<T> {
        // A send that stores its count after this look wakes the task, which looks again.
        if self.state.load(Ordering::Acquire) & !CLOSED == 0 {
            return None;
        }
        let mut q = self.lock();
        let v = q.pop_front();
        let closed = self.state.load(Ordering::Relaxed) & CLOSED;
        self.state.store(closed | q.len() as u32, Ordering::Release);
        if q.is_empty() && q.capacity() > 0 {
            *q = VecDeque::new();
        }
        v
    }

    /// Refuses further sends and drops what waits.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut q = self.lock();
            self.state.store(CLOSED, Ordering::Release);
            std::mem::take(&mut *q)
        };
        drop(dropped);
    }
}
