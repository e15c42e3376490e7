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

use super::{aborted, CloseInfo, Command, Conn, Event, Note, State};
use crate::error::{Error, ErrorKind};
use crate::io::BoxIo;
use crate::options::Heartbeat;
use crate::protocol::{
    Decoder, DecoderConfig, DeflateParams, Encoder, EncoderConfig, Incoming, ProtocolError,
    ReadHint, Role, WriteBuf,
};
use bytes::{BufMut, BytesMut};
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
/// Encoded bytes the writer keeps ready before it stops taking from the send queue.
const WRITE_AHEAD: usize = 256 << 10;
/// Slices per vectored write.
const MAX_SLICES: usize = 64;

/// Runs an open connection to its end, then delivers the close event.
pub(crate) async fn run(conn: Arc<Conn>, wire: Wire) {
    let info = session(&conn, wire, true, true).await;
    let _driving = super::Driving::enter(&conn);
    super::finish(&conn, info);
}

/// One connection's life on `wire`, to its close event's info (not delivered). `open`: deliver
/// `Open` first (a reconnect delivers it itself, before). `last`: the send queue closes when it
/// ends (a reconnecting client keeps it for the next connection; client-reach, issue 13).
pub(crate) async fn session(conn: &Arc<Conn>, wire: Wire, open: bool, last: bool) -> CloseInfo {
    if conn.state() == State::Connecting {
        conn.set_state(State::Open);
    }
    if open {
        let _driving = super::Driving::enter(conn);
        conn.deliver(Event::Open);
    }
    let mut d = Driver::new(conn.clone(), wire);
    let info = std::future::poll_fn(|cx| {
        let _driving = super::Driving::enter(conn);
        d.poll(cx)
    })
    .await;
    conn.set_socket_fd(-1);
    if last {
        conn.commands.close();
    }
    // Say goodbye at the transport level (TLS close_notify, FIN), briefly.
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        tokio::io::AsyncWriteExt::shutdown(&mut d.io),
    )
    .await;
    drop(d); // the socket closes
    log_end(conn, &info);
    info
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

/// The close event when the stream ended after the peer's Close (or without one).
fn read_end(
    theirs: &Option<Option<(u16, String)>>,
    ours: &Option<Option<(u16, String)>>,
    we_started: bool,
) -> CloseInfo {
    match (theirs, ours) {
        (Some(_), Some(Some((code, reason)))) if we_started => CloseInfo {
            code: *code,
            reason: reason.clone(),
            was_clean: true,
            error: None,
        },
        (Some(Some((code, reason))), _) => CloseInfo {
            code: *code,
            reason: reason.clone(),
            was_clean: true,
            error: None,
        },
        (Some(None), _) => CloseInfo {
            code: 1005,
            reason: String::new(),
            was_clean: true,
            error: None,
        },
        (None, _) => CloseInfo {
            code: 1006,
            reason: String::new(),
            was_clean: false,
            error: Some(Error::new(
                ErrorKind::Io,
                "connection closed by peer without a Close frame",
            )),
        },
    }
}

fn unclean(error: Error) -> CloseInfo {
    CloseInfo {
        code: 1006,
        reason: String::new(),
        was_clean: false,
        error: Some(error),
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// This side fails the connection: the code and reason of our Close frame, and why.
type Failure = (u16, &'static str, Error);

fn failed(f: Failure) -> CloseInfo {
    CloseInfo {
        code: f.0,
        reason: f.1.to_owned(),
        was_clean: false,
        error: Some(f.2),
    }
}

fn protocol_failure(e: ProtocolError) -> Failure {
    let what = match e.code {
        1007 => "the peer sent a text message that is not valid UTF-8",
        1009 => "the peer sent a message over the size limit",
        _ => "the peer broke the WebSocket protocol",
    };
    (
        e.code,
        e.reason,
        Error::new(ErrorKind::Protocol, format!("{what}: {}", e.detail)),
    )
}

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
    ours: Option<Option<(u16, String)>>,
    ours_end: u64,
    /// The peer's Close once received.
    theirs: Option<Option<(u16, String)>>,
    we_started: bool,
    /// The peer's Close waits for the callbacks before it (then it is answered).
    answer_due: bool,
    failure: Option<Failure>,
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
    // Timers.
    sleep: Pin<Box<tokio::time::Sleep>>,
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
    ping_out: Option<(Instant, Vec<u8>)>,
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
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
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
        loop {
            let mut busy = false;
            if let Some(end) = self.take_notes(cx) {
                return Poll::Ready(end);
            }
            if let Some(end) = self.take_commands(cx, &mut busy) {
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
            if let Some(end) = self.timers(cx, &mut busy) {
                return Poll::Ready(end);
            }
            if !busy {
                return Poll::Pending;
            }
        }
    }

    // --- notes from the application and the callbacks ----------------------------------

    fn take_notes(&mut self, cx: &mut Context<'_>) -> Option<CloseInfo> {
        while let Poll::Ready(note) = self.conn.notes.poll_recv(cx) {
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
                            self.ping_out = Some((Instant::now(), payload.to_vec()));
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
        self.failure = Some(f);
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
    fn take_commands(&mut self, cx: &mut Context<'_>, busy: &mut bool) -> Option<CloseInfo> {
        if self.ours.is_some() {
            return None;
        }
        // A failure's Close goes after the replies of the callbacks it waited for.
        let holding = self.fail_waits || self.answer_due;
        while self.wbuf.len() < WRITE_AHEAD {
            match self.conn.commands.poll_recv(cx) {
                Poll::Ready(Command::Send {
                    text,
                    data,
                    len,
                    id,
                    compress,
                }) => {
                    self.conn.unqueue(len);
                    let before = self.wbuf.len();
                    if self
                        .encoder
                        .message(&mut self.wbuf, text, data, compress)
                        .is_ok()
                    {
                        self.encoded += (self.wbuf.len() - before) as u64;
                        self.in_flight.push_back((self.encoded, id));
                    }
                    self.conn.set_unwritten(self.wbuf.len());
                    *busy = true;
                }
                Poll::Ready(Command::Frame { frame, len, id }) => {
                    self.conn.unqueue(len);
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
                    self.conn.set_unwritten(self.wbuf.len());
                    *busy = true;
                }
                Poll::Ready(Command::Close(code, reason)) => {
                    if self.failure.is_none() && self.theirs.is_none() {
                        self.queue_close(Some((code, reason)));
                    }
                    *busy = true;
                }
                Poll::Pending => break,
            }
        }
        if holding {
            return None;
        }
        if let Some((code, reason, _)) = &self.failure {
            let frame = Some((*code, (*reason).to_owned()));
            self.queue_close(frame);
            *busy = true;
        } else if let Some(theirs) = &self.theirs {
            // The peer closed first: echo its Close, after what the callbacks sent.
            let echo = theirs.clone();
            self.queue_close(echo);
            *busy = true;
        }
        None
    }

    fn queue_close(&mut self, frame: Option<(u16, String)>) {
        if self.ours.is_some() {
            return;
        }
        let before = self.wbuf.len();
        let r = self.encoder.close(
            &mut self.wbuf,
            frame.as_ref().map(|(c, r)| (*c, r.as_str())),
        );
        if r.is_err() {
            // A code the application may not send was checked in `close`; a peer's code
            // that may not be echoed (checked by the decoder) cannot get here either.
            let _ = self.encoder.close(&mut self.wbuf, Some((1000, "")));
        }
        self.encoded += (self.wbuf.len() - before) as u64;
        self.ours_end = self.encoded;
        self.we_started = self.theirs.is_none();
        self.ours = Some(frame);
        self.conn.close_gate("the connection is closing");
        self.conn.set_state(State::Closing);
        self.conn.set_unwritten(self.wbuf.len());
        self.ping_at = None;
        self.pong_due = None;
    }

    // --- writing --------------------------------------------------------------------------

    /// Writes what is encoded. `Err` ends the connection (the socket failed); `Ok(Some)` when
    /// the closing handshake completed with this write.
    fn write(
        &mut self,
        cx: &mut Context<'_>,
        busy: &mut bool,
    ) -> Result<Option<CloseInfo>, CloseInfo> {
        while !self.wbuf.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.wbuf.io_slices(&mut slices);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    return Err(
                        self.write_failed(Error::new(ErrorKind::Io, "the socket took no bytes"))
                    )
                }
                Poll::Ready(Ok(k)) => {
                    self.wbuf.advance(k);
                    self.written += k as u64;
                    self.conn.add_wire_written(k);
                    self.conn.set_unwritten(self.wbuf.len());
                    self.flush_due = true;
                    *busy = true;
                    self.sent_up_to();
                }
                Poll::Ready(Err(e)) => {
                    return Err(self.write_failed(Error::from(e).context("write failed")))
                }
                Poll::Pending => return Ok(None),
            }
        }
        self.wbuf.release();
        if self.flush_due {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_due = false,
                Poll::Ready(Err(e)) => {
                    return Err(self.write_failed(Error::from(e).context("write failed")))
                }
                Poll::Pending => return Ok(None),
            }
        }
        if self.ours.is_some() && self.written >= self.ours_end && !self.close_out {
            self.close_out = true;
            // Our Close is out.
            if let Some(f) = self.failure.take() {
                // The Close frame told the peer why; there is nothing to wait for.
                return Ok(Some(failed(f)));
            }
            if self.theirs.is_some() {
                return Ok(Some(read_end(&self.theirs, &self.ours, self.we_started)));
            }
            self.stall = None;
            self.deadline = Some(Instant::now() + self.conn.settings.close_timeout);
            self.deadline_seen = self.conn.delivered();
        }
        Ok(None)
    }

    /// Records which messages the socket has taken, and delivers a drain event when asked.
    fn sent_up_to(&mut self) {
        let mut last = None;
        while let Some(&(end, id)) = self.in_flight.front() {
            if end > self.written {
                break;
            }
            last = Some(id);
            self.in_flight.pop_front();
        }
        if let Some(id) = last {
            self.conn.sent(id);
        }
    }

    fn write_failed(&mut self, error: Error) -> CloseInfo {
        if let Some(f) = self.failure.take() {
            return failed(f);
        }
        if self.theirs.is_some() {
            // The peer closed (and may have gone): its Close made the close clean.
            return read_end(&self.theirs, &self.ours, self.we_started);
        }
        unclean(error)
    }

    // --- reading --------------------------------------------------------------------------

    /// Whether reading goes on: always while closing (the peer's Close must be read); else
    /// unless the application paused it or is over its receive budget.
    fn may_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.eof || self.decoder.close_received() || self.failure.is_some() {
            return false;
        }
        if self.conn.state() != State::Open {
            self.set_blocked(false);
            return true;
        }
        // Once blocked, reading resumes when the budget is down to half.
        let stop = |c: &Conn, blocked: bool| c.reading_paused() || c.over_budget(blocked);
        if !stop(&self.conn, self.blocked) {
            self.set_blocked(false);
            return true;
        }
        // Woken by an acknowledgement, a resume or a close; checked again after registering
        // so that a wake-up in between is not lost.
        self.conn.incoming.room_waker.register(cx.waker());
        let blocked = stop(&self.conn, true) && self.conn.state() == State::Open;
        self.set_blocked(blocked);
        !blocked
    }

    fn set_blocked(&mut self, b: bool) {
        self.blocked = b;
        self.conn.set_read_waiting(b);
    }

    fn read(&mut self, cx: &mut Context<'_>, busy: &mut bool) -> Option<CloseInfo> {
        while self.may_read(cx) {
            if self.leftover {
                // Frames that came with the handshake.
                self.leftover = false;
                *busy = true;
                if let Some(end) = self.decode_buffered() {
                    return Some(end);
                }
                continue;
            }
            let got = match self.decoder.read_hint() {
                ReadHint::Direct { remaining } => {
                    let mut dst = self.decoder.direct_buf();
                    let room = dst.remaining_mut().min(remaining);
                    let n = match poll_read_into(&mut self.io, cx, dst.get_mut(), room) {
                        Poll::Pending => return None,
                        Poll::Ready(r) => {
                            if let Ok(k) = &r {
                                self.conn.add_read(*k);
                            }
                            r
                        }
                    };
                    match n {
                        Ok(0) => Ok(0),
                        Ok(n) => match self.decoder.direct_filled(n) {
                            Ok(Some(item)) => {
                                if let Some(end) = self.incoming(item) {
                                    return Some(end);
                                }
                                Ok(n)
                            }
                            Ok(None) => Ok(n),
                            Err(e) => {
                                self.fail_now(protocol_failure(e), true);
                                *busy = true;
                                return None;
                            }
                        },
                        Err(e) => Err(e),
                    }
                }
                ReadHint::Idle | ReadHint::Buffered => {
                    if self.rbuf.capacity() - self.rbuf.len() < 512 {
                        self.rbuf.reserve(READ_CHUNK);
                    }
                    let room = self.rbuf.capacity() - self.rbuf.len();
                    match poll_read_into(&mut self.io, cx, &mut self.rbuf, room) {
                        Poll::Pending => {
                            if self.rbuf.is_empty() {
                                self.rbuf = BytesMut::new(); // idle: hold no buffer
                            }
                            return None;
                        }
                        Poll::Ready(Ok(0)) => Ok(0),
                        Poll::Ready(Ok(n)) => {
                            self.conn.add_read(n);
                            if let Some(end) = self.decode_buffered() {
                                return Some(end);
                            }
                            Ok(n)
                        }
                        Poll::Ready(Err(e)) => Err(e),
                    }
                }
            };
            *busy = true;
            match got {
                Ok(0) => return self.read_ended(None),
                Ok(_) => {}
                Err(e) => return self.read_ended(Some(e)),
            }
        }
        None
    }

    /// Decodes what the read buffer holds, until the receive budget says stop (the rest is
    /// decoded when reading resumes).
    fn decode_buffered(&mut self) -> Option<CloseInfo> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(item)) => {
                    let message = matches!(item, Incoming::Message { .. });
                    if let Some(end) = self.incoming(item) {
                        return Some(end);
                    }
                    if message
                        && !self.rbuf.is_empty()
                        && self.conn.state() == State::Open
                        && (self.conn.reading_paused() || self.conn.over_budget(false))
                    {
                        self.leftover = true;
                        return None;
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    self.fail_now(protocol_failure(e), true);
                    return None;
                }
            }
        }
    }

    fn incoming(&mut self, item: Incoming) -> Option<CloseInfo> {
        match item {
            Incoming::Message { text, data } => {
                self.conn.count_message_in();
                if self.ours.is_none() || self.theirs.is_none() {
                    self.conn.deliver(Event::Message { text, data });
                }
            }
            Incoming::Ping(p) => {
                if self.ours.is_none() && self.failure.is_none() {
                    let before = self.wbuf.len();
                    if self.encoder.pong(&mut self.wbuf, &p).is_ok() {
                        self.encoded += (self.wbuf.len() - before) as u64;
                    }
                }
            }
            Incoming::Pong(p) => {
                self.pong_due = None;
                if let Some((at, want)) = &self.ping_out {
                    if p[..] == want[..] {
                        self.conn.record_rtt(at.elapsed());
                        self.ping_out = None;
                    }
                }
            }
            Incoming::Close(frame) => {
                let s = &self.conn.settings;
                self.theirs = Some(frame);
                // Sends stay open until the answer is queued: callbacks may still reply to
                // the messages before the peer's Close.
                self.ping_at = None;
                self.pong_due = None;
                self.cap.get_or_insert(Instant::now() + s.close_max);
                if self.ours.is_some() {
                    // We started: once our Close is written the handshake is complete.
                    if self.written >= self.ours_end {
                        return Some(read_end(&self.theirs, &self.ours, self.we_started));
                    }
                } else {
                    // Answered once the callbacks of earlier messages ran and their replies
                    // are queued (bounded by the close timeout).
                    self.answer_due = true;
                    self.callbacks_due = Some(Instant::now() + s.close_timeout);
                    self.after_callbacks();
                }
            }
        }
        None
    }

    fn read_ended(&mut self, e: Option<std::io::Error>) -> Option<CloseInfo> {
        self.eof = true;
        if self.theirs.is_some() || e.is_none() {
            if let Some(f) = self.failure.take() {
                return Some(failed(f));
            }
            return Some(read_end(&self.theirs, &self.ours, self.we_started));
        }
        if let Some(f) = self.failure.take() {
            return Some(failed(f));
        }
        Some(unclean(Error::from(e.unwrap_or_else(|| {
            std::io::ErrorKind::UnexpectedEof.into()
        }))))
    }

    // --- timers ---------------------------------------------------------------------------

    fn timers(&mut self, cx: &mut Context<'_>, busy: &mut bool) -> Option<CloseInfo> {
        let s = &*self.conn.settings.clone();
        let now = Instant::now();
        if self.cap.is_some_and(|d| now >= d) {
            let e = Error::new(
                ErrorKind::Timeout,
                format!("close timed out: the closing handshake did not finish within {} ms in all (the peer reads too slowly)", ms(s.close_max)),
            );
            return Some(match self.failure.take() {
                Some(f) => failed((f.0, f.1, f.2.context(e))),
                None => unclean(e),
            });
        }
        if self.callbacks_due.is_some_and(|d| now >= d) {
            // A callback is slow: go on without waiting any longer.
            self.callbacks_due = None;
            self.fail_waits = false;
            self.answer_due = false;
            *busy = true;
        }
        if let Some(d) = self.deadline {
            if now >= d {
                let delivered = self.conn.delivered();
                if delivered != self.deadline_seen
                    || (!self.close_out && self.wbuf.is_empty() && self.ours.is_none())
                {
                    // Our Close is still on its way behind data the peer keeps taking.
                    self.deadline_seen = delivered;
                    self.deadline = Some(now + s.close_timeout);
                } else {
                    let e = Error::new(
                        ErrorKind::Timeout,
                        format!("close timed out: the peer did not complete the closing handshake within {} ms", ms(s.close_timeout)),
                    );
                    return Some(match self.failure.take() {
                        Some(f) => failed((f.0, f.1, f.2.context(e))),
                        None => unclean(e),
                    });
                }
            }
        }
        if let Some((at, seen)) = self.stall {
            if now >= at {
                let delivered = self.conn.delivered();
                if delivered == seen {
                    return Some(unclean(Error::new(
                        ErrorKind::Timeout,
                        format!("close timed out: queued messages could not be written for {} ms (the peer is not reading)", ms(s.close_timeout)),
                    )));
                }
                self.stall = Some((now + s.close_timeout, delivered));
            }
        }
        if self.pong_due.is_some_and(|d| now >= d) {
            if self.blocked {
                // Reading is paused: the Pong may be waiting unread behind messages.
                self.pong_due = Some(now + s.pong_timeout);
            } else {
                return Some(unclean(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no Pong within {} ms of a Ping: the peer is unreachable",
                        ms(s.pong_timeout)
                    ),
                )));
            }
        }
        if self.ping_at.is_some_and(|p| now >= p) {
            self.ping_at = Some(now + s.ping_interval);
            if self.conn.state() == State::Open && self.ours.is_none() {
                let before = self.wbuf.len();
                let sent = match s.heartbeat {
                    Heartbeat::Ping => {
                        self.pong_due.get_or_insert(now + s.pong_timeout);
                        self.ping_out = Some((now, Vec::new()));
                        self.encoder.ping(&mut self.wbuf, &[])
                    }
                    Heartbeat::Pong => self.encoder.pong(&mut self.wbuf, &[]),
                };
                if sent.is_ok() {
                    self.encoded += (self.wbuf.len() - before) as u64;
                    *busy = true;
                }
            }
        }
        let next = [
            self.cap,
            self.callbacks_due,
            self.deadline,
            self.stall.map(|s| s.0),
            self.pong_due,
            self.ping_at,
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(next) = next {
            if self.sleep.deadline() != next.into() {
                self.sleep.as_mut().reset(next.into());
            }
            if self.sleep.as_mut().poll(cx).is_ready() {
                *busy = true;
            }
        }
        None
    }
}

/// Reads at most `room` bytes into `buf`'s spare capacity (reserving it).
fn poll_read_into(
    io: &mut BoxIo,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    room: usize,
) -> Poll<std::io::Result<usize>> {
    buf.reserve(room);
    let spare = &mut buf.spare_capacity_mut()[..room];
    let mut rb = ReadBuf::uninit(spare);
    match Pin::new(io).poll_read(cx, &mut rb) {
        Poll::Ready(Ok(())) => {
            let n = rb.filled().len();
            // SAFETY: `n` bytes of the spare capacity were initialised by the read.
            unsafe { buf.set_len(buf.len() + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}
