//! wsnative's own WebSocket message layer (issue 14), sans-IO: no sockets, no tokio.
//!
//! The connection task feeds the [`Decoder`] the bytes it reads and gets whole messages,
//! control frames and protocol errors back; it asks the [`Encoder`] for frames and writes
//! what [`WriteBuf`] hands out (vectored). Keeping the protocol free of I/O lets every RFC
//! rule be tested byte by byte, at every chunk boundary, without a socket.
//!
//! Close handling lives here too: the decoder reports the peer's Close and never answers
//! it by itself; [`Closing`] tells the driver to answer it (echoing the code), which it
//! does with [`Encoder::close`] once its own replies are out. That replaces
//! `connection/close_hold.rs`.

// `close.rs` (`Closing`, `close_reply`) is used by the sans-IO interop tests and the fuzz
// targets only: the connection task has its own closing state (connection/driver/closing.rs).
#![allow(dead_code, unused_imports)]

pub mod buffers;
pub mod close;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod frame;
pub mod utf8;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod interop;
#[cfg(test)]
mod tests;

pub use close::{CloseFrame, Closing, Next};
pub use decoder::{Decoder, DecoderConfig, Incoming, ReadHint};
pub use deflate::{DeflateConfig, DeflateParams};
pub use encoder::{Encoder, EncoderConfig, SendError, WriteBuf};
pub use frame::{apply_mask, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
pub use utf8::Utf8Validator;

use std::fmt;

/// Which end of the connection this is: clients mask what they send, servers must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// The peer broke the protocol (1002), sent invalid UTF-8 (1007) or too much (1009).
/// `reason` is short and goes into our Close frame; `detail` says what and where, for logs
/// and the close event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: u16,
    pub reason: &'static str,
    pub detail: String,
}

impl ProtocolError {
    pub(crate) fn protocol(reason: &'static str, detail: String) -> Self {
        ProtocolError {
            code: 1002,
            reason,
            detail,
        }
    }
    pub(crate) fn invalid_data(reason: &'static str, detail: String) -> Self {
        ProtocolError {
            code: 1007,
            reason,
            detail,
        }
    }
    pub(crate) fn too_big(reason: &'static str, detail: String) -> Self {
        ProtocolError {
            code: 1009,
            reason,
            detail,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.detail)
    }
}

impl std::error::Error for ProtocolError {}

/// Close codes that may appear in a Close frame on the wire (RFC 6455 7.4, IANA registry):
/// 1000-1003, 1007-1014, 3000-4999. 1004-1006 and 1015 are reserved for local use only.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The Close to send back for the peer's `received` Close (RFC 6455 5.5.1: echo the code;
/// an empty Close is answered with an empty Close).
pub fn close_reply(received: &Option<(u16, String)>) -> Option<(u16, &'static str)> {
    received.as_ref().map(|(code, _)| (*code, ""))
}
