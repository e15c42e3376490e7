//! Frames to messages: the receiving half of the protocol.
//!
//! Bytes are processed as they arrive, including partial payloads: a text message is
//! UTF-8-checked chunk by chunk (so invalid text fails at the first bad byte, even in a
//! frame still arriving), compressed payloads are inflated as they come, and limits are
//! checked from the frame header before anything is allocated.
//!
//! Buffers: a whole small unfragmented frame already in the read buffer becomes the
//! message by `split_to` (no allocation, no copy); a payload that arrives over several
//! reads is appended to the message's own buffer, reserved once from the header; and a
//! large one can be read straight into that buffer ([`ReadHint::Direct`]).

use super::deflate::{DeflateParams, Inflater};
use super::frame::{apply_mask, extend_masked, FrameHeader, OpCode};
use super::utf8::Utf8Validator;
use super::{close_code_allowed, ProtocolError, Role};
use bytes::buf::Limit;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Whole frames shorter than this are copied out of the read buffer; longer ones are split
/// off it (no copy, but the message then shares the read buffer's allocation).
pub const SPLIT_MIN: usize = 1024;

/// Room a directly read payload's buffer has past the payload's end: a read into it is offered
/// more than the frame has left, so the last read of a payload ends short (tokio then knows
/// the socket is drained without another read that only says EAGAIN), and whatever follows
/// the frame lands there, to be moved to the read buffer ([`Decoder::direct_overflow`]).
pub(crate) const DIRECT_SLACK: usize = 4 << 10;

/// Payloads at least this long left in a frame are worth reading directly into the
/// message buffer rather than through the connection's small read buffer.
pub const DIRECT_MIN: usize = 16 << 10;

#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub role: Role,
    /// Largest message (after inflating); more is 1009.
    pub max_message_size: usize,
    /// Largest frame payload (as sent, compressed or not); more is 1009.
    pub max_frame_size: usize,
    /// permessage-deflate, when negotiated.
    pub deflate: Option<DeflateParams>,
}

impl DecoderConfig {
    pub fn new(role: Role, max_message_size: usize) -> Self {
        DecoderConfig {
            role,
            max_message_size,
            max_frame_size: max_message_size,
            deflate: None,
        }
    }
}

/// What the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole message: inflated, and valid UTF-8 when `text`.
    Message {
        text: bool,
        data: Bytes,
    },
    Ping(Bytes),
    Pong(Bytes),
    /// The peer's Close: code and reason, or `None` for an empty Close. Validated. Not
    /// answered: the driver answers it (see [`super::close_reply`]) when it is ready.
    Close(Option<(u16, String)>),
}

/// How the driver should read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadHint {
    /// Between frames with nothing pending: if the read buffer is empty too, the driver
    /// may release it and read into a small pooled or stack buffer.
    Idle,
    /// Read into the usual (small) read buffer and call `decode`.
    Buffered,
    /// A large uncompressed payload is under way: read at most `remaining` bytes into
    /// [`Decoder::direct_buf`], then call [`Decoder::direct_filled`].
    Direct { remaining: usize },
}

struct FrameState {
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload bytes of this frame processed so far (mask phase).
    done: u64,
}

struct MessageState {
    text: bool,
    compressed: bool,
    data: BytesMut,
    utf8: Utf8Validator,
    frames: u32,
}

pub struct Decoder {
    role: Role,
    max_message: usize,
    max_frame: usize,
    inflater: Option<Inflater>,
    frame: Option<FrameState>,
    msg: Option<MessageState>,
    /// The peer's Close was received, or the decoder failed: later bytes are ignored.
    done: bool,
    close_received: bool,
    /// Frames seen, for error details.
    frames: u64,
}

impl Decoder {
    pub fn new(cfg: &DecoderConfig) -> Self {
        Decoder {
            role: cfg.role,
            max_message: cfg.max_message_size,
            max_frame: cfg.max_frame_size,
            inflater: cfg.deflate.as_ref().map(|p| Inflater::new(p, cfg.role)),
            frame: None,
            msg: None,
            done: false,
            close_received: false,
            frames: 0,
        }
    }

    /// The peer's Close has been decoded.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Consumes bytes from `buf` and returns the next complete item; call again until
    /// `Ok(None)` (then `buf` holds at most an incomplete frame header or control frame).
    /// After an error or the peer's Close, everything is ignored (RFC 6455 1.4, 7.1.7).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        if self.done {
            buf.clear();
            return Ok(None);
        }
        let r = self.decode_inner(buf);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn fail(&mut self) {
        self.done = true;
        self.frame = None;
        self.msg = None;
        if let Some(i) = &mut self.inflater {
            i.abort();
        }
    }

    #[inline(always)]
    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        loop {
            if self.frame.is_none() {
                let Some((h, hlen)) = FrameHeader::parse(buf)? else {
                    return Ok(None);
                };
                self.check_header(&h)?;
                let len = h.len as usize; // fits: checked against the limits
                if h.opcode.is_control() {
                    if buf.len() < hlen + len {
                        return Ok(None); // parsed again when the rest is in (at most 131 bytes)
                    }
                    self.frames += 1;
                    let p = &mut buf[hlen..hlen + len];
                    if let Some(m) = h.mask {
                        apply_mask(p, m, 0);
                    }
                    // Copied (at most 125 bytes): a Ping never pins the read buffer.
                    let p = if len == 0 {
                        Bytes::new()
                    } else {
                        Bytes::copy_from_slice(p)
                    };
                    buf.advance(hlen + len);
                    return self.control(h.opcode, p).map(Some);
                }
                self.frames += 1;
                if h.fin && h.opcode != OpCode::Continuation && !h.rsv1 && buf.len() >= hlen + len {
                    // The whole message is here.
                    let text = h.opcode == OpCode::Text;
                    let data = if len < SPLIT_MIN {
                        // Small: copied out, so that messages never pin the read buffer
                        // (and one small allocation costs less than sharing it).
                        let p = &mut buf[hlen..hlen + len];
                        if let Some(m) = h.mask {
                            apply_mask(p, m, 0);
                        }
                        let d = Bytes::copy_from_slice(p);
                        buf.advance(hlen + len);
                        d
                    } else {
                        // Larger: becomes the message without a copy.
                        buf.advance(hlen);
                        let mut p = buf.split_to(len);
                        if let Some(m) = h.mask {
                            apply_mask(&mut p, m, 0);
                        }
                        p.freeze()
                    };
                    if text && simdutf8::basic::from_utf8(&data).is_err() {
                        let at = simdutf8::compat::from_utf8(&data)
                            .unwrap_err()
                            .valid_up_to();
                        return Err(self.utf8_error(at as u64));
                    }
                    return Ok(Some(Incoming::Message { text, data }));
                }
                buf.advance(hlen);
                if h.opcode != OpCode::Continuation {
                    self.msg = Some(MessageState {
                        text: h.opcode == OpCode::Text,
                        compressed: h.rsv1,
                        data: BytesMut::new(),
                        utf8: Utf8Validator::new(),
                        frames: 0,
                    });
                }
                let msg = self.msg.as_mut().expect("checked in check_header");
                msg.frames += 1;
                if !msg.compressed {
                    // Limits were checked: the final buffer, reserved once (a large one from
                    // the pool of kept buffers).
                    // Payloads read directly get room for what may follow them (see
                    // `direct_target`).
                    let room = if len >= DIRECT_MIN {
                        len + DIRECT_SLACK
                    } else {
                        len
                    };
                    if msg.data.capacity() == 0 && len >= super::buffers::MIN {
                        msg.data = super::buffers::with_capacity(room);
                    } else {
                        msg.data.reserve(room);
                    }
                }
                self.frame = Some(FrameState {
                    fin: h.fin,
                    mask: h.mask,
                    remaining: h.len,
                    done: 0,
                });
            }
            // Inside a data frame's payload.
            let f = self.frame.as_mut().unwrap();
            let n = (f.remaining.min(buf.len() as u64)) as usize;
            if n == 0 && f.remaining > 0 {
                return Ok(None);
            }
            let (mask, phase) = (f.mask, f.done as usize);
            f.remaining -= n as u64;
            f.done += n as u64;
            let msg = self.msg.as_mut().unwrap();
            let before = msg.data.len();
            if msg.compressed {
                if let Some(m) = mask {
                    apply_mask(&mut buf[..n], m, phase);
                }
                let limit = self.max_message;
                let r = self
                    .inflater
                    .as_mut()
                    .unwrap()
                    .inflate(&buf[..n], &mut msg.data, limit);
                buf.advance(n);
                if let Err(e) = r {
                    // Errors in stream order, however the bytes were read: the text inflated
                    // before the corrupt data (or the limit) is checked first.
                    self.check_new_text(before)?;
                    return Err(e.into_protocol(limit));
                }
            } else {
                match mask {
                    Some(m) => extend_masked(&mut msg.data, &buf[..n], m, phase),
                    None => msg.data.extend_from_slice(&buf[..n]),
                }
                buf.advance(n);
            }
            self.check_new_text(before)?;
            if let Some(done) = self.frame_end()? {
                return Ok(Some(done));
            }
        }
    }

    /// Validates the bytes appended to the message since `before` if it is text.
    #[inline]
    fn check_new_text(&mut self, before: usize) -> Result<(), ProtocolError> {
        let msg = self.msg.as_mut().unwrap();
        if msg.text {
            if let Err(at) = msg.utf8.feed(&msg.data[before..]) {
                return Err(self.utf8_error(at));
            }
        }
        Ok(())
    }

    /// After payload bytes: if the frame is complete, ends it, and the message with it when
    /// this was the last frame.
    fn frame_end(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        let f = self.frame.as_ref().unwrap();
        if f.remaining > 0 {
            return Ok(None);
        }
        let fin = f.fin;
        self.frame = None;
        if !fin {
            return Ok(None);
        }
        let mut msg = self.msg.take().unwrap();
        if msg.compressed {
            let before = msg.data.len();
            let limit = self.max_message;
            let r = self.inflater.as_mut().unwrap().finish(&mut msg.data, limit);
            // As above: what was inflated before an error is checked first.
            if msg.text {
                if let Err(at) = msg.utf8.feed(&msg.data[before..]) {
                    return Err(self.utf8_error(at));
                }
            }
            r.map_err(|e| e.into_protocol(limit))?;
        }
        if msg.text {
            if let Err(at) = msg.utf8.finish() {
                return Err(ProtocolError::invalid_data(
                    "invalid UTF-8",
                    format!("text message ends inside a UTF-8 sequence starting at byte {at} (frame {})", self.frames),
                ));
            }
        }
        Ok(Some(Incoming::Message {
            text: msg.text,
            data: msg.data.freeze(),
        }))
    }

    fn utf8_error(&self, at: u64) -> ProtocolError {
        ProtocolError::invalid_data(
            "invalid UTF-8",
            format!(
                "text message has invalid UTF-8 at byte {at} (frame {})",
                self.frames
            ),
        )
    }

    /// The rules that need the role, the extensions or the message in progress.
    fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        let n = self.frames + 1;
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => {
                return Err(ProtocolError::protocol(
                    "unmasked frame",
                    format!("client frame {n} is not masked"),
                ))
            }
            (Role::Client, true) => {
                return Err(ProtocolError::protocol(
                    "masked frame",
                    format!("server frame {n} is masked"),
                ))
            }
            _ => {}
        }
        if h.rsv1 {
            let why = if self.inflater.is_none() {
                Some("RSV1 set but no extension was negotiated")
            } else if h.opcode.is_control() {
                Some("RSV1 set on a control frame")
            } else if h.opcode == OpCode::Continuation {
                Some("RSV1 set on a continuation frame")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ProtocolError::protocol(
                    "reserved bit set",
                    format!("frame {n}: {why}"),
                ));
            }
        }
        if h.opcode.is_control() {
            return Ok(());
        }
        match (h.opcode, self.msg.is_some()) {
            (OpCode::Continuation, false) => {
                return Err(ProtocolError::protocol(
                    "unexpected continuation",
                    format!("frame {n} continues a message that was not started"),
                ))
            }
            (OpCode::Text | OpCode::Binary, true) => {
                return Err(ProtocolError::protocol(
                    "expected continuation",
                    format!("frame {n} starts a new message inside a fragmented one"),
                ))
            }
            _ => {}
        }
        if h.len > self.max_frame as u64 {
            return Err(ProtocolError::too_big(
                "frame too big",
                format!(
                    "frame {n} announces {} bytes; the limit is {}",
                    h.len, self.max_frame
                ),
            ));
        }
        let compressed = h.rsv1 || self.msg.as_ref().is_some_and(|m| m.compressed);
        if !compressed {
            let so_far = self.msg.as_ref().map_or(0, |m| m.data.len() as u64);
            if so_far + h.len > self.max_message as u64 {
                return Err(ProtocolError::too_big(
                    "message too big",
                    format!(
                        "frame {n} brings the message to {} bytes; the limit is {}",
                        so_far + h.len,
                        self.max_message
                    ),
                ));
            }
        }
        Ok(())
    }

    fn control(&mut self, op: OpCode, p: Bytes) -> Result<Incoming, ProtocolError> {
        Ok(match op {
            OpCode::Ping => Incoming::Ping(p),
            OpCode::Pong => Incoming::Pong(p),
            _ => {
                let close = match p.len() {
                    0 => None,
                    1 => {
                        return Err(ProtocolError::protocol(
                            "invalid close frame",
                            format!("Close frame {} has a 1-byte payload", self.frames),
                        ))
                    }
                    _ => {
                        let code = u16::from_be_bytes([p[0], p[1]]);
                        if !close_code_allowed(code) {
                            return Err(ProtocolError::protocol(
                                "invalid close code",
                                format!(
                                    "Close frame {} has code {code}, which may not be sent",
                                    self.frames
                                ),
                            ));
                        }
                        match simdutf8::compat::from_utf8(&p[2..]) {
                            Ok(r) => Some((code, r.to_owned())),
                            Err(e) => {
                                return Err(ProtocolError::invalid_data(
                                    "invalid UTF-8",
                                    format!(
                                        "Close frame {} has a reason with invalid UTF-8 at byte {}",
                                        self.frames,
                                        e.valid_up_to()
                                    ),
                                ))
                            }
                        }
                    }
                };
                self.done = true;
                self.close_received = true;
                Incoming::Close(close)
            }
        })
    }

    /// How to read next (call after `decode` returned `Ok(None)`).
    pub fn read_hint(&self) -> ReadHint {
        match (&self.frame, &self.msg) {
            (Some(f), Some(m)) if !m.compressed && f.remaining >= DIRECT_MIN as u64 => {
                ReadHint::Direct {
                    remaining: f.remaining as usize,
                }
            }
            (None, None) => ReadHint::Idle,
            _ => ReadHint::Buffered,
        }
    }

    /// The message's own buffer, limited to the rest of the current frame: read into it
    /// (e.g. `AsyncReadExt::read_buf`), then call `direct_filled`. Only valid while
    /// `read_hint` says `Direct`.
    pub fn direct_buf(&mut self) -> Limit<&mut BytesMut> {
        let remaining = self.frame.as_ref().map_or(0, |f| f.remaining as usize);
        let msg = self.msg.as_mut().expect("direct_buf outside a data frame");
        // Reserved when the frame started; a no-op unless the caller consumed it.
        msg.data.reserve(remaining);
        (&mut msg.data).limit(remaining)
    }

    /// The message's own buffer and the bytes left in the current frame, for a read that may
    /// go past the frame's end into the buffer's spare room: call `direct_overflow` with
    /// what was read. Only valid while `read_hint` says `Direct`.
    pub fn direct_target(&mut self) -> (&mut BytesMut, usize) {
        let remaining = self.frame.as_ref().map_or(0, |f| f.remaining as usize);
        let msg = self
            .msg
            .as_mut()
            .expect("direct_target outside a data frame");
        msg.data.reserve(remaining);
        (&mut msg.data, remaining)
    }

    /// `n` bytes were read into `direct_target`'s buffer: those past the frame's end are moved
    /// to `rest` (the read buffer, decoded next), the frame's own are unmasked and checked, and
    /// the message is returned if they completed it.
    pub fn direct_overflow(
        &mut self,
        n: usize,
        rest: &mut BytesMut,
    ) -> Result<Option<Incoming>, ProtocolError> {
        let remaining = self.frame.as_ref().map_or(0, |f| f.remaining as usize);
        let mut n = n;
        if n > remaining {
            let data = &mut self.msg.as_mut().expect("inside a data frame").data;
            let end = data.len() - (n - remaining);
            rest.extend_from_slice(&data[end..]);
            data.truncate(end);
            n = remaining;
        }
        self.direct_filled(n)
    }

    /// `n` bytes were read into `direct_buf`: unmasks and checks them, and returns the
    /// message if they completed it.
    pub fn direct_filled(&mut self, n: usize) -> Result<Option<Incoming>, ProtocolError> {
        if n == 0 {
            return Ok(None);
        }
        let r = self.direct_filled_inner(n);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn direct_filled_inner(&mut self, n: usize) -> Result<Option<Incoming>, ProtocolError> {
        let f = self
            .frame
            .as_mut()
            .expect("direct_filled outside a data frame");
        assert!(
            n as u64 <= f.remaining,
            "direct_filled: more bytes than the frame has"
        );
        let (mask, phase) = (f.mask, f.done as usize);
        f.remaining -= n as u64;
        f.done += n as u64;
        let msg = self.msg.as_mut().unwrap();
        let before = msg.data.len() - n;
        if let Some(m) = mask {
            apply_mask(&mut msg.data[before..], m, phase);
        }
        self.check_new_text(before)?;
        self.frame_end()
    }
}
