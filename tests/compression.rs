//! permessage-deflate through the C ABI: wsnative against itself, and against a raw peer that
//! reads the frames on the wire (RSV1 set or not), sends a compression bomb, and offers
//! parameters the server must accept, narrow or decline.

mod common;

use common::*;
use flate2::{Compress, Compression, FlushCompress};
use std::ffi::CStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use wsnative::ffi::*;

/// A wsnative echo server with compression on (and the given per-message opt-out for echoes).
fn echo_server(compression: bool, max_message: usize) -> TestServer {
    let rec = Recorder::server();
    rec.set_hook(|conn, ev| {
        if let Ev::Msg { text, data, .. } = ev {
            // Echo; "secret" messages go back with the opt-out flag.
            let flags = u32::from(*text)
                | if data.starts_with(b"secret") {
                    WSN_SEND_NO_COMPRESS
                } else {
                    0
                };
            unsafe { wsn_conn_send(conn, data.as_ptr(), data.len(), flags, std::ptr::null_mut()) };
        }
    });
    let o = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_compression(o, compression);
        wsn_server_options_set_max_message_size(o, max_message);
    }
    let s = TestServer::start(rec, o, None);
    unsafe { wsn_server_options_free(o) };
    s
}

fn extensions(conn: *mut wsn_conn) -> String {
    unsafe { CStr::from_ptr(wsn_conn_get_extensions(conn)) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn wsnative_to_wsnative_negotiates_and_round_trips_compressible_and_incompressible_messages() {
    let server = echo_server(true, 64 << 20);
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_compression(o, true) };
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    let ext = extensions(client.conn);
    assert!(ext.starts_with("permessage-deflate"), "negotiated: {ext:?}");
    let mut sent = Vec::new();
    let mut seed = 7u32;
    for size in [10usize, 100, 1 << 10, 64 << 10, 1 << 20, 4 << 20] {
        let compressible: Vec<u8> = (0..size).map(|i| b"abcabcabd"[i % 9]).collect();
        let random: Vec<u8> = (0..size)
            .map(|_| {
                seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        for m in [compressible, random] {
            assert_eq!(client.send_binary(&m), wsn_status::WSN_OK);
            sent.push(m);
        }
    }
    let text = "héllo wörld ".repeat(1000);
    client.send_text(&text);
    client.rec.wait(Duration::from_secs(30), "every echo", |e| {
        (msg_count(e) == sent.len() + 1).then_some(())
    });
    let got = client.rec.messages();
    for (i, m) in sent.iter().enumerate() {
        assert!(
            got[i].1 == *m,
            "message {i} ({} bytes) changed on the way",
            m.len()
        );
    }
    assert_eq!(got.last().unwrap().1, text.as_bytes());
    client.close(1000, "");
    assert!(matches!(
        client.rec.wait_close(),
        Ev::Close {
            code: 1000,
            clean: true,
            ..
        }
    ));
}

/// A raw client: sends the upgrade with `extensions` (if any), returns the socket and the head.
fn raw_upgrade(port: u16, extensions: Option<&str>) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "the server closed during the handshake"
        );
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

fn extension_header(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| v.trim().to_owned())
    })
}

/// A masked client frame.
fn frame(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode | if rsv1 { 0x40 } else { 0 }];
    let mask = [1u8, 2, 3, 4];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one server frame: (first byte, payload).
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0], p)
}

/// Raw deflate of `data` with the trailing 00 00 ff ff removed (RFC 7692 7.2.1).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        let before_in = c.total_in();
        out.reserve(64 << 10);
        c.compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        input = &input[(c.total_in() - before_in) as usize..];
        if input.is_empty() && out.ends_with(&[0, 0, 0xff, 0xff]) {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

#[test]
fn the_wire_shows_rsv1_only_for_compressed_messages_over_the_threshold_and_not_for_opted_out_ones()
{
    let server = echo_server(true, 64 << 20);
    let (mut s, head) = raw_upgrade(
        server.port,
        Some("permessage-deflate; client_max_window_bits"),
    );
    let ext = extension_header(&head).expect("the server accepted the offer");
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    let big = "x".repeat(4096);
    let secret = format!("secret {}", "y".repeat(4096));
    for (msg, want_rsv1) in [
        (big.as_str(), true),
        ("tiny", false),
        (secret.as_str(), false),
    ] {
        s.write_all(&frame(0x1, false, msg.as_bytes())).unwrap();
        let (b0, payload) = read_frame(&mut s);
        assert_eq!(b0 & 0x0f, 0x1, "a text frame");
        assert_eq!(
            b0 & 0x40 != 0,
            want_rsv1,
            "RSV1 for a {}-byte message starting {:?}",
            msg.len(),
            &msg[..4]
        );
        if want_rsv1 {
            assert!(
                payload.len() < msg.len() / 10,
                "compressed to {} bytes",
                payload.len()
            );
        } else {
            assert_eq!(payload, msg.as_bytes());
        }
    }
    // A compressed message from the client is inflated.
    let text = "compressed from the client ".repeat(100);
    s.write_all(&frame(0x1, true, &deflate(text.as_bytes())))
        .unwrap();
    let (_, payload) = read_frame(&mut s);
    assert!(!payload.is_empty());
    server
        .rec
        .wait(Duration::from_secs(10), "the inflated message", |e| {
            e.iter()
                .any(|e| matches!(e, Ev::Msg { data, .. } if data == text.as_bytes()))
                .then_some(())
        });
}

#[test]
fn a_compression_bomb_closes_with_1009_without_inflating_past_the_limit() {
    let server = echo_server(true, 1 << 20);
    let (mut s, head) = raw_upgrade(server.port, Some("permessage-deflate"));
    assert!(extension_header(&head).is_some());
    // 64 MiB of zeros compresses to about 64 KiB: far under the 1 MiB frame limit.
    let bomb = deflate(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    s.write_all(&frame(0x2, true, &bomb)).unwrap();
    let (b0, payload) = read_frame(&mut s);
    assert_eq!(b0 & 0x0f, 0x8, "a Close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    match server.rec.wait_close() {
        Ev::Close {
            code: 1009,
            error: Some(e),
            ..
        } => assert!(e.contains("size limit") || e.contains("limit"), "{e}"),
        other => panic!("expected 1009, got {other:?}"),
    }
    assert_eq!(server.rec.count_messages(), 0);
}

#[test]
fn negotiation_outcomes_refused_narrowed_and_invalid_offers() {
    // Off on the server: the offer is declined, and messages flow uncompressed.
    let off = echo_server(false, 1 << 20);
    let (_s, head) = raw_upgrade(off.port, Some("permessage-deflate"));
    assert_eq!(
        extension_header(&head),
        None,
        "a server without compression declines"
    );
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_compression(o, true) };
    let client = TestClient::connect(&off.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    assert_eq!(extensions(client.conn), "");

    // Narrowed: the server asks clients that allow it for a smaller window, and keeps its own.
    let on = {
        let rec = Recorder::server();
        let o = wsn_server_options_new();
        unsafe {
            wsn_server_options_set_compression(o, true);
            assert_eq!(
                wsn_server_options_set_compression_params(o, true, true, 16, 15),
                wsn_status::WSN_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                wsn_server_options_set_compression_params(o, true, true, 10, 12),
                wsn_status::WSN_OK
            );
        }
        let s = TestServer::start(rec, o, None);
        unsafe { wsn_server_options_free(o) };
        s
    };
    let (_s, head) = raw_upgrade(on.port, Some("permessage-deflate; client_max_window_bits"));
    let ext = extension_header(&head).unwrap();
    assert!(ext.contains("client_max_window_bits=10"), "{ext}");
    assert!(ext.contains("server_max_window_bits=12"), "{ext}");
    // The client offers no window parameter: the server may not impose client_max_window_bits.
    let (_s, head) = raw_upgrade(on.port, Some("permessage-deflate"));
    let ext = extension_header(&head).unwrap();
    assert!(!ext.contains("client_max_window_bits"), "{ext}");

    // Invalid offers (unknown parameter, bad value, duplicate) are declined; a later valid one
    // in the same header is taken.
    for bad in [
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits=20",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ] {
        let (_s, head) = raw_upgrade(on.port, Some(bad));
        assert_eq!(
            extension_header(&head),
            None,
            "offer {bad:?} should be declined"
        );
    }
    let (_s, head) = raw_upgrade(
        on.port,
        Some("permessage-deflate; foo=1, permessage-deflate"),
    );
    assert!(
        extension_header(&head).is_some(),
        "the second, valid offer is taken"
    );
    unsafe {
        let o = wsn_client_options_new();
        assert_eq!(
            wsn_client_options_set_compression_threshold(o, 10, 10),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            wsn_client_options_set_compression(std::ptr::null_mut(), true),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        wsn_client_options_free(o);
    }
}

#[test]
fn a_thousand_compressed_messages_each_way_arrive_in_order() {
    let server = echo_server(true, 64 << 20);
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_compression(o, true) };
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    for size in [64usize, 256, 1024, 4096] {
        let before = client.rec.count_messages();
        for i in 0..1000 {
            let m = format!("{i:06} {}", "*".repeat(size - 7));
            assert_eq!(client.send_text(&m), wsn_status::WSN_OK);
        }
        client
            .rec
            .wait(Duration::from_secs(30), "1000 echoes", |e| {
                (msg_count(e) == before + 1000).then_some(())
            });
    }
    let got = client.rec.messages();
    assert!(got[..1000]
        .iter()
        .enumerate()
        .all(|(i, (_, d))| d.starts_with(format!("{i:06}").as_bytes())));
}

/// Reads past a large frame's end land in the message's buffer and are handed to the read
/// buffer: a fragmented message whose large first frame, a Ping and the last frame come in
/// one write, then a large and a small message in another, are all answered (the frames after
/// the large one must be decoded from there at once: no more bytes come until they are).
#[test]
fn frames_that_follow_a_large_frame_in_the_same_write_are_read() {
    let server = echo_server(false, 1 << 20);
    let (mut s, head) = raw_upgrade(server.port, None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut first = frame(0x2, false, &big);
    first[0] &= 0x7f; // not final
    let mut wire = first;
    wire.extend(frame(0x9, false, b"are you there"));
    wire.extend(frame(0x0, false, b"tail")); // continuation, final
    s.write_all(&wire).unwrap();
    let mut joined = big.clone();
    joined.extend_from_slice(b"tail");
    assert_eq!(
        read_frame(&mut s),
        (0x8a, b"are you there".to_vec()),
        "the Pong first"
    );
    assert_eq!(read_frame(&mut s), (0x82, joined));
    let mut wire = frame(0x2, false, &big[..70_000]);
    wire.extend(frame(0x1, false, b"last"));
    s.write_all(&wire).unwrap();
    assert_eq!(read_frame(&mut s), (0x82, big[..70_000].to_vec()));
    assert_eq!(read_frame(&mut s), (0x81, b"last".to_vec()));
}
