//! Poll mode's queue: events of many connections gathered in one queue that the application
//! drains on its own thread (select/epoll loops, game loops, asyncio), instead of callbacks.
//!
//! Events are pushed straight from the I/O threads (no callback thread in between). A queue
//! has a file descriptor that is readable while events wait. What a poll hands out stays alive
//! until the next poll of the same queue, which is also when markers pushed behind it are
//! dropped: that is how a connection learns that the application handled its events (receive
//! budget, the peer's held Close).

use crate::error::{Error, ErrorKind, Result};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An item that may have become pointless while it waited (its connection was freed): such
/// items are not handed out.
pub trait Stale {
    /// Whether the item should be dropped instead of handed out.
    fn is_stale(&self) -> bool;
}

enum Entry<T> {
    Event(T),
    /// Dropped (and so signalled) once the events before it were handed out and polled past.
    Marker(Box<dyn Send>),
}

struct Inner<T> {
    entries: VecDeque<Entry<T>>,
    /// What the last poll handed out: kept alive until the next poll.
    handed_out: Vec<Box<dyn Send>>,
    /// A marker waits in `handed_out`: the next poll must come soon and not wait.
    ack_due: bool,
    woken: bool,
    closed: bool,
    signalled: bool,
}

/// A queue of events from any number of connections.
pub struct EventQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    signal_r: UnixStream,
    signal_w: UnixStream,
}

fn relock<T>(m: &Mutex<Inner<T>>) -> MutexGuard<'_, Inner<T>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Stale + Send + 'static> EventQueue<T> {
    /// A new, empty queue.
    pub fn new() -> Result<Arc<EventQueue<T>>> {
        let (r, w) = UnixStream::pair().map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot create the queue's descriptor: {e}"),
            )
        })?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        Ok(Arc::new(EventQueue {
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                handed_out: Vec::new(),
                ack_due: false,
                woken: false,
                closed: false,
                signalled: false,
            }),
            ready: Condvar::new(),
            signal_r: r,
            signal_w: w,
        }))
    }

    /// A descriptor that is readable while events (or a wake-up) wait.
    pub fn fd(&self) -> RawFd {
        self.signal_r.as_raw_fd()
    }

    fn push_entry(&self, e: Entry<T>) {
        let mut g = relock(&self.inner);
        if g.closed {
            return; // dropped outside: `e` goes out of scope after the guard
        }
        g.entries.push_back(e);
        if !g.signalled {
            g.signalled = true;
            let _ = (&self.signal_w).write(&[1]);
        }
        drop(g);
        self.ready.notify_one();
    }

    pub(crate) fn push(&self, q: T) {
        self.push_entry(Entry::Event(q));
    }

    /// Queues `keep`, dropped once the application polled past the events queued before it.
    pub(crate) fn push_marker(&self, keep: Box<dyn Send>) {
        self.push_entry(Entry::Marker(keep));
    }

    /// Takes up to `max` events, waiting up to `timeout` (`None`: without limit) for the first.
    /// Returns early, with what there is, after `wake`. Drops what the previous poll returned.
    pub fn poll(&self, max: usize, timeout: Option<Duration>) -> Vec<T> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut g = relock(&self.inner);
        let previous = std::mem::take(&mut g.handed_out);
        let acknowledging = std::mem::take(&mut g.ack_due);
        let mut out = Vec::new();
        loop {
            while out.len() < max {
                match g.entries.pop_front() {
                    None => break,
                    Some(Entry::Marker(m)) => {
                        g.handed_out.push(m);
                        g.ack_due = true;
                    }
                    // Events of a connection freed meanwhile are not handed out (G7).
                    Some(Entry::Event(q)) if q.is_stale() => g.handed_out.push(Box::new(q)),
                    Some(Entry::Event(q)) => out.push(q),
                }
            }
            if !out.is_empty() || g.woken || g.closed || g.ack_due || acknowledging || max == 0 {
                break;
            }
            let left = match end {
                Some(end) => end.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            g = self
                .ready
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.woken = false;
        if g.ack_due && !g.signalled {
            // Stay readable: the next poll acknowledges what this one handed out.
            g.signalled = true;
            let _ = (&self.signal_w).write(&[1]);
        }
        if g.entries.is_empty() && !g.ack_due && g.signalled {
            g.signalled = false;
            let mut sink = [0u8; 64];
            while matches!((&self.signal_r).read(&mut sink), Ok(n) if n > 0) {}
        }
        drop(g);
        drop(previous); // outside the lock: may end connections' waits
        out
    }

    /// Makes the current or next `poll` return at once. From any thread.
    pub fn wake(&self) {
        let mut g = relock(&self.inner);
        g.woken = true;
        if !g.signalled {
            g.signalled = true;
            let _ = (&self.signal_w).write(&[1]);
        }
        drop(g);
        self.ready.notify_all();
    }

    /// Drops what waits and refuses new events.
    pub fn close(&self) {
        let (entries, handed) = {
            let mut g = relock(&self.inner);
            g.closed = true;
            (
                std::mem::take(&mut g.entries),
                std::mem::take(&mut g.handed_out),
            )
        };
        self.ready.notify_all();
        drop(entries);
        drop(handed);
    }
}
