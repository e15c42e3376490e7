//! The connection actor: the only owner of a connection's socket.
//!
//! Three tasks per open connection: the reader (never stops reading while the connection
//! lives, so pings and Close frames are answered without the application, G4), the writer
//! (drains the send queue in order, G1), and the supervisor (this module's `supervise`), which
//! alone decides when and how the connection ends (G3, G5, G6) and delivers the close event.

use super::{aborted, CloseInfo, Command, Conn, ConnChannels, Event, State};
use crate::error::{Error, ErrorKind};
use crate::options::Heartbeat;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// The stream type every connection runs on: TCP or TLS, client or server.
pub(crate) type WsStream = WebSocketStream<crate::io::BoxIo>;

/// What the other parts tell the supervisor.
pub(crate) enum Note {
    /// The application called `close` (the Close command follows the queued messages).
    CloseRequested(Instant),
    /// The application called `abort`.
    Abort,
    /// The writer is about to write our Close frame.
    CloseSending(CloseFrame),
    /// The writer has written our Close frame.
    CloseSent,
    /// The reader got the peer's Close frame.
    CloseReceived(Option<CloseFrame>),
    /// The reader got a Pong.
    Pong,
    /// The reader stopped: `None` at the clean end of the stream, else why.
    ReadEnded(Option<tungstenite::Error>),
    /// The writer could not write.
    WriteEnded(tungstenite::Error),
    /// The callbacks queued before a failure have run (or were dropped): see `after_callbacks`.
    Delivered,
    /// This side fails the connection with a code (a full send queue under the close policy).
    Fail(u16, &'static str, Error),
    /// The next frame from the peer is its Close, held back (see `close_hold.rs`).
    PeerClosePending,
}

/// What the supervisor asks the writer to send ahead of the queue.
enum Control {
    Ping,
    Pong,
    Fail(CloseFrame),
}

/// Runs an open connection to its end, then delivers the close event.
pub(crate) async fn run(conn: Arc<Conn>, ws: WsStream, channels: ConnChannels) {
    let ConnChannels { commands, mut notes } = channels;
    if conn.state() == State::Connecting {
        conn.set_state(State::Open);
    }
    conn.deliver(Event::Open);
    let (sink, stream) = ws.split();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_loop(conn.clone(), stream));
    let writer = tokio::spawn(write_loop(conn.clone(), sink, commands, control_rx));
    let info = supervise(&conn, &mut notes, &control_tx).await;
    conn.set_socket_fd(-1); // the socket closes below
    reader.abort();
    writer.abort();
    let _ = reader.await;
    let _ = writer.await; // both halves dropped: the socket is closed
    finish(&conn, info);
}

/// Ends a connection (open or not): no more sends, state Closed, the close event last.
pub(crate) fn finish(conn: &Arc<Conn>, info: CloseInfo) {
    conn.close_gate("the connection is closed");
    conn.set_state(State::Closed);
    conn.deliver(Event::Close(info));
}

/// Waits for `fut` unless the application closes or aborts first (`None`).
pub(crate) async fn unless_cancelled<F: std::future::Future>(
    fut: F,
    notes: &mut mpsc::UnboundedReceiver<Note>,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            n = notes.recv() => match n {
                Some(Note::Abort) | Some(Note::CloseRequested(_)) | None => return None,
                Some(_) => {}
            },
        }
    }
}

async fn read_loop(conn: Arc<Conn>, mut stream: SplitStream<WsStream>) {
    loop {
        match stream.next().await {
            None => return conn.notify(Note::ReadEnded(None)),
            Some(Ok(Message::Text(t))) => {
                conn.deliver(Event::Message { text: true, data: Bytes::from(t) });
                conn.wait_for_receive_room().await;
            }
            Some(Ok(Message::Binary(b))) => {
                conn.deliver(Event::Message { text: false, data: b });
                conn.wait_for_receive_room().await;
            }
            Some(Ok(Message::Pong(_))) => conn.notify(Note::Pong),
            Some(Ok(Message::Close(f))) => conn.notify(Note::CloseReceived(f)),
            Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => {}
            Some(Err(e)) => return conn.notify(Note::ReadEnded(Some(e))),
        }
    }
}

async fn write_loop(
    conn: Arc<Conn>,
    mut sink: SplitSink<WsStream, Message>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut last_fed = 0;
    let result: Result<(), tungstenite::Error> = async {
        loop {
            let close = tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Ping) => { sink.send(Message::Ping(Bytes::new())).await?; None }
                    Some(Control::Pong) => { sink.send(Message::Pong(Bytes::new())).await?; None }
                    Some(Control::Fail(frame)) => Some(frame),
                    None => return Ok(()),
                },
                c = commands.recv() => match c {
                    Some(Command::Send(msg, len, id)) => {
                        conn.feeding(len);
                        sink.feed(msg).await?;
                        last_fed = id;
                        if commands.is_empty() {
                            sink.flush().await?;
                            conn.sent(last_fed);
                        }
                        None
                    }
                    Some(Command::Close(frame)) => Some(frame),
                    Some(Command::ReleaseHold) => {
                        sink.flush().await?;
                        conn.sent(last_fed);
                        conn.hold.release();
                        None
                    }
                    None => return Ok(()),
                },
            };
            if let Some(frame) = close {
                conn.notify(Note::CloseSending(frame.clone()));
                sink.send(Message::Close(Some(frame))).await?;
                conn.notify(Note::CloseSent);
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        conn.notify(Note::WriteEnded(e));
    }
}

/// Sends `Note::Delivered` when dropped: posted into the connection's mailbox, it is dropped
/// once the callbacks queued before it have run, or at once when the mailbox no longer runs
/// callbacks (released or sealed).
struct DeliveredGuard(Arc<Conn>);

impl Drop for DeliveredGuard {
    fn drop(&mut self) {
        self.0.notify(Note::Delivered);
    }
}

/// Arranges for `Note::Delivered` once every callback queued so far has run, so that what they
/// send goes out before the Close frame of a failed connection.
fn after_callbacks(conn: &Arc<Conn>) {
    conn.after_delivered(Box::new(DeliveredGuard(conn.clone())));
}

/// The close event when the reading side ended after the peer's Close (or at the end of the
/// stream without one).
fn read_end(theirs: &Option<Option<CloseFrame>>, ours: &Option<CloseFrame>, we_started: bool) -> CloseInfo {
    match (theirs, ours) {
        (Some(_), Some(f)) if we_started => CloseInfo {
            code: f.code.into(),
            reason: f.reason.to_string(),
            was_clean: true,
            error: None,
        },
        (Some(Some(f)), _) => CloseInfo { code: f.code.into(), reason: f.reason.to_string(), was_clean: true, error: None },
        (Some(None), _) => CloseInfo { code: 1005, reason: String::new(), was_clean: true, error: None },
        (None, _) => CloseInfo {
            code: 1006,
            reason: String::new(),
            was_clean: false,
            error: Some(Error::new(ErrorKind::Io, "connection closed by peer without a Close frame")),
        },
    }
}

/// How a read error ends the connection.
enum ReadFailure {
    /// The peer broke the protocol: send a Close frame with this code, then drop.
    Fail(u16, &'static str, Error),
    /// The stream is gone: 1006.
    Broken(Error),
}

fn classify(e: tungstenite::Error) -> ReadFailure {
    use tungstenite::error::ProtocolError as P;
    use tungstenite::Error as E;
    match e {
        E::Protocol(P::ResetWithoutClosingHandshake) => {
            ReadFailure::Broken(Error::new(ErrorKind::Io, "connection closed by peer without a Close frame"))
        }
        E::Protocol(p) => ReadFailure::Fail(
            1002,
            "protocol error",
            Error::new(ErrorKind::Protocol, format!("the peer broke the WebSocket protocol: {p}")),
        ),
        E::Utf8(_) => ReadFailure::Fail(
            1007,
            "invalid UTF-8",
            Error::new(ErrorKind::Protocol, "the peer sent a text message that is not valid UTF-8"),
        ),
        E::Capacity(c) => ReadFailure::Fail(
            1009,
            "message too big",
            Error::new(ErrorKind::Protocol, format!("the peer sent a message over the size limit: {c}")),
        ),
        E::Io(io) => ReadFailure::Broken(io.into()),
        other => ReadFailure::Broken(Error::new(ErrorKind::Io, other.to_string())),
    }
}

fn ms(d: std::time::Duration) -> u128 {
    d.as_millis()
}

/// Decides how the connection ends; returns its close event.
async fn supervise(
    conn: &Arc<Conn>,
    notes: &mut mpsc::UnboundedReceiver<Note>,
    control: &mpsc::UnboundedSender<Control>,
) -> CloseInfo {
    let s = conn.settings.clone();
    let mut ours: Option<CloseFrame> = None; // our Close frame, once the writer started it
    let mut theirs: Option<Option<CloseFrame>> = None; // the peer's Close frame
    let mut we_started = false;
    let mut failure: Option<(u16, &'static str, Error)> = None;
    let mut deadline: Option<Instant> = None; // the closing handshake must be over by then
    let mut deadline_seen = 0; // bytes delivered when the deadline was last set
    let mut cap: Option<Instant> = None; // the close must be over by then, however slow the peer
    let mut stall: Option<(Instant, usize)> = None; // while draining before our Close
    let heartbeat = !s.ping_interval.is_zero();
    let mut ping_at = heartbeat.then(|| Instant::now() + s.ping_interval);
    let mut pong_due: Option<Instant> = None;
    let mut close_requested = false; // the application called close
    // After a failure: the Close frame waits until the callbacks already queued have run (or
    // until then), so that their replies to earlier messages are sent first.
    let mut callbacks_due: Option<Instant> = None;
    // The peer's Close is held until the callbacks already queued have run and the writer has
    // sent what they queued, or until then.
    let mut hold_due: Option<Instant> = None;

    let unclean = |error: Error| CloseInfo { code: 1006, reason: String::new(), was_clean: false, error: Some(error) };
    let failed = |f: (u16, &'static str, Error)| CloseInfo { code: f.0, reason: f.1.to_owned(), was_clean: false, error: Some(f.2) };

    loop {
        let timer = [deadline, cap, stall.map(|s| s.0), ping_at, pong_due, callbacks_due, hold_due].into_iter().flatten().min();
        let note = tokio::select! {
            n = notes.recv() => n,
            _ = sleep_until(timer.unwrap_or_else(Instant::now).into()), if timer.is_some() => {
                let now = Instant::now();
                if hold_due.is_some_and(|d| now >= d) {
                    // A callback or the peer is slow: answer the Close without waiting longer.
                    hold_due = None;
                    conn.hold.release();
                    continue;
                }
                if callbacks_due.is_some_and(|d| now >= d) {
                    // A callback is slow: send the Close frame without waiting any longer.
                    callbacks_due = None;
                    if let Some(info) = queue_fail_close(conn, &failure, &mut deadline, s.close_timeout) {
                        return info;
                    }
                    continue;
                }
                if cap.is_some_and(|d| now >= d) {
                    let e = Error::new(ErrorKind::Timeout, format!(
                        "close timed out: the closing handshake did not finish within {} ms in all (the peer reads too slowly)",
                        ms(s.close_max)));
                    return match failure { Some(f) => failed((f.0, f.1, f.2.context(e))), None => unclean(e) };
                }
                if deadline.is_some_and(|d| now >= d) && conn.delivered() != deadline_seen {
                    // Our Close frame is still on its way behind data the peer keeps taking.
                    deadline_seen = conn.delivered();
                    deadline = Some(now + s.close_timeout);
                    continue;
                }
                if deadline.is_some_and(|d| now >= d) {
                    let e = Error::new(ErrorKind::Timeout, format!(
                        "close timed out: the peer did not complete the closing handshake within {} ms", ms(s.close_timeout)));
                    return match failure { Some(f) => failed((f.0, f.1, f.2.context(e))), None => unclean(e) };
                }
                if let Some((at, seen)) = stall {
                    if now >= at {
                        let progress = conn.delivered();
                        if progress == seen {
                            return unclean(Error::new(ErrorKind::Timeout, format!(
                                "close timed out: queued messages could not be written for {} ms (the peer is not reading)",
                                ms(s.close_timeout))));
                        }
                        stall = Some((now + s.close_timeout, progress));
                    }
                }
                if pong_due.is_some_and(|d| now >= d) {
                    if conn.read_waiting() {
                        // Reading is paused: the Pong may be waiting unread behind messages.
                        pong_due = Some(now + s.pong_timeout);
                    } else {
                        return unclean(Error::new(ErrorKind::Timeout, format!(
                            "no Pong within {} ms of a Ping: the peer is unreachable", ms(s.pong_timeout))));
                    }
                }
                if ping_at.is_some_and(|p| now >= p) {
                    ping_at = Some(now + s.ping_interval);
                    if conn.state() == State::Open {
                        match s.heartbeat {
                            Heartbeat::Ping => {
                                let _ = control.send(Control::Ping);
                                pong_due.get_or_insert(now + s.pong_timeout);
                            }
                            Heartbeat::Pong => { let _ = control.send(Control::Pong); }
                        }
                    }
                }
                continue;
            }
        };
        match note {
            None | Some(Note::Abort) => return unclean(aborted()),
            Some(Note::CloseRequested(at)) => {
                close_requested = true;
                cap.get_or_insert(at + s.close_max);
                conn.set_state(State::Closing);
                if ours.is_none() && stall.is_none() {
                    stall = Some((at + s.close_timeout, conn.delivered()));
                }
            }
            Some(Note::CloseSending(frame)) => {
                conn.hold.release(); // our Close goes out: let the peer's in
                hold_due = None;
                conn.set_state(State::Closing);
                we_started |= theirs.is_none();
                ours = Some(frame);
                stall = None;
                deadline_seen = conn.delivered();
                deadline.get_or_insert(Instant::now() + s.close_timeout);
                ping_at = None;
                pong_due = None;
            }
            Some(Note::CloseSent) => {
                if let Some(f) = failure {
                    // The connection failed: the Close frame tells the peer why; no need to wait.
                    return failed(f);
                }
            }
            Some(Note::PeerClosePending) => {
                after_callbacks(conn);
                hold_due = Some(Instant::now() + s.close_timeout);
            }
            Some(Note::CloseReceived(frame)) => {
                hold_due = None;
                cap.get_or_insert(Instant::now() + s.close_max);
                conn.close_gate("the peer closed the connection");
                conn.set_state(State::Closing);
                theirs = Some(frame);
                stall = None;
                deadline.get_or_insert(Instant::now() + s.close_timeout);
                ping_at = None;
                pong_due = None;
            }
            Some(Note::Pong) => pong_due = None,
            Some(Note::Fail(code, reason, error)) => {
                if ours.is_some() || failure.is_some() {
                    continue;
                }
                failure = Some((code, reason, error));
                stall = None;
                ping_at = None;
                pong_due = None;
                conn.set_state(State::Closing);
                // Ahead of the queue, which is what is stuck.
                let _ = control.send(Control::Fail(CloseFrame { code: code.into(), reason: reason.into() }));
                deadline = Some(Instant::now() + s.close_timeout);
                cap.get_or_insert(Instant::now() + s.close_max);
            }
            Some(Note::ReadEnded(None)) => return read_end(&theirs, &ours, we_started),
            Some(Note::ReadEnded(Some(e))) => match classify(e) {
                // The peer's Close arrived: a stream that then ends without ceremony (a TLS
                // peer that skips close_notify, a reset) does not make the close unclean.
                ReadFailure::Broken(_) if theirs.is_some() => return read_end(&theirs, &ours, we_started),
                ReadFailure::Broken(error) => return unclean(error),
                // The peer's Close arrived and was answered (tungstenite replies while reading):
                // the closing handshake is over, so what the peer sends after it (tungstenite:
                // "Remote sent after having closed") is ignored rather than answered with a
                // second Close frame that can no longer be sent.
                ReadFailure::Fail(..) if theirs.is_some() => return read_end(&theirs, &ours, we_started),
                ReadFailure::Fail(code, reason, error) => {
                    if ours.is_some() {
                        conn.close_gate("the connection failed");
                        return failed((code, reason, error));
                    }
                    failure = Some((code, reason, error));
                    stall = None;
                    ping_at = None;
                    pong_due = None;
                    if close_requested {
                        // The application's Close frame is queued: ours goes ahead of it.
                        conn.close_gate("the connection failed");
                        conn.set_state(State::Closing);
                        let frame = CloseFrame { code: code.into(), reason: reason.into() };
                        let _ = control.send(Control::Fail(frame));
                        deadline = Some(Instant::now() + s.close_timeout);
                    } else {
                        // Messages read before the failure may still be in the callbacks,
                        // whose replies should go out before our Close frame (Autobahn 3.2,
                        // 4.1.3, 5.15: echo, then fail). Wait for them, at most the close timeout.
                        after_callbacks(conn);
                        callbacks_due = Some(Instant::now() + s.close_timeout);
                    }
                }
            },
            Some(Note::Delivered) if hold_due.is_some() && callbacks_due.is_none() => {
                // The callbacks have run: once the writer has sent what they queued, the
                // peer's Close goes to tungstenite, which answers it.
                if conn.commands.send(Command::ReleaseHold).is_err() {
                    conn.hold.release();
                }
            }
            Some(Note::Delivered) => {
                if callbacks_due.take().is_some() {
                    if let Some(info) = queue_fail_close(conn, &failure, &mut deadline, s.close_timeout) {
                        return info;
                    }
                }
            }
            Some(Note::WriteEnded(e)) => {
                let closing = theirs.is_some() || ours.is_some();
                let benign = matches!(
                    e,
                    tungstenite::Error::ConnectionClosed
                        | tungstenite::Error::AlreadyClosed
                        | tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing)
                );
                if benign {
                    // The peer closed first; the reader reports how, and soon.
                    deadline.get_or_insert(Instant::now() + s.close_timeout);
                } else {
                    let _ = closing;
                    let error = match e {
                        tungstenite::Error::Io(io) => Error::from(io),
                        other => Error::new(ErrorKind::Io, other.to_string()),
                    };
                    return match failure {
                        Some(f) => failed(f),
                        None => unclean(error.context("write failed")),
                    };
                }
            }
        }
    }
}

/// Queues the Close frame of a failed connection after the messages already queued, and closes
/// the queue. Returns the close event when the writer is already gone.
fn queue_fail_close(
    conn: &Arc<Conn>,
    failure: &Option<(u16, &'static str, Error)>,
    deadline: &mut Option<Instant>,
    close_timeout: std::time::Duration,
) -> Option<CloseInfo> {
    let (code, reason, error) = failure.as_ref()?;
    conn.close_gate("the connection failed");
    conn.set_state(State::Closing);
    let frame = CloseFrame { code: (*code).into(), reason: (*reason).into() };
    if conn.commands.send(Command::Close(frame)).is_err() {
        return Some(CloseInfo { code: *code, reason: (*reason).to_owned(), was_clean: false, error: Some(error.clone()) });
    }
    deadline.get_or_insert(Instant::now() + close_timeout);
    None
}
