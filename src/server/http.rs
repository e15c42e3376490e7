//! Plain HTTP beside the upgrade (issue 15 §3.5): requests that are not WebSocket upgrades (a
//! load balancer's `GET /healthz`) go to an optional handler that answers with a status,
//! headers and a body; without one (or when it declines) they get 426 as before. Also the
//! response headers an accept hook adds to its 101 (a `Set-Cookie`) or to its refusal.

use super::Request;
use crate::error::{Error, Result};
use crate::io::BoxIo;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Largest body a plain HTTP answer may have: this is for health checks and small pages, not
/// a web server.
pub(crate) const MAX_HTTP_BODY: usize = 1 << 20;

/// A plain HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status, 200-599.
    pub status: u16,
    /// Extra headers, in order (checked with `check_response_header`).
    pub headers: Vec<(String, String)>,
    /// The body (at most `MAX_HTTP_BODY`); not sent in answer to HEAD.
    pub body: Vec<u8>,
}

/// Answers requests that are not WebSocket upgrades, on a callback thread (like the accept
/// hook), while the client waits (bounded by the handshake timeout).
pub trait HttpHandler: Send + Sync + 'static {
    /// The answer to `req`, or `None` to leave it to the default (426 Upgrade Required).
    fn handle(&self, req: &Request) -> Option<Response>;
}

/// A shared HTTP handler, as held by the server options.
#[derive(Clone)]
pub struct HttpHandlerRef(pub Arc<dyn HttpHandler>);

impl std::fmt::Debug for HttpHandlerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpHandler")
    }
}

/// Headers wsnative writes itself: an application may not set them (on a plain answer or on
/// the 101).
const RESERVED: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Checks a response header an application adds: a valid name and value, not one of those
/// wsnative writes itself.
pub fn check_response_header(name: &str, value: &str) -> Result<()> {
    crate::options::check_header(name, value)?;
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(Error::invalid(format!(
            "header '{name}' is written by wsnative itself and cannot be set"
        )));
    }
    Ok(())
}

/// Checks a plain HTTP answer's status and body size.
pub fn check_response(status: u16, body_len: usize) -> Result<()> {
    if !(200..=599).contains(&status) {
        return Err(Error::invalid(format!(
            "HTTP status {status} cannot answer a plain request (use 200-599)"
        )));
    }
    if body_len > MAX_HTTP_BODY {
        return Err(Error::invalid(format!(
            "a plain HTTP body of {body_len} bytes is over the limit of {MAX_HTTP_BODY}"
        )));
    }
    Ok(())
}

/// Whether the request asks for a WebSocket upgrade at all (an `Upgrade: websocket` token);
/// the strict checks of section 1 apply only to those when an HTTP handler is set.
pub(crate) fn is_upgrade(req: &Request) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("upgrade"))
        .any(|(_, v)| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// Writes a plain answer and closes (no keep-alive: one request per connection).
pub(crate) async fn respond(io: &mut BoxIo, resp: &Response, head: bool) {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status,
        super::handshake::reason_phrase(resp.status)
    );
    for (n, v) in &resp.headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    if !resp
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(&resp.body);
    }
    let _ = io.write_all(&bytes).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// The extra header lines of `headers`, for the 101 or a refusal.
pub(crate) fn header_lines(headers: &[(String, String)]) -> String {
    let mut s = String::new();
    for (n, v) in headers {
        s.push_str(n);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s
}

/// Checks the headers an accept hook added.
pub(crate) fn check_hook_headers(headers: &[(String, String)]) -> Result<()> {
    headers
        .iter()
        .try_for_each(|(n, v)| check_response_header(n, v))
}

/// Answers a request that is not an upgrade: the handler runs on a callback thread (a mailbox
/// of its own, as accept hooks do, so that handlers of different requests run side by side and
/// none runs after the server was released) while this task waits, bounded by the handshake
/// timeout around it. A handler that declines leaves the request to the default refusal.
pub(crate) async fn serve_plain(
    shared: &Arc<super::Shared>,
    io: &mut BoxIo,
    req: &Request,
    handler: HttpHandlerRef,
) {
    use std::sync::atomic::Ordering;
    if shared.stopping.load(Ordering::SeqCst) {
        super::handshake::refuse(io, 503, "server shutting down").await;
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req2 = req.clone();
    let gate = shared.hooks.clone();
    Arc::new(crate::delivery::Mailbox::default()).post(Box::new(move || {
        if let Some(_running) = gate.enter() {
            let _ = tx.send(handler.0.handle(&req2));
        }
    }));
    match rx.await {
        Ok(Some(resp)) => {
            let checked = check_response(resp.status, resp.body.len())
                .and_then(|()| check_hook_headers(&resp.headers));
            match checked {
                Ok(()) => respond(io, &resp, req.method == "HEAD").await,
                Err(e) => super::handshake::refuse(io, 500, &e.to_string()).await,
            }
        }
        Ok(None) => {
            let (status, why) = super::handshake::check(req).err().unwrap_or((
                426,
                "this is a WebSocket endpoint: send an Upgrade: websocket request",
            ));
            super::handshake::refuse(io, status, why).await
        }
        Err(_) => super::handshake::refuse(io, 503, "server shutting down").await,
    }
}
