//! wsnative: a WebSocket client and server whose closing never hangs, whose sends are safe
//! from any thread, and which says why a connection ended. The C ABI lives in [`ffi`]; the
//! rest is plain Rust and usable directly.

mod client;
mod connection;
mod delivery;
mod error;
pub mod ffi;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod io;
mod options;
mod protocol;
mod runtime;
mod server;
mod shutdown;
mod tls;

pub use client::connect;
pub use client::pool::Pool; // client-reach (issue 13)
pub use connection::{
    check_close, check_close_code, CloseInfo, Conn, Delivery, Event, EventQueue, Handler,
    QueueTarget, Queued, State,
};
pub use delivery::{set_callback_spin, set_callback_threads};
pub use error::{Error, ErrorKind, Result};
pub use options::{
    ClientOptions, ConnectionSettings, Heartbeat, PendingHandshakePolicy, SendQueuePolicy,
    ServerOptions, TlsRoots,
};
// client-reach (issue 13): certificates
pub use options::{
    parse_fingerprint, CertCheck, CertCheckHook, CertCheckInfo, ClientAuth, Identity, Pem,
};
// client-reach (issue 13): proxies, the handshake response
pub use connection::HandshakeResponse;
pub use options::{OfflinePolicy, Proxy, ProxyKind, ReconnectPolicy};
pub use runtime::set_io_threads;
pub use server::{AcceptHook, Decision, HttpHandler, HttpHandlerRef, Request, Response, Server};
// Operations (issue 15 §3): deadlines, tags, broadcast, drain, stats.
pub use connection::{check_tag, ConnStats, SharedFrame};
pub use server::{BroadcastReport, DrainReport, ServerStats};
pub use shutdown::shutdown;

/// The crate version, as in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
