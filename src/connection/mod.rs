//! A WebSocket connection: the handle every other part talks to. The connection task
//! (`driver.rs`) owns the socket; this side holds the send queue, the state, the receive
//! budget and the event mailbox.

mod delivery;
mod driver;
mod inbox;

pub use delivery::{Delivery, EventQueue, QueueTarget, Queued};
pub(crate) use driver::{run, session, Wire};

use crate::delivery::Mailbox;
use crate::error::{Error, ErrorKind, Result};
use crate::options::ConnectionSettings;
use bytes::Bytes;
use std::collections::VecDeque;
use std::ffi::CString;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Resolving, connecting, handshaking.
    Connecting = 0,
    /// Messages flow both ways.
    Open = 1,
    /// A Close frame was sent or received; waiting for the other.
    Closing = 2,
    /// Finished; the close event was (or is being) delivered.
    Closed = 3,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the one both sides agreed on, 1005 when the Close frame had none, 1006
    /// when there was no closing handshake, or the code this side failed the connection with.
    pub code: u16,
    /// The close reason (may be empty).
    pub reason: String,
    /// Both Close frames were exchanged.
    pub was_clean: bool,
    /// What went wrong, when something did.
    pub error: Option<Error>,
}

/// What happened on a connection, delivered in order: `Open`, `Message`s, then one `Close`.
#[derive(Debug, Clone)]
pub enum Event {
    /// The handshake completed.
    Open,
    /// A whole message (text is valid UTF-8).
    Message {
        /// Text (true) or binary.
        text: bool,
        /// The payload.
        data: Bytes,
    },
    /// The connection ended; always the last event.
    Close(CloseInfo),
    /// Messages were written and the send queue is down to its low-water mark (only with
    /// `drain_low_water` set): awaited sends up to `sent_id` are done.
    Drain {
        /// The id of the last message handed to the kernel.
        sent_id: u64,
    },
    /// client-reach (issue 13), reconnecting clients only: the connection dropped (or an
    /// attempt failed) and attempt `attempt` starts after `delay`. `error` and `code`: why
    /// the last connection or attempt ended. An `Open` follows when an attempt succeeds.
    Reconnecting {
        /// The attempt about to start, from 1 after each drop.
        attempt: u32,
        /// How long it waits first (full jitter).
        delay: Duration,
        /// The close code of the connection that dropped (1006 for a failed attempt).
        code: u16,
        /// What ended the last connection or attempt.
        error: Option<Error>,
    },
    /// client-reach (issue 13): reconnecting stopped (the budget is spent, or a stop code or
    /// HTTP status came); the `Close` follows.
    ReconnectGaveUp {
        /// Attempts made since the last drop.
        attempts: u32,
        /// Why it stopped.
        error: Error,
    },
}

/// Receives a connection's events on a callback thread, one at a time.
pub trait Handler: Send + Sync + 'static {
    /// Called for each event. May call any method of any connection, including `release`.
    fn on_event(&self, conn: &Arc<Conn>, event: &Event);
}

/// What the send queue carries to the connection task, in order.
pub(crate) enum Command {
    /// A message with its id; `compress`: may be compressed (permessage-deflate).
    Send {
        text: bool,
        data: Bytes,
        len: usize,
        id: u64,
        compress: bool,
    },
    /// Our Close frame, after everything queued before it.
    Close(u16, String),
}

/// What the other parts tell the connection task, ahead of the send queue.
pub(crate) enum Note {
    /// The application called `close` (the Close command follows the queued messages).
    CloseRequested(Instant),
    /// The application called `abort`.
    Abort,
    /// The callbacks queued before a marker have run (or were dropped).
    Delivered,
    /// This side fails the connection with a code (a full send queue under the close policy).
    Fail(u16, &'static str, Error),
}

/// The queue gate: closed once the connection stops accepting sends, so nothing is queued
/// behind the Close frame.
struct Gate {
    closed: bool,
    why: &'static str,
    /// The id of the last message queued: ids follow the queue's order.
    last_id: u64,
}

/// A WebSocket connection, client or server side. Shared by the application's handle, the
/// actor and queued events; the socket itself lives only in the actor.
pub struct Conn {
    state: AtomicU8,
    gate: Mutex<Gate>,
    /// The send queue and the notes for the connection task (see `inbox.rs`).
    pub(crate) commands: inbox::Inbox<Command>,
    pub(crate) notes: inbox::Inbox<Note>,
    /// Bytes of messages queued and not yet encoded, and encoded bytes not yet written.
    buffered: AtomicUsize,
    unwritten: AtomicUsize,
    /// Bytes the socket took so far.
    wire_written: AtomicUsize,
    /// Bytes and count of received messages not consumed yet (see `max_receive_queue`).
    receive_queue: AtomicUsize,
    receive_messages: AtomicUsize,
    /// With `manual_ack`: consumed messages waiting for their acknowledgement, and
    /// acknowledgements given ahead of them.
    acks: Mutex<Acks>,
    /// The id of the last message handed to the kernel.
    sent_id: std::sync::atomic::AtomicU64,
    /// Drain events: the low-water mark (`usize::MAX`: off), and whether one is due (armed
    /// by a refused send, by the queue going over the mark, or by turning them on).
    drain_low: AtomicUsize,
    drain_armed: AtomicBool,
    /// The application paused reading (flow control of its own).
    reading_paused: std::sync::atomic::AtomicBool,
    /// Wakes the connection task when receive room frees up (or reading resumes, or a close).
    pub(crate) room_waker: futures_util::task::AtomicWaker,
    /// Shared by every connection of a server (or of one connect call).
    pub(crate) settings: Arc<ConnectionSettings>,
    pub(crate) mailbox: Arc<Mailbox>,
    delivery: Mutex<Option<Delivery>>,
    peer_addr: OnceLock<(SocketAddr, CString)>,
    subprotocol: OnceLock<CString>,
    extensions: OnceLock<CString>,
    close_info: OnceLock<CloseInfo>,
    user_data: AtomicUsize,
    /// The application freed its handle (a second free while the handle is still alive, for
    /// example later in the same poll batch, does nothing).
    app_freed: AtomicBool,
    /// The reader waits for receive room (paused or over its budget): while it does, a
    /// missing Pong proves nothing.
    read_waiting: AtomicBool,
    /// The TCP socket's descriptor while the actor owns it (-1 otherwise): lets the close
    /// watchdog see bytes that the kernel has not sent yet.
    socket_fd: std::sync::atomic::AtomicI32,
    /// client-reach (issue 13): the server's answer to the upgrade (101, or a refusal).
    response: OnceLock<HandshakeResponse>,
    /// client-reach (issue 13), reconnecting clients: offline between connections, the
    /// offline queue's bound and policy, and whether the application closed or aborted.
    offline: AtomicBool,
    offline_queue: OnceLock<(usize, crate::options::OfflinePolicy)>,
    user_closed: AtomicBool,
}

static LIVE: Mutex<Vec<Weak<Conn>>> = Mutex::new(Vec::new());

impl Conn {
    pub(crate) fn new(settings: Arc<ConnectionSettings>, delivery: Option<Delivery>) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            state: AtomicU8::new(State::Connecting as u8),
            gate: Mutex::new(Gate {
                closed: false,
                why: "",
                last_id: 0,
            }),
            commands: inbox::Inbox::new(),
            notes: inbox::Inbox::new(),
            buffered: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
            wire_written: AtomicUsize::new(0),
            receive_queue: AtomicUsize::new(0),
            receive_messages: AtomicUsize::new(0),
            acks: Mutex::new(Acks::default()),
            sent_id: std::sync::atomic::AtomicU64::new(0),
            drain_low: AtomicUsize::new(settings.drain_low_water.unwrap_or(usize::MAX)),
            drain_armed: AtomicBool::new(false),
            reading_paused: std::sync::atomic::AtomicBool::new(false),
            room_waker: futures_util::task::AtomicWaker::new(),
            settings,
            mailbox: Arc::new(Mailbox::default()),
            delivery: Mutex::new(delivery),
            peer_addr: OnceLock::new(),
            subprotocol: OnceLock::new(),
            extensions: OnceLock::new(),
            close_info: OnceLock::new(),
            user_data: AtomicUsize::new(0),
            app_freed: AtomicBool::new(false),
            read_waiting: AtomicBool::new(false),
            socket_fd: std::sync::atomic::AtomicI32::new(-1),
            response: OnceLock::new(),
            offline: AtomicBool::new(false),
            offline_queue: OnceLock::new(),
            user_closed: AtomicBool::new(false),
        });
        crate::runtime::on_fork(&LIVE_FORK);
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= 64 && live.len().is_power_of_two() {
            live.retain(|w| w.strong_count() > 0);
        }
        live.push(Arc::downgrade(&conn));
        conn
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Connecting,
            1 => State::Open,
            2 => State::Closing,
            _ => State::Closed,
        }
    }

    pub(crate) fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
        if s as u8 >= State::Closing as u8 {
            // Closing overrides a pause: the peer's Close must be read.
            self.room_waker.wake();
        }
    }

    /// Whether the reader is waiting for receive room (paused, or over its budget).
    pub(crate) fn read_waiting(&self) -> bool {
        self.read_waiting.load(Ordering::Acquire)
    }

    /// Bytes queued by `send` and not yet handed to the socket (the kernel), counted as the
    /// socket takes them, also in the middle of a large message (encoded bytes: frame headers
    /// included, compressed payloads as compressed).
    pub fn buffered_amount(&self) -> usize {
        self.buffered.load(Ordering::Acquire) + self.unwritten.load(Ordering::Acquire)
    }

    /// The connection task took a message of `len` bytes from the queue.
    pub(crate) fn unqueue(&self, len: usize) {
        self.buffered.fetch_sub(len, Ordering::AcqRel);
    }

    /// The connection task holds `n` encoded bytes not yet written.
    pub(crate) fn set_unwritten(&self, n: usize) {
        self.unwritten.store(n, Ordering::Release);
    }

    /// The socket took `n` more bytes.
    pub(crate) fn add_wire_written(&self, n: usize) {
        self.wire_written.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes the socket took so far.
    pub(crate) fn progress(&self) -> usize {
        self.wire_written.load(Ordering::Relaxed)
    }

    /// Sets (or, with -1, forgets) the TCP descriptor under this connection.
    pub(crate) fn set_socket_fd(&self, fd: i32) {
        self.socket_fd.store(fd, Ordering::Release);
    }

    /// Bytes the peer's side has taken: what the socket took, less what still waits unsent or
    /// unacknowledged in the kernel. The close watchdog's measure of whether data still moves.
    pub(crate) fn delivered(&self) -> usize {
        let fd = self.socket_fd.load(Ordering::Acquire);
        let mut waiting: libc::c_int = 0;
        if fd < 0 || unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut waiting) } != 0 {
            waiting = 0;
        }
        self.progress().saturating_sub(waiting.max(0) as usize)
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr.get().map(|p| p.0)
    }

    /// The peer's address as text ("" before connected), NUL-terminated for C.
    pub fn peer_addr_cstr(&self) -> &std::ffi::CStr {
        self.peer_addr.get().map(|p| p.1.as_c_str()).unwrap_or(c"")
    }

    pub(crate) fn set_peer_addr(&self, addr: SocketAddr) {
        let text = CString::new(addr.to_string()).unwrap_or_default();
        let _ = self.peer_addr.set((addr, text));
    }

    /// The negotiated subprotocol ("" when none), NUL-terminated for C.
    pub fn subprotocol(&self) -> &std::ffi::CStr {
        self.subprotocol.get().map(|s| s.as_c_str()).unwrap_or(c"")
    }

    pub(crate) fn set_subprotocol(&self, p: Option<String>) {
        if let Some(p) = p {
            let _ = self.subprotocol.set(CString::new(p).unwrap_or_default());
        }
    }

    /// The negotiated extensions, as the Sec-WebSocket-Extensions header said them ("" when
    /// none, for example no permessage-deflate), NUL-terminated for C.
    pub fn extensions(&self) -> &std::ffi::CStr {
        self.extensions.get().map(|s| s.as_c_str()).unwrap_or(c"")
    }

    pub(crate) fn set_extensions(&self, e: String) {
        let _ = self.extensions.set(CString::new(e).unwrap_or_default());
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.get()
    }

    /// A pointer-sized value the application may keep with the connection.
    pub fn user_data(&self) -> usize {
        self.user_data.load(Ordering::Relaxed)
    }

    /// Sets the application's pointer-sized value.
    pub fn set_user_data(&self, v: usize) {
        self.user_data.store(v, Ordering::Relaxed)
    }

    /// Queues a text message and returns its id. Safe from any thread; messages from one
    /// thread keep their order.
    pub fn send_text(&self, text: &str) -> Result<u64> {
        self.enqueue(true, Bytes::copy_from_slice(text.as_bytes()), true)
    }

    /// Queues a binary message and returns its id. Safe from any thread; messages from one
    /// thread keep their order.
    pub fn send_binary(&self, data: &[u8]) -> Result<u64> {
        self.enqueue(false, Bytes::copy_from_slice(data), true)
    }

    /// Queues a message; `compress` false keeps it uncompressed even when permessage-deflate
    /// was negotiated (secrets next to attacker-controlled text: CRIME/BREACH).
    pub fn send(&self, text: bool, data: Bytes, compress: bool) -> Result<u64> {
        if text && std::str::from_utf8(&data).is_err() {
            return Err(Error::invalid("text message is not valid UTF-8"));
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
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if gate.closed {
            return Err(Error::state(format!("cannot send: {}", gate.why)));
        }
        if self.offline.load(Ordering::Acquire) {
            // client-reach (issue 13): the offline queue's bound and policy.
            if let Some(done) = self.offline_room(&mut gate, len) {
                return done;
            }
        }
        let queued = self.buffered_amount();
        let limit = self.settings.max_send_queue;
        if queued > 0 && queued.saturating_add(len) > limit {
            let why = format!(
                "the send queue holds {queued} bytes; this message of {len} bytes would pass its limit of {limit} bytes"
            );
            self.drain_armed.store(true, Ordering::Release);
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
        self.buffered.fetch_add(len, Ordering::Relaxed);
        let id = gate.last_id + 1;
        if self
            .commands
            .send(Command::Send {
                text,
                data,
                len,
                id,
                compress,
            })
            .is_err()
        {
            self.buffered.fetch_sub(len, Ordering::Relaxed);
            return Err(Error::state("cannot send: the connection is closed"));
        }
        gate.last_id = id;
        let low = self.drain_low.load(Ordering::Acquire);
        if low != usize::MAX && self.buffered_amount() > low {
            self.drain_armed.store(true, Ordering::Release);
        }
        Ok(id)
    }

    /// Turns drain events on (with a low-water mark) or off for this connection. Turning them
    /// on arms one: it comes once the queue is at or below the mark (at once when it already
    /// is and nothing is in flight).
    pub fn set_drain_events(self: &Arc<Self>, enabled: bool, low_water: usize) {
        if !enabled {
            self.drain_low.store(usize::MAX, Ordering::Release);
            return;
        }
        self.drain_low
            .store(low_water.min(usize::MAX - 1), Ordering::Release);
        self.drain_armed.store(true, Ordering::Release);
        let last = self.gate.lock().unwrap_or_else(|p| p.into_inner()).last_id;
        if self.buffered_amount() <= low_water
            && self.sent_id() >= last
            && self.state() != State::Closed
        {
            self.maybe_drain();
        }
    }

    /// Delivers a drain event when one is armed and the queue is down to the mark.
    fn maybe_drain(self: &Arc<Self>) {
        let low = self.drain_low.load(Ordering::Acquire);
        if low != usize::MAX
            && self.buffered_amount() <= low
            && self.drain_armed.swap(false, Ordering::AcqRel)
        {
            self.deliver(Event::Drain {
                sent_id: self.sent_id(),
            });
        }
    }

    /// The id of the last message handed to the kernel (0 before the first).
    pub fn sent_id(&self) -> u64 {
        self.sent_id.load(Ordering::Acquire)
    }

    /// The writer flushed every message up to `id`: records it, and delivers a drain event
    /// when asked for and the queue is down to its low-water mark.
    pub(crate) fn sent(self: &Arc<Self>, id: u64) {
        if id == 0 {
            return;
        }
        self.sent_id.fetch_max(id, Ordering::AcqRel);
        self.maybe_drain();
    }

    /// Starts the closing handshake after everything already queued: sends the Close frame,
    /// waits for the peer's up to the close timeout, then ends the stream. Never blocks.
    /// Closing again, or after the peer closed, does nothing.
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        check_close(code, reason)?;
        self.user_closed.store(true, Ordering::Release);
        if !self.close_gate("the connection is closing") {
            return Ok(());
        }
        let _ = self.commands.send(Command::Close(code, reason.to_owned()));
        let _ = self.notes.send(Note::CloseRequested(Instant::now()));
        Ok(())
    }

    /// Ends the connection at once, without a closing handshake (close event: 1006).
    pub fn abort(&self) {
        self.user_closed.store(true, Ordering::Release);
        self.close_gate("the connection was aborted");
        let _ = self.notes.send(Note::Abort);
    }

    /// Closes the queue; true when this call closed it.
    pub(crate) fn close_gate(&self, why: &'static str) -> bool {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if g.closed {
            return false;
        }
        g.closed = true;
        g.why = why;
        true
    }

    /// Stops every callback of this connection and closes it with 1001 when still open. No
    /// callback starts after this returns; from a thread that is not running a callback, none
    /// runs either (from inside a callback it does not wait, see `delivery`). The release hook
    /// runs once no callback runs. The handle stays valid.
    pub fn release(&self) {
        self.mailbox.release();
        let delivery = self
            .delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(delivery);
        // Nobody will acknowledge what waits: let reading go on (the close needs it).
        let waiting =
            std::mem::take(&mut self.acks.lock().unwrap_or_else(|p| p.into_inner()).unacked);
        for len in waiting {
            self.consumed(len);
        }
        if self.state() != State::Closed {
            let _ = self.close(1001, "");
        }
    }

    /// Marks the application's handle freed; false when it already was.
    pub(crate) fn mark_app_freed(&self) -> bool {
        !self.app_freed.swap(true, Ordering::AcqRel)
    }

    /// Sets what runs once the handle was released and no callback of it runs any more.
    pub fn set_release_hook(&self, hook: Box<dyn FnOnce() + Send>) {
        self.mailbox.set_release_hook(hook);
    }

    /// Delivers an event: to the handler on a callback thread, or into the event queue. The
    /// close event is delivered once, however many parts try to end the connection.
    pub(crate) fn deliver(self: &Arc<Self>, event: Event) {
        if let Event::Close(info) = &event {
            if self.close_info.set(info.clone()).is_err() {
                return;
            }
        }
        if self.mailbox.is_released() {
            return;
        }
        let target = match &*self.delivery.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Delivery::Queue(t)) => Some(t.clone()),
            _ => None,
        };
        if let Some(t) = target {
            let keep = match &event {
                Event::Message { data, .. } => ReceiveQueued::new(self.clone(), data.len())
                    .map(|q| Box::new(q) as Box<dyn Send>),
                _ => None,
            };
            if matches!(event, Event::Close(_)) {
                // The last event: the delivery (and what it keeps alive) is no longer needed.
                drop(
                    self.delivery
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take(),
                );
            }
            let q = Queued {
                conn: self.clone(),
                event,
                user_data: t.user_data,
                server: t.server,
                _keep: keep,
            };
            t.queue.push(q);
            return;
        }
        let me = self.clone();
        let last = matches!(event, Event::Close(_));
        let queued = match &event {
            Event::Message { data, .. } => ReceiveQueued::new(self.clone(), data.len()),
            _ => None,
        };
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let delivery = {
                let mut d = me.delivery.lock().unwrap_or_else(|p| p.into_inner());
                // After the last event the delivery is no longer needed: dropping it ends
                // what it keeps alive (a server's count of undelivered closes, release hooks).
                if last {
                    d.take()
                } else {
                    d.clone()
                }
            };
            if let Some(Delivery::Callback(h)) = &delivery {
                h.on_event(&me, &event);
            }
            drop(queued);
            drop(delivery);
        });
        if last {
            self.mailbox.post_last(job)
        } else {
            self.mailbox.post(job)
        }
    }

    /// Pauses or resumes reading from the peer. While paused, no message is read after the
    /// current one, so TCP slows the peer down; pings and Close frames wait as well.
    pub fn set_reading_paused(&self, paused: bool) {
        self.reading_paused.store(paused, Ordering::SeqCst);
        if !paused {
            self.room_waker.wake();
        }
    }

    /// Acknowledges up to `n` of the oldest messages delivered and not acknowledged yet (with
    /// `manual_ack`): they leave the receive budget at once, whether or not their callback has
    /// returned or a poll moved past them. Returns how many were acknowledged.
    pub fn ack(&self, n: usize) -> usize {
        let taken: Vec<usize> = {
            let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
            let k = n.min(acks.unacked.len());
            acks.unacked.drain(..k).collect()
        };
        for len in &taken {
            self.consumed(*len);
        }
        taken.len()
    }

    /// A delivered message's share of the budget is free again.
    fn consumed(&self, len: usize) {
        self.receive_queue.fetch_sub(len, Ordering::AcqRel);
        self.receive_messages.fetch_sub(1, Ordering::AcqRel);
        if self.read_waiting() {
            self.room_waker.wake();
        }
    }

    /// Whether received messages are over the budget (bytes or count), or, with `half`, not
    /// yet down to half of it.
    pub(crate) fn over_budget(&self, half: bool) -> bool {
        let d = if half { 2 } else { 1 };
        self.receive_queue.load(Ordering::Acquire) > self.settings.max_receive_queue / d
            || self.receive_messages.load(Ordering::Acquire)
                > self.settings.max_receive_messages / d
    }

    /// Whether the application paused reading.
    pub(crate) fn reading_paused(&self) -> bool {
        self.reading_paused.load(Ordering::SeqCst)
    }

    /// The connection task waits for receive room (or not any more).
    pub(crate) fn set_read_waiting(&self, waiting: bool) {
        self.read_waiting.store(waiting, Ordering::Release);
    }

    /// Runs `keep`'s drop once the events delivered so far were handled: after their callbacks
    /// ran, or once the application polled past them.
    pub(crate) fn after_delivered(&self, keep: Box<dyn Send>) {
        let queue = match &*self.delivery.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Delivery::Queue(t)) => Some(t.queue.clone()),
            _ => None,
        };
        match queue {
            Some(q) => q.push_marker(keep),
            None => self.mailbox.post(Box::new(move || drop(keep))),
        }
    }

    pub(crate) fn notify(&self, note: Note) {
        let _ = self.notes.send(note);
    }
}

/// With `manual_ack`: the lengths of the messages delivered and not acknowledged yet, oldest
/// first.
#[derive(Default)]
struct Acks {
    unacked: VecDeque<usize>,
}

/// A delivered message's share of the receive budget: given back when its callback finished
/// (or, in poll mode, at the next poll), or with `manual_ack` when the application
/// acknowledges it.
struct ReceiveQueued {
    conn: Arc<Conn>,
    len: usize,
}

impl ReceiveQueued {
    /// Counts a delivered message. With `manual_ack` its share waits for `ack` instead
    /// (`None`: nothing to give back on drop).
    fn new(conn: Arc<Conn>, len: usize) -> Option<Self> {
        conn.receive_queue.fetch_add(len, Ordering::AcqRel);
        conn.receive_messages.fetch_add(1, Ordering::AcqRel);
        if conn.settings.manual_ack {
            conn.acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unacked
                .push_back(len);
            return None;
        }
        Some(ReceiveQueued { conn, len })
    }
}

impl Drop for ReceiveQueued {
    fn drop(&mut self) {
        self.conn.consumed(self.len);
    }
}

/// A Close an application may send: an allowed code and a reason that fits the frame.
pub fn check_close(code: u16, reason: &str) -> Result<()> {
    check_close_code(code)?;
    if reason.len() > 123 {
        return Err(Error::invalid(format!(
            "close reason is {} bytes; at most 123 fit in a Close frame",
            reason.len()
        )));
    }
    Ok(())
}

/// Codes an application may send: 1000-1003, 1007-1014, 3000-4999.
pub fn check_close_code(code: u16) -> Result<()> {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(()),
        _ => Err(Error::invalid(format!(
            "close code {code} may not be sent: use 1000 (normal), 1001-1003, 1007-1014, or 3000-4999 (4000-4999 for the application)"
        ))),
    }
}

/// Closes every live connection with 1001 and waits up to `grace` for them to finish, then
/// aborts the rest and waits (briefly) for their actors to end them. Returns the connections,
/// so that the caller can end any the runtime's shutdown cut off (`end_unfinished`).
pub(crate) fn close_all(grace: Duration) -> Vec<Arc<Conn>> {
    let live: Vec<Arc<Conn>> = {
        let mut l = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        let v = l.iter().filter_map(|w| w.upgrade()).collect();
        l.clear();
        v
    };
    for c in &live {
        if c.state() == State::Connecting {
            c.abort();
        } else {
            let _ = c.close(1001, "shutting down");
        }
    }
    let wait_closed = |until: Instant| {
        while Instant::now() < until && live.iter().any(|c| c.state() != State::Closed) {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    wait_closed(Instant::now() + grace);
    for c in &live {
        if c.state() != State::Closed {
            c.abort();
        }
    }
    wait_closed(Instant::now() + Duration::from_millis(500));
    live
}

/// Ends, with one close event, every connection in `conns` that has not ended: used after the
/// runtime stopped, when no actor is left to do it.
pub(crate) fn end_unfinished(conns: &[Arc<Conn>]) {
    for c in conns {
        if c.close_info().is_none() {
            finish(
                c,
                failed(Error::new(
                    ErrorKind::Aborted,
                    "wsnative was shut down before the connection ended",
                )),
            );
        }
    }
}

thread_local! {
    static HELD_FOR_FORK: std::cell::RefCell<Option<std::sync::MutexGuard<'static, Vec<Weak<Conn>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Around fork(): the registry's lock is held across it; in the child, the parent's
/// connections (dead there) are forgotten, so shutdown does not wait for them.
static LIVE_FORK: crate::runtime::ForkHooks = crate::runtime::ForkHooks {
    prepare: || {
        let g = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        let _ = HELD_FOR_FORK.try_with(|h| *h.borrow_mut() = Some(g));
    },
    parent: || {
        let _ = HELD_FOR_FORK.try_with(|h| drop(h.borrow_mut().take()));
    },
    child: || {
        let _ = HELD_FOR_FORK.try_with(|h| {
            if let Some(mut live) = h.borrow_mut().take() {
                for w in live.drain(..) {
                    std::mem::forget(w);
                }
            }
        });
    },
};

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("state", &self.state())
            .field("peer", &self.peer_addr())
            .finish()
    }
}

/// Ends a connection (open or not): no more sends, state Closed, the close event last (once).
pub(crate) fn finish(conn: &Arc<Conn>, info: CloseInfo) {
    conn.close_gate("the connection is closed");
    conn.set_state(State::Closed);
    conn.deliver(Event::Close(info));
}

/// Waits for `fut` unless the application closes or aborts first (`None`).
pub(crate) async fn unless_cancelled<F: std::future::Future>(
    conn: &Conn,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        while let std::task::Poll::Ready(n) = conn.notes.poll_recv(cx) {
            if matches!(n, Note::Abort | Note::CloseRequested(_)) {
                return std::task::Poll::Ready(None);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The close event of a connection that never opened.
pub(crate) fn failed(error: Error) -> CloseInfo {
    CloseInfo {
        code: 1006,
        reason: String::new(),
        was_clean: false,
        error: Some(error),
    }
}

pub(crate) fn aborted() -> Error {
    Error::new(
        ErrorKind::Aborted,
        "the connection was aborted by this side",
    )
}

// --- client-reach (issue 13): the handshake response ---

/// The server's answer to a client's upgrade request: the 101 of an open connection, or the
/// refusal of a failed one. NUL-terminated for C.
#[derive(Debug)]
pub struct HandshakeResponse {
    /// The HTTP status (101 when accepted).
    pub status: u16,
    /// Every header in order, names as sent.
    pub headers: Vec<(CString, CString)>,
}

impl HandshakeResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&std::ffi::CStr> {
        self.headers
            .iter()
            .find(|(n, _)| n.to_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_c_str())
    }
}

impl Conn {
    /// A client's handshake response, once the server answered (set before the OPEN event,
    /// or before the CLOSE event of a refused upgrade; never on server connections).
    pub fn handshake_response(&self) -> Option<&HandshakeResponse> {
        self.response.get()
    }

    pub(crate) fn set_handshake_response(&self, status: u16, headers: &[(String, String)]) {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let _ = self.response.set(HandshakeResponse {
            status,
            headers: headers.iter().map(|(n, v)| (c(n), c(v))).collect(),
        });
    }
}

// --- client-reach (issue 13): reconnect ---

impl Conn {
    /// Makes room in the offline queue for `len` bytes: `Some` ends the send (refused, or the
    /// new message dropped), `None` lets it be queued.
    fn offline_room(&self, gate: &mut Gate, len: usize) -> Option<Result<u64>> {
        let (max, policy) = *self.offline_queue.get()?;
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
                        Some(Command::Send { len: l, .. }) => self.unqueue(l),
                        Some(Command::Close(..)) | None => break,
                    }
                }
                None
            }
        }
    }

    /// Sets the offline queue's bound and policy (once, at connect).
    pub(crate) fn set_offline_queue(&self, max: usize, policy: crate::options::OfflinePolicy) {
        let _ = self.offline_queue.set((max, policy));
    }

    /// Between connections (true) or not.
    pub(crate) fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::Release);
    }

    /// The application closed or aborted the connection (no reconnect then).
    pub(crate) fn user_closed(&self) -> bool {
        self.user_closed.load(Ordering::Acquire)
    }

    /// Opens the send queue again after a connection ended, unless the application closed it
    /// meanwhile (true when reopened). Sends made now are queued for the next connection.
    pub(crate) fn reopen_gate(&self) -> bool {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if self.user_closed() {
            return false;
        }
        g.closed = false;
        g.why = "";
        self.set_unwritten(0);
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
            let _ = self.commands.send(c);
        }
    }
}

// --- client-reach (issue 13): the pool hands a ready connection to its new owner ---

impl Conn {
    /// Hands an open pooled connection to `delivery`: its events go there from now on, starting
    /// with an `Open` (the one of the handshake went to the pool).
    pub(crate) fn adopt_delivery(self: &Arc<Self>, delivery: Option<Delivery>) {
        *self.delivery.lock().unwrap_or_else(|p| p.into_inner()) = delivery;
        self.deliver(Event::Open);
    }
}
