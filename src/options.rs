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
    // --- client-reach (issue 13): certificates ---
    /// The client's own certificate chain and key, presented when a server asks (mutual TLS).
    pub client_cert: Option<Identity>,
    /// Certificates trusted exactly as they are (PEM), whoever issued them: the issuer is not
    /// checked, the name and dates are. For development and pinning.
    pub trusted_certs: Vec<Pem>,
    /// SHA-256 fingerprints of certificates trusted exactly (as `trusted_certs`).
    pub trusted_fingerprints: Vec<[u8; 32]>,
    /// The application's own check of the server's certificate, which has the last word.
    pub cert_check: Option<CertCheckHook>,
    // --- client-reach (issue 13): proxies ---
    /// Connect through this proxy (HTTP CONNECT or SOCKS5). Wins over `proxy_from_env`.
    pub proxy: Option<Proxy>,
    /// Read the proxy from the environment at connect time (`HTTPS_PROXY` for wss://,
    /// `HTTP_PROXY` for ws://, then `ALL_PROXY`; lower case first; `NO_PROXY` exempts hosts).
    pub proxy_from_env: bool,
    /// Extra headers of an HTTP CONNECT request (not of the upgrade request).
    pub proxy_headers: Vec<(String, String)>,
    // --- client-reach (issue 13): reconnect ---
    /// Reconnect when the connection drops, keeping the same handle. Default: none.
    pub reconnect: Option<ReconnectPolicy>,
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
            client_cert: None,
            trusted_certs: Vec::new(),
            trusted_fingerprints: Vec::new(),
            cert_check: None,
            proxy: None,
            proxy_from_env: false,
            proxy_headers: Vec::new(),
            reconnect: None,
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
    // --- client-reach (issue 13): certificates ---
    /// Client certificates (mutual TLS): verified against these CAs; `None`: not asked for.
    pub client_auth: Option<ClientAuth>,
    // --- srv-defense: handshake admission and plain HTTP (issue 15 §2, §3.5) ---
    /// Most handshakes in progress at once (accepted TCP connections whose upgrade is not
    /// answered yet). Default 512 (room for a reconnect burst, half of a common `ulimit -n`);
    /// zero: no limit.
    pub max_pending_handshakes: usize,
    /// Most handshakes in progress from one client address (IPv6: one /64). Default zero (no
    /// limit): behind a reverse proxy or a NAT many clients share one address. Set it for a
    /// server that faces its clients directly.
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
            client_auth: None,
            max_pending_handshakes: 512,
            max_pending_handshakes_per_ip: 0,
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
        // client-reach (issue 13)
        for (n, v) in &self.proxy_headers {
            check_header(n, v)?;
        }
        if let Some(r) = &self.reconnect {
            r.validate()?;
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
        // client-reach (issue 13)
        if self.client_auth.is_some() && self.tls.is_none() {
            return Err(Error::invalid(
                "client certificates need TLS: set the server's certificate and key too",
            ));
        }
        self.conn.validate()
    }
}

// --- client-reach (issue 13): certificates ---

/// PEM data: a file, read when connecting (or listening), or bytes held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// A PEM file.
    File(PathBuf),
    /// PEM text in memory.
    Memory(Vec<u8>),
}

/// A certificate chain (leaf first) and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate chain.
    pub chain: Pem,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Pem,
}

/// How a server treats client certificates.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// The CAs a client certificate must chain to (PEM).
    pub cas: Vec<Pem>,
    /// A client without a certificate is refused (during TLS); otherwise it may come without
    /// one, and a certificate it presents must still verify.
    pub required: bool,
}

/// What the application's certificate check sees.
#[derive(Debug)]
pub struct CertCheckInfo<'a> {
    /// The host name the client connected to.
    pub host: &'a str,
    /// The certificates the server sent, DER, its own first.
    pub chain: &'a [Vec<u8>],
    /// `None` when the default validation accepted the chain; otherwise why it refused it.
    pub default_error: Option<&'a str>,
}

/// The application's check of a server certificate: it returns whether to accept the server.
/// It runs on a callback thread after the TLS handshake and before the upgrade request is
/// sent, so nothing of the application's (headers, messages) reaches a server it refuses.
pub trait CertCheck: Send + Sync + 'static {
    /// `true` accepts the server, `false` refuses it. Returning `true` whatever
    /// `default_error` says turns validation off: any machine on the path can then read and
    /// change the traffic. Accept only what you checked (a fingerprint, your own CA).
    fn check(&self, info: &CertCheckInfo<'_>) -> bool;
}

/// A shared `CertCheck` in the client options.
#[derive(Clone)]
pub struct CertCheckHook(pub std::sync::Arc<dyn CertCheck>);

impl std::fmt::Debug for CertCheckHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertCheckHook")
    }
}

/// A SHA-256 fingerprint as 64 hex digits, with or without ':' between the bytes
/// (`openssl x509 -noout -fingerprint -sha256` prints that form).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let hex: String = s
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .trim_start_matches("sha256 Fingerprint=")
        .trim_start_matches("SHA256 Fingerprint=")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bad = || {
        Error::invalid(format!(
            "'{s}' is not a SHA-256 fingerprint: give 64 hex digits, with or without ':' between bytes"
        ))
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

// --- client-reach (issue 13): proxies ---

/// How a proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT (`http://` proxy URLs).
    HttpConnect,
    /// SOCKS5, RFC 1928 (`socks5://` and `socks5h://`: the proxy resolves the host name).
    Socks5,
}

/// A proxy: where it is and how to log in (from a URL such as
/// `http://user:password@proxy.example:3128` or `socks5://127.0.0.1:1080`).
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// HTTP CONNECT or SOCKS5.
    pub kind: ProxyKind,
    /// The proxy's host.
    pub host: String,
    /// The proxy's port (default 80 for http://, 1080 for socks5://).
    pub port: u16,
    /// User and password: HTTP Basic (`Proxy-Authorization`), or SOCKS5 user/password (RFC 1929).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

impl Proxy {
    /// Parses a proxy URL: `http://[user:password@]host[:port]`, `socks5://...` or
    /// `socks5h://...`; a bare `host:port` is an HTTP proxy (as curl reads it).
    pub fn parse(text: &str) -> Result<Proxy> {
        let t = text.trim();
        let with_scheme = if t.contains("://") {
            t.to_owned()
        } else {
            format!("http://{t}")
        };
        let bad = |why: &str| Error::invalid(format!("invalid proxy URL '{text}': {why}"));
        let u = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        let (kind, default_port) = match u.scheme() {
            "http" => (ProxyKind::HttpConnect, 80),
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            "https" => {
                return Err(bad(
                    "TLS to the proxy itself (https://) is not supported: use http:// (the tunnel still carries wss:// end to end)",
                ))
            }
            s => return Err(bad(&format!("the scheme must be http, socks5 or socks5h, not {s}"))),
        };
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("no host")),
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let credentials = if u.username().is_empty() {
            None
        } else {
            Some((decode(u.username()), decode(u.password().unwrap_or(""))))
        };
        if let Some((user, pass)) = &credentials {
            if kind == ProxyKind::Socks5 && (user.len() > 255 || pass.len() > 255) {
                return Err(bad(
                    "a SOCKS5 user name and password have at most 255 bytes each",
                ));
            }
        }
        Ok(Proxy {
            kind,
            port: u.port().unwrap_or(default_port),
            host,
            credentials,
        })
    }

    /// `host:port` (IPv6 in brackets), for messages and the CONNECT line.
    pub fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// --- client-reach (issue 13): reconnect ---

/// What a send does while a reconnecting client is offline and its offline queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflinePolicy {
    /// The send fails with `WouldBlock`; nothing is queued.
    Refuse,
    /// The oldest queued messages are dropped to make room.
    DropOldest,
    /// The new message is dropped (the send still returns its id; it never goes out).
    DropNewest,
}

/// When and how a client reconnects, once its connection dropped: exponential backoff with full
/// jitter on every attempt (a delay drawn uniformly from zero to `min(max_delay, initial_delay *
/// 2^(attempt-1))`), a budget, codes and statuses that stop it, and an offline queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The cap of the first attempt's delay. Default 500 ms.
    pub initial_delay: Duration,
    /// The largest cap. Default 30 s.
    pub max_delay: Duration,
    /// Attempts after a drop before giving up; 0: no limit. Default 0.
    pub max_attempts: u32,
    /// Time since the drop after which no attempt starts; zero: no limit. Default zero.
    pub max_elapsed: Duration,
    /// Close codes from the server that stop reconnecting. Default 1002, 1003, 1007, 1008,
    /// 1009, 1010 (errors a retry repeats); applications add their own (4001-style).
    pub stop_codes: Vec<u16>,
    /// HTTP statuses of a refused upgrade that stop reconnecting. Default 401, 403.
    pub stop_statuses: Vec<u16>,
    /// Bytes the send queue may hold while offline. Default 1 MiB.
    pub offline_max_bytes: usize,
    /// What a send does when that is full. Default `Refuse`.
    pub offline_policy: OfflinePolicy,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 0,
            max_elapsed: Duration::ZERO,
            stop_codes: vec![1002, 1003, 1007, 1008, 1009, 1010],
            stop_statuses: vec![401, 403],
            offline_max_bytes: 1 << 20,
            offline_policy: OfflinePolicy::Refuse,
        }
    }
}

impl ReconnectPolicy {
    /// Checks the policy (delays at least 1 ms, initial at most max, a queue of at least 1 byte).
    pub fn validate(&self) -> Result<()> {
        check_timeout(self.initial_delay, "initial reconnect delay")?;
        check_timeout(self.max_delay, "max reconnect delay")?;
        if self.initial_delay > self.max_delay {
            return Err(Error::invalid(
                "the initial reconnect delay must not exceed the max delay",
            ));
        }
        check_at_least(self.offline_max_bytes, 1, "offline queue")
    }

    /// The cap of attempt `attempt` (1-based): `min(max_delay, initial_delay * 2^(attempt-1))`.
    pub fn cap(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(40);
        let ms = (self.initial_delay.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max_delay)
    }

    /// The delay of attempt `attempt` for a uniform draw `u` in [0, 1): full jitter.
    pub fn delay(&self, attempt: u32, u: f64) -> Duration {
        self.cap(attempt).mul_f64(u.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod reconnect_option_tests {
    use super::*;

    /// Full jitter on every attempt: over 200 simulated schedules, each attempt's delays stay
    /// within its cap and spread over it (no spike at the cap or at zero), and caps grow.
    #[test]
    fn backoff_with_full_jitter_spreads_every_attempt_over_200_schedules() {
        let p = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            ..ReconnectPolicy::default()
        };
        let schedules: Vec<Vec<Duration>> = (0..200)
            .map(|_| (1..=8).map(|a| p.delay(a, rand::random::<f64>())).collect())
            .collect();
        for attempt in 1..=8u32 {
            let cap = p.cap(attempt);
            let mut d: Vec<f64> = schedules
                .iter()
                .map(|s| s[attempt as usize - 1].as_secs_f64() / cap.as_secs_f64())
                .collect();
            d.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert!(
                d.iter().all(|x| (0.0..=1.0).contains(x)),
                "attempt {attempt}"
            );
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            assert!(
                (0.38..0.62).contains(&mean),
                "attempt {attempt}: mean {mean}"
            );
            // Quartiles near 1/4 and 3/4 of the cap: spread, not clustered.
            assert!(
                (0.12..0.38).contains(&d[50]),
                "attempt {attempt}: q1 {}",
                d[50]
            );
            assert!(
                (0.62..0.88).contains(&d[150]),
                "attempt {attempt}: q3 {}",
                d[150]
            );
            // Every tenth of the cap is used.
            for tenth in 0..10 {
                let lo = tenth as f64 / 10.0;
                assert!(
                    d.iter().any(|x| *x >= lo && *x < lo + 0.1),
                    "attempt {attempt}: nothing in [{lo}, {})",
                    lo + 0.1
                );
            }
        }
        assert_eq!(p.cap(1), Duration::from_millis(100));
        assert_eq!(p.cap(4), Duration::from_millis(800));
        assert_eq!(p.cap(30), Duration::from_secs(10));
        assert_eq!(p.cap(u32::MAX), Duration::from_secs(10));
    }
}

#[cfg(test)]
mod proxy_option_tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_credentials_defaults_and_refusals() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.example:3128").unwrap();
        assert_eq!(p.kind, ProxyKind::HttpConnect);
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        assert_eq!(p.credentials, Some(("us@er".into(), "p:ss".into())));
        assert!(!format!("{p:?}").contains("p:ss"));
        let p = Proxy::parse("socks5h://127.0.0.1").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Socks5, 1080));
        let p = Proxy::parse("10.0.0.1:8080").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::HttpConnect, 8080));
        assert!(Proxy::parse("https://proxy:443").is_err());
        assert!(Proxy::parse("ftp://proxy").is_err());
        assert_eq!(
            Proxy::parse("http://[::1]:3128").unwrap().address(),
            "[::1]:3128"
        );
    }
}

#[cfg(test)]
mod cert_option_tests {
    use super::parse_fingerprint;

    #[test]
    fn fingerprints_parse_in_openssl_and_plain_forms() {
        let plain = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let colons = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
        assert_eq!(
            parse_fingerprint(plain).unwrap(),
            parse_fingerprint(colons).unwrap()
        );
        assert_eq!(
            parse_fingerprint(&format!("sha256 Fingerprint={colons}")).unwrap()[31],
            0xff
        );
        assert!(parse_fingerprint("00:11").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }
}
