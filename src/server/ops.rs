//! A server in operation (issue 15 §3): the tag index and close by tag, broadcast of a frame
//! built once, the staggered drain for deploys, and the server's counters. What a single
//! connection keeps (deadline, tags, its counters, ping round trips) is in
//! `connection/ops.rs`.

use super::{relock, Server, Shared};
use crate::connection::{check_close, Conn, SharedFrame, State, TagIndex};
use crate::delivery::in_callback;
use crate::error::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What the accept hook set up for a connection it accepts: a session deadline and tags.
#[derive(Debug, Default, Clone)]
pub(crate) struct SessionSetup {
    /// When the session ends, with the code and reason it is closed with.
    pub(crate) deadline: Option<(Instant, u16, String)>,
    pub(crate) tags: Vec<String>,
}

/// Shared between a request and its clones (the hook's copy): what the hook set up.
pub(crate) type SetupSlot = Arc<Mutex<SessionSetup>>;

/// The server's tag index and counters.
#[derive(Default)]
pub(crate) struct ServerOps {
    tags: Mutex<HashMap<String, HashMap<u64, Weak<Conn>>>>,
    pub(crate) handshakes: AtomicUsize,
    accepted: AtomicU64,
    refusals: Mutex<BTreeMap<u16, u64>>,
    closes: Mutex<BTreeMap<u16, u64>>,
}

impl TagIndex for ServerOps {
    fn tagged(&self, tag: &str, id: u64, conn: &Arc<Conn>, on: bool) {
        let mut tags = relock(&self.tags);
        if on {
            if conn.state() != State::Closed {
                tags.entry(tag.to_owned())
                    .or_default()
                    .insert(id, Arc::downgrade(conn));
            }
        } else if let Some(set) = tags.get_mut(tag) {
            set.remove(&id);
            if set.is_empty() {
                tags.remove(tag);
            }
        }
    }
}

impl ServerOps {
    /// A refusal with HTTP `status` was sent.
    pub(crate) fn refused(&self, status: u16) {
        *relock(&self.refusals).entry(status).or_default() += 1;
    }

    /// A connection completed its handshake.
    pub(crate) fn opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended: counted by its close code, taken out of the tag index.
    pub(crate) fn ended(&self, id: u64, conn: &Conn) {
        conn.end_deadline();
        let code = conn.close_info().map(|i| i.code).unwrap_or(1006);
        *relock(&self.closes).entry(code).or_default() += 1;
        let tags = conn.tags_snapshot();
        if tags.is_empty() {
            return;
        }
        let mut index = relock(&self.tags);
        for t in tags {
            if let Some(set) = index.get_mut(&t) {
                set.remove(&id);
                if set.is_empty() {
                    index.remove(&t);
                }
            }
        }
    }

    /// The live connections carrying `tag`, oldest first.
    fn with_tag(&self, tag: &str) -> Vec<Arc<Conn>> {
        let index = relock(&self.tags);
        let Some(set) = index.get(tag) else {
            return Vec::new();
        };
        let mut v: Vec<(u64, Arc<Conn>)> = set
            .iter()
            .filter_map(|(id, w)| w.upgrade().map(|c| (*id, c)))
            .filter(|(_, c)| c.state() != State::Closed)
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v.into_iter().map(|(_, c)| c).collect()
    }
}

tokio::task_local! {
    /// The counters of the server whose handshake runs in this task.
    pub(crate) static COUNTERS: Arc<ServerOps>;
}

/// Counts a refusal with HTTP `status` for the server whose handshake runs here.
pub(crate) fn count_refusal(status: u16) {
    let _ = COUNTERS.try_with(|ops| ops.refused(status));
}

/// Connections are counted as a guard while their handshake runs.
pub(crate) struct Handshaking(Arc<Shared>);

impl Handshaking {
    pub(crate) fn start(shared: &Arc<Shared>) -> Handshaking {
        shared.ops.handshakes.fetch_add(1, Ordering::Relaxed);
        Handshaking(shared.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.ops.handshakes.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a broadcast did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Connections whose send queue took the message.
    pub queued: usize,
    /// Connections whose send queue was full: the message was not queued (`Refuse`), or the
    /// connection is being closed with 1008 (`Close` policy).
    pub refused: usize,
    /// Connections that were closing or closed (nothing queued).
    pub not_open: usize,
}

/// What a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when the drain started.
    pub connections: usize,
    /// Of those, the ones whose closing handshake completed.
    pub closed_clean: usize,
    /// The ones still open at the end of the window, aborted then.
    pub aborted: usize,
    /// The ones that ended otherwise (the peer vanished, a close timeout).
    pub failed: usize,
}

/// The server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections open now (handshake complete, not yet ended).
    pub open_connections: usize,
    /// Handshakes in progress (TCP accepted, upgrade not yet decided).
    pub handshakes_in_progress: usize,
    /// Connections that completed their handshake since the server started.
    pub accepted_total: u64,
    /// Refusals, by HTTP status.
    pub refusals: BTreeMap<u16, u64>,
    /// Ended connections, by close code (as their close event said).
    pub closes: BTreeMap<u16, u64>,
}

impl ServerStats {
    /// Every refusal.
    pub fn refused_total(&self) -> u64 {
        self.refusals.values().sum()
    }

    /// Every ended connection.
    pub fn closed_total(&self) -> u64 {
        self.closes.values().sum()
    }
}

impl Server {
    /// The live connections carrying `tag`, oldest first.
    pub fn connections_with_tag(&self, tag: &str) -> Vec<Arc<Conn>> {
        self.shared.ops.with_tag(tag)
    }

    /// How many live connections carry `tag`.
    pub fn count_tag(&self, tag: &str) -> usize {
        self.shared.ops.with_tag(tag).len()
    }

    /// Closes every connection carrying `tag` (a log-out) with `code` and `reason`; returns
    /// how many were closed.
    pub fn close_tag(&self, tag: &str, code: u16, reason: &str) -> Result<usize> {
        check_close(code, reason)?;
        let conns = self.shared.ops.with_tag(tag);
        for c in &conns {
            let _ = c.close(code, reason);
        }
        Ok(conns.len())
    }

    /// Sends one message to every open connection (or to those carrying `tag`): the frame
    /// is built once (uncompressed) and each connection's queue holds a reference to it. Each
    /// connection's send limit and policy apply; no connection waits for another.
    pub fn broadcast(&self, tag: Option<&str>, text: bool, data: &[u8]) -> Result<BroadcastReport> {
        let frame = SharedFrame::new(text, data)?;
        let mut r = BroadcastReport::default();
        let mut one = |c: &Conn| match c.send_shared(&frame) {
            Ok(_) => r.queued += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => r.refused += 1,
            Err(_) => r.not_open += 1,
        };
        match tag {
            Some(t) => self.shared.ops.with_tag(t).iter().for_each(|c| one(c)),
            None => relock(&self.shared.conns).values().for_each(|c| one(c)),
        }
        Ok(r)
    }

    /// Drains the server for a deploy: stops accepting, then closes the open connections with
    /// `code` and `reason` (1001 going away, 1012 service restart, or an application code) at
    /// even intervals over the first three quarters of `window`, oldest first, so that their
    /// clients do not all reconnect at once; the last quarter lets the last closing
    /// handshakes finish. What is still open at the end of the window is aborted. Returns once
    /// every connection's close event was handled (see `stop`). Not from inside a callback:
    /// it waits for the whole window.
    pub fn drain(&self, window: Duration, code: u16, reason: &str) -> Result<DrainReport> {
        check_close(code, reason)?;
        if in_callback() {
            return Err(Error::state(
                "drain waits for its window: call it from a thread that is not running a wsnative callback",
            ));
        }
        let sh = &self.shared;
        sh.stopping.store(true, Ordering::SeqCst);
        sh.stop_accepting.notify_one();
        let mut conns: Vec<(u64, Arc<Conn>)> = relock(&sh.conns)
            .iter()
            .map(|(id, c)| (*id, c.clone()))
            .collect();
        conns.sort_by_key(|(id, _)| *id);
        let n = conns.len();
        let start = Instant::now();
        let end = start + window;
        let spread = window.mul_f64(0.75);
        for (i, (_, c)) in conns.iter().enumerate() {
            let at = start + spread.mul_f64(i as f64 / n.max(1) as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let _ = c.close(code, reason);
        }
        // Connections that completed their handshake while the drain began.
        for c in relock(&sh.conns).values() {
            let _ = c.close(code, reason);
        }
        let all_ended = sh.wait_ended(end);
        let mut aborted = HashSet::new();
        if !all_ended {
            for (id, c) in relock(&sh.conns).iter() {
                aborted.insert(*id);
                c.abort();
            }
            sh.wait_ended(Instant::now() + window.max(Duration::from_secs(1)));
        }
        let mut report = DrainReport {
            connections: n,
            ..Default::default()
        };
        for (id, c) in &conns {
            if aborted.contains(id) {
                report.aborted += 1;
            } else if c.close_info().is_some_and(|i| i.was_clean) {
                report.closed_clean += 1;
            } else {
                report.failed += 1;
            }
        }
        Ok(report)
    }

    /// The server's counters now.
    pub fn stats(&self) -> ServerStats {
        let ops = &self.shared.ops;
        ServerStats {
            open_connections: relock(&self.shared.conns).len(),
            handshakes_in_progress: ops.handshakes.load(Ordering::Relaxed),
            accepted_total: ops.accepted.load(Ordering::Relaxed),
            refusals: relock(&ops.refusals).clone(),
            closes: relock(&ops.closes).clone(),
        }
    }
}

/// Applies what the accept hook set up to the connection it accepted.
pub(crate) fn apply_setup(conn: &Arc<Conn>, id: u64, shared: &Arc<Shared>, setup: SessionSetup) {
    let index: Arc<dyn TagIndex> = shared.ops.clone();
    conn.set_tag_index(id, Arc::downgrade(&index));
    for t in &setup.tags {
        let _ = conn.add_tag(t);
    }
    if let Some((at, code, reason)) = setup.deadline {
        let after = at.saturating_duration_since(Instant::now());
        let _ = conn.set_deadline(Some(after), code, &reason);
    }
}

impl super::Request {
    /// From the accept hook: the session deadline of the connection, if accepted (see
    /// `Conn::set_deadline`; `None` clears it).
    pub fn set_deadline(&self, after: Option<Duration>, code: u16, reason: &str) -> Result<()> {
        if after.is_some() {
            check_close(code, reason)?;
        }
        relock(&self.setup).deadline = after.map(|a| (Instant::now() + a, code, reason.to_owned()));
        Ok(())
    }

    /// From the accept hook: a tag the connection will carry, if accepted.
    pub fn add_tag(&self, tag: &str) -> Result<()> {
        crate::connection::check_tag(tag)?;
        let mut s = relock(&self.setup);
        if !s.tags.iter().any(|t| t == tag) {
            if s.tags.len() >= crate::connection::MAX_TAGS {
                return Err(Error::invalid("a connection carries at most 64 tags"));
            }
            s.tags.push(tag.to_owned());
        }
        Ok(())
    }
}
