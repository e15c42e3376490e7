//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz), compiled only with the
//! `fuzzing` cargo feature and hidden from the documentation: not part of the API.
//!
//! The parsers are crate-private; this module re-exports them as they are and wraps the two
//! that need I/O (the server reads its upgrade request from a stream) with an in-memory
//! stream, so that a fuzz target runs them without sockets. Nothing here changes behaviour.

use crate::io::BoxIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crate::client::handshake::{parse_response, request, Pending, Response};
pub use crate::protocol::close::{CloseFrame, Closing, Next};
pub use crate::protocol::decoder::{Decoder, DecoderConfig, Incoming, ReadHint};
pub use crate::protocol::deflate::{
    accept_response, negotiate, offer_header, DeflateConfig, DeflateParams,
};
pub use crate::protocol::encoder::{Encoder, EncoderConfig, SendError, WriteBuf};
pub use crate::protocol::{close_code_allowed, close_reply, ProtocolError, Role};
pub use crate::server::{Decision, Request};

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
pub fn accept_key(key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(key)
}

/// The client's check of an application's extra header.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    crate::client::handshake::check_header(name, value)
}

/// What a [`MemIo`] shares with its creator: the input, how far it was read, what was written.
#[derive(Default)]
struct MemState {
    input: Vec<u8>,
    at: usize,
    written: Vec<u8>,
}

/// A stream that hands out the input in reads of the given sizes (cycled; 0 is read as 1) and
/// then end-of-file, and keeps what is written to it.
struct MemIo {
    state: std::sync::Arc<std::sync::Mutex<MemState>>,
    chunks: Vec<usize>,
    next: usize,
}

impl AsyncRead for MemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        let want = me.chunks.get(me.next % me.chunks.len().max(1)).copied();
        me.next += 1;
        let mut st = me.state.lock().unwrap();
        let n = want
            .unwrap_or(usize::MAX)
            .max(1)
            .min(st.input.len() - st.at)
            .min(buf.remaining());
        buf.put_slice(&st.input[st.at..st.at + n]);
        st.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemIo {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.state.lock().unwrap().written.extend_from_slice(b);
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future whose I/O is all in memory (always ready): it must finish without waiting.
fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("an in-memory handshake did not finish: it waits for something that never comes");
}

/// What the server's handshake made of a request.
#[derive(Debug)]
pub struct ServerOutcome {
    /// The parsed request and the bytes after its head, or None when it was refused.
    pub request: Option<(Request, Vec<u8>)>,
    /// The error (its message) when reading failed (the client went away).
    pub error: Option<String>,
    /// What the server wrote back (an HTTP refusal, or nothing).
    pub written: Vec<u8>,
    /// The input the server did not read (it stays in the socket for the connection).
    pub unread: Vec<u8>,
}

/// The server's reading of an upgrade request (`server::handshake::read_request`, with
/// `max_header` as the header size limit), over a stream that delivers `input` in reads of
/// `chunks` bytes.
pub fn server_read_request(input: &[u8], chunks: &[usize], max_header: usize) -> ServerOutcome {
    let state = std::sync::Arc::new(std::sync::Mutex::new(MemState {
        input: input.to_vec(),
        ..MemState::default()
    }));
    let mut io: BoxIo = Box::new(MemIo {
        state: state.clone(),
        chunks: chunks.to_vec(),
        next: 0,
    });
    let peer = "127.0.0.1:1".parse().unwrap();
    let r = run_ready(crate::server::handshake::read_request(
        &mut io, max_header, peer,
    ));
    drop(io);
    let mut st = state.lock().unwrap();
    let written = std::mem::take(&mut st.written);
    let unread = st.input[st.at..].to_vec();
    match r {
        Ok(request) => ServerOutcome {
            request,
            error: None,
            written,
            unread,
        },
        Err(e) => ServerOutcome {
            request: None,
            error: Some(e.message().to_owned()),
            written,
            unread,
        },
    }
}

/// The server's check of a parsed request: the key, or the refusal (status, body).
pub fn server_check(req: &Request) -> Result<String, (u16, &'static str)> {
    crate::server::handshake::check(req)
}

/// The server's check of an accept hook's decision against the request.
pub fn server_validate(decision: Decision, req: &Request) -> Decision {
    crate::server::handshake::validate(decision, req)
}
