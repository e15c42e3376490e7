//! Issue 15 §2 and §3.5 through the C ABI: caps on handshakes in progress (per client address
//! and in all, with the drop-oldest and refuse policies), the plain HTTP handler beside the
//! upgrade, and response headers added by the accept hook. Raw sockets on loopback check the
//! status lines, headers and bodies. The attack at the descriptor limit (1,100 slow clients,
//! `ulimit -n 1024`) is tests/defense/run.sh.

mod common;

use common::*;
use std::ffi::{c_void, CStr};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

const UPGRADE: &str =
    "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Sends `request` and reads the whole answer (the server closes after a plain answer).
fn exchange(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `request` and reads up to the end of the response head.
fn head_of(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    upgrade_on(&mut s, request)
}

fn upgrade_on(s: &mut TcpStream, request: &str) -> String {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 1024];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// What the callbacks saw, for the test to check (the C ABI's statuses inside callbacks).
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn seen(s: String) {
    SEEN.lock().unwrap().push(s);
}

unsafe fn text(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return "(null)".into();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

extern "C" fn on_http(_user: *mut c_void, req: *mut wsn_request) {
    unsafe {
        let method = text(wsn_request_get_method(req));
        let path = text(wsn_request_get_path(req));
        match path.as_str() {
            "/healthz" => {
                let ua = text(wsn_request_get_header(req, cstr("user-agent").as_ptr()));
                wsn_request_add_response_header(
                    req,
                    cstr("X-Check").as_ptr(),
                    cstr(&format!("{method} from {ua}")).as_ptr(),
                );
                let body = b"ok\n";
                wsn_request_respond(req, 200, body.as_ptr(), body.len());
            }
            "/json" => {
                wsn_request_add_response_header(
                    req,
                    cstr("Content-Type").as_ptr(),
                    cstr("application/json").as_ptr(),
                );
                let body = br#"{"up":true}"#;
                wsn_request_respond(req, 503, body.as_ptr(), body.len());
            }
            "/misuse" => {
                let accept = wsn_request_accept(req, std::ptr::null());
                let reserved = wsn_request_add_response_header(
                    req,
                    cstr("Content-Length").as_ptr(),
                    cstr("5").as_ptr(),
                );
                let bad_status = wsn_request_respond(req, 101, std::ptr::null(), 0);
                let null_body = wsn_request_respond(req, 200, std::ptr::null(), 3);
                seen(format!(
                    "http misuse: {accept:?} {reserved:?} {bad_status:?} {null_body:?}"
                ));
                wsn_request_respond(req, 204, std::ptr::null(), 0);
            }
            _ => {} // declined: the default answer
        }
    }
}

extern "C" fn on_accept_with_cookie(_user: *mut c_void, req: *mut wsn_request) {
    unsafe {
        let path = text(wsn_request_get_path(req));
        let method = text(wsn_request_get_method(req));
        let respond = wsn_request_respond(req, 200, std::ptr::null(), 0);
        let reserved = wsn_request_add_response_header(
            req,
            cstr("Sec-WebSocket-Accept").as_ptr(),
            cstr("x").as_ptr(),
        );
        let bad_value = wsn_request_add_response_header(
            req,
            cstr("X-Bad").as_ptr(),
            cstr("a\r\nInjected: yes").as_ptr(),
        );
        seen(format!(
            "accept {method} {path}: {respond:?} {reserved:?} {bad_value:?}"
        ));
        wsn_request_add_response_header(
            req,
            cstr("Set-Cookie").as_ptr(),
            cstr("session=abc123; HttpOnly").as_ptr(),
        );
        if path == "/denied" {
            wsn_request_add_response_header(
                req,
                cstr("WWW-Authenticate").as_ptr(),
                cstr("Bearer").as_ptr(),
            );
            wsn_request_reject(req, 401, cstr("log in first").as_ptr());
        }
    }
}

#[test]
fn plain_http_requests_go_to_the_handler_with_status_headers_and_body() {
    let so = wsn_server_options_new();
    unsafe {
        assert_eq!(
            wsn_server_options_set_http_handler(so, Some(on_http)),
            wsn_status::WSN_OK
        )
    };
    let server = TestServer::start(Recorder::server(), so, None);
    unsafe { wsn_server_options_free(so) };

    let a = exchange(
        server.port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: probe/1\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a:?}");
    assert!(a.contains("\r\nX-Check: GET from probe/1\r\n"), "{a:?}");
    assert!(
        a.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{a:?}"
    );
    assert!(a.contains("\r\nContent-Length: 3\r\n"), "{a:?}");
    assert!(a.contains("\r\nConnection: close\r\n"), "{a:?}");
    assert_eq!(body_of(&a), "ok\n");

    // HEAD: the same head, no body. HTTP/1.0 without Host (load balancers' probes): served.
    let h = exchange(server.port, "HEAD /healthz HTTP/1.0\r\n\r\n");
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h:?}");
    assert!(
        h.contains("X-Check: HEAD from (null)") && h.contains("Content-Length: 3"),
        "{h:?}"
    );
    assert_eq!(body_of(&h), "");

    // Any status, the handler's own Content-Type.
    let j = exchange(server.port, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        j.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{j:?}"
    );
    assert!(
        j.contains("Content-Type: application/json\r\n") && !j.contains("text/plain"),
        "{j:?}"
    );
    assert_eq!(body_of(&j), r#"{"up":true}"#);

    // A path the handler declines: the default answer, 426 (405 for other methods).
    let d = exchange(server.port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        d.starts_with("HTTP/1.1 426 ") && d.contains("Sec-WebSocket-Version: 13"),
        "{d:?}"
    );
    let p = exchange(
        server.port,
        "POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        p.starts_with("HTTP/1.1 405 ") && p.contains("Allow: GET"),
        "{p:?}"
    );

    // Misuse inside the handler is refused with a status, and the last valid answer stands.
    let m = exchange(server.port, "GET /misuse HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(m.starts_with("HTTP/1.1 204 No Content\r\n"), "{m:?}");
    assert!(SEEN.lock().unwrap().contains(
        &"http misuse: WSN_ERR_INVALID_STATE WSN_ERR_INVALID_ARGUMENT WSN_ERR_INVALID_ARGUMENT WSN_ERR_INVALID_ARGUMENT"
            .to_owned()
    ), "{:?}", SEEN.lock().unwrap());

    // Upgrades are still upgrades, checked as strictly as before.
    let u = head_of(server.port, UPGRADE);
    assert!(u.starts_with("HTTP/1.1 101 "), "{u:?}");
    let bad = exchange(
        server.port,
        &UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!!!!!!!!!!!!!!!!!!!A=="),
    );
    assert!(bad.starts_with("HTTP/1.1 400 "), "{bad:?}");
}

#[test]
fn without_a_handler_plain_requests_get_426() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let a = exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{a:?}");
    assert!(
        a.contains("Upgrade: websocket\r\n") && a.contains("Sec-WebSocket-Version: 13\r\n"),
        "{a:?}"
    );
}

#[test]
fn the_accept_hook_adds_headers_to_the_101_and_to_its_refusal() {
    let server = TestServer::start(
        Recorder::server(),
        std::ptr::null(),
        Some(on_accept_with_cookie),
    );
    let ok = head_of(server.port, UPGRADE);
    assert!(
        ok.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{ok:?}"
    );
    assert!(
        ok.contains("\r\nSet-Cookie: session=abc123; HttpOnly\r\n"),
        "{ok:?}"
    );
    assert!(
        ok.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{ok:?}"
    );
    assert!(!ok.contains("Injected"), "{ok:?}");

    let denied = exchange(server.port, &UPGRADE.replace("/chat", "/denied"));
    assert!(
        denied.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{denied:?}"
    );
    assert!(
        denied.contains("\r\nWWW-Authenticate: Bearer\r\n"),
        "{denied:?}"
    );
    assert!(
        denied.contains("\r\nSet-Cookie: session=abc123; HttpOnly\r\n"),
        "{denied:?}"
    );
    assert_eq!(body_of(&denied), "log in first");

    let s = SEEN.lock().unwrap();
    assert!(
        s.contains(&"accept GET /chat: WSN_ERR_INVALID_STATE WSN_ERR_INVALID_ARGUMENT WSN_ERR_INVALID_ARGUMENT".to_owned()),
        "{s:?}"
    );
}

/// A client from `ip` that sends one byte of a request and stops.
fn slow_client(ip: &str, port: u16) -> TcpStream {
    let sock = socket_from(ip);
    let mut s = connect_from(sock, port);
    s.write_all(b"G").unwrap();
    s
}

fn socket_from(ip: &str) -> std::net::SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

/// Connects from a chosen local address (127.0.0.2 and so on are distinct client addresses).
fn connect_from(local: SocketAddr, port: u16) -> TcpStream {
    // std cannot bind before connect: a tokio socket can, then hand over the std stream.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(local).unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            sock.connect(([127, 0, 0, 1], port).into()),
        )
        .await
        .expect("connect timed out")
        .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // a 503 before the close
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

fn server_with_caps(total: usize, per_ip: usize, policy: u32) -> TestServer {
    let so = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_max_pending_handshakes(so, total);
        wsn_server_options_set_max_pending_handshakes_per_ip(so, per_ip);
        assert_eq!(
            wsn_server_options_set_pending_handshake_policy(so, policy),
            wsn_status::WSN_OK
        );
        assert_eq!(
            wsn_server_options_set_pending_handshake_policy(so, 7),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("pending handshake policy 7"),
            "{}",
            last_error()
        );
    }
    let server = TestServer::start(Recorder::server(), so, None);
    unsafe { wsn_server_options_free(so) };
    server
}

#[test]
fn the_per_address_cap_drops_that_address_oldest_handshakes_only() {
    let server = server_with_caps(0, 4, WSN_PENDING_HANDSHAKE_DROP_OLDEST);
    let mut other: Vec<TcpStream> = (0..4)
        .map(|_| slow_client("127.0.0.2", server.port))
        .collect();
    let mut mine: Vec<TcpStream> = (0..10)
        .map(|_| slow_client("127.0.0.1", server.port))
        .collect();
    // The 6 oldest of 127.0.0.1 were dropped; its 4 newest and all of 127.0.0.2's are held.
    for (i, s) in mine.iter_mut().enumerate().take(6) {
        assert!(
            closed_by_server(s, Duration::from_secs(10)),
            "127.0.0.1 #{i} still open"
        );
    }
    for (i, s) in mine.iter_mut().enumerate().skip(6) {
        assert!(
            !closed_by_server(s, Duration::from_millis(300)),
            "127.0.0.1 #{i} was dropped"
        );
    }
    for (i, s) in other.iter_mut().enumerate() {
        assert!(
            !closed_by_server(s, Duration::from_millis(100)),
            "127.0.0.2 #{i} was dropped"
        );
    }
    // A legitimate client from the crowded address is served at once (dropping the oldest).
    let t0 = Instant::now();
    let mut legit = connect_from(socket_from("127.0.0.1"), server.port);
    let head = upgrade_on(&mut legit, UPGRADE);
    println!("legitimate client upgraded in {:?}", t0.elapsed());
    assert!(head.starts_with("HTTP/1.1 101 "), "{head:?}");
    assert!(closed_by_server(&mut mine[6], Duration::from_secs(10)));
    assert!(!closed_by_server(&mut mine[7], Duration::from_millis(100)));
}

#[test]
fn the_total_cap_drops_the_oldest_handshake_of_any_address() {
    let server = server_with_caps(5, 0, WSN_PENDING_HANDSHAKE_DROP_OLDEST);
    let mut slow: Vec<TcpStream> = (2..9)
        .map(|i| slow_client(&format!("127.0.0.{i}"), server.port))
        .collect();
    for (i, s) in slow.iter_mut().enumerate().take(2) {
        assert!(
            closed_by_server(s, Duration::from_secs(10)),
            "#{i} still open"
        );
    }
    for (i, s) in slow.iter_mut().enumerate().skip(2) {
        assert!(
            !closed_by_server(s, Duration::from_millis(200)),
            "#{i} was dropped"
        );
    }
    let head = head_of(server.port, UPGRADE);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head:?}");
}

#[test]
fn the_refuse_policy_answers_503_at_the_cap_and_admits_again_once_below() {
    let server = server_with_caps(3, 0, WSN_PENDING_HANDSHAKE_REFUSE);
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| slow_client("127.0.0.1", server.port))
        .collect();
    let refused = exchange(server.port, UPGRADE);
    assert!(
        refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refused:?}"
    );
    assert!(
        refused.ends_with("too many handshakes in progress"),
        "{refused:?}"
    );
    for s in slow.iter_mut() {
        assert!(!closed_by_server(s, Duration::from_millis(100)));
    }
    // One slow client leaves: room for a new handshake.
    slow.pop();
    let deadline = Instant::now() + WAIT;
    loop {
        let head = head_of(server.port, UPGRADE);
        if head.starts_with("HTTP/1.1 101 ") {
            break;
        }
        assert!(Instant::now() < deadline, "never admitted: {head:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With the default caps, a burst of clients from one address (a reconnect stampede through a
/// NAT, or every client behind a reverse proxy on the same host) all get in: the per-address
/// cap is off by default, and the total cap leaves room for the burst.
#[test]
fn with_the_defaults_a_burst_of_300_handshakes_from_one_address_all_open() {
    let server = echo_server();
    let clients: Vec<TestClient> = (0..300)
        .map(|_| TestClient::connect(&server.url(), std::ptr::null()))
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.rec.wait(WAIT, "every client's open", |e| {
            if let Some(Ev::Close { error, .. }) = e.iter().find(|e| matches!(e, Ev::Close { .. }))
            {
                panic!("client {i} was closed before it opened: {error:?}");
            }
            e.iter().any(|e| matches!(e, Ev::Open(_))).then_some(())
        });
    }
}
