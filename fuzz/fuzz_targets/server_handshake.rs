//! The server's side of the upgrade: reading the request (size limit, end of head found in
//! any split of the bytes), the HTTP parse, the upgrade checks, permessage-deflate
//! negotiation and the accept hook's decision check.
//!
//! Input: byte 0 picks the header size limit, byte 1 the read sizes, byte 2 the compression
//! configuration; the rest is what the client sends. Checked: nothing panics or waits; the
//! outcome does not depend on how the bytes were split into reads (the bytes after the head
//! reach the connection either way, read ahead or still in the socket); a refusal is a complete
//! HTTP response; an accepted key is 24 base64 characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsnative::fuzzing::*;

fn chunks(seed: u8) -> Vec<usize> {
    match seed % 4 {
        0 => vec![usize::MAX],
        1 => vec![1],
        2 => vec![(seed as usize >> 2) + 1],
        _ => (0..8).map(|i| (seed as usize * (i + 3)) % 97 + 1).collect(),
    }
}

/// The outcome, with the bytes after the request's head as the connection will see them:
/// those the handshake read ahead, then those still unread in the socket.
fn summary(o: &ServerOutcome) -> String {
    let after = match &o.request {
        Some((_, leftover)) => [leftover.as_slice(), &o.unread].concat(),
        None => Vec::new(),
    };
    let req = o.request.as_ref().map(|(r, _)| r);
    format!("{req:?} {:?} {:?} {after:?}", o.error, o.written)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = [64usize, 512, 8192, 16384][(data[0] & 3) as usize];
    let (cfg, input) = (data[2], &data[3..]);
    let whole = server_read_request(input, &[usize::MAX], max);
    let split = server_read_request(input, &chunks(data[1]), max);
    assert_eq!(
        summary(&whole),
        summary(&split),
        "the outcome depends on how the request was split into reads"
    );
    if !whole.written.is_empty() {
        assert!(whole.request.is_none());
        let text = String::from_utf8_lossy(&whole.written);
        assert!(
            text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
            "{text}"
        );
        assert!(text.contains("\r\n\r\n"));
    }
    let Some((req, leftover)) = whole.request else {
        return;
    };
    assert!(input.ends_with(&[leftover.as_slice(), &whole.unread].concat()));
    match server_check(&req) {
        Ok(key) => {
            assert_eq!(key.len(), 24);
            assert_eq!(accept_key(key.as_bytes()).len(), 28);
        }
        Err((status, body)) => {
            assert!((400..600).contains(&status));
            assert!(!body.is_empty());
        }
    }
    // Compression negotiation over whatever the client offered.
    let dc = DeflateConfig {
        enabled: true,
        client_no_context_takeover: cfg & 1 != 0,
        server_no_context_takeover: cfg & 2 != 0,
        client_max_window_bits: 8 + (cfg >> 2) % 8,
        server_max_window_bits: 8 + (cfg >> 5) % 8,
        threshold: 64,
        level: 6,
    };
    let offers: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| v.as_str())
        .collect();
    if let Some((params, header)) = negotiate(&dc, &offers) {
        assert!((8..=15).contains(&params.server_max_window_bits));
        assert!((8..=15).contains(&params.client_max_window_bits));
        assert!(params.server_max_window_bits <= dc.server_max_window_bits);
        assert!(header.starts_with("permessage-deflate"));
        assert!(!header.contains('\r') && !header.contains('\n'));
        // What we answer must be what a client accepts for its own offer.
        let client = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let _ = accept_response(&client, &[header.as_str()]);
    }
    // The accept hook's decision: an offered subprotocol passes, another one is refused.
    for p in &req.subprotocols {
        assert!(!p.is_empty() && p.trim() == p);
        let d = server_validate(
            Decision::Accept {
                subprotocol: Some(p.clone()),
            },
            &req,
        );
        assert_eq!(
            d,
            Decision::Accept {
                subprotocol: Some(p.clone())
            }
        );
        assert_eq!(req.offered(Some(p)).unwrap().as_deref(), Some(p.as_str()));
    }
    let never = "\u{1}never-offered";
    let d = server_validate(
        Decision::Close {
            code: 4000,
            reason: String::new(),
            subprotocol: Some(never.into()),
        },
        &req,
    );
    assert!(matches!(d, Decision::Reject { status: 500, .. }));
    let _ = req.header("host");
});
