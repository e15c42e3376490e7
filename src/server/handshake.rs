//! The server side of the opening handshake, done here rather than in tungstenite so that
//! size and time limits, the Origin check and the accept hook (which runs on a callback
//! thread, not an I/O thread) all sit in one place.

use super::{Decision, Request};
use crate::error::{Error, ErrorKind, Result};
use crate::io::BoxIo;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads the upgrade request; on a bad one, answers it and returns `Ok(None)`.
pub(crate) async fn read_request(
    io: &mut BoxIo,
    max: usize,
    peer: SocketAddr,
) -> Result<Option<(Request, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut scanned: usize = 0; // the end of the head is looked for in new bytes only (linear)
    let end = loop {
        if let Some(i) = find_end(&buf[scanned.saturating_sub(3)..]) {
            break scanned.saturating_sub(3) + i;
        }
        scanned = buf.len();
        if buf.len() > max {
            refuse(io, 431, "request header too large").await;
            return Ok(None);
        }
        let mut chunk = [0u8; 2048];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Io,
                "the client closed the connection during the handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if end > max {
        refuse(io, 431, "request header too large").await;
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; 96];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            refuse(io, 431, "too many request headers").await;
            return Ok(None);
        }
        _ => {
            refuse(io, 400, "malformed HTTP request").await;
            return Ok(None);
        }
    }
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let req = Request {
        method: parsed.method.unwrap_or("").to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        peer_addr: peer,
        peer_cert_subject: None,
        subprotocols: Vec::new(),
        http_minor: parsed.version.unwrap_or(0),
        setup: Default::default(),
    };
    let leftover = buf[end..].to_vec();
    let mut req = req;
    req.subprotocols = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Some((req, leftover)))
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn has_token(req: &Request, name: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Checks that the request is a valid WebSocket upgrade; returns the refusal otherwise.
pub(crate) fn check(req: &Request) -> std::result::Result<String, (u16, &'static str)> {
    if req.method != "GET" {
        return Err((405, "a WebSocket upgrade must use GET"));
    }
    if req.http_minor < 1 {
        return Err((400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    if req.header("host").is_none_or(|h| h.trim().is_empty()) {
        return Err((400, "missing Host header"));
    }
    if !has_token(req, "upgrade", "websocket") || !has_token(req, "connection", "upgrade") {
        return Err((
            426,
            "this is a WebSocket endpoint: send an Upgrade: websocket request",
        ));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err((426, "unsupported WebSocket version: only 13 is supported"));
    }
    let key = req.header("sec-websocket-key").map(str::trim).unwrap_or("");
    if !is_base64_of_16_bytes(key) {
        return Err((
            400,
            "missing or invalid Sec-WebSocket-Key (it must be the base64 of 16 bytes)",
        ));
    }
    Ok(key.to_owned())
}

/// 16 bytes in base64: 22 characters of the alphabet, then "==".
fn is_base64_of_16_bytes(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b.ends_with(b"==")
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    tungstenite::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Refused")
}

/// Answers with an HTTP error and the given body; errors are ignored (the client may be gone).
pub(crate) async fn refuse(io: &mut BoxIo, status: u16, body: &str) {
    refuse_with(io, status, body, &[]).await
}

/// `refuse`, with extra headers (from the accept hook).
pub(crate) async fn refuse_with(
    io: &mut BoxIo,
    status: u16,
    body: &str,
    extra: &[(String, String)],
) {
    super::ops::count_refusal(status);
    log::info!(target: "wsnative::server", "handshake refused with {status}: {body}");
    let mut resp = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    if status == 426 {
        resp.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    if status == 405 {
        resp.push_str("Allow: GET\r\n");
    }
    resp.push_str(&super::http::header_lines(extra));
    resp.push_str("\r\n");
    resp.push_str(body);
    let _ = io.write_all(resp.as_bytes()).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// Writes the 101 response.
pub(crate) async fn switch(
    io: &mut BoxIo,
    key: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Result<()> {
    let mut resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if let Some(p) = subprotocol {
        resp.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    if let Some(e) = extensions {
        resp.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    resp.push_str(&super::http::header_lines(extra));
    resp.push_str("\r\n");
    io.write_all(resp.as_bytes()).await?;
    io.flush().await?;
    Ok(())
}

/// Checks the decision of an accept hook against the request: one that breaks a rule (a
/// subprotocol the client did not offer, a status that is not a refusal, a close code that may
/// not be sent) is the server's fault, answered with 500 and the rule.
pub(crate) fn validate(decision: Decision, req: &Request) -> Decision {
    match decision.check(req) {
        Ok(()) => decision,
        Err(e) => Decision::Reject {
            status: 500,
            body: format!("the accept hook's decision broke a rule: {}", e.message()),
        },
    }
}
