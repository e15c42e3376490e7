//! Poll mode: events of many connections gathered in one queue that the application drains on
//! its own thread (select/epoll loops, game loops, asyncio), instead of callbacks.
//!
//! Events are pushed straight from the I/O threads (no callback thread in between). A queue
//! has a file descriptor that is readable while events wait. What a poll hands out stays alive
//! until the next poll of the same queue, which is also when its messages leave the receive
//! queue (backpressure) and when the peer's held Close may go (see `close_hold.rs`).

use super::{Conn, Event, Handler};
use crate::error::{Error, ErrorKind, Result};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a connection's events reach the application.
#[derive(Clone)]
pub enum Delivery {
    /// Callbacks on wsnative's callback threads.
    Callback(Arc<dyn Handler>),
    /// An event queue the application polls.
    Queue(QueueTarget),
}

/// A queue and what to tag its events with.
#[derive(Clone)]
pub struct QueueTarget {
    /// The queue.
    pub queue: Arc<EventQueue>,
    /// A value handed back with every event of the connection.
    pub user_data: usize,
    /// Server connections: the application takes its reference at the open event.
    pub server: bool,
    /// Kept alive until the connection's last event was queued (a server's count of
    /// undelivered closes).
    pub(crate) keep: Option<Arc<dyn Send + Sync>>,
}

impl From<Arc<dyn Handler>> for Delivery {
    fn from(h: Arc<dyn Handler>) -> Self {
        Delivery::Callback(h)
    }
}

/// One event taken from a queue.
pub struct Queued {
    /// The connection.
    pub conn: Arc<Conn>,
    /// The event.
    pub event: Event,
    /// The tag of the connection's queue target.
    pub user_data: usize,
    /// Whether it is a server connection.
    pub server: bool,
    /// Released when the event is dropped (the receive queue share of a message).
    pub(crate) _keep: Option<Box<dyn Send>>,
}

enum Entry {
    Event(Queued),
    /// Dropped (and so signalled) once the events before it were handed out and polled past.
    Marker(Box<dyn Send>),
}

struct Inner {
    entries: VecDeque<Entry>,
    /// What the last poll handed out: kept alive until the next poll.
    handed_out: Vec<Box<dyn Send>>,
    /// A marker waits in `handed_out`: the next poll must come soon and not wait.
    ack_due: bool,
    woken: bool,
    closed: bool,
    signalled: bool,
}

/// A queue of events from any number of connections.
pub struct EventQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    signal_r: UnixStream,
    signal_w: UnixStream,
}

fn relock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventQueue {
    /// A new, empty queue.
    pub fn new() -> Result<Arc<EventQueue>> {
        let (r, w) = UnixStream::pair().map_err(|e| Error::new(ErrorKind::Io, format!("cannot create the queue's descriptor: {e}")))?;
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

    fn push_entry(&self, e: Entry) {
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

    pub(crate) fn push(&self, q: Queued) {
        self.push_entry(Entry::Event(q));
    }

    /// Queues `keep`, dropped once the application polled past the events queued before it.
    pub(crate) fn push_marker(&self, keep: Box<dyn Send>) {
        self.push_entry(Entry::Marker(keep));
    }

    /// Takes up to `max` events, waiting up to `timeout` (`None`: without limit) for the first.
    /// Returns early, with what there is, after `wake`. Drops what the previous poll returned.
    pub fn poll(&self, max: usize, timeout: Option<Duration>) -> Vec<Queued> {
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
                    Some(Entry::Event(q)) if q.conn.mailbox.is_released() => g.handed_out.push(Box::new(q)),
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
            g = self.ready.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner()).0;
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
            (std::mem::take(&mut g.entries), std::mem::take(&mut g.handed_out))
        };
        self.ready.notify_all();
        drop(entries);
        drop(handed);
    }
}
