//! A WebSocket connection: the handle every other part talks to. The connection task
//! (`driver/`) owns the socket; this side holds the send queue, the state, the receive
//! budget and the event mailbox.

mod delivery;
mod driver;
mod facts;
mod inbox;
mod ops;
mod receive;
mod send;

pub use delivery::{Delivery, EventQueue, QueueTarget, Queued};
pub(crate) use driver::{run, session, Wire};
pub use facts::HandshakeResponse;
pub(crate) use ops::TagIndex;
pub use ops::{check_tag, ConnStats, SharedFrame, MAX_TAGS};

use crate::delivery::Mailbox;
use crate::error::{Error, ErrorKind, Result};
use crate::options::ConnectionSettings;
use bytes::Bytes;
use receive::ReceiveQueued;
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
    /// A frame built once and shared with other connections (a broadcast), with its id.
    Frame {
        frame: SharedFrame,
        len: usize,
        id: u64,
    },
}

impl Command {
    /// The bytes this command counts in the send queue.
    pub(crate) fn queued_len(&self) -> usize {
        match self {
            Command::Send { len, .. } | Command::Frame { len, .. } => *len,
            Command::Close(..) => 0,
        }
    }
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
    /// The application asked for a Ping (its payload) to measure the round trip.
    Ping([u8; 8]),
}

/// A WebSocket connection, client or server side. Shared by the application's handle, the
/// connection task and queued events; the socket itself lives only in the task. Its parts:
/// the sending side (`send.rs`), the receiving side (`receive.rs`), what the handshake
/// established (`facts.rs`), and here its state, inboxes, event delivery and end.
pub struct Conn {
    state: AtomicU8,
    /// The send queue and the notes for the connection task (see `inbox.rs`).
    pub(crate) commands: inbox::Inbox<Command>,
    pub(crate) notes: inbox::Inbox<Note>,
    /// Wakes the task that reads the inboxes (and waits for receive room).
    pub(crate) task_waker: inbox::TaskWaker,
    outgoing: send::Outgoing,
    incoming: receive::Incoming,
    facts: facts::Facts,
    /// Shared by every connection of a server (or of one connect call).
    pub(crate) settings: Arc<ConnectionSettings>,
    pub(crate) mailbox: Arc<Mailbox>,
    delivery: Mutex<Option<Delivery>>,
    /// Boxed: set once, at the end (an idle connection keeps 8 bytes for it, not 72).
    close_info: OnceLock<Box<CloseInfo>>,
    user_data: AtomicUsize,
    /// The application freed its handle (a second free while the handle is still alive, for
    /// example later in the same poll batch, does nothing).
    app_freed: AtomicBool,
    /// Deadline, tags, counters (issue 15 §3, `ops.rs`).
    ops: ops::ConnOps,
    /// A number unique in the process, never 0 (log records carry it as `conn`).
    id: u64,
    /// client-reach (issue 13): the application closed or aborted (a reconnecting client then
    /// stays closed).
    user_closed: AtomicBool,
}

/// The next connection id (see `Conn::id`).
static NEXT_CONN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

static LIVE: Mutex<Vec<Weak<Conn>>> = Mutex::new(Vec::new());

thread_local! {
    /// The connection whose task this thread is running right now (its address; 0: none).
    static DRIVING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as running `conn`'s task until dropped: its callbacks may then
/// run right here (`inline_callbacks`). Set only around synchronous work, never across an
/// await (another task may run on this thread in between).
pub(crate) struct Driving(usize);

impl Driving {
    pub(crate) fn enter(conn: &Conn) -> Driving {
        let me = conn as *const Conn as usize;
        Driving(DRIVING.try_with(|d| d.replace(me)).unwrap_or(0))
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        let _ = DRIVING.try_with(|d| d.set(self.0));
    }
}

impl Conn {
    pub(crate) fn new(settings: Arc<ConnectionSettings>, delivery: Option<Delivery>) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            state: AtomicU8::new(State::Connecting as u8),
            commands: inbox::Inbox::new(),
            notes: inbox::Inbox::new(),
            task_waker: inbox::TaskWaker::new(),
            outgoing: send::Outgoing::new(settings.drain_low_water),
            incoming: receive::Incoming::default(),
            facts: facts::Facts::default(),
            settings,
            mailbox: Arc::new(Mailbox::default()),
            delivery: Mutex::new(delivery),
            close_info: OnceLock::new(),
            user_data: AtomicUsize::new(0),
            app_freed: AtomicBool::new(false),
            ops: ops::ConnOps::default(),
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
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

    /// The connection's id: unique in the process, never 0; log records about the connection
    /// carry it (key `conn`).
    pub fn id(&self) -> u64 {
        self.id
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
            self.task_waker.wake();
        }
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.get().map(|b| &**b)
    }

    /// A pointer-sized value the application may keep with the connection.
    pub fn user_data(&self) -> usize {
        self.user_data.load(Ordering::Relaxed)
    }

    /// Sets the application's pointer-sized value.
    pub fn set_user_data(&self, v: usize) {
        self.user_data.store(v, Ordering::Relaxed)
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
        let _ = self
            .commands
            .send(Command::Close(code, reason.to_owned()), &self.task_waker);
        let _ = self
            .notes
            .send(Note::CloseRequested(Instant::now()), &self.task_waker);
        Ok(())
    }

    /// Ends the connection at once, without a closing handshake (close event: 1006).
    pub fn abort(&self) {
        self.user_closed.store(true, Ordering::Release);
        self.close_gate("the connection was aborted");
        let _ = self.notes.send(Note::Abort, &self.task_waker);
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
        self.ack(usize::MAX);
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
            if self.close_info.set(Box::new(info.clone())).is_err() {
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
        let job = move || {
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
        };
        if self.inline() {
            self.mailbox.run_or_post(job, last)
        } else if last {
            self.mailbox.post_last(Box::new(job))
        } else {
            self.mailbox.post(Box::new(job))
        }
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
            // Nothing queued or running: every event so far was handled, no thread hop needed
            // (a connection that closes right after it opened answers its peer's Close at once).
            None if self.mailbox.is_idle() => drop(keep),
            None if self.inline() => self
                .mailbox
                .run_or_post(Box::new(move || drop(keep)), false),
            None => self.mailbox.post(Box::new(move || drop(keep))),
        }
    }

    /// Whether this connection's callbacks run here and now: asked for, and the calling thread
    /// is running this connection's own task (not an application thread, not another task).
    fn inline(&self) -> bool {
        self.settings.inline_callbacks
            && DRIVING
                .try_with(|d| d.get() == self as *const Conn as usize)
                .unwrap_or(false)
    }

    pub(crate) fn notify(&self, note: Note) {
        let _ = self.notes.send(note, &self.task_waker);
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
        while let std::task::Poll::Ready(n) = conn.notes.poll_recv(cx, &conn.task_waker) {
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

impl Conn {
    /// The application closed or aborted the connection (no reconnect then).
    pub(crate) fn user_closed(&self) -> bool {
        self.user_closed.load(Ordering::Acquire)
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
