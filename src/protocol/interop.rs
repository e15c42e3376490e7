//! Interop with Python `websockets` over real sockets on 127.0.0.1, both roles, with and
//! without permessage-deflate parameters. Ignored by default (needs Python `websockets`):
//! `WSN_PYTHON=/path/to/python cargo test --release --lib protocol::interop -- --ignored`.
//! A blocking driver stands in for the coming connection task.
//!
//! The same driver is an Autobahn testee (`autobahn_server`, `autobahn_client` below).
//! Result on 2026-11-30 with tests/autobahn/run.sh and `--unimplemented-fails`:
//! server 517/517 (sections 1-10 and 12-13 in two runs), client 517/517, every case OK
//! except 3 INFORMATIONAL in section 7; no NON-STRICT, no UNIMPLEMENTED.

use super::deflate::{self, DeflateConfig, DeflateParams};
use super::*;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

fn python() -> Option<String> {
    let py = std::env::var("WSN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(py)
    } else {
        eprintln!("Python websockets not found: skipped");
        None
    }
}

fn flush(s: &mut TcpStream, wb: &mut WriteBuf) {
    while !wb.is_empty() {
        let n = {
            let mut sl = [IoSlice::new(&[]); 16];
            let k = wb.io_slices(&mut sl);
            s.write_vectored(&sl[..k]).unwrap()
        };
        wb.advance(n);
    }
}

/// Decodes what `buf` holds: the items, and the error that stopped it, if any.
fn drain(
    dec: &mut Decoder,
    buf: &mut BytesMut,
    items: &mut Vec<Incoming>,
) -> Option<ProtocolError> {
    loop {
        match dec.decode(buf) {
            Ok(Some(x)) => items.push(x),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// Reads once, the way the decoder asks. `Ok(None)` at EOF.
#[allow(clippy::type_complexity)]
fn read_some(
    s: &mut TcpStream,
    dec: &mut Decoder,
    buf: &mut BytesMut,
) -> std::io::Result<Option<(Vec<Incoming>, Option<ProtocolError>)>> {
    let mut items = Vec::new();
    match dec.read_hint() {
        ReadHint::Direct { .. } if buf.is_empty() => {
            let mut db = dec.direct_buf();
            let dst = db.chunk_mut();
            let len = dst.len();
            // SAFETY: zeroed before being viewed as initialised bytes.
            let n = unsafe {
                std::ptr::write_bytes(dst.as_mut_ptr(), 0, len);
                s.read(std::slice::from_raw_parts_mut(dst.as_mut_ptr(), len))?
            };
            if n == 0 {
                return Ok(None);
            }
            unsafe { db.advance_mut(n) };
            match dec.direct_filled(n) {
                Ok(Some(x)) => items.push(x),
                Ok(None) => {}
                Err(e) => return Ok(Some((items, Some(e)))),
            }
        }
        _ => {
            let mut tmp = [0u8; 16 << 10];
            let n = s.read(&mut tmp)?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    }
    let err = drain(dec, buf, &mut items);
    Ok(Some((items, err)))
}

/// Ends our side: no more writes, then read (and drop) until the peer closes, so that
/// closing does not reset the connection under the peer's feet.
fn linger(s: &mut TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut tmp = [0u8; 4096];
    while matches!(s.read(&mut tmp), Ok(n) if n > 0) {}
}

/// Our server: handshake, then echo until the peer's Close.
fn serve(mut s: TcpStream) {
    let mut buf = BytesMut::new();
    let head = loop {
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut hs);
    if req.parse(&buf[..head]).is_err() {
        return;
    }
    let get = |name: &str| -> Vec<String> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .collect()
    };
    let Some(key) = get("Sec-WebSocket-Key").pop() else {
        return;
    };
    let offers = get("Sec-WebSocket-Extensions");
    let offers: Vec<&str> = offers.iter().map(String::as_str).collect();
    let cfg = DeflateConfig {
        enabled: true,
        client_no_context_takeover: false,
        server_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let neg = deflate::negotiate(&cfg, &offers);
    let mut resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if let Some((_, v)) = &neg {
        resp.push_str(&format!("Sec-WebSocket-Extensions: {v}\r\n"));
    }
    resp.push_str("\r\n");
    if s.write_all(resp.as_bytes()).is_err() {
        return;
    }
    buf.advance(head);
    let p = neg.map(|(p, _)| p);
    echo_loop(s, buf, Role::Server, p);
}

fn echo_loop(mut s: TcpStream, mut buf: BytesMut, role: Role, p: Option<DeflateParams>) {
    let _ = echo(&mut s, &mut buf, role, p);
    linger(&mut s);
}

/// Echoes messages, answers pings, answers the peer's Close (or fails the connection with
/// the decoder's close code).
fn echo(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    role: Role,
    p: Option<DeflateParams>,
) -> std::io::Result<()> {
    let mut dec = Decoder::new(&DecoderConfig {
        deflate: p,
        ..DecoderConfig::new(role, 64 << 20)
    });
    let mut enc = Encoder::new(&EncoderConfig {
        role,
        deflate: p,
        level: 6,
        threshold: 64,
    });
    let mut wb = WriteBuf::new();
    let mut closing = Closing::new();
    let mut pending = Vec::new();
    let mut err = drain(&mut dec, buf, &mut pending);
    loop {
        for item in pending.drain(..) {
            match item {
                Incoming::Message { text, data } => enc.message(&mut wb, text, data, true).unwrap(),
                Incoming::Ping(p) => enc.pong(&mut wb, &p).unwrap(),
                Incoming::Pong(_) => {}
                Incoming::Close(c) => {
                    if let Next::Answer(reply) = closing.on_peer_close(c) {
                        enc.close(&mut wb, reply).unwrap();
                        closing.on_our_close(reply);
                    }
                    flush(s, &mut wb);
                    return Ok(());
                }
            }
        }
        if let Some(e) = err.take() {
            let _ = enc.close(&mut wb, Some((e.code, e.reason)));
            flush(s, &mut wb);
            return Ok(());
        }
        flush(s, &mut wb);
        match read_some(s, &mut dec, buf)? {
            Some((items, e)) => {
                pending = items;
                err = e;
            }
            None => return Ok(()),
        }
    }
}

const CLIENT_SCRIPT: &str = r#"
import asyncio, os, sys, websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory as F
port = int(sys.argv[1])
params = [None, {}, dict(server_no_context_takeover=True, client_no_context_takeover=True),
          dict(server_max_window_bits=10, client_max_window_bits=9),
          dict(server_max_window_bits=8, client_max_window_bits=True),
          dict(server_max_window_bits=15, client_max_window_bits=15)]
msgs = ["", "hello", "κόσμε " * 1000, os.urandom(70000), ("{\"k\": 1}," * 200000).encode(), "x" * 65536]
async def main():
    for p in params:
        ext = None if p is None else [F(**p)]
        async with websockets.connect(f"ws://127.0.0.1:{port}", extensions=ext, max_size=None, compression=None if p is None else "deflate") as ws:
            assert (len(ws.protocol.extensions) > 0) == (p is not None), ws.protocol.extensions
            for m in msgs * 2:
                await ws.send(m)
                r = await ws.recv()
                assert r == m, (p, len(m), len(r))
            await (await ws.ping(b"abc"))
            await ws.close(4000, "done")
            assert ws.close_code == 4000, ws.close_code
    print("OK")
asyncio.run(main())
"#;

#[test]
#[ignore]
fn python_websockets_client_against_our_server() {
    let Some(py) = python() else { return };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..6 {
            let (s, _) = l.accept().unwrap();
            serve(s);
        }
    });
    let out = Command::new(py)
        .args(["-c", CLIENT_SCRIPT, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.starts_with(b"OK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.join().unwrap();
}

const SERVER_SCRIPT: &str = r#"
import asyncio, sys, websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory as F
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    p = eval(sys.argv[1])
    ext = None if p is None else [F(**p)]
    async with websockets.serve(echo, "127.0.0.1", 0, extensions=ext, max_size=None, compression=None if p is None else "deflate") as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(20)
asyncio.run(main())
"#;

#[test]
#[ignore]
fn our_client_against_python_websockets_server() {
    let Some(py) = python() else { return };
    let cases: [(&str, DeflateConfig); 4] = [
        ("None", DeflateConfig::default()),
        (
            "{}",
            DeflateConfig {
                enabled: true,
                ..DeflateConfig::default()
            },
        ),
        (
            "dict(server_max_window_bits=11, client_max_window_bits=10)",
            DeflateConfig {
                enabled: true,
                client_no_context_takeover: false,
                server_no_context_takeover: false,
                ..DeflateConfig::default()
            },
        ),
        (
            "dict(server_no_context_takeover=True, client_no_context_takeover=True)",
            DeflateConfig {
                enabled: true,
                client_no_context_takeover: false,
                server_no_context_takeover: false,
                client_max_window_bits: 12,
                ..DeflateConfig::default()
            },
        ),
    ];
    for (py_params, cfg) in cases {
        let mut child = Command::new(&py)
            .args(["-c", SERVER_SCRIPT, py_params])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = child.stdout.take().unwrap();
        let mut b = [0u8; 1];
        while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
            line.push(b[0] as char);
        }
        let port: u16 = line.trim().parse().unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let url = format!("ws://127.0.0.1:{port}/");
        let (req, pending) = crate::client::handshake::request(&url, &[], &[], None, &cfg).unwrap();
        s.write_all(&req).unwrap();
        let mut head = Vec::new();
        let resp = loop {
            let mut tmp = [0u8; 4096];
            let n = s.read(&mut tmp).unwrap();
            head.extend_from_slice(&tmp[..n]);
            if let Some(r) =
                crate::client::handshake::parse_response(&pending, &head, 16 << 10).unwrap()
            {
                break r;
            }
        };
        let crate::client::handshake::Response::Accepted {
            deflate: p,
            leftover,
            ..
        } = resp
        else {
            panic!("{resp:?}")
        };
        assert_eq!(p.is_some(), cfg.enabled, "{py_params}");
        let mut dec = Decoder::new(&DecoderConfig {
            deflate: p,
            ..DecoderConfig::new(Role::Client, 16 << 20)
        });
        let mut enc = Encoder::new(&EncoderConfig {
            role: Role::Client,
            deflate: p,
            level: 6,
            threshold: 64,
        });
        let mut wb = WriteBuf::new();
        let mut buf = BytesMut::from(&leftover[..]);
        let msgs: Vec<(bool, Bytes)> = vec![
            (true, Bytes::from_static(b"")),
            (true, Bytes::from("hello")),
            (true, Bytes::from("κόσμε ".repeat(1000))),
            (
                false,
                Bytes::from(
                    (0..70_000u32)
                        .map(|i| ((i * 7919) >> 3) as u8)
                        .collect::<Vec<u8>>(),
                ),
            ),
            (false, Bytes::from("{\"k\": 1},".repeat(200_000))),
        ];
        for _ in 0..2 {
            for (text, m) in &msgs {
                enc.message(&mut wb, *text, m.clone(), true).unwrap();
                flush(&mut s, &mut wb);
                let got = loop {
                    if let Some(x) = dec.decode(&mut buf).unwrap() {
                        break x;
                    }
                    let (items, e) = read_some(&mut s, &mut dec, &mut buf)
                        .unwrap()
                        .expect("server closed");
                    assert!(e.is_none(), "{e:?}");
                    if let Some(x) = items.into_iter().next() {
                        break x;
                    }
                };
                assert_eq!(
                    got,
                    Incoming::Message {
                        text: *text,
                        data: m.clone()
                    },
                    "{py_params}"
                );
            }
        }
        enc.close(&mut wb, Some((1000, "bye"))).unwrap();
        flush(&mut s, &mut wb);
        let got = loop {
            if let Some(x) = dec.decode(&mut buf).unwrap() {
                break x;
            }
            let (items, e) = read_some(&mut s, &mut dec, &mut buf)
                .unwrap()
                .expect("closed");
            assert!(e.is_none(), "{e:?}");
            if let Some(x) = items.into_iter().next() {
                break x;
            }
        };
        assert_eq!(
            got,
            Incoming::Close(Some((1000, "bye".into()))),
            "{py_params}"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Autobahn testees (driven by tests/autobahn/run.sh; see the report)

/// Echo server for `run.sh server`: `WSN_AB_PORT=9101 <test binary>
/// protocol::interop::autobahn_server --ignored --nocapture`. Exits after WSN_AB_SECONDS
/// (default 1800).
#[test]
#[ignore]
fn autobahn_server() {
    let Ok(port) = std::env::var("WSN_AB_PORT") else {
        eprintln!("WSN_AB_PORT not set: skipped");
        return;
    };
    let secs: u64 = std::env::var("WSN_AB_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1800);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        std::process::exit(0);
    });
    let l = TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    eprintln!("listening on 127.0.0.1:{port}");
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let _ = s.set_nodelay(true);
        std::thread::spawn(move || serve(s));
    }
}

/// Connects as a client with permessage-deflate offered (context takeover allowed).
fn client_connect(url: &str) -> std::io::Result<(TcpStream, BytesMut, Option<DeflateParams>)> {
    let u = url::Url::parse(url).unwrap();
    let mut s = TcpStream::connect((u.host_str().unwrap(), u.port().unwrap_or(80)))?;
    s.set_nodelay(true)?;
    let cfg = DeflateConfig {
        enabled: true,
        client_no_context_takeover: false,
        server_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let (req, pending) = crate::client::handshake::request(url, &[], &[], None, &cfg).unwrap();
    s.write_all(&req)?;
    let mut head = Vec::new();
    loop {
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&tmp[..n]);
        match crate::client::handshake::parse_response(&pending, &head, 16 << 10) {
            Ok(None) => continue,
            Ok(Some(crate::client::handshake::Response::Accepted {
                deflate, leftover, ..
            })) => return Ok((s, BytesMut::from(&leftover[..]), deflate)),
            Ok(Some(r)) => panic!("refused: {r:?}"),
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

/// The first text message of a connection (then closes).
fn first_text(url: &str) -> String {
    let (mut s, mut buf, p) = client_connect(url).unwrap();
    let mut dec = Decoder::new(&DecoderConfig {
        deflate: p,
        ..DecoderConfig::new(Role::Client, 1 << 20)
    });
    let mut items = Vec::new();
    assert!(drain(&mut dec, &mut buf, &mut items).is_none());
    loop {
        if let Some(Incoming::Message { data, .. }) = items.first() {
            let t = String::from_utf8(data.to_vec()).unwrap();
            linger(&mut s);
            return t;
        }
        let (more, e) = read_some(&mut s, &mut dec, &mut buf)
            .unwrap()
            .expect("closed early");
        assert!(e.is_none());
        items = more;
    }
}

/// Client for `run.sh client --cmd '<test binary> protocol::interop::autobahn_client
/// --ignored'`: runs every case of the fuzzing server at AUTOBAHN_URL.
#[test]
#[ignore]
fn autobahn_client() {
    let Ok(url) = std::env::var("AUTOBAHN_URL") else {
        eprintln!("AUTOBAHN_URL not set: skipped");
        return;
    };
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "wsnative-protocol".into());
    let count: usize = first_text(&format!("{url}/getCaseCount"))
        .trim()
        .parse()
        .unwrap();
    eprintln!("{count} cases");
    for i in 1..=count {
        match client_connect(&format!("{url}/runCase?case={i}&agent={agent}")) {
            Ok((s, buf, p)) => echo_loop(s, buf, Role::Client, p),
            Err(e) => eprintln!("case {i}: {e}"),
        }
    }
    let (s, buf, p) = client_connect(&format!("{url}/updateReports?agent={agent}")).unwrap();
    echo_loop(s, buf, Role::Client, p);
}
