//! Outgoing connections: URL, DNS and TCP with a timeout, TLS, the client handshake.

pub(crate) mod handshake;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod reconnect;

use crate::connection::{self, run, unless_cancelled, Conn, Delivery, Wire};
use crate::error::{Error, ErrorKind, Result};
use crate::io::BoxIo;
use crate::options::ClientOptions;
use crate::protocol::Role;
use crate::tls;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to connect, checked before anything starts.
#[derive(Clone)]
pub(crate) struct Target {
    host: String,
    port: u16,
    secure: bool,
}

fn parse_url(url: &str) -> Result<Target> {
    let u =
        url::Url::parse(url).map_err(|e| Error::invalid(format!("invalid URL '{url}': {e}")))?;
    let secure = match u.scheme() {
        "ws" => false,
        "wss" => true,
        s => {
            return Err(Error::invalid(format!(
                "invalid URL '{url}': the scheme must be ws or wss, not {s}"
            )))
        }
    };
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(Error::invalid(format!("invalid URL '{url}': no host"))),
    };
    if u.fragment().is_some() {
        return Err(Error::invalid(format!(
            "invalid URL '{url}': a WebSocket URL has no #fragment"
        )));
    }
    let port = u.port().unwrap_or(if secure { 443 } else { 80 });
    Ok(Target { host, port, secure })
}

/// Opens a connection to `url`. Returns at once with the connection in state Connecting; the
/// handler then gets `Open`, or a `Close` whose error says why the connection failed. Bad
/// arguments (URL, headers, CA files) fail here instead.
pub fn connect(url: &str, opts: &ClientOptions, delivery: Option<Delivery>) -> Result<Arc<Conn>> {
    opts.validate()?;
    let target = parse_url(url)?;
    let (request, pending) = handshake::request(
        url,
        &opts.headers,
        &opts.subprotocols,
        opts.origin.as_deref(),
        &opts.conn.compression,
    )
    .map_err(Error::invalid)?;
    let tls = if target.secure {
        Some(tls::client_config(opts)?)
    } else {
        None
    };
    // client-reach (issue 13): the proxy, if any (a bad proxy URL in the environment fails here).
    let via = proxy::choose(opts, target.secure, &target.host, target.port)?;
    let rt = crate::runtime::handle()?;
    let conn = Conn::new(Arc::new(opts.conn.clone()), delivery);
    let opts = opts.clone();
    let c = conn.clone();
    if let Some(policy) = opts.reconnect.clone() {
        // client-reach (issue 13): one task across the connection's lives.
        let first = reconnect::First { request, pending };
        let url = url.to_owned();
        rt.spawn(async move {
            reconnect::run(c, url, target, via, tls, opts, policy, first).await;
        });
        return Ok(conn);
    }
    rt.spawn(async move {
        // Boxed: the handshake's buffers are not part of the connection's task once it is over.
        match unless_cancelled(
            &c,
            Box::pin(establish(&c, target, via, request, pending, tls, &opts)),
        )
        .await
        {
            // The connection's own task from here on (this one, with room for the
            // handshake, ends).
            Some(Ok(wire)) => {
                tokio::spawn(run(c, wire, |_| {}));
            }
            Some(Err(e)) => {
                log::info!(target: "wsnative::client", conn = c.id(); "connect failed: {e}");
                connection::finish(&c, connection::failed(e))
            }
            None => connection::finish(
                &c,
                connection::failed(Error::new(
                    ErrorKind::Aborted,
                    "closed by this side before the connection opened",
                )),
            ),
        }
    });
    Ok(conn)
}

async fn establish(
    conn: &Arc<Conn>,
    target: Target,
    via: Option<crate::options::Proxy>,
    request: Vec<u8>,
    pending: handshake::Pending,
    tls: Option<tls::ClientTls>,
    opts: &ClientOptions,
) -> Result<Wire> {
    let mut tcp = match &via {
        None => tcp_connect(&target, opts.connect_timeout).await?,
        Some(p) => {
            let at = Target {
                host: p.host.clone(),
                port: p.port,
                secure: false,
            };
            tcp_connect(&at, opts.connect_timeout)
                .await
                .map_err(|e| e.context(format!("cannot reach the proxy {}", p.address())))?
        }
    };
    conn.set_socket_fd(std::os::fd::AsRawFd::as_raw_fd(&tcp));
    if let Ok(addr) = tcp.peer_addr() {
        conn.set_peer_addr(addr);
    }
    let verifier = tls.as_ref().map(|t| t.verifier.clone());
    let handshake = async {
        if let Some(p) = &via {
            proxy::tunnel(&mut tcp, p, &opts.proxy_headers, &target.host, target.port).await?;
        }
        let mut io: BoxIo = match tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name =
                    rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| {
                        Error::invalid(format!("'{}' is not a valid TLS server name", target.host))
                    })?;
                let s = tokio_rustls::TlsConnector::from(cfg.config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls::handshake_error(&target.host, e, Some(&cfg.verifier)))?;
                if let Some(check) = &opts.cert_check {
                    app_cert_check(check, &cfg.verifier, &target.host).await?;
                }
                Box::new(s)
            }
        };
        let during = |e: std::io::Error| {
            // A TLS 1.3 server refuses a client certificate after the client's handshake is
            // over: its alert arrives here.
            if tls::rustls_error(&e).is_some() {
                return tls::handshake_error(&target.host, e, verifier.as_deref());
            }
            Error::from(e).context("the connection failed during the handshake")
        };
        io.write_all(&request).await.map_err(during)?;
        io.flush().await.map_err(during)?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            let mut chunk = [0u8; 2048];
            let n = io.read(&mut chunk).await.map_err(during)?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Handshake,
                    "the server closed the connection before answering the upgrade",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            match handshake::parse_response(&pending, &buf, MAX_RESPONSE_HEAD) {
                Ok(None) => continue,
                Ok(Some(r)) => return Ok((io, r)),
                Err(why) => {
                    return Err(Error::new(
                        ErrorKind::Handshake,
                        format!("invalid handshake response: {why}"),
                    ))
                }
            }
        }
    };
    let (io, response) = tokio::time::timeout(opts.handshake_timeout, handshake)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "the handshake with {}:{} timed out after {} ms",
                    target.host,
                    target.port,
                    opts.handshake_timeout.as_millis()
                ),
            )
        })??;
    match response {
        handshake::Response::Accepted {
            subprotocol,
            deflate,
            headers,
            leftover,
        } => {
            conn.set_handshake_response(101, &headers); // client-reach (issue 13)
            conn.set_subprotocol(subprotocol);
            if deflate.is_some() {
                let ext = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"));
                conn.set_extensions(ext.map(|(_, v)| v.trim().to_owned()).unwrap_or_default());
            }
            Ok(Wire {
                io,
                leftover,
                role: Role::Client,
                deflate,
            })
        }
        handshake::Response::Refused {
            status,
            reason,
            body,
            headers,
        } => {
            conn.set_handshake_response(status, &headers); // client-reach (issue 13)
            let mut msg =
                format!("the server refused the WebSocket upgrade: HTTP {status} {reason}");
            let body = String::from_utf8_lossy(&body);
            let body = body.trim();
            if !body.is_empty() {
                msg.push_str(&format!(
                    " ({})",
                    body.chars().take(200).collect::<String>()
                ));
            }
            Err(Error::http(status, msg))
        }
    }
}

/// client-reach (issue 13): the application's certificate check, on a callback thread (the
/// I/O threads never run application code); the upgrade request waits for its verdict.
async fn app_cert_check(
    check: &crate::options::CertCheckHook,
    verifier: &tls::Verifier,
    host: &str,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some((chain, verdict)) = verifier.seen() else {
        return Err(Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {host} failed: the server presented no certificate"),
        ));
    };
    let default_error = tls::verdict_words(&verdict, host, &chain);
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Set when this wait is dropped (the connection was closed or freed meanwhile): a check
    // that has not started by then does not run.
    struct Gone(Arc<AtomicBool>);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let gone = Gone(Arc::new(AtomicBool::new(false)));
    let flag = gone.0.clone();
    let hook = check.0.clone();
    let h = host.to_owned();
    let words = default_error.clone();
    Arc::new(crate::delivery::Mailbox::default()).post(Box::new(move || {
        if flag.load(Ordering::SeqCst) {
            return;
        }
        let ok = hook.check(&crate::options::CertCheckInfo {
            host: &h,
            chain: &chain,
            default_error: words.as_deref(),
        });
        let _ = tx.send(ok);
    }));
    let accepted = rx.await.unwrap_or(false);
    drop(gone);
    if accepted {
        return Ok(());
    }
    let mut msg = format!(
        "TLS handshake with {host} failed: the application's certificate check refused the server's certificate"
    );
    match default_error {
        Some(w) => msg.push_str(&format!(" (the default validation also refused it: {w})")),
        None => msg.push_str(" (the default validation had accepted it)"),
    }
    Err(Error::new(ErrorKind::Tls, msg))
}

/// The longest response head a client reads.
const MAX_RESPONSE_HEAD: usize = 16 << 10;

async fn tcp_connect(t: &Target, timeout: Duration) -> Result<TcpStream> {
    let end = Instant::now() + timeout;
    let timed_out = || {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "connecting to {}:{} timed out after {} ms",
                t.host,
                t.port,
                timeout.as_millis()
            ),
        )
    };
    let addrs: Vec<_> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((t.host.as_str(), t.port)))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Dns,
                    format!("cannot resolve host '{}': {e}", t.host),
                )
            })?
            .collect();
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::Dns,
            format!("cannot resolve host '{}': no addresses", t.host),
        ));
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
                    std::io::ErrorKind::ConnectionRefused => {
                        "connection refused (nothing listening on that port?)".to_owned()
                    }
                    _ => e.to_string(),
                };
                last = Some(Error::new(
                    ErrorKind::Connect,
                    format!("cannot connect to {addr} ({}): {why}", t.host),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(timed_out))
}
