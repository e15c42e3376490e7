//! The one error type of wsnative: a kind (which becomes the C status code) and a message a
//! person can act on.

use std::fmt;

/// What went wrong, coarsely: enough for a program to decide what to do next.
/// The numbers are the C ABI's `wsn_status` values and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorKind {
    /// An argument was NULL, out of range, or not valid UTF-8.
    InvalidArgument = -1,
    /// The call is not allowed in the handle's current state (send after close, configure after start).
    InvalidState = -2,
    /// The host name could not be resolved.
    Dns = -3,
    /// The TCP connection could not be made (refused, unreachable).
    Connect = -4,
    /// The TLS handshake failed (certificate, protocol), or a certificate or key could not be loaded.
    Tls = -5,
    /// The WebSocket upgrade was refused or malformed (the HTTP status is kept when there was one).
    Handshake = -6,
    /// A connect, handshake, close or pong timeout expired.
    Timeout = -7,
    /// The peer broke the WebSocket protocol, sent invalid UTF-8 text or a message over the size limit.
    Protocol = -8,
    /// The connection failed at the socket level (reset, broken pipe) or a file could not be read.
    Io = -9,
    /// The connection was aborted by this side.
    Aborted = -10,
    /// A bug in wsnative: a panic was caught at the boundary.
    Internal = -11,
    /// The send queue is full (see `max_send_queue`): wait for a drain event and send again.
    WouldBlock = -12,
}

/// An error with its kind, a message, and the HTTP status of a refused upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    http_status: u16,
}

/// `Result` with wsnative's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            http_status: 0,
        }
    }
    /// A refused upgrade: the message names the status.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Handshake,
            message: message.into(),
            http_status: status,
        }
    }
    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// A call made in the wrong state.
    pub fn state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidState, message)
    }
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The HTTP status of a refused upgrade, or 0.
    pub fn http_status(&self) -> u16 {
        self.http_status
    }
    /// The same error with `context: ` in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionReset => Error::new(ErrorKind::Io, "connection reset by peer"),
            K::BrokenPipe => {
                Error::new(ErrorKind::Io, "broken pipe: the peer closed the connection")
            }
            K::UnexpectedEof => Error::new(
                ErrorKind::Io,
                "connection closed by peer without a Close frame",
            ),
            _ => Error::new(ErrorKind::Io, e.to_string()),
        }
    }
}
