//! Holds the peer's Close frame back from tungstenite until this side's replies are out.
//!
//! tungstenite answers a Close frame the moment it reads it, after which nothing more can be
//! sent. When a peer sends messages and then Close, the application is usually still handling
//! those messages, and its replies would be lost. This reader sits under tungstenite, follows
//! the frame boundaries (headers only; payloads are skipped by arithmetic), and stops just
//! before a Close frame. The supervisor then lets the callbacks already queued run and the
//! writer drain what they sent, and releases the frame (at the latest after the close timeout).
//!
//! During the handshake it hands out bytes only up to the end of the HTTP head, so that
//! tungstenite never reads frames the tracker has not seen.

use super::Note;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// The switch shared by the reader wrapper and the supervisor.
pub(crate) struct CloseHold {
    released: AtomicBool,
    waker: Mutex<Option<Waker>>,
    notes: mpsc::UnboundedSender<Note>,
    /// Bytes the socket took so far: the close watchdog's measure of progress, and the part of
    /// a large message already sent that `buffered_amount` subtracts.
    pub(crate) wire_written: std::sync::atomic::AtomicUsize,
}

impl CloseHold {
    pub(crate) fn new(notes: mpsc::UnboundedSender<Note>) -> Self {
        CloseHold {
            released: AtomicBool::new(false),
            waker: Mutex::new(None),
            notes,
            wire_written: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Lets the held Close frame (and everything after it) through. Idempotent.
    pub(crate) fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
                w.wake();
            }
        }
    }

    fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

/// Where the frame tracker is.
#[derive(Clone, Copy)]
enum Track {
    /// Reading the HTTP head: hand out bytes up to its end only.
    Head { matched: usize },
    /// At or inside a frame header.
    Header { have: usize, need: usize, len: u64, masked: bool },
    /// Inside a payload: this many bytes left.
    Payload(u64),
    /// Holding: the next byte starts the peer's Close frame.
    AtClose,
    /// No more tracking: pass everything.
    Off,
}

/// The read side of a connection's stream, with the Close hold.
pub(crate) struct HoldingIo<S> {
    inner: S,
    hold: std::sync::Arc<CloseHold>,
    track: Track,
    /// Bytes read from `inner` but not handed out yet.
    pending: Vec<u8>,
    pending_at: usize,
    notified: bool,
}

impl<S> HoldingIo<S> {
    /// `in_head`: the HTTP head still has to be read (client); otherwise frames start at once,
    /// beginning with `leftover` (bytes read past the head by the server's handshake).
    pub(crate) fn new(inner: S, hold: std::sync::Arc<CloseHold>, in_head: bool, leftover: Vec<u8>) -> Self {
        let track = if in_head { Track::Head { matched: 0 } } else { FRAME_START };
        HoldingIo { inner, hold, track, pending: leftover, pending_at: 0, notified: false }
    }

    /// Stops tracking (a refused handshake has a body, not frames).
    fn stop_tracking(&mut self) {
        self.track = Track::Off;
    }

    /// How many of `data`'s bytes may be handed out now; updates the tracker over them.
    fn admit(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            match &mut self.track {
                Track::Off => return data.len(),
                Track::AtClose => return i,
                Track::Head { matched } => {
                    const END: &[u8] = b"\r\n\r\n";
                    let b = data[i];
                    *matched = if b == END[*matched] { *matched + 1 } else if b == b'\r' { 1 } else { 0 };
                    i += 1;
                    if *matched == END.len() {
                        self.track = FRAME_START;
                        return i; // the head ends here: tungstenite must not read past it
                    }
                }
                Track::Payload(left) => {
                    let n = (*left).min((data.len() - i) as u64) as usize;
                    *left -= n as u64;
                    i += n;
                    if *left == 0 {
                        self.track = FRAME_START;
                    }
                }
                Track::Header { have, need, len, masked } => {
                    let b = data[i];
                    match *have {
                        0 => {
                            if b & 0x0f == 0x8 && !self.hold.is_released() {
                                self.track = Track::AtClose;
                                return i;
                            }
                        }
                        1 => {
                            *masked = b & 0x80 != 0;
                            let len7 = (b & 0x7f) as u64;
                            let ext = match len7 {
                                126 => 2,
                                127 => 8,
                                _ => 0,
                            };
                            *len = if ext == 0 { len7 } else { 0 };
                            *need = 2 + ext + if *masked { 4 } else { 0 };
                        }
                        h => {
                            let ext_end = *need - if *masked { 4 } else { 0 };
                            if h < ext_end {
                                *len = (*len << 8) | b as u64;
                            }
                        }
                    }
                    *have += 1;
                    i += 1;
                    if *have >= 2 && *have == *need {
                        self.track = if *len == 0 { FRAME_START } else { Track::Payload(*len) };
                    }
                }
            }
        }
        i
    }
}

const FRAME_START: Track = Track::Header { have: 0, need: 2, len: 0, masked: false };

impl<S: AsyncRead + Unpin> AsyncRead for HoldingIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if matches!(this.track, Track::AtClose) {
            if !this.hold.is_released() {
                *this.hold.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
                if !this.hold.is_released() {
                    if !this.notified {
                        this.notified = true;
                        let _ = this.hold.notes.send(Note::PeerClosePending);
                    }
                    return Poll::Pending;
                }
            }
            this.track = Track::Off;
        }
        // Hand out what was read ahead first.
        if this.pending_at < this.pending.len() {
            let avail = this.pending.len() - this.pending_at;
            let n = avail.min(buf.remaining());
            let start = this.pending_at;
            let pending = std::mem::take(&mut this.pending);
            let n = this.admit(&pending[start..start + n]);
            buf.put_slice(&pending[start..start + n]);
            this.pending = pending;
            this.pending_at += n;
            if this.pending_at == this.pending.len() {
                this.pending = Vec::new();
                this.pending_at = 0;
            }
            if n > 0 || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // n == 0: at the Close frame; come back to hold.
            return Pin::new(this).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let filled = buf.filled().len();
        if filled == before || matches!(this.track, Track::Off) {
            return Poll::Ready(Ok(()));
        }
        let was_head = matches!(this.track, Track::Head { .. });
        let n = this.admit(&buf.filled()[before..filled]);
        if n < filled - before {
            this.pending = buf.filled()[before + n..filled].to_vec();
            this.pending_at = 0;
            buf.set_filled(before + n);
            if was_head && !head_is_101(&buf.filled()[before..before + n]) {
                // A refusal: its body is not made of frames.
                this.stop_tracking();
            }
        }
        if n == 0 {
            return Pin::new(this).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

fn head_is_101(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 101") || head.starts_with(b"HTTP/1.0 101")
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HoldingIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            self.hold.wire_written.fetch_add(n, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.hold.wire_written.fetch_add(n, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    /// A reader that returns `data` in chunks of pseudo-random sizes.
    struct Chunky {
        data: Vec<u8>,
        at: usize,
        seed: u64,
    }

    impl AsyncRead for Chunky {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let want = 1 + (self.seed >> 33) as usize % 700;
            let n = want.min(buf.remaining()).min(self.data.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn frame(opcode: u8, len: usize, masked: bool, fill: u8) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(m | len as u8),
            126..=65535 => {
                f.push(m | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[0x88, 0x88, 0x08, 0x08]); // bytes that look like Close headers
        }
        f.extend(std::iter::repeat_n(fill, len));
        f
    }

    /// Random frame sequences in random chunks: every byte before the Close frame passes
    /// unchanged, nothing of the Close frame passes until released, then everything does.
    #[tokio::test]
    async fn holds_exactly_at_the_close_frame_and_passes_everything_else() {
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for round in 0..200 {
            let masked = round % 2 == 0;
            let mut before = Vec::new();
            for _ in 0..rnd(12) {
                let opcode = [0x1, 0x2, 0x0, 0x9, 0xA][rnd(5) as usize];
                let len = [0, 1, 125, 126, 127, 200, 65535, 65536, 70000][rnd(9) as usize];
                // 0x88 payload bytes: a tracker that lost its place would hold here.
                before.extend(frame(opcode, len, masked, 0x88));
            }
            let close = frame(0x8, 2, masked, 0x03);
            let after = frame(0x1, rnd(300) as usize, masked, 0x41);
            let mut wire = before.clone();
            wire.extend(&close);
            wire.extend(&after);
            let (tx, _rx) = mpsc::unbounded_channel();
            let hold = Arc::new(CloseHold::new(tx));
            let inner = Chunky { data: wire.clone(), at: 0, seed: round };
            let mut io = HoldingIo::new(inner, hold.clone(), false, Vec::new());
            let mut got = vec![0u8; before.len()];
            io.read_exact(&mut got).await.unwrap();
            assert_eq!(got, before, "round {round}");
            let mut one = [0u8; 1];
            let held = tokio::time::timeout(std::time::Duration::from_millis(20), io.read(&mut one)).await;
            assert!(held.is_err(), "round {round}: a byte of the Close frame passed before release");
            hold.release();
            let mut rest = Vec::new();
            io.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, [close.clone(), after.clone()].concat(), "round {round}");
        }
    }

    /// The client's handshake: bytes up to the end of the HTTP head only, then frames tracked.
    #[tokio::test]
    async fn hands_out_the_http_head_alone() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let mut wire = head.clone();
        wire.extend(frame(0x1, 5, false, b'x'));
        wire.extend(frame(0x8, 2, false, 0x03));
        let (tx, _rx) = mpsc::unbounded_channel();
        let hold = Arc::new(CloseHold::new(tx));
        let mut io = HoldingIo::new(Chunky { data: wire, at: 0, seed: 1 }, hold.clone(), true, Vec::new());
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while got.len() < head.len() {
            let n = io.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, head, "no frame byte in the same read as the head");
        let mut text = [0u8; 7];
        io.read_exact(&mut text).await.unwrap();
        assert_eq!(&text[2..], b"xxxxx");
        let held = tokio::time::timeout(std::time::Duration::from_millis(20), io.read(&mut buf)).await;
        assert!(held.is_err());
    }
}
