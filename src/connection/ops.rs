//! What operations need of one connection (issue 15 §3): a session deadline, tags (indexed by
//! the connection's server), counters for the stats, the round-trip time of our pings, and
//! shared frames (a broadcast builds its frame once; each connection's queue holds a
//! reference).

use super::{check_close, Command, Conn, Note, State};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The most tags one connection may carry, and the longest tag (bytes).
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_LEN: usize = 256;

/// Where a server keeps its tag index; a connection tells it when its tags change.
pub(crate) trait TagIndex: Send + Sync {
    /// `conn` (its server-side `id`) now carries `tag` (`on`) or no longer does.
    fn tagged(&self, tag: &str, id: u64, conn: &Arc<Conn>, on: bool);
}

/// A connection's operations state (inside `Conn`).
pub(crate) struct ConnOps {
    created: Instant,
    bytes_read: AtomicU64,
    messages_in: AtomicU64,
    /// The last round-trip time of one of our pings, in microseconds (0: none yet), and how
    /// many were measured.
    last_rtt_us: AtomicU64,
    rtt_count: AtomicU64,
    next_ping: AtomicU64,
    tags: Mutex<Vec<String>>,
    /// The server's tag index and this connection's id there (server connections only).
    index: OnceLock<(u64, Weak<dyn TagIndex>)>,
    deadline: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Default for ConnOps {
    fn default() -> Self {
        ConnOps {
            created: Instant::now(),
            bytes_read: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            last_rtt_us: AtomicU64::new(0),
            rtt_count: AtomicU64::new(0),
            next_ping: AtomicU64::new(0),
            tags: Mutex::new(Vec::new()),
            index: OnceLock::new(),
            deadline: Mutex::new(None),
        }
    }
}

impl Drop for ConnOps {
    fn drop(&mut self) {
        if let Some(h) = self.deadline.get_mut().ok().and_then(|d| d.take()) {
            h.abort();
        }
    }
}

/// A connection's counters, as the stats report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Bytes the socket took (frames, headers included) and bytes read from it.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Messages handed to the kernel, and whole messages received.
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Bytes queued and not yet handed to the kernel (`buffered_amount`).
    pub queued_bytes: u64,
    /// The round-trip time of the last answered ping (heartbeat or `ping`), in
    /// microseconds; 0 before the first. `rtt_count` grows by one with each.
    pub last_rtt_us: u64,
    pub rtt_count: u64,
    /// Milliseconds since the connection was made (for a server: since its handshake).
    pub age_ms: u64,
}

/// A frame built once and shared by every connection it is queued on.
#[derive(Clone)]
pub struct SharedFrame {
    pub(crate) frame: Bytes,
    /// The length of the frame header (the payload follows).
    pub(crate) header: usize,
    pub(crate) text: bool,
}

impl SharedFrame {
    /// An unmasked, uncompressed, final frame (what a server sends), built once.
    pub fn new(text: bool, payload: &[u8]) -> Result<SharedFrame> {
        if text && std::str::from_utf8(payload).is_err() {
            return Err(Error::invalid("text message is not valid UTF-8"));
        }
        let (frame, header) = crate::protocol::encoder::shared_frame(text, payload);
        Ok(SharedFrame {
            frame,
            header,
            text,
        })
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Never empty (a frame has a header).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }
}

impl Conn {
    /// Queues a shared frame (a reference, not a copy) under the send limit and its policy;
    /// returns the message id.
    pub fn send_shared(&self, f: &SharedFrame) -> Result<u64> {
        let frame = f.clone();
        let len = frame.frame.len();
        self.enqueue_with(len, move |id| Command::Frame { frame, len, id })
    }

    /// Sends a Ping whose Pong gives the round-trip time (`stats().last_rtt_us`).
    pub fn ping(&self) -> Result<()> {
        if self.state() != State::Open {
            return Err(Error::state("cannot ping: the connection is not open"));
        }
        let n = self.ops.next_ping.fetch_add(1, Ordering::Relaxed) + 1;
        self.notify(Note::Ping(n.to_be_bytes()));
        Ok(())
    }

    /// The driver measured a round trip.
    pub(crate) fn record_rtt(&self, rtt: Duration) {
        let us = (rtt.as_micros() as u64).max(1);
        self.ops.last_rtt_us.store(us, Ordering::Relaxed);
        self.ops.rtt_count.fetch_add(1, Ordering::Release);
    }

    /// The driver read `n` bytes from the socket.
    pub(crate) fn add_read(&self, n: usize) {
        self.ops.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes read from the socket so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.ops.bytes_read.load(Ordering::Relaxed)
    }

    /// A whole message was received.
    pub(crate) fn count_message_in(&self) {
        self.ops.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection's counters now.
    pub fn stats(&self) -> ConnStats {
        ConnStats {
            bytes_sent: self.progress() as u64,
            bytes_received: self.ops.bytes_read.load(Ordering::Relaxed),
            messages_sent: self.sent_id(),
            messages_received: self.ops.messages_in.load(Ordering::Relaxed),
            queued_bytes: self.buffered_amount() as u64,
            last_rtt_us: self.ops.last_rtt_us.load(Ordering::Relaxed),
            rtt_count: self.ops.rtt_count.load(Ordering::Acquire),
            age_ms: self.ops.created.elapsed().as_millis() as u64,
        }
    }

    /// Sets the session deadline: once `after` has passed the connection is closed with
    /// `code` and `reason` (for example 4401 "session expired"). Setting again replaces it;
    /// `None` clears it. A connection that has ended ignores it.
    pub fn set_deadline(
        self: &Arc<Self>,
        after: Option<Duration>,
        code: u16,
        reason: &str,
    ) -> Result<()> {
        if after.is_some() {
            check_close(code, reason)?;
        }
        let mut slot = self.ops.deadline.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            old.abort();
        }
        let Some(after) = after else { return Ok(()) };
        if self.state() == State::Closed {
            return Ok(());
        }
        let rt = crate::runtime::handle()?;
        let me = Arc::downgrade(self);
        let reason = reason.to_owned();
        let task = rt.spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(c) = me.upgrade() {
                let _ = c.close(code, &reason);
            }
        });
        *slot = Some(task.abort_handle());
        Ok(())
    }

    /// Stops the deadline's timer (the connection ended).
    pub(crate) fn end_deadline(&self) {
        let h = self
            .ops
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = h {
            h.abort();
        }
    }

    /// Links a server connection to its server's tag index.
    pub(crate) fn set_tag_index(&self, id: u64, index: Weak<dyn TagIndex>) {
        let _ = self.ops.index.set((id, index));
    }

    /// Adds a tag (a user id, a session id, a room: 1-256 bytes, at most 64 per connection);
    /// false when the connection already carried it.
    pub fn add_tag(self: &Arc<Self>, tag: &str) -> Result<bool> {
        check_tag(tag)?;
        let mut tags = self.ops.tags.lock().unwrap_or_else(|p| p.into_inner());
        if tags.iter().any(|t| t == tag) {
            return Ok(false);
        }
        if tags.len() >= MAX_TAGS {
            return Err(Error::invalid(format!(
                "a connection carries at most {MAX_TAGS} tags"
            )));
        }
        tags.push(tag.to_owned());
        if let Some((id, index)) = self.ops.index.get() {
            if let Some(index) = index.upgrade() {
                index.tagged(tag, *id, self, true);
            }
        }
        Ok(true)
    }

    /// Removes a tag; false when the connection did not carry it.
    pub fn remove_tag(self: &Arc<Self>, tag: &str) -> bool {
        let mut tags = self.ops.tags.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = tags.iter().position(|t| t == tag) else {
            return false;
        };
        tags.remove(i);
        if let Some((id, index)) = self.ops.index.get() {
            if let Some(index) = index.upgrade() {
                index.tagged(tag, *id, self, false);
            }
        }
        true
    }

    /// Whether the connection carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags_snapshot().iter().any(|t| t == tag)
    }

    /// The connection's tags, in the order they were added.
    pub fn tags_snapshot(&self) -> Vec<String> {
        self.ops
            .tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A tag: 1-256 bytes.
pub fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(Error::invalid(format!(
            "a tag is 1 to {MAX_TAG_LEN} bytes (this one is {})",
            tag.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ConnectionSettings;

    /// A broadcast's frame is built once: every queue holds the same bytes, not a copy.
    #[test]
    fn a_shared_frame_is_queued_by_reference_in_every_connection() {
        let settings = Arc::new(ConnectionSettings::default());
        let conns: Vec<Arc<Conn>> = (0..3).map(|_| Conn::new(settings.clone(), None)).collect();
        let frame = SharedFrame::new(true, &[b'x'; 10_000]).unwrap();
        for c in &conns {
            assert_eq!(c.send_shared(&frame).unwrap(), 1);
            assert_eq!(c.buffered_amount(), frame.len());
        }
        for c in &conns {
            match c.commands.try_recv() {
                Some(Command::Frame { frame: f, len, id }) => {
                    assert_eq!((len, id), (frame.len(), 1));
                    assert_eq!(f.frame.as_ptr(), frame.frame.as_ptr(), "the same bytes");
                }
                _ => panic!("a frame command"),
            }
        }
        assert!(
            SharedFrame::new(true, &[0xff]).is_err(),
            "text is checked once"
        );
    }
}
