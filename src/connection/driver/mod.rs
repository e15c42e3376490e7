//! The connection task: the only owner of a connection's socket. One task per open connection
//! reads (whenever the connection lives and the application has room, so pings and Close
//! frames never need a pending read, G4), writes the send queue in order (G1), keeps the
//! heartbeat and the close deadlines, and alone decides when and how the connection ends (G3,
//! G5, G6), delivering the close event last.
//!
//! It drives the sans-IO message layer (`crate::protocol`): bytes in, messages out; messages
//! in, frames out. It holds no buffer while the connection is idle: the read buffer is given
//! back once it is empty, and large payloads are read straight into their message.
//!
//! The closing handshake: the peer's Close is answered after the callbacks of the messages
//! before it have run and what they sent is written (so no reply is cut off), bounded by the
//! close timeout. Our own Close goes after everything queued before it; while queued data is
//! still moving the close timeout counts from the last byte the peer took, and `close_max`
//! bounds the whole close.

mod closing;
mod read;
mod spin;
mod timers;
mod write;

use closing::{failed, protocol_failure, read_end, unclean};

use super::{aborted, CloseInfo, Command, Conn, Event, Note, State};
use crate::error::{Error, ErrorKind};
use crate::io::BoxIo;
use crate::options::Heartbeat;
use crate::protocol::{
    Decoder, DecoderConfig, DeflateParams, Encoder, EncoderConfig, Incoming, ProtocolError,
    ReadHint, Role, WriteBuf,
};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the handshake hands the connection task.
pub(crate) struct Wire {
    pub(crate) io: BoxIo,
    /// Bytes read past the HTTP head: the first frames.
    pub(crate) leftover: Vec<u8>,
    pub(crate) role: Role,
    /// permessage-deflate, when negotiated.
    pub(crate) deflate: Option<DeflateParams>,
}

/// Read buffer size for small messages; allocated on demand, freed when empty.
const READ_CHUNK: usize = 4 << 10;
/// The last bytes of a directly read payload go through the read buffer: a read that fills
/// exactly what it was offered leaves tokio's readiness set, and the next read (for the next
/// frame) would cost a syscall that only says EAGAIN; a read of the tail offered the read
/// buffer's larger room ends short, and readiness is cleared without it.
const DIRECT_TAIL: usize = 256;
/// Encoded bytes the writer keeps ready before it stops taking from the send queue.
const WRITE_AHEAD: usize = 256 << 10;
/// A turn that read less than this and answered from a callback may spin (see `spin.rs`).
const HOT_TURN: u64 = 16 << 10;
/// A thread whose previous connection turn started at least this long before the current one
/// had a pause (see `spin.rs`).
const PAUSE: Duration = Duration::from_micros(20);

thread_local! {
    /// When this thread last started a connection turn.
    static LAST_TURN: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Whether this thread was idle (no connection turn) for a while before this turn.
fn after_a_pause() -> bool {
    let now = Instant::now();
    LAST_TURN
        .try_with(|t| t.replace(Some(now)))
        .ok()
        .flatten()
        .is_none_or(|last| now.duration_since(last) >= PAUSE)
}

/// Slices per vectored write.
const MAX_SLICES: usize = 64;

/// Runs an open connection to its end, delivers the close event, then calls `on_end`.
///
/// Spawned as a task of its own once the handshake is over, and written by hand rather than
/// as an `async fn`: an idle connection's task then holds the driver and hardly anything
/// else (an `async fn` keeps its arguments beside its locals, and a task that also did the
/// handshake keeps room for the handshake's state for the connection's whole life).
pub(crate) fn run<F: FnOnce(&Arc<Conn>) + Send + Unpin + 'static>(
    conn: Arc<Conn>,
    wire: Wire,
    on_end: F,
) -> Run<F> {
    Run {
        session: session(&conn, wire, true, true),
        on_end: Some(on_end),
    }
}

/// The future of `run`.
pub(crate) struct Run<F> {
    session: Session,
    on_end: Option<F>,
}

impl<F: FnOnce(&Arc<Conn>) + Unpin> Future for Run<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let (conn, info) = std::task::ready!(this.session.poll_end(cx));
        {
            let _driving = super::Driving::enter(&conn);
            super::finish(&conn, info);
        }
        if let Some(on_end) = this.on_end.take() {
            on_end(&conn);
        }
        Poll::Ready(())
    }
}

/// One connection's life on `wire`, to its close event's info (not delivered). `open`: deliver
/// `Open` first (a reconnect delivers it itself, before). `last`: the send queue closes when it
/// ends (a reconnecting client keeps it for the next connection; client-reach, issue 13).
///
/// The connection is open, and `Open` delivered, before this returns (not at the first poll):
/// a server's task spawns the connection's own task after the handshake, and the OPEN must not
/// wait for that task's first turn (connections would then open in another order than their
/// handshakes finished).
pub(crate) fn session(conn: &Arc<Conn>, wire: Wire, open: bool, last: bool) -> Session {
    let mut d = Driver::new(conn.clone(), wire);
    d.last = last;
    if conn.state() == State::Connecting {
        conn.set_state(State::Open);
    }
    if open {
        let _driving = super::Driving::enter(conn);
        conn.deliver(Event::Open);
    }
    Session {
        driver: Some(d),
        ending: None,
    }
}

/// The future of `session`.
pub(crate) struct Session {
    /// Dropped (the socket closes) when the session is over.
    driver: Option<Driver>,
    /// Once the connection has ended: its close info while the transport says goodbye.
    ending: Option<Box<CloseInfo>>,
}

/// How long the transport's goodbye (TLS close_notify, FIN) may take.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(100);

impl Session {
    /// Drives the connection to its end; then its handle and close info.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<(Arc<Conn>, CloseInfo)> {
        let Some(d) = self.driver.as_mut() else {
            panic!("a connection's session polled after its end");
        };
        if self.ending.is_none() {
            let info = {
                let conn = d.conn.clone();
                let _driving = super::Driving::enter(&conn);
                std::task::ready!(d.poll(cx))
            };
            d.conn.set_socket_fd(-1);
            if d.last {
                d.conn.commands.close();
            }
            let until = tokio::time::Instant::now() + SHUTDOWN_WAIT;
            d.sleep.as_mut().reset(until);
            self.ending = Some(Box::new(info));
        }
        // Say goodbye at the transport level, briefly.
        let said = Pin::new(&mut d.io).poll_shutdown(cx).is_ready();
        if !said && d.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let conn = d.conn.clone();
        self.driver = None; // the socket closes
        let info = *self.ending.take().expect("set above");
        log_end(&conn, &info);
        Poll::Ready((conn, info))
    }
}

impl Future for Session {
    type Output = CloseInfo;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseInfo> {
        self.get_mut().poll_end(cx).map(|(_, info)| info)
    }
}

/// One log record per connection end: why it failed (timeouts as warnings), or that it closed.
fn log_end(conn: &Conn, info: &CloseInfo) {
    let id = conn.id();
    let t = "wsnative::connection";
    match &info.error {
        Some(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::WouldBlock) => {
            log::warn!(target: t, conn = id; "closed with {}: {e}", info.code)
        }
        Some(e) if e.kind() == ErrorKind::Aborted => log::debug!(target: t, conn = id; "{e}"),
        Some(e) => log::info!(target: t, conn = id; "closed with {}: {e}", info.code),
        None => {
            log::debug!(target: t, conn = id; "closed cleanly with {} {:?}", info.code, info.reason)
        }
    }
}

/// This side fails the connection: the code and reason of our Close frame, and why.
type Failure = (u16, &'static str, Error);

/// A Close frame once sent or received (`None` inside: a Close without code).
type CloseFrame = Option<Box<Option<(u16, String)>>>;

/// Sends `Note::Delivered` when dropped: posted behind the callbacks queued so far, it is
/// dropped once they ran (or at once when the connection no longer runs callbacks).
struct DeliveredGuard(Arc<Conn>);

impl Drop for DeliveredGuard {
    fn drop(&mut self) {
        self.0.notify(Note::Delivered);
    }
}

struct Driver {
    conn: Arc<Conn>,
    io: BoxIo,
    decoder: Decoder,
    encoder: Encoder,
    rbuf: BytesMut,
    wbuf: WriteBuf,
    /// Bytes put into `wbuf` so far, and bytes the socket took so far.
    encoded: u64,
    written: u64,
    /// Messages encoded and not fully written: (end offset in the stream, id).
    in_flight: VecDeque<(u64, u64)>,
    /// A flush is owed after writing (TLS buffers).
    flush_due: bool,
    // The closing handshake.
    /// Our Close once queued (`None` inside: an empty Close), and where it ends in the stream.
    /// This and the other states of the closing handshake are boxed: an idle connection's
    /// task keeps 8 bytes for each, not 32 to 56 (the task's size is the connection's cost).
    ours: CloseFrame,
    ours_end: u64,
    /// The peer's Close once received.
    theirs: CloseFrame,
    we_started: bool,
    /// The peer's Close waits for the callbacks before it (then it is answered).
    answer_due: bool,
    failure: Option<Box<Failure>>,
    /// A failure's Close waits for the callbacks before it.
    fail_waits: bool,
    close_requested: bool,
    eof: bool,
    /// Reading waits for receive room (paused or over the budget).
    blocked: bool,
    /// Frames that came with the handshake wait in the read buffer.
    leftover: bool,
    /// Our Close has been written.
    close_out: bool,
    /// Close the send queue at the end (see `session`).
    last: bool,
    // Timers.
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// `sleep` was polled (with this task's waker) for its current deadline and had not
    /// fired: until it does, no timer is due.
    sleep_armed: bool,
    ping_at: Option<Instant>,
    pong_due: Option<Instant>,
    /// Waiting for the callbacks (peer's Close to answer, or a failure to report) ends then.
    callbacks_due: Option<Instant>,
    /// The peer must answer our written Close by then (moved on while bytes still move).
    deadline: Option<Instant>,
    deadline_seen: usize,
    /// Before our Close is written: data must keep moving (last check, bytes delivered then).
    stall: Option<(Instant, usize)>,
    /// The whole close is over by then.
    cap: Option<Instant>,
    /// Our last Ping not answered yet: when it went out and its payload (the round trip).
    ping_out: Option<Box<(Instant, Vec<u8>)>>,
}

impl Driver {
    fn new(conn: Arc<Conn>, wire: Wire) -> Driver {
        let s = &conn.settings;
        let mut dcfg = DecoderConfig::new(wire.role, s.max_message_size);
        dcfg.deflate = wire.deflate;
        let mut ecfg = EncoderConfig::new(wire.role);
        ecfg.deflate = wire.deflate;
        ecfg.threshold = s.compression.threshold;
        ecfg.level = s.compression.level;
        let heartbeat = !s.ping_interval.is_zero();
        let now = Instant::now();
        conn.add_read(wire.leftover.len());
        Driver {
            decoder: Decoder::new(&dcfg),
            encoder: Encoder::new(&ecfg),
            rbuf: BytesMut::from(&wire.leftover[..]),
            wbuf: WriteBuf::new(),
            io: wire.io,
            encoded: 0,
            written: 0,
            in_flight: VecDeque::new(),
            flush_due: false,
            ours: None,
            ours_end: 0,
            theirs: None,
            we_started: false,
            answer_due: false,
            failure: None,
            fail_waits: false,
            close_requested: false,
            eof: false,
            blocked: false,
            leftover: !wire.leftover.is_empty(),
            close_out: false,
            last: false,
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            sleep_armed: false,
            ping_at: heartbeat.then(|| now + s.ping_interval),
            pong_due: None,
            callbacks_due: None,
            deadline: None,
            deadline_seen: 0,
            stall: None,
            cap: None,
            ping_out: None,
            conn,
        }
    }

    /// One turn of the task: notes, the send queue, writing, reading, timers. `Ready` with
    /// the close event once the connection has ended.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<CloseInfo> {
        let turn = super::inbox::InTurn::enter(&self.conn.task_waker);
        // Registered once per turn, before anything is looked at: whatever comes after this
        // (a send, a note, receive room) wakes the task, so the inboxes are read without
        // registering again.
        self.conn.task_waker.register(cx.waker());
        let read_at_start = self.conn.bytes_read();
        let mut woken_in_turn = false;
        let after_a_pause = after_a_pause();
        loop {
            let mut busy = false;
            if let Some(end) = self.take_notes() {
                return Poll::Ready(end);
            }
            if let Some(end) = self.take_commands(&mut busy) {
                return Poll::Ready(end);
            }
            match self.write(cx, &mut busy) {
                Ok(Some(end)) => return Poll::Ready(end),
                Ok(None) => {}
                Err(end) => return Poll::Ready(end),
            }
            if let Some(end) = self.read(cx, &mut busy) {
                return Poll::Ready(end);
            }
            if busy {
                continue; // timers are looked at once the work at hand is done
            }
            if let Some(end) = self.timers(cx, &mut busy) {
                return Poll::Ready(end);
            }
            if busy {
                continue;
            }
            if turn.take_woken() {
                woken_in_turn = true;
                continue;
            }
            let read = self.conn.bytes_read() - read_at_start;
            spin::end_of_turn(
                Arc::as_ptr(&self.conn) as usize,
                woken_in_turn && read < HOT_TURN,
                after_a_pause,
                read > 0,
                cx,
            );
            return Poll::Pending;
        }
    }

    // --- notes from the application and the callbacks ----------------------------------

    fn take_notes(&mut self) -> Option<CloseInfo> {
        while let Some(note) = self.conn.notes.try_recv() {
            match note {
                Note::Abort => return Some(unclean(aborted())),
                Note::CloseRequested(at) => {
                    self.close_requested = true;
                    self.conn.set_state(State::Closing);
                    self.cap.get_or_insert(at + self.conn.settings.close_max);
                    if self.ours.is_none() && self.stall.is_none() {
                        self.stall =
                            Some((at + self.conn.settings.close_timeout, self.conn.delivered()));
                    }
                }
                Note::Delivered => {
                    self.callbacks_due = None;
                    if self.fail_waits {
                        self.fail_waits = false;
                    }
                    if self.answer_due {
                        self.answer_due = false;
                    }
                }
                Note::Ping(payload) => {
                    if self.ours.is_none()
                        && self.failure.is_none()
                        && self.conn.state() == State::Open
                    {
                        let before = self.wbuf.len();
                        if self.encoder.ping(&mut self.wbuf, &payload).is_ok() {
                            self.encoded += (self.wbuf.len() - before) as u64;
                            self.ping_out = Some(Box::new((Instant::now(), payload.to_vec())));
                        }
                    }
                }
                Note::Fail(code, reason, error) => {
                    if self.ours.is_none() && self.failure.is_none() {
                        // The send queue is what is stuck: drop what waits in it.
                        while let Some(cmd) = self.conn.commands.try_recv() {
                            self.conn.unqueue(cmd.queued_len());
                        }
                        self.fail_now((code, reason, error), false);
                    }
                }
            }
        }
        None
    }

    /// Starts failing the connection; `wait_callbacks`: the Close waits until the callbacks
    /// of the messages already read have run, so their replies go first.
    fn fail_now(&mut self, f: Failure, wait_callbacks: bool) {
        let read = self.conn.stats().bytes_received;
        let at = read.saturating_sub(self.rbuf.len() as u64);
        log::warn!(target: "wsnative::connection", conn = self.conn.id(); "failing with {}: {} (at byte {at} of the peer's stream)", f.0, f.2);
        let s = &self.conn.settings;
        // Sends stay open until our Close is queued: replies to earlier messages go first.
        self.failure = Some(Box::new(f));
        self.ping_at = None;
        self.pong_due = None;
        self.stall = None;
        self.cap.get_or_insert(Instant::now() + s.close_max);
        // Our Close must get out (behind the replies) within the close timeout, counted from
        // the last byte the peer took.
        self.deadline = Some(Instant::now() + s.close_timeout);
        self.deadline_seen = self.conn.delivered();
        if wait_callbacks {
            self.fail_waits = true;
            self.callbacks_due = Some(Instant::now() + s.close_timeout);
            self.after_callbacks();
        }
    }

    fn after_callbacks(&self) {
        self.conn
            .after_delivered(Box::new(DeliveredGuard(self.conn.clone())));
    }

    // --- the send queue -------------------------------------------------------------------

    /// Encodes what the application queued, in order, up to the write-ahead mark; queues our
    /// Close when its turn comes.
    fn take_commands(&mut self, busy: &mut bool) -> Option<CloseInfo> {
        if self.ours.is_some() {
            return None;
        }
        // A failure's Close goes after the replies of the callbacks it waited for.
        let holding = self.fail_waits || self.answer_due;
        while self.wbuf.len() < WRITE_AHEAD {
            match self.conn.commands.try_recv() {
                Some(Command::Send {
                    text,
                    data,
                    len,
                    id,
                    compress,
                }) => {
                    let before = self.wbuf.len();
                    if self
                        .encoder
                        .message(&mut self.wbuf, text, data, compress)
                        .is_ok()
                    {
                        self.encoded += (self.wbuf.len() - before) as u64;
                        self.in_flight.push_back((self.encoded, id));
                    }
                    self.conn.set_unwritten(self.wbuf.len(), len);
                    *busy = true;
                }
                Some(Command::Frame { frame, len, id }) => {
                    let before = self.wbuf.len();
                    let payload = frame.frame.slice(frame.header..);
                    if self
                        .encoder
                        .prebuilt(&mut self.wbuf, frame.frame, frame.text, payload)
                        .is_ok()
                    {
                        self.encoded += (self.wbuf.len() - before) as u64;
                        self.in_flight.push_back((self.encoded, id));
                    }
                    self.conn.set_unwritten(self.wbuf.len(), len);
                    *busy = true;
                }
                Some(Command::Close(code, reason)) => {
                    if self.failure.is_none() && self.theirs.is_none() {
                        self.queue_close(Some((code, reason)));
                    }
                    *busy = true;
                }
                None => break,
            }
        }
        if holding {
            return None;
        }
        if let Some((code, reason, _)) = self.failure.as_deref() {
            let frame = Some((*code, (*reason).to_owned()));
            self.queue_close(frame);
            *busy = true;
        } else if let Some(theirs) = &self.theirs {
            // The peer closed first: echo its Close, after what the callbacks sent.
            let echo = (**theirs).clone();
            self.queue_close(echo);
            *busy = true;
        }
        None
    }

    // --- writing --------------------------------------------------------------------------

    // --- reading --------------------------------------------------------------------------

    // --- timers ---------------------------------------------------------------------------
}
