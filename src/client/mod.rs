//! Outgoing connections: URL, DNS and TCP with a timeout, TLS, the client handshake.

// Sans-IO client handshake for the coming connection task (issue 14); not used yet.
#[allow(dead_code)]
pub(crate) mod handshake;

use crate::connection::{self, run, unless_cancelled, Conn, ConnChannels, Delivery};
use crate::error::{Error, ErrorKind, Result};
use crate::io::BoxIo;
use crate::options::ClientOptions;
use crate::tls;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};

/// Where to connect, checked before anything starts.
struct Target {
    host: String,
    port: u16,
    secure: bool,
}

fn parse_url(url: &str) -> Result<Target> {
    let u = url::Url::parse(url).map_err(|e| Error::invalid(format!("invalid URL '{url}': {e}")))?;
    let secure = match u.scheme() {
        "ws" => false,
        "wss" => true,
        s => return Err(Error::invalid(format!("invalid URL '{url}': the scheme must be ws or wss, not {s}"))),
    };
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(Error::invalid(format!("invalid URL '{url}': no host"))),
    };
    if u.fragment().is_some() {
        return Err(Error::invalid(format!("invalid URL '{url}': a WebSocket URL has no #fragment")));
    }
    let port = u.port().unwrap_or(if secure { 443 } else { 80 });
    Ok(Target { host, port, secure })
}

fn build_request(url: &str, opts: &ClientOptions) -> Result<tungstenite::handshake::client::Request> {
    let mut req = url.into_client_request().map_err(|e| Error::invalid(format!("invalid URL '{url}': {e}")))?;
    let headers = req.headers_mut();
    let value = |name: &str, v: &str| {
        HeaderValue::from_str(v).map_err(|_| Error::invalid(format!("invalid value for header '{name}': control characters are not allowed")))
    };
    for (name, v) in &opts.headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::invalid(format!("invalid header name '{name}'")))?;
        headers.append(n, value(name, v)?);
    }
    if let Some(origin) = &opts.origin {
        headers.insert("Origin", value("Origin", origin)?);
    }
    if !opts.subprotocols.is_empty() {
        headers.insert("Sec-WebSocket-Protocol", value("Sec-WebSocket-Protocol", &opts.subprotocols.join(", "))?);
    }
    Ok(req)
}

/// Opens a connection to `url`. Returns at once with the connection in state Connecting; the
/// handler then gets `Open`, or a `Close` whose error says why the connection failed. Bad
/// arguments (URL, headers, CA files) fail here instead.
pub fn connect(url: &str, opts: &ClientOptions, delivery: Option<Delivery>) -> Result<Arc<Conn>> {
    let target = parse_url(url)?;
    let request = build_request(url, opts)?;
    let tls = if target.secure { Some(tls::client_config(opts)?) } else { None };
    let rt = crate::runtime::handle()?;
    let (conn, channels) = Conn::new(opts.conn.clone(), delivery);
    let opts = opts.clone();
    let c = conn.clone();
    rt.spawn(async move {
        let ConnChannels { commands, mut notes } = channels;
        match unless_cancelled(establish(&c, target, request, tls, &opts), &mut notes).await {
            Some(Ok(ws)) => run(c, ws, ConnChannels { commands, notes }).await,
            Some(Err(e)) => connection::finish(&c, connection::failed(e)),
            None => connection::finish(
                &c,
                connection::failed(Error::new(ErrorKind::Aborted, "closed by this side before the connection opened")),
            ),
        }
    });
    Ok(conn)
}

async fn establish(
    conn: &Arc<Conn>,
    target: Target,
    request: tungstenite::handshake::client::Request,
    tls: Option<Arc<rustls::ClientConfig>>,
    opts: &ClientOptions,
) -> Result<connection::WsStream> {
    let tcp = tcp_connect(&target, opts.connect_timeout).await?;
    conn.set_socket_fd(std::os::fd::AsRawFd::as_raw_fd(&tcp));
    if let Ok(addr) = tcp.peer_addr() {
        conn.set_peer_addr(addr);
    }
    let handshake = async {
        let io: BoxIo = match tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|_| Error::invalid(format!("'{}' is not a valid TLS server name", target.host)))?;
                let s = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls::handshake_error(&target.host, e))?;
                Box::new(s)
            }
        };
        let io: BoxIo = Box::new(crate::connection::HoldingIo::new(io, conn.hold.clone(), true, Vec::new()));
        tokio_tungstenite::client_async_with_config(request, io, Some(conn.settings.ws_config()))
            .await
            .map_err(handshake_error)
    };
    let (ws, response) = tokio::time::timeout(opts.handshake_timeout, handshake).await.map_err(|_| {
        Error::new(ErrorKind::Timeout, format!(
            "the handshake with {}:{} timed out after {} ms", target.host, target.port, opts.handshake_timeout.as_millis()))
    })??;
    let proto = response.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    conn.set_subprotocol(proto);
    Ok(ws)
}

async fn tcp_connect(t: &Target, timeout: Duration) -> Result<TcpStream> {
    let end = Instant::now() + timeout;
    let timed_out = || {
        Error::new(ErrorKind::Timeout, format!("connecting to {}:{} timed out after {} ms", t.host, t.port, timeout.as_millis()))
    };
    let addrs: Vec<_> = tokio::time::timeout(timeout, tokio::net::lookup_host((t.host.as_str(), t.port)))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| Error::new(ErrorKind::Dns, format!("cannot resolve host '{}': {e}", t.host)))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::new(ErrorKind::Dns, format!("cannot resolve host '{}': no addresses", t.host)));
    }
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(end.into(), TcpStream::connect(addr)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => {
                let why = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused (nothing listening on that port?)".to_owned(),
                    _ => e.to_string(),
                };
                last = Some(Error::new(ErrorKind::Connect, format!("cannot connect to {addr} ({}): {why}", t.host)));
            }
        }
    }
    Err(last.unwrap_or_else(timed_out))
}

fn handshake_error(e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status();
            let mut msg = format!(
                "the server refused the WebSocket upgrade: HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            if let Some(body) = resp.body().as_ref().and_then(|b| std::str::from_utf8(b).ok()) {
                let body = body.trim();
                if !body.is_empty() {
                    msg.push_str(&format!(" ({})", body.chars().take(200).collect::<String>()));
                }
            }
            Error::http(status.as_u16(), msg)
        }
        tungstenite::Error::Io(io) => Error::from(io).context("the connection failed during the handshake"),
        other => Error::new(ErrorKind::Handshake, format!("invalid handshake response: {other}")),
    }
}
