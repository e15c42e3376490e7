//! The sending side of a connection: the queue gate, message ids, what is buffered where,
//! and drain events. Any thread sends; the connection task takes what was queued.

use super::{Command, Conn, Event, Note, State};
use crate::error::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A connection's send accounting, shared by the senders and the connection task.
pub(super) struct Outgoing {
    gate: Mutex<Gate>,
    /// Bytes of messages queued and not yet encoded plus encoded bytes not yet written, in
    /// one count: a sender reads both at once. (Two counts, read one after the other, could
    /// see a message in both while the connection task moved it from one to the other: under
    /// load a queue twice its real size, and a connection closed with 1008 that was not
    /// over its limit.)
    buffered: AtomicUsize,
    /// The encoded part of `buffered`, as the connection task last told it.
    unwritten: AtomicUsize,
    /// Bytes the socket took so far.
    wire_written: AtomicUsize,
    /// The id of the last message handed to the kernel.
    sent_id: AtomicU64,
    /// Drain events: the low-water mark (`usize::MAX`: off), and whether one is due (armed
    /// by a refused send, by the queue going over the mark, or by turning them on).
    drain_low: AtomicUsize,
    drain_armed: AtomicBool,
    /// The TCP socket's descriptor while the connection task owns it (-1 otherwise): lets the
    /// close watchdog see bytes that the kernel has not sent yet.
    socket_fd: AtomicI32,
    /// client-reach (issue 13), reconnecting clients: offline between connections, and the
    /// offline queue's bound and policy.
    offline: AtomicBool,
    offline_queue: std::sync::OnceLock<(usize, crate::options::OfflinePolicy)>,
}

impl Outgoing {
    pub(super) fn new(drain_low_water: Option<usize>) -> Outgoing {
        Outgoing {
            gate: Mutex::new(Gate {
                closed: false,
                why: "",
                last_id: 0,
            }),
            buffered: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
            wire_written: AtomicUsize::new(0),
            sent_id: AtomicU64::new(0),
            drain_low: AtomicUsize::new(drain_low_water.unwrap_or(usize::MAX)),
            drain_armed: AtomicBool::new(false),
            socket_fd: AtomicI32::new(-1),
            offline: AtomicBool::new(false),
            offline_queue: std::sync::OnceLock::new(),
        }
    }
}

/// The queue gate: closed once the connection stops accepting sends, so nothing is queued
/// behind the Close frame.
struct Gate {
    closed: bool,
    why: &'static str,
    /// The id of the last message queued: ids follow the queue's order.
    last_id: u64,
}

impl Conn {
    /// Bytes queued by `send` and not yet handed to the socket (the kernel), counted as the
    /// socket takes them, also in the middle of a large message (encoded bytes: frame headers
    /// included, compressed payloads as compressed).
    pub fn buffered_amount(&self) -> usize {
        self.outgoing.buffered.load(Ordering::Acquire)
    }

    /// Messages of `len` bytes in all left the queue without being encoded (dropped).
    pub(crate) fn unqueue(&self, len: usize) {
        self.outgoing.buffered.fetch_sub(len, Ordering::AcqRel);
    }

    /// The connection task holds `unwritten` encoded bytes not yet written, after taking
    /// messages of `taken` bytes in all from the queue: both in one step of the count.
    pub(crate) fn set_unwritten(&self, unwritten: usize, taken: usize) {
        let before = self.outgoing.unwritten.swap(unwritten, Ordering::AcqRel);
        let (up, down) = (unwritten, before + taken);
        if up >= down {
            self.outgoing
                .buffered
                .fetch_add(up - down, Ordering::AcqRel);
        } else {
            self.outgoing
                .buffered
                .fetch_sub(down - up, Ordering::AcqRel);
        }
    }

    /// The socket took `n` more bytes.
    pub(crate) fn add_wire_written(&self, n: usize) {
        self.outgoing.wire_written.fetch_add(n, Ordering::Release);
    }

    /// Bytes the socket took so far.
    pub(crate) fn progress(&self) -> usize {
        self.outgoing.wire_written.load(Ordering::Acquire)
    }

    /// Sets (or, with -1, forgets) the TCP descriptor under this connection.
    pub(crate) fn set_socket_fd(&self, fd: i32) {
        self.outgoing.socket_fd.store(fd, Ordering::Release);
    }

    /// Bytes the peer's side has taken: what the socket took, less what still waits unsent or
    /// unacknowledged in the kernel. The close watchdog's measure of whether data still moves.
    pub(crate) fn delivered(&self) -> usize {
        let fd = self.outgoing.socket_fd.load(Ordering::Acquire);
        let mut waiting: libc::c_int = 0;
        if fd < 0 || unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut waiting) } != 0 {
            waiting = 0;
        }
        self.progress().saturating_sub(waiting.max(0) as usize)
    }

    /// Queues a text message and returns its id. Safe from any thread; messages from one
    /// thread keep their order.
    pub fn send_text(&self, text: &str) -> Result<u64> {
        self.enqueue(true, crate::protocol::buffers::copy(text.as_bytes()), true)
    }

    /// Queues a binary message and returns its id. Safe from any thread; messages from one
    /// thread keep their order.
    pub fn send_binary(&self, data: &[u8]) -> Result<u64> {
        self.enqueue(false, crate::protocol::buffers::copy(data), true)
    }

    /// Queues a message; `compress` false keeps it uncompressed even when permessage-deflate
    /// was negotiated (secrets next to attacker-controlled text: CRIME/BREACH).
    pub fn send(&self, text: bool, data: Bytes, compress: bool) -> Result<u64> {
        if text && simdutf8::basic::from_utf8(&data).is_err() {
            let at = simdutf8::compat::from_utf8(&data).map_or_else(|e| e.valid_up_to(), |_| 0);
            return Err(Error::invalid(format!(
                "text message is not valid UTF-8 (at byte {at})"
            )));
        }
        self.enqueue(text, data, compress)
    }

    /// Queues a message whose payload is already owned, and returns its id.
    pub fn send_bytes(&self, text: bool, data: Bytes) -> Result<u64> {
        self.send(text, data, true)
    }

    /// Queues a message; its id is one more than the previous message's, in queue order.
    fn enqueue(&self, text: bool, data: Bytes, compress: bool) -> Result<u64> {
        let len = data.len();
        self.enqueue_with(len, move |id| Command::Send {
            text,
            data,
            len,
            id,
            compress,
        })
    }

    /// Queues the command `make` builds with its id, counting `len` bytes against the send
    /// queue's limit (its policy applies when it is full). Also for shared frames (`ops.rs`).
    pub(super) fn enqueue_with(
        &self,
        len: usize,
        make: impl FnOnce(u64) -> Command,
    ) -> Result<u64> {
        // Messages this call drops (the offline queue's oldest, or the one refused) are dropped
        // after the gate is unlocked: a lent message's release runs then (wsn_conn_send_nocopy),
        // and whatever it does cannot wait for this lock.
        let mut dropped = Vec::new();
        let mut gate = self.outgoing.gate.lock().unwrap_or_else(|p| p.into_inner());
        if gate.closed {
            return Err(Error::state(format!("cannot send: {}", gate.why)));
        }
        if self.outgoing.offline.load(Ordering::Acquire) {
            // client-reach (issue 13): the offline queue's bound and policy.
            if let Some(done) = self.offline_room(&mut gate, len, &mut dropped) {
                drop(gate);
                return done;
            }
        }
        let queued = self.buffered_amount();
        let limit = self.settings.max_send_queue;
        if queued > 0 && queued.saturating_add(len) > limit {
            let why = format!(
                "the send queue holds {queued} bytes; this message of {len} bytes would pass its limit of {limit} bytes"
            );
            self.outgoing.drain_armed.store(true, Ordering::Release);
            if self.settings.send_queue_policy == crate::options::SendQueuePolicy::Close {
                drop(gate);
                let error = Error::new(
                    ErrorKind::WouldBlock,
                    format!("closed with 1008: {why} (the peer reads too slowly)"),
                );
                self.close_gate("the connection failed: its send queue was full");
                self.notify(Note::Fail(1008, "send queue full", error));
                return Err(Error::new(
                    ErrorKind::WouldBlock,
                    format!("{why}: the connection is being closed with 1008"),
                ));
            }
            return Err(Error::new(
                ErrorKind::WouldBlock,
                format!("{why}: wait for the drain event and send again"),
            ));
        }
        self.outgoing.buffered.fetch_add(len, Ordering::AcqRel);
        let id = gate.last_id + 1;
        if let Err(refused) = self.commands.send(make(id), &self.task_waker) {
            self.outgoing.buffered.fetch_sub(len, Ordering::AcqRel);
            drop(gate);
            drop(refused);
            return Err(Error::state("cannot send: the connection is closed"));
        }
        gate.last_id = id;
        let low = self.outgoing.drain_low.load(Ordering::Acquire);
        if low != usize::MAX && self.buffered_amount() > low {
            self.outgoing.drain_armed.store(true, Ordering::Release);
        }
        Ok(id)
    }

    /// Turns drain events on (with a low-water mark) or off for this connection. Turning them
    /// on arms one: it comes once the queue is at or below the mark (at once when it already
    /// is and nothing is in flight).
    pub fn set_drain_events(self: &Arc<Self>, enabled: bool, low_water: usize) {
        if !enabled {
            self.outgoing.drain_low.store(usize::MAX, Ordering::Release);
            return;
        }
        self.outgoing
            .drain_low
            .store(low_water.min(usize::MAX - 1), Ordering::Release);
        self.outgoing.drain_armed.store(true, Ordering::Release);
        let last = self
            .outgoing
            .gate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_id;
        if self.buffered_amount() <= low_water
            && self.sent_id() >= last
            && self.state() != State::Closed
        {
            self.maybe_drain();
        }
    }

    /// Delivers a drain event when one is armed and the queue is down to the mark.
    fn maybe_drain(self: &Arc<Self>) {
        let low = self.outgoing.drain_low.load(Ordering::Acquire);
        if low != usize::MAX
            && self.buffered_amount() <= low
            && self.outgoing.drain_armed.swap(false, Ordering::AcqRel)
        {
            self.deliver(Event::Drain {
                sent_id: self.sent_id(),
            });
        }
    }

    /// The id of the last message handed to the kernel (0 before the first).
    pub fn sent_id(&self) -> u64 {
        self.outgoing.sent_id.load(Ordering::Acquire)
    }

    /// The writer flushed every message up to `id`: records it, and delivers a drain event
    /// when asked for and the queue is down to its low-water mark.
    pub(crate) fn sent(self: &Arc<Self>, id: u64) {
        if id == 0 {
            return;
        }
        self.outgoing.sent_id.fetch_max(id, Ordering::AcqRel);
        self.maybe_drain();
    }

    /// Closes the queue; true when this call closed it.
    pub(crate) fn close_gate(&self, why: &'static str) -> bool {
        let mut g = self.outgoing.gate.lock().unwrap_or_else(|p| p.into_inner());
        if g.closed {
            return false;
        }
        g.closed = true;
        g.why = why;
        true
    }
}

// --- client-reach (issue 13): reconnect ---

impl Conn {
    /// Makes room in the offline queue for `len` bytes: `Some` ends the send (refused, or the
    /// new message dropped), `None` lets it be queued.
    fn offline_room(
        &self,
        gate: &mut Gate,
        len: usize,
        dropped: &mut Vec<Command>,
    ) -> Option<Result<u64>> {
        let (max, policy) = *self.outgoing.offline_queue.get()?;
        use crate::options::OfflinePolicy as P;
        if self.buffered_amount().saturating_add(len) <= max {
            return None;
        }
        match policy {
            P::Refuse => Some(Err(Error::new(
                ErrorKind::WouldBlock,
                format!(
                    "offline (reconnecting) and the offline queue is full ({} of {max} bytes): nothing was queued",
                    self.buffered_amount()
                ),
            ))),
            P::DropNewest => {
                gate.last_id += 1;
                Some(Ok(gate.last_id))
            }
            P::DropOldest => {
                // Offline, no task takes from the queue: the oldest messages can go.
                while self.buffered_amount().saturating_add(len) > max {
                    match self.commands.try_recv() {
                        Some(c @ (Command::Send { len: l, .. } | Command::Frame { len: l, .. })) => {
                            self.unqueue(l);
                            dropped.push(c);
                        }
                        Some(Command::Close(..)) | None => break,
                    }
                }
                None
            }
        }
    }

    /// Sets the offline queue's bound and policy (once, at connect).
    pub(crate) fn set_offline_queue(&self, max: usize, policy: crate::options::OfflinePolicy) {
        let _ = self.outgoing.offline_queue.set((max, policy));
    }

    /// Between connections (true) or not.
    pub(crate) fn set_offline(&self, offline: bool) {
        self.outgoing.offline.store(offline, Ordering::Release);
    }

    /// Opens the send queue again after a connection ended, unless the application closed it
    /// meanwhile (true when reopened). Sends made now are queued for the next connection.
    pub(crate) fn reopen_gate(&self) -> bool {
        let mut g = self.outgoing.gate.lock().unwrap_or_else(|p| p.into_inner());
        if self.user_closed() {
            return false;
        }
        g.closed = false;
        g.why = "";
        self.set_unwritten(0, 0); // the ended connection's encoded bytes went with it
        true
    }

    /// Takes every queued command out of the send queue (the offline queue, held while the
    /// reconnect hook runs).
    pub(crate) fn take_queued(&self) -> std::collections::VecDeque<Command> {
        let mut out = std::collections::VecDeque::new();
        while let Some(c) = self.commands.try_recv() {
            out.push_back(c);
        }
        out
    }

    /// Puts `held` back behind what was queued since it was taken (the hook's messages go
    /// first, then the offline queue, then what comes later).
    pub(crate) fn requeue(&self, held: std::collections::VecDeque<Command>) {
        let newer = self.take_queued();
        for c in newer.into_iter().chain(held) {
            let _ = self.commands.send(c, &self.task_waker);
        }
    }
}
