//! Option objects for clients and servers: plain data with documented defaults. The rules of
//! what is valid live here (`validate`, and the `check_*` functions the C ABI's setters call so
//! that a bad value fails where it is set); `connect` and `listen` validate before starting.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Where a client finds the certificate authorities it trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// The Mozilla roots bundled in the library (webpki-roots): same result on every machine.
    Bundled,
    /// The operating system's store (`/etc/ssl/certs` and the like).
    System,
    /// None: only the CA files added with `ca_files`.
    None,
}

/// How a connection checks that its peer is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Send a Ping every interval; no Pong within the pong timeout ends the connection (1006).
    Ping,
    /// Send an unsolicited Pong every interval, for peers that only need traffic; never times out.
    Pong,
}

/// What a send does when the send queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendQueuePolicy {
    /// The send fails with `WouldBlock`; nothing is queued (the sender waits for a drain).
    Refuse,
    /// The connection is closed with 1008: a server's answer to a consumer that reads too
    /// slowly, so that one slow client cannot hold the server's memory.
    Close,
}

/// Settings shared by both ends of a connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Largest message accepted; a bigger one closes the connection with 1009. Default 64 MiB.
    pub max_message_size: usize,
    /// How long a close may go without progress: queued data written before the Close frame
    /// (counted from the last byte the socket took), then the peer's answer. Default 5 s.
    pub close_timeout: Duration,
    /// The longest a close may take in all, however slowly the peer reads. Default 30 s.
    pub close_max: Duration,
    /// Heartbeat interval; zero turns it off. Default 30 s.
    pub ping_interval: Duration,
    /// How long to wait for a Pong after a Ping. Default 30 s.
    pub pong_timeout: Duration,
    /// Ping or unsolicited Pong.
    pub heartbeat: Heartbeat,
    /// Bytes of received messages whose callbacks have not finished yet. Above it, reading
    /// pauses (TCP then slows the peer down) until the callbacks are down to half of it, so a
    /// fast peer cannot fill the memory of a slow application. Default 32 MiB.
    pub max_receive_queue: usize,
    /// Messages received and not yet consumed; above it, reading pauses as for
    /// `max_receive_queue` (until down to half). Default 1024.
    pub max_receive_messages: usize,
    /// Messages count as consumed only when the application acknowledges them
    /// (`Conn::ack`), not when their callback returns (or, in poll mode, at the next poll).
    /// For applications (and bindings) that hand messages on to a queue of their own.
    pub manual_ack: bool,
    /// Bytes queued for sending and not yet handed to the kernel, above which a send is
    /// refused or the connection closed (`send_queue_policy`). One message always fits an
    /// empty queue. Default 64 MiB.
    pub max_send_queue: usize,
    /// What a send does when the queue is full. Default `Refuse`.
    pub send_queue_policy: SendQueuePolicy,
    /// When set, a drain event follows each write that leaves at most this many bytes queued
    /// after messages were written (for awaiting sends). Default: no drain events.
    pub drain_low_water: Option<usize>,
    /// permessage-deflate: what a client offers, what a server accepts. Default off (see
    /// `DeflateConfig::default` for why, and for the memory each choice costs).
    pub compression: crate::protocol::DeflateConfig,
    /// Run this connection's event callbacks on the I/O thread that reads it, inside its task,
    /// instead of handing them to a callback thread: no thread switch per event (an echo then
    /// costs about a third of the CPU), and a send from inside a callback is written in the
    /// same turn. The price: a callback that blocks stalls every connection of that I/O thread,
    /// so only for callbacks that return quickly. Events that start elsewhere (a drain event
    /// armed from an application thread, a busy mailbox) still go to callback threads, in
    /// order, one at a time as always. Default off.
    pub inline_callbacks: bool,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            max_message_size: 64 << 20,
            close_timeout: Duration::from_secs(5),
            close_max: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            heartbeat: Heartbeat::Ping,
            max_receive_queue: 32 << 20,
            max_receive_messages: 1024,
            manual_ack: false,
            max_send_queue: 64 << 20,
            send_queue_policy: SendQueuePolicy::Refuse,
            drain_low_water: None,
            compression: crate::protocol::DeflateConfig::default(),
            inline_callbacks: false,
        }
    }
}

/// Options of an outgoing connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to resolve the host and open the TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Time for the TLS and WebSocket handshakes. Default 10 s.
    pub handshake_timeout: Duration,
    /// Extra request headers, in order (Authorization, Cookie, ...).
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
    /// The Origin header, when set.
    pub origin: Option<String>,
    /// Trusted roots for `wss://`.
    pub tls_roots: TlsRoots,
    /// Extra PEM files of trusted certificate authorities.
    pub ca_files: Vec<PathBuf>,
    /// Settings of the connection once open.
    pub conn: ConnectionSettings,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            headers: Vec::new(),
            subprotocols: Vec::new(),
            origin: None,
            tls_roots: TlsRoots::Bundled,
            ca_files: Vec::new(),
            conn: ConnectionSettings::default(),
        }
    }
}

/// Options of a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Time a client has to complete the TLS and WebSocket handshakes. Default 10 s.
    pub handshake_timeout: Duration,
    /// Largest HTTP upgrade request (request line and headers). Default 16 KiB.
    pub max_header_size: usize,
    /// Subprotocols this server speaks; the first one the client offers is chosen unless the
    /// accept hook chooses.
    pub subprotocols: Vec<String>,
    /// When not empty, upgrade requests whose Origin is not listed are refused with 403
    /// (Cross-Site WebSocket Hijacking defence). Requests without Origin (non-browsers) pass.
    pub allowed_origins: Vec<String>,
    /// Most connections open at once; more are refused with 503. Zero: no limit.
    pub max_connections: usize,
    /// Certificate chain and private key (PEM files) for `wss`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long stopping the server waits for its connections to close. Default 5 s.
    pub drain_timeout: Duration,
    /// Settings of each accepted connection.
    pub conn: ConnectionSettings,
    // --- srv-defense: handshake admission and plain HTTP (issue 15 §2, §3.5) ---
    /// Most handshakes in progress at once (accepted TCP connections whose upgrade is not
    /// answered yet). Default 256; zero: no limit.
    pub max_pending_handshakes: usize,
    /// Most handshakes in progress from one client address (IPv6: one /64). Default 32; zero:
    /// no limit.
    pub max_pending_handshakes_per_ip: usize,
    /// What happens to a new connection when a cap is reached. Default: drop the oldest.
    pub pending_handshake_policy: PendingHandshakePolicy,
    /// Answers requests that are not WebSocket upgrades (without it they get 426).
    pub http_handler: Option<crate::server::HttpHandlerRef>,
}

/// What a server does when a cap on handshakes in progress is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PendingHandshakePolicy {
    /// Drop the oldest unfinished handshake (of that address, for the per-address cap) and
    /// take the new connection: slow clients cannot lock out fast ones.
    #[default]
    DropOldest,
    /// Refuse the new connection (HTTP 503 on plain TCP, then close).
    Refuse,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            handshake_timeout: Duration::from_secs(10),
            max_header_size: 16 << 10,
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            max_connections: 0,
            tls: None,
            drain_timeout: Duration::from_secs(5),
            conn: ConnectionSettings::default(),
            max_pending_handshakes: 256,
            max_pending_handshakes_per_ip: 32,
            pending_handshake_policy: PendingHandshakePolicy::DropOldest,
            http_handler: None,
        }
    }
}

/// A timeout that must be at least 1 ms.
pub(crate) fn check_timeout(d: Duration, what: &str) -> Result<()> {
    if d < Duration::from_millis(1) {
        return Err(Error::invalid(format!("{what} must be at least 1 ms")));
    }
    Ok(())
}

/// A count or size that must be at least `min`.
pub(crate) fn check_at_least(v: usize, min: usize, what: &str) -> Result<()> {
    if v < min {
        let unit = if what.contains("messages") {
            ""
        } else if min == 1 {
            " byte"
        } else {
            " bytes"
        };
        return Err(Error::invalid(format!(
            "{what} must be at least {min}{unit}"
        )));
    }
    Ok(())
}

/// A subprotocol name: an HTTP token.
pub(crate) fn check_subprotocol(p: &str) -> Result<()> {
    if p.is_empty()
        || !p
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    {
        return Err(Error::invalid(format!(
            "'{p}' is not a valid subprotocol token"
        )));
    }
    Ok(())
}

/// An HTTP header name and value that a request may carry.
pub(crate) fn check_header(name: &str, value: &str) -> Result<()> {
    crate::client::handshake::check_header(name, value).map_err(Error::invalid)
}

impl crate::protocol::DeflateConfig {
    /// Window bits 8..15, level 0..9.
    pub(crate) fn validate(&self) -> Result<()> {
        for bits in [self.client_max_window_bits, self.server_max_window_bits] {
            if !(8..=15).contains(&bits) {
                return Err(Error::invalid(format!(
                    "window bits {bits} are out of range: use 8 to 15"
                )));
            }
        }
        if self.level > 9 {
            return Err(Error::invalid(format!(
                "compression level {} is out of range: use 0 to 9",
                self.level
            )));
        }
        Ok(())
    }
}

impl ConnectionSettings {
    /// Checks every setting (what the C ABI's setters check one by one).
    pub fn validate(&self) -> Result<()> {
        check_at_least(self.max_message_size, 1, "max message size")?;
        check_timeout(self.close_timeout, "close timeout")?;
        check_timeout(self.close_max, "close max")?;
        check_timeout(self.pong_timeout, "pong timeout")?;
        check_at_least(self.max_receive_queue, 1, "max receive queue")?;
        check_at_least(self.max_receive_messages, 1, "max receive messages")?;
        check_at_least(self.max_send_queue, 1, "max send queue")?;
        self.compression.validate()
    }
}

impl ClientOptions {
    /// Checks every option; `connect` calls it.
    pub fn validate(&self) -> Result<()> {
        check_timeout(self.connect_timeout, "connect timeout")?;
        check_timeout(self.handshake_timeout, "handshake timeout")?;
        for (n, v) in &self.headers {
            check_header(n, v)?;
        }
        for p in &self.subprotocols {
            check_subprotocol(p)?;
        }
        if let Some(o) = &self.origin {
            check_header("Origin", o)?;
        }
        self.conn.validate()
    }
}

impl ServerOptions {
    /// Checks every option; `listen` calls it.
    pub fn validate(&self) -> Result<()> {
        check_timeout(self.handshake_timeout, "handshake timeout")?;
        check_at_least(self.max_header_size, 256, "max header size")?;
        for p in &self.subprotocols {
            check_subprotocol(p)?;
        }
        self.conn.validate()
    }
}
