//! The byte stream under a connection: plain TCP or TLS, behind one boxed type.

use tokio::io::{AsyncRead, AsyncWrite};

/// A stream a WebSocket can run on.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// TCP or TLS, client or server.
pub(crate) type BoxIo = Box<dyn Io>;
