//! Messages to frames: the sending half of the protocol.
//!
//! Frames go into a [`WriteBuf`]: small frames (and the headers of large ones) are batched
//! in one buffer, so many small messages leave in one write; a large payload stays in its
//! own `Bytes` and is written by reference (vectored write of header and payload), never
//! copied into a frame buffer. A client must mask, which changes the payload: it masks in
//! place when it owns the `Bytes` alone, and masks into a copy otherwise.
//!
//! Masking keys come from `rand::random` (the thread-local ChaCha generator, reseeded from
//! the OS; tungstenite does the same): unpredictable even to someone who sees earlier keys
//! on the wire, at a few nanoseconds per frame.

use super::deflate::{DeflateParams, Deflater};
use super::frame::{
    apply_mask, extend_masked, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
use super::{close_code_allowed, Role};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;

/// Payloads up to this size are copied into the batch buffer; larger ones are written by
/// reference. A copy of 2 KiB costs less than an extra iovec and queue entry.
pub const COPY_MAX: usize = 2 << 10;

/// Batch capacity kept after everything is written; more is freed (a burst of small
/// messages must not pin a large buffer on an idle connection).
const KEEP_CAPACITY: usize = 16 << 10;

#[derive(Debug, Clone)]
pub struct EncoderConfig {
    pub role: Role,
    /// permessage-deflate, when negotiated.
    pub deflate: Option<DeflateParams>,
    /// zlib level 0-9.
    pub level: u32,
    /// Messages shorter than this are never compressed.
    pub threshold: usize,
}

impl EncoderConfig {
    pub fn new(role: Role) -> Self {
        EncoderConfig {
            role,
            deflate: None,
            level: 6,
            threshold: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Our Close has been queued: nothing may follow it.
    Closed,
    /// A Ping, Pong or Close payload over 125 bytes.
    ControlTooLong(usize),
    /// A close code that may not be sent.
    InvalidCloseCode(u16),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => write!(f, "the Close frame has been sent: nothing may follow it"),
            SendError::ControlTooLong(n) => {
                write!(f, "control frame payload of {n} bytes (at most 125)")
            }
            SendError::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
        }
    }
}

impl std::error::Error for SendError {}

enum Seg {
    /// The next this many bytes of the batch buffer.
    Batch(usize),
    /// A payload written by reference.
    Chunk(Bytes),
}

/// Bytes waiting to be written: small frames batched in one buffer, large payloads by
/// reference, in order.
#[derive(Default)]
pub struct WriteBuf {
    batch: BytesMut,
    segs: VecDeque<Seg>,
    len: usize,
}

impl WriteBuf {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `out` with slices of what is waiting, in order; returns how many were set.
    /// For `write_vectored`.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut at = 0; // offset in the batch buffer
        let mut n = 0;
        for seg in &self.segs {
            if n == out.len() {
                break;
            }
            match seg {
                Seg::Batch(len) => {
                    out[n] = IoSlice::new(&self.batch[at..at + len]);
                    at += len;
                }
                Seg::Chunk(b) => out[n] = IoSlice::new(b),
            }
            n += 1;
        }
        n
    }

    /// `n` bytes were written.
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance past the end of the write buffer");
        self.len -= n;
        while n > 0 {
            let front = self.segs.front_mut().unwrap();
            match front {
                Seg::Batch(len) => {
                    let k = n.min(*len);
                    self.batch.advance(k);
                    *len -= k;
                    n -= k;
                    if *len == 0 {
                        self.segs.pop_front();
                    }
                }
                Seg::Chunk(b) => {
                    let k = n.min(b.len());
                    b.advance(k);
                    n -= k;
                    if b.is_empty() {
                        if let Some(Seg::Chunk(done)) = self.segs.pop_front() {
                            super::buffers::recycle(done);
                        }
                    }
                }
            }
        }
        if self.len == 0 {
            if self.batch.capacity() > KEEP_CAPACITY {
                self.batch = BytesMut::new();
            } else {
                self.batch.clear();
            }
        }
    }

    /// Frees all memory if nothing is waiting (for a connection going idle).
    pub fn release(&mut self) {
        if self.len == 0 {
            self.batch = BytesMut::new();
            self.segs = VecDeque::new();
        }
    }

    /// Appends bytes written into the batch buffer by `f`.
    #[inline]
    fn push_batch(&mut self, f: impl FnOnce(&mut BytesMut)) {
        let before = self.batch.len();
        f(&mut self.batch);
        let n = self.batch.len() - before;
        if n == 0 {
            return;
        }
        self.len += n;
        match self.segs.back_mut() {
            Some(Seg::Batch(len)) => *len += n,
            _ => self.segs.push_back(Seg::Batch(n)),
        }
    }

    fn push_chunk(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.len += b.len();
        self.segs.push_back(Seg::Chunk(b));
    }
}

pub struct Encoder {
    role: Role,
    deflater: Option<Deflater>,
    threshold: usize,
    close_sent: bool,
}

impl Encoder {
    pub fn new(cfg: &EncoderConfig) -> Self {
        Encoder {
            role: cfg.role,
            deflater: cfg
                .deflate
                .as_ref()
                .map(|p| Deflater::new(p, cfg.role, cfg.level)),
            threshold: cfg.threshold,
            close_sent: false,
        }
    }

    /// Our Close has been queued.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    fn mask(&self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(rand::random()),
            Role::Server => None,
        }
    }

    /// Queues a whole message as one frame. `compress`: may be compressed (when deflate
    /// was negotiated and the message reaches the threshold); pass `false` for messages
    /// that carry secrets next to attacker-controlled text (CRIME/BREACH).
    pub fn message(
        &mut self,
        out: &mut WriteBuf,
        text: bool,
        data: Bytes,
        compress: bool,
    ) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        if compress && data.len() >= self.threshold {
            if let Some(d) = &mut self.deflater {
                let mut z = BytesMut::new();
                d.compress(&data, &mut z);
                let mask = self.mask();
                self.frame(out, opcode, true, mask, Payload::Owned(z));
                return Ok(());
            }
        }
        let mask = self.mask();
        self.frame(out, opcode, false, mask, Payload::Shared(data));
        Ok(())
    }

    /// Queues a frame built by [`shared_frame`] (a server's broadcast): by reference when
    /// large, copied into the batch when small, as `message` does. A client must mask, so
    /// its side encodes `payload` itself (uncompressed).
    pub fn prebuilt(
        &mut self,
        out: &mut WriteBuf,
        frame: Bytes,
        text: bool,
        payload: Bytes,
    ) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if self.role == Role::Client {
            return self.message(out, text, payload, false);
        }
        if frame.len() <= COPY_MAX + MAX_HEADER_LEN {
            out.push_batch(|b| b.extend_from_slice(&frame));
        } else {
            out.push_chunk(frame);
        }
        Ok(())
    }

    pub fn ping(&mut self, out: &mut WriteBuf, payload: &[u8]) -> Result<(), SendError> {
        self.control(out, OpCode::Ping, payload)
    }

    pub fn pong(&mut self, out: &mut WriteBuf, payload: &[u8]) -> Result<(), SendError> {
        self.control(out, OpCode::Pong, payload)
    }

    /// Queues our Close (`None`: an empty Close). Nothing can be queued after it.
    pub fn close(
        &mut self,
        out: &mut WriteBuf,
        close: Option<(u16, &str)>,
    ) -> Result<(), SendError> {
        let mut p = [0u8; MAX_CONTROL_PAYLOAD];
        let n = match close {
            None => 0,
            Some((code, reason)) => {
                if !close_code_allowed(code) {
                    return Err(SendError::InvalidCloseCode(code));
                }
                if 2 + reason.len() > MAX_CONTROL_PAYLOAD {
                    return Err(SendError::ControlTooLong(2 + reason.len()));
                }
                p[..2].copy_from_slice(&code.to_be_bytes());
                p[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
                2 + reason.len()
            }
        };
        self.control(out, OpCode::Close, &p[..n])?;
        self.close_sent = true;
        Ok(())
    }

    fn control(&mut self, out: &mut WriteBuf, op: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        let mask = self.mask();
        out.push_batch(|b| {
            write_header(
                b,
                FrameHeader {
                    fin: true,
                    rsv1: false,
                    opcode: op,
                    mask,
                    len: payload.len() as u64,
                },
            );
            put_payload(b, payload, mask);
        });
        Ok(())
    }

    fn frame(
        &mut self,
        out: &mut WriteBuf,
        opcode: OpCode,
        rsv1: bool,
        mask: Option<[u8; 4]>,
        p: Payload,
    ) {
        let len = p.len();
        let h = FrameHeader {
            fin: true,
            rsv1,
            opcode,
            mask,
            len: len as u64,
        };
        if len <= COPY_MAX {
            out.push_batch(|b| {
                b.reserve(FrameHeader::encoded_len(len as u64, mask.is_some()) + len);
                write_header(b, h);
                put_payload(b, p.as_slice(), mask);
            });
            return;
        }
        out.push_batch(|b| write_header(b, h));
        let chunk = match (mask, p) {
            (None, Payload::Shared(b)) => b,
            (None, Payload::Owned(b)) => b.freeze(),
            (Some(m), Payload::Owned(mut b)) => {
                apply_mask(&mut b, m, 0);
                b.freeze()
            }
            (Some(m), Payload::Shared(b)) => match b.try_into_mut() {
                Ok(mut own) => {
                    apply_mask(&mut own, m, 0);
                    own.freeze()
                }
                Err(shared) => {
                    let mut copy = super::buffers::with_capacity(shared.len());
                    extend_masked(&mut copy, &shared, m, 0);
                    copy.freeze()
                }
            },
        };
        out.push_chunk(chunk);
    }
}

enum Payload {
    Shared(Bytes),
    Owned(BytesMut),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Shared(b) => b.len(),
            Payload::Owned(b) => b.len(),
        }
    }
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Shared(b) => b,
            Payload::Owned(b) => b,
        }
    }
}

#[inline]
fn write_header(b: &mut BytesMut, h: FrameHeader) {
    let mut hb = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut hb);
    b.extend_from_slice(&hb[..n]);
}

#[inline]
fn put_payload(b: &mut BytesMut, p: &[u8], mask: Option<[u8; 4]>) {
    match mask {
        Some(m) => extend_masked(b, p, m, 0),
        None => b.extend_from_slice(p),
    }
}

/// One final, unmasked, uncompressed frame (a server's) in one buffer, built once to be
/// shared by many connections; returns it and its header's length.
pub fn shared_frame(text: bool, payload: &[u8]) -> (Bytes, usize) {
    let h = FrameHeader {
        fin: true,
        rsv1: false,
        opcode: if text { OpCode::Text } else { OpCode::Binary },
        mask: None,
        len: payload.len() as u64,
    };
    let mut b = BytesMut::with_capacity(MAX_HEADER_LEN + payload.len());
    write_header(&mut b, h);
    let header = b.len();
    b.extend_from_slice(payload);
    (b.freeze(), header)
}
