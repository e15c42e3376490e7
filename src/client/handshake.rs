//! The client side of the opening handshake (RFC 6455 4.1), sans-IO: the request's bytes,
//! and the checks of the server's response read into a buffer. Not wired in yet (today's
//! client uses tokio-tungstenite's handshake); it goes with the new connection task.

use crate::protocol::deflate::{self, DeflateConfig, DeflateParams};

/// What the response will be checked against.
#[derive(Debug, Clone)]
pub struct Pending {
    key: String,
    subprotocols: Vec<String>,
    deflate: DeflateConfig,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 101 and every check passed.
    Accepted {
        subprotocol: Option<String>,
        /// Agreed permessage-deflate parameters, if any.
        deflate: Option<DeflateParams>,
        headers: Vec<(String, String)>,
        /// Bytes read past the response head: the first frames.
        leftover: Vec<u8>,
    },
    /// Not 101: status, reason, headers, and the body read so far, for a helpful error.
    Refused {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// Headers the handshake sets itself; an application may not set them.
const RESERVED: [&str; 7] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    {
        return Err(format!("invalid header name '{name}'"));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "invalid value for header '{name}': control characters are not allowed"
        ));
    }
    Ok(())
}

/// The upgrade request for `url` (ws:// or wss://), with a fresh key. `headers` are the
/// application's extra headers, in order.
pub fn request(
    url: &str,
    headers: &[(String, String)],
    subprotocols: &[String],
    origin: Option<&str>,
    deflate: &DeflateConfig,
) -> Result<(Vec<u8>, Pending), String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid URL '{url}': {e}"))?;
    let default_port = match u.scheme() {
        "ws" => 80,
        "wss" => 443,
        s => {
            return Err(format!(
                "invalid URL '{url}': the scheme must be ws or wss, not {s}"
            ))
        }
    };
    if u.fragment().is_some() {
        return Err(format!(
            "invalid URL '{url}': a WebSocket URL has no #fragment"
        ));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        None => return Err(format!("invalid URL '{url}': no host")),
    };
    let host = match u.port() {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host,
    };
    let mut target = u.path().to_owned();
    if let Some(q) = u.query() {
        target.push('?');
        target.push_str(q);
    }
    for p in subprotocols {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(format!("invalid subprotocol '{p}'"));
        }
    }
    let key = tungstenite::handshake::client::generate_key();
    let mut r = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(o) = origin {
        check_header("Origin", o)?;
        r.push_str(&format!("Origin: {o}\r\n"));
    }
    if !subprotocols.is_empty() {
        r.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            subprotocols.join(", ")
        ));
    }
    if deflate.enabled {
        r.push_str(&format!(
            "Sec-WebSocket-Extensions: {}\r\n",
            deflate::offer_header(deflate)
        ));
    }
    for (n, v) in headers {
        check_header(n, v)?;
        if RESERVED.iter().any(|r| n.eq_ignore_ascii_case(r))
            || (origin.is_some() && n.eq_ignore_ascii_case("origin"))
        {
            return Err(format!(
                "header '{n}' is set by the handshake and cannot be given"
            ));
        }
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let pending = Pending {
        key,
        subprotocols: subprotocols.to_vec(),
        deflate: deflate.clone(),
    };
    Ok((r.into_bytes(), pending))
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Parses the response head from `buf`. `Ok(None)`: incomplete, read more (unless `buf`
/// is already `max_head` bytes long, which is an error).
pub fn parse_response(
    pending: &Pending,
    buf: &[u8],
    max_head: usize,
) -> Result<Option<Response>, String> {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut hs);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_head {
                return Err(format!("the response head is over {max_head} bytes"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err("the response has too many headers".into())
        }
        Err(e) => return Err(format!("invalid HTTP response: {e}")),
    };
    if head_len > max_head {
        return Err(format!("the response head is over {max_head} bytes"));
    }
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        return Ok(Some(Response::Refused {
            status,
            reason: resp.reason.unwrap_or("").to_owned(),
            headers,
            body: buf[head_len..].to_vec(),
        }));
    }
    let all = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    if !all("Upgrade").iter().any(|v| has_token(v, "websocket")) {
        return Err("the response lacks 'Upgrade: websocket'".into());
    }
    if !all("Connection").iter().any(|v| has_token(v, "upgrade")) {
        return Err("the response lacks 'Connection: Upgrade'".into());
    }
    let want = tungstenite::handshake::derive_accept_key(pending.key.as_bytes());
    match all("Sec-WebSocket-Accept").as_slice() {
        [v] if v.trim() == want => {}
        [] => return Err("the response lacks Sec-WebSocket-Accept".into()),
        _ => return Err("the response's Sec-WebSocket-Accept does not match the key sent".into()),
    }
    let subprotocol = match all("Sec-WebSocket-Protocol").as_slice() {
        [] => None,
        [v] => {
            let v = v.trim();
            if !pending.subprotocols.iter().any(|p| p == v) {
                return Err(format!(
                    "the server chose subprotocol '{v}', which was not offered"
                ));
            }
            Some(v.to_owned())
        }
        _ => return Err("the server chose more than one subprotocol".into()),
    };
    let deflate = deflate::accept_response(&pending.deflate, &all("Sec-WebSocket-Extensions"))?;
    Ok(Some(Response::Accepted {
        subprotocol,
        deflate,
        headers,
        leftover: buf[head_len..].to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_deflate() -> DeflateConfig {
        DeflateConfig::default()
    }

    fn accept_for(p: &Pending) -> String {
        tungstenite::handshake::derive_accept_key(p.key.as_bytes())
    }

    fn ok_response(p: &Pending, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_for(p)
        )
        .into_bytes()
    }

    #[test]
    fn request_bytes() {
        let headers = vec![("Authorization".to_owned(), "Bearer x".to_owned())];
        let protos = vec!["chat".to_owned(), "superchat".to_owned()];
        let cfg = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let (req, p) = request(
            "ws://example.com:8080/a/b?x=1&y=2",
            &headers,
            &protos,
            Some("https://o.example"),
            &cfg,
        )
        .unwrap();
        let s = String::from_utf8(req).unwrap();
        assert!(
            s.starts_with("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\n"),
            "{s}"
        );
        for line in [
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            "Sec-WebSocket-Version: 13\r\n",
            "Origin: https://o.example\r\n",
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits\r\n",
            "Authorization: Bearer x\r\n",
            &format!("Sec-WebSocket-Key: {}\r\n", p.key),
        ] {
            assert!(s.contains(line), "{line:?} missing in {s}");
        }
        assert!(s.ends_with("\r\n\r\n"));
        assert_eq!(p.key.len(), 24); // base64 of 16 bytes
        let (r, _) = request("wss://[::1]:443", &[], &[], None, &no_deflate()).unwrap();
        assert!(String::from_utf8(r)
            .unwrap()
            .starts_with("GET / HTTP/1.1\r\nHost: [::1]\r\n"));
    }

    #[test]
    fn bad_requests() {
        let d = no_deflate();
        assert!(request("http://x/", &[], &[], None, &d).is_err());
        assert!(request("ws://x/#f", &[], &[], None, &d).is_err());
        assert!(request(
            "ws://x/",
            &[("X-A".into(), "a\r\nInjected: 1".into())],
            &[],
            None,
            &d
        )
        .is_err());
        assert!(request("ws://x/", &[("Bad Name".into(), "v".into())], &[], None, &d).is_err());
        assert!(request(
            "ws://x/",
            &[("sec-websocket-key".into(), "v".into())],
            &[],
            None,
            &d
        )
        .is_err());
        assert!(request("ws://x/", &[], &["a b".into()], None, &d).is_err());
    }

    #[test]
    fn accepted_response_with_leftover_frames() {
        let cfg = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let (_, p) = request("ws://h/", &[], &["chat".into()], None, &cfg).unwrap();
        let mut r = ok_response(
            &p,
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
        );
        let head = r.len();
        r.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        for cut in 0..head {
            assert_eq!(parse_response(&p, &r[..cut], 8192), Ok(None), "cut {cut}");
        }
        match parse_response(&p, &r, 8192).unwrap().unwrap() {
            Response::Accepted {
                subprotocol,
                deflate,
                leftover,
                ..
            } => {
                assert_eq!(subprotocol.as_deref(), Some("chat"));
                let d = deflate.unwrap();
                assert!(d.server_no_context_takeover && d.client_no_context_takeover);
                assert_eq!(leftover, vec![0x81, 0x02, b'h', b'i']);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_response_keeps_status_and_body() {
        let (_, p) = request("ws://h/", &[], &[], None, &no_deflate()).unwrap();
        let r = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno entry!";
        match parse_response(&p, r, 8192).unwrap().unwrap() {
            Response::Refused {
                status,
                reason,
                headers,
                body,
            } => {
                assert_eq!(
                    (status, reason.as_str(), body.as_slice()),
                    (403, "Forbidden", &b"no entry!"[..])
                );
                assert_eq!(headers, vec![("Content-Length".to_owned(), "9".to_owned())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_responses() {
        let (_, p) = request("ws://h/", &[], &["chat".into()], None, &no_deflate()).unwrap();
        let acc = accept_for(&p);
        let bad = |r: String| {
            let res = parse_response(&p, r.as_bytes(), 8192);
            assert!(res.is_err(), "{r:?} gave {res:?}");
        };
        bad(format!(
            "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {acc}\r\n\r\n"
        ));
        bad(format!(
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {acc}\r\n\r\n"
        ));
        bad("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".into());
        bad("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n".into());
        bad(String::from_utf8(ok_response(&p, "Sec-WebSocket-Protocol: other\r\n")).unwrap());
        bad(String::from_utf8(ok_response(
            &p,
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
        ))
        .unwrap());
        // deflate not offered
        bad(String::from_utf8(ok_response(
            &p,
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        ))
        .unwrap());
        bad("garbage\r\n\r\n".into());
        // head too large
        let big = format!("HTTP/1.1 101 OK\r\nX: {}\r\n", "a".repeat(10_000));
        assert!(parse_response(&p, big.as_bytes(), 8192).is_err());
        // no subprotocol chosen is fine
        assert!(matches!(
            parse_response(&p, &ok_response(&p, ""), 8192),
            Ok(Some(Response::Accepted {
                subprotocol: None,
                deflate: None,
                ..
            }))
        ));
    }
}
