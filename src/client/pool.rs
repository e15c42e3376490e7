//! client-reach (issue 13): a pool of pre-connected clients. It keeps `size` upgraded
//! connections to one URL ready (reading paused, so nothing of the server's is read before an
//! owner takes them) and hands one out at once; each one taken, or lost while waiting, is
//! replaced in the background. A pooled connection is an ordinary `Conn` with its one task;
//! only its delivery changes when it is taken.

use super::connect;
use crate::connection::{Conn, Delivery, Event, Handler, State};
use crate::error::{Error, Result};
use crate::options::ClientOptions;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Connections kept ready for one URL.
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    opts: ClientOptions,
    size: usize,
    state: Mutex<Slots>,
    closed: AtomicBool,
}

#[derive(Default)]
struct Slots {
    /// Open and waiting for an owner.
    ready: VecDeque<Arc<Conn>>,
    /// Connecting for the pool.
    connecting: usize,
    /// Failed attempts in a row (the next one waits longer; reset by an open).
    failures: u32,
}

/// The pool's handler of a connection until it is taken.
struct Waiting(Weak<Inner>);

impl Handler for Waiting {
    fn on_event(&self, conn: &Arc<Conn>, event: &Event) {
        let Some(inner) = self.0.upgrade() else {
            // The pool is gone: nobody will take this one.
            if matches!(event, Event::Open) {
                conn.release();
            }
            return;
        };
        match event {
            Event::Open => {
                let mut s = inner.lock();
                s.connecting = s.connecting.saturating_sub(1);
                s.failures = 0;
                if inner.closed.load(Ordering::Acquire) {
                    drop(s);
                    conn.release();
                    return;
                }
                s.ready.push_back(conn.clone());
            }
            Event::Close(_) => {
                let mut s = inner.lock();
                let before = s.ready.len();
                s.ready.retain(|c| !Arc::ptr_eq(c, conn));
                if s.ready.len() == before {
                    // It never opened: a failed attempt.
                    s.connecting = s.connecting.saturating_sub(1);
                    s.failures = s.failures.saturating_add(1);
                }
                drop(s);
                conn.release();
                Inner::fill(&inner);
            }
            _ => {}
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts connects until ready + connecting reaches the size (after failures, one at a
    /// time and later: a pool must not hammer a server that is down).
    fn fill(inner: &Arc<Inner>) {
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let (n, delay) = {
            let mut s = inner.lock();
            let want = inner.size.saturating_sub(s.ready.len() + s.connecting);
            let n = if s.failures > 0 {
                want.min(1 - s.connecting.min(1))
            } else {
                want
            };
            s.connecting += n;
            let delay = (s.failures > 0)
                .then(|| std::time::Duration::from_millis(100u64 << s.failures.min(8)));
            (n, delay)
        };
        for _ in 0..n {
            let weak = Arc::downgrade(inner);
            let start = move || {
                let Some(inner) = weak.upgrade() else { return };
                let handler: Arc<dyn Handler> = Arc::new(Waiting(Arc::downgrade(&inner)));
                match connect(&inner.url, &inner.opts, Some(Delivery::Callback(handler))) {
                    Ok(c) => c.set_reading_paused(true),
                    Err(_) => {
                        let mut s = inner.lock();
                        s.connecting = s.connecting.saturating_sub(1);
                        s.failures = s.failures.saturating_add(1);
                    }
                }
            };
            match (delay, crate::runtime::handle()) {
                (Some(d), Ok(rt)) => {
                    rt.spawn(async move {
                        tokio::time::sleep(d).await;
                        start();
                    });
                }
                _ => start(),
            }
        }
    }
}

impl Pool {
    /// Starts a pool of `size` connections to `url` (checked now, as by `connect`).
    pub fn new(url: &str, opts: &ClientOptions, size: usize) -> Result<Pool> {
        if size == 0 {
            return Err(Error::invalid("a pool holds at least 1 connection"));
        }
        if opts.reconnect.is_some() {
            return Err(Error::invalid(
                "a pool's connections do not reconnect: take one and reconnect on your own, or use no pool",
            ));
        }
        opts.validate()?;
        super::parse_url(url)?;
        let inner = Arc::new(Inner {
            url: url.to_owned(),
            opts: opts.clone(),
            size,
            state: Mutex::new(Slots::default()),
            closed: AtomicBool::new(false),
        });
        Inner::fill(&inner);
        Ok(Pool { inner })
    }

    /// An open connection at once, now delivering to `delivery` (its first event an `Open`),
    /// or `None` when none is ready. The pool starts a replacement.
    pub fn take(&self, delivery: Option<Delivery>) -> Option<Arc<Conn>> {
        let conn = loop {
            let c = self.inner.lock().ready.pop_front()?;
            if c.state() == State::Open {
                break c;
            }
        };
        conn.adopt_delivery(delivery);
        conn.set_reading_paused(false);
        Inner::fill(&self.inner);
        Some(conn)
    }

    /// Connections ready now.
    pub fn ready(&self) -> usize {
        self.inner.lock().ready.len()
    }

    /// Closes the ready connections (1001) and stops replacing them.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let ready: Vec<_> = self.inner.lock().ready.drain(..).collect();
        for c in ready {
            c.release();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}
