//! The client's side of the upgrade: the request it builds from an application's URL,
//! headers, subprotocols and origin, and its checks of the server's response.
//!
//! Input: byte 0 picks the mode. Mode "request": the rest is split at NUL bytes into URL,
//! origin, header names and values, subprotocols; a request that is built must be one valid
//! HTTP head with exactly the headers asked for (no header injection). Mode "response": byte
//! 1 picks what was offered (subprotocols, compression) and the limit of the response head,
//! byte 2 the read sizes; the rest is the server's response, in which `@A@` stands for the
//! right Sec-WebSocket-Accept. The response is parsed as the client reads it (growing
//! prefixes): the first complete answer must not depend on the split, an accepted one only
//! holds what was offered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsnative::fuzzing::*;

fn request_mode(data: &[u8]) {
    let parts: Vec<String> = data
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let url = parts.first().cloned().unwrap_or_default();
    let origin = parts.get(1).filter(|o| !o.is_empty()).cloned();
    let mut headers = Vec::new();
    let mut protos = Vec::new();
    for pair in parts.get(2..).unwrap_or(&[]).chunks(2) {
        match pair {
            [n, _] if n.starts_with('~') => protos.push(n[1..].to_owned()),
            [n, v] => headers.push((n.clone(), v.clone())),
            [n] => protos.push(n.clone()),
            _ => {}
        }
    }
    let dc = DeflateConfig {
        enabled: url.len() % 2 == 0,
        ..DeflateConfig::default()
    };
    let Ok((bytes, _pending)) = request(&url, &headers, &protos, origin.as_deref(), &dc) else {
        return;
    };
    // One head, ending where the bytes end, with the expected number of header lines.
    let text = String::from_utf8(bytes.clone()).expect("the request is UTF-8");
    assert!(text.ends_with("\r\n\r\n"));
    let head = &text[..text.len() - 4];
    assert!(
        !head.contains("\r\n\r\n"),
        "an empty line inside the request: {text:?}"
    );
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert!(
        lines[0].starts_with("GET ") && lines[0].ends_with(" HTTP/1.1"),
        "{:?}",
        lines[0]
    );
    assert!(
        !lines[0][4..lines[0].len() - 9].contains(' '),
        "a space in the target"
    );
    let expected = 5
        + origin.is_some() as usize
        + !protos.is_empty() as usize
        + dc.enabled as usize
        + headers.len();
    assert_eq!(lines.len() - 1, expected, "header injection: {text:?}");
    for l in &lines[1..] {
        assert!(!l.contains('\r') && !l.contains('\n'));
        let (n, _) = l.split_once(": ").expect("a header line is 'name: value'");
        assert!(!n.is_empty());
    }
}

fn response_mode(cfg: u8, split: u8, body: &[u8]) {
    let protos: Vec<String> = ["chat", "superchat", "v2.wsn"][..(cfg & 3).min(3) as usize]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let dc = DeflateConfig {
        enabled: cfg & 4 != 0,
        client_no_context_takeover: cfg & 8 != 0,
        server_no_context_takeover: cfg & 16 != 0,
        client_max_window_bits: 15 - (cfg >> 5) % 8,
        ..DeflateConfig::default()
    };
    let max_head = [256usize, 1024, 8192, 65536][(cfg >> 6) as usize & 3];
    let (req, pending) = request("ws://example.test/x?y", &[], &protos, None, &dc).unwrap();
    let text = String::from_utf8(req).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .trim()
        .to_owned();
    let accept = accept_key(key.as_bytes());
    let mut resp = Vec::with_capacity(body.len() + 32);
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(b"@A@") {
            resp.extend_from_slice(accept.as_bytes());
            i += 3;
        } else {
            resp.push(body[i]);
            i += 1;
        }
    }
    // As read: growing prefixes, in steps chosen by `split`.
    let step = (split as usize % 37) + 1;
    let mut n = 0;
    let incremental = loop {
        n = (n + step).min(resp.len());
        match parse_response(&pending, &resp[..n], max_head) {
            Ok(None) if n < resp.len() => continue,
            r => break (n, r),
        }
    };
    let whole = parse_response(&pending, &resp, max_head);
    let strip = |r: &Result<Option<Response>, String>| -> String {
        match r {
            Ok(Some(Response::Accepted {
                subprotocol,
                deflate,
                headers,
                ..
            })) => format!("accepted {subprotocol:?} {deflate:?} {headers:?}"),
            Ok(Some(Response::Refused {
                status,
                reason,
                headers,
                ..
            })) => format!("refused {status} {reason:?} {headers:?}"),
            Ok(None) => "incomplete".into(),
            Err(e) => format!("error {e}"),
        }
    };
    // A prefix that fits the limit gives the same answer as the whole response (reading
    // more bytes after a complete head changes nothing but the leftover).
    if resp.len() <= max_head || incremental.1.as_ref().is_ok_and(|r| r.is_some()) {
        if !matches!(whole, Err(ref e) if e.contains("over")) {
            assert_eq!(
                strip(&incremental.1),
                strip(&whole),
                "split at {}",
                incremental.0
            );
        }
    }
    if let Ok(Some(Response::Accepted {
        subprotocol,
        deflate,
        leftover,
        ..
    })) = &whole
    {
        if let Some(p) = subprotocol {
            assert!(
                protos.contains(p),
                "accepted a subprotocol that was not offered"
            );
        }
        if let Some(d) = deflate {
            assert!(dc.enabled, "accepted compression that was not offered");
            assert!((8..=15).contains(&d.server_max_window_bits));
            assert!(d.client_max_window_bits <= dc.client_max_window_bits);
            if dc.server_no_context_takeover {
                assert!(d.server_no_context_takeover);
            }
        }
        assert!(resp.ends_with(leftover));
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    if data[0] & 1 == 0 {
        request_mode(&data[1..]);
    } else {
        response_mode(data[1], data[2], &data[3..]);
    }
});
