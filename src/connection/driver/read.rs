//! Reading: only while the application has room (the receive budget, the pause), into a
//! buffer that exists only while bytes wait, large payloads straight into their message;
//! messages, pings and the peer's Close handed on in order.

use super::*;
use crate::protocol::buffers;

impl Driver {
    /// Whether reading goes on: always while closing (the peer's Close must be read); else
    /// unless the application paused it or is over its receive budget.
    pub(super) fn may_read(&mut self, cx: &mut Context<'_>) -> bool {
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
        self.conn.task_waker.register(cx.waker());
        let blocked = stop(&self.conn, true) && self.conn.state() == State::Open;
        self.set_blocked(blocked);
        !blocked
    }

    pub(super) fn set_blocked(&mut self, b: bool) {
        self.blocked = b;
        self.conn.set_read_waiting(b);
    }

    pub(super) fn read(&mut self, cx: &mut Context<'_>, busy: &mut bool) -> Option<CloseInfo> {
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
                ReadHint::Direct { .. } => {
                    let (dst, remaining) = self.decoder.direct_target();
                    let spare = dst.capacity() - dst.len();
                    // Offered more than the frame has left when there is room (the read then
                    // ends short: see DIRECT_SLACK); else all but the last bytes, which go
                    // through the read buffer's larger room for the same reason.
                    let room = if spare > remaining {
                        remaining + (spare - remaining).min(READ_CHUNK)
                    } else {
                        remaining - DIRECT_TAIL
                    };
                    let n = match poll_read_into(&mut self.io, cx, dst, room) {
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
                        Ok(n) => match self.decoder.direct_overflow(n, &mut self.rbuf) {
                            Ok(Some(item)) => {
                                if let Some(end) = self.incoming(item) {
                                    return Some(end);
                                }
                                // What came after the message (moved to the read buffer).
                                if !self.rbuf.is_empty() {
                                    if let Some(end) = self.decode_buffered() {
                                        return Some(end);
                                    }
                                }
                                Ok(n)
                            }
                            Ok(None) => {
                                // The frame ended without ending its message: the next frame
                                // may be in the read buffer already.
                                if !self.rbuf.is_empty() {
                                    if let Some(end) = self.decode_buffered() {
                                        return Some(end);
                                    }
                                }
                                Ok(n)
                            }
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
                    if self.rbuf.capacity() == 0 && self.conn.bytes_read() > 0 {
                        self.rbuf = buffers::read_buffer(READ_CHUNK);
                    } else if self.rbuf.capacity() - self.rbuf.len() < 2 * DIRECT_TAIL {
                        self.rbuf.reserve(READ_CHUNK);
                    }
                    let room = self.rbuf.capacity() - self.rbuf.len();
                    match poll_read_into(&mut self.io, cx, &mut self.rbuf, room) {
                        Poll::Pending => {
                            if self.rbuf.is_empty() {
                                // Idle: hold no buffer (the thread keeps one spare).
                                let b = std::mem::take(&mut self.rbuf);
                                buffers::spare_read_buffer(b, READ_CHUNK);
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
    pub(super) fn decode_buffered(&mut self) -> Option<CloseInfo> {
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

    pub(super) fn incoming(&mut self, item: Incoming) -> Option<CloseInfo> {
        match item {
            Incoming::Message { text, data } => {
                self.conn.count_message_in();
                if self.ours.is_none() || self.theirs.is_none() {
                    // A large message's buffer goes back to the pool once its callback is
                    // done with it (when it ran here, inline, and kept no reference).
                    let large = (data.len() >= buffers::MIN).then(|| data.clone());
                    self.conn.deliver(Event::Message { text, data });
                    if let Some(data) = large {
                        buffers::recycle(data);
                    }
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
                if let Some((at, want)) = self.ping_out.as_deref() {
                    if p[..] == want[..] {
                        self.conn.record_rtt(at.elapsed());
                        self.ping_out = None;
                    }
                }
            }
            Incoming::Close(frame) => {
                let s = &self.conn.settings;
                self.theirs = Some(Box::new(frame));
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

    pub(super) fn read_ended(&mut self, e: Option<std::io::Error>) -> Option<CloseInfo> {
        self.eof = true;
        if self.theirs.is_some() || e.is_none() {
            if let Some(f) = self.failure.take() {
                return Some(failed(*f));
            }
            return Some(read_end(&self.theirs, &self.ours, self.we_started));
        }
        if let Some(f) = self.failure.take() {
            return Some(failed(*f));
        }
        Some(unclean(Error::from(e.unwrap_or_else(|| {
            std::io::ErrorKind::UnexpectedEof.into()
        }))))
    }
}

/// Reads at most `room` bytes into `buf`'s spare capacity (reserving it).
pub(super) fn poll_read_into(
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
