//! The core contract, exercised through the C ABI against wsnative's own server and client.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wsnative::ffi::*;

fn close_parts(e: &Ev) -> (u16, String, bool) {
    match e {
        Ev::Close {
            code,
            reason,
            clean,
            ..
        } => (*code, reason.clone(), *clean),
        _ => unreachable!(),
    }
}

#[test]
fn close_finishes_client_initiated_close_is_clean_on_both_sides() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    server.rec.wait_open();
    assert_eq!(client.send_text("hello"), wsn_status::WSN_OK);
    server
        .rec
        .wait(WAIT, "message", |e| (msg_count(e) == 1).then_some(()));
    assert_eq!(client.close(4000, "client done"), wsn_status::WSN_OK);
    let c = close_parts(&client.rec.wait_close());
    let s = close_parts(&server.rec.wait_close());
    assert_eq!(c, (4000, "client done".to_string(), true));
    assert_eq!(s, c);
    assert_eq!(
        unsafe { wsn_conn_get_state(client.conn) },
        wsn_conn_state::WSN_STATE_CLOSED
    );
}

#[test]
fn close_finishes_server_initiated_close_is_clean_on_both_sides() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let sconn = server.rec.wait_open() as *mut wsn_conn;
    assert_eq!(
        unsafe { wsn_conn_close(sconn, 4002, cstr("server says bye").as_ptr()) },
        wsn_status::WSN_OK
    );
    let c = close_parts(&client.rec.wait_close());
    let s = close_parts(&server.rec.wait_close());
    assert_eq!(s, (4002, "server says bye".to_string(), true));
    assert_eq!(c, s);
}

/// The seed scenario (002): a client streams 1024 x 128 KiB while the server answers every
/// 4 MiB; the client then closes. Nothing hangs, nothing is lost silently.
#[test]
fn close_finishes_after_a_two_way_stream_with_every_reply() {
    const CHUNK: usize = 128 << 10;
    const STEP: usize = 4 << 20;
    let srec = Recorder::server();
    let received = Arc::new(AtomicUsize::new(0));
    let replies_ok = Arc::new(AtomicUsize::new(0));
    let unsent_at_close = Arc::new(AtomicUsize::new(usize::MAX));
    let reply = format!("Server got {STEP} bytes\n");
    {
        let (received, replies_ok, unsent, reply) = (
            received.clone(),
            replies_ok.clone(),
            unsent_at_close.clone(),
            reply.clone(),
        );
        srec.set_hook(move |conn, ev| match ev {
            Ev::Msg { data, .. } => {
                let before = received.fetch_add(data.len(), Ordering::SeqCst);
                if (before + data.len()) / STEP > before / STEP {
                    let st = unsafe {
                        wsn_conn_send_text(conn, reply.as_ptr() as *const _, reply.len())
                    };
                    if st == wsn_status::WSN_OK {
                        replies_ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            Ev::Close { .. } => unsent.store(
                unsafe { wsn_conn_get_buffered_amount(conn) },
                Ordering::SeqCst,
            ),
            _ => {}
        });
    }
    let server = TestServer::start(srec, std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let buf = vec![7u8; CHUNK];
    // 128 MiB is more than the send queue takes at once (64 MiB): a full queue says
    // WOULD_BLOCK, and the sender tries again once it has drained a little.
    for _ in 0..1024 {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            match client.send_binary(&buf) {
                wsn_status::WSN_OK => break,
                wsn_status::WSN_ERR_WOULD_BLOCK if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                other => panic!("send failed: {other:?} {}", last_error()),
            }
        }
    }
    assert_eq!(client.close(1000, ""), wsn_status::WSN_OK);
    let (code, _, clean) = close_parts(
        &client
            .rec
            .wait_close_of(client.conn as usize, Duration::from_secs(60)),
    );
    assert_eq!((code, clean), (1000, true));
    server.rec.wait_close();
    assert_eq!(
        received.load(Ordering::SeqCst),
        1024 * CHUNK,
        "the server got all 128 MiB"
    );
    let written =
        replies_ok.load(Ordering::SeqCst) - unsent_at_close.load(Ordering::SeqCst) / reply.len();
    let got = client.rec.count_messages();
    // The client's Close is answered only after the server's callbacks for the messages before
    // it have run and their replies are written: every reply arrives.
    assert_eq!(
        replies_ok.load(Ordering::SeqCst),
        32,
        "the server answered every 4 MiB"
    );
    assert_eq!(
        got, written,
        "the client got every reply the server wrote before the close"
    );
    assert_eq!(got, 32, "every reply arrived before the close completed");
}

#[test]
fn sending_from_eight_threads_keeps_per_thread_order() {
    const THREADS: usize = 8;
    const EACH: usize = 10_000;
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let client = Arc::new(TestClient::connect(&server.url(), std::ptr::null()));
    client.rec.wait_open();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = client.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let msg = format!("{t}:{i}:{}", "x".repeat(i % 97));
                    assert_eq!(c.send_text(&msg), wsn_status::WSN_OK);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    server
        .rec
        .wait(Duration::from_secs(60), "all messages", |e| {
            (msg_count(e) == THREADS * EACH).then_some(())
        });
    let mut next = [0usize; THREADS];
    for (text, data) in server.rec.messages() {
        assert!(text);
        let s = String::from_utf8(data).unwrap();
        let mut parts = s.splitn(3, ':');
        let t: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(i, next[t], "thread {t}'s messages out of order");
        assert_eq!(
            parts.next().unwrap(),
            "x".repeat(i % 97),
            "message corrupted"
        );
        next[t] += 1;
    }
    assert!(next.iter().all(|&n| n == EACH));
}

#[test]
fn close_finishes_after_everything_queued_was_sent() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let payload = vec![1u8; 64 << 10];
    for _ in 0..1000 {
        assert_eq!(client.send_binary(&payload), wsn_status::WSN_OK);
    }
    assert!(
        unsafe { wsn_conn_get_buffered_amount(client.conn) } > 0,
        "messages should still be queued"
    );
    assert_eq!(client.close(1000, "after the queue"), wsn_status::WSN_OK);
    assert_ne!(
        client.send_text("late"),
        wsn_status::WSN_OK,
        "no send after close"
    );
    let s = server.rec.wait_close();
    let events = server.rec.events.lock().unwrap().clone();
    let msgs = events
        .iter()
        .filter(|e| matches!(e, Ev::Msg { .. }))
        .count();
    assert_eq!(msgs, 1000, "all queued messages arrive before the Close");
    assert!(matches!(events.last(), Some(Ev::Close { .. })));
    assert_eq!(close_parts(&s), (1000, "after the queue".into(), true));
    assert_eq!(unsafe { wsn_conn_get_buffered_amount(client.conn) }, 0);
}

#[test]
fn lifetime_misuse_is_harmless() {
    unsafe {
        // NULL arguments and invalid UTF-8 in option strings: a status and a message.
        let mut conn = std::ptr::null_mut();
        assert_eq!(
            wsn_connect(
                std::ptr::null(),
                std::ptr::null(),
                None,
                std::ptr::null_mut(),
                &mut conn
            ),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("url is NULL"), "{}", last_error());
        assert_eq!(
            wsn_connect(
                cstr("http://x").as_ptr(),
                std::ptr::null(),
                None,
                std::ptr::null_mut(),
                &mut conn
            ),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("scheme"), "{}", last_error());
        assert_eq!(
            wsn_connect(
                cstr("ws://127.0.0.1:1/").as_ptr(),
                std::ptr::null(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut()
            ),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        let o = wsn_client_options_new();
        let bad = [0x66u8, 0xff, 0xfe, 0];
        assert_eq!(
            wsn_client_options_set_origin(o, bad.as_ptr() as *const _),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("UTF-8"), "{}", last_error());
        assert_eq!(
            wsn_client_options_add_header(o, cstr("Bad Name").as_ptr(), cstr("v").as_ptr()),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            wsn_client_options_add_header(
                std::ptr::null_mut(),
                cstr("a").as_ptr(),
                cstr("v").as_ptr()
            ),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("NULL"));
        assert_eq!(
            wsn_client_options_set_close_timeout_ms(o, 0),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            wsn_client_options_set_tls_roots(o, 99),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        wsn_client_options_free(o);
        wsn_client_options_free(std::ptr::null_mut());
        assert_eq!(
            wsn_conn_send_text(std::ptr::null_mut(), std::ptr::null(), 0),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            wsn_conn_close(std::ptr::null_mut(), 1000, std::ptr::null()),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        wsn_conn_free(std::ptr::null_mut());
        wsn_server_free(std::ptr::null_mut());
        assert_eq!(
            wsn_conn_get_state(std::ptr::null()),
            wsn_conn_state::WSN_STATE_CLOSED
        );
    }

    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    // Invalid UTF-8 in a text send, a bad close code, a long reason: errors, connection intact.
    let bad = [0xffu8, 0xfe];
    assert_eq!(
        unsafe { wsn_conn_send_text(client.conn, bad.as_ptr() as *const _, 2) },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("UTF-8"));
    assert_eq!(client.close(1005, ""), wsn_status::WSN_ERR_INVALID_ARGUMENT);
    assert_eq!(
        client.close(1000, &"r".repeat(124)),
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
    assert_eq!(client.send_text("still open"), wsn_status::WSN_OK);
    // Close twice; send after close.
    assert_eq!(client.close(1000, "once"), wsn_status::WSN_OK);
    assert_eq!(client.close(1000, "twice"), wsn_status::WSN_OK);
    assert_eq!(client.send_text("late"), wsn_status::WSN_ERR_INVALID_STATE);
    assert!(last_error().contains("closing"), "{}", last_error());
    assert_eq!(close_parts(&client.rec.wait_close()).0, 1000);
    assert_eq!(
        client.send_binary(b"after"),
        wsn_status::WSN_ERR_INVALID_STATE
    );
    assert_eq!(client.close(1000, "again"), wsn_status::WSN_OK);
}

/// Frees from inside on_message and on_close, and checks that no callback runs after
/// wsn_conn_free returns, even while messages keep arriving.
#[test]
fn lifetime_free_inside_callbacks_and_no_callback_after_free() {
    // The server's connections are freed at the end, not at their close events: the test sends
    // on them from this thread while their peers free themselves, and a close answered quickly
    // would otherwise free a handle this thread is still sending on.
    let server = TestServer::start(Recorder::new(), std::ptr::null(), None);

    // Free from inside on_message: no close event follows.
    let client = TestClient::connect(&server.url(), std::ptr::null());
    let freed_in_msg = Arc::new(AtomicBool::new(false));
    {
        let f = freed_in_msg.clone();
        client.rec.set_hook(move |conn, ev| {
            if matches!(ev, Ev::Msg { .. }) && !f.swap(true, Ordering::SeqCst) {
                unsafe { wsn_conn_free(conn) };
            }
        });
    }
    client.rec.wait_open();
    let sconn = server.rec.wait_open() as *mut wsn_conn;
    for _ in 0..100 {
        unsafe { wsn_conn_send_text(sconn, b"m".as_ptr() as *const _, 1) };
    }
    server.rec.wait_close_of(sconn as usize, WAIT); // freeing an open connection closes it (1001)
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        client.rec.count_messages(),
        1,
        "no callback after free from inside on_message"
    );
    assert!(!client
        .rec
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Ev::Close { .. })));
    std::mem::forget(client); // already freed

    // Free from inside on_close.
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.set_hook(move |conn, ev| {
        if matches!(ev, Ev::Close { .. }) {
            unsafe { wsn_conn_free(conn) };
        }
    });
    client.rec.wait_open();
    client.close(1000, "");
    client.rec.wait_close();
    std::mem::forget(client);

    // Free from another thread while callbacks are running slowly: none after free returns.
    let client = TestClient::connect(&server.url(), std::ptr::null());
    let after_free = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicUsize::new(0));
    {
        let (a, v) = (after_free.clone(), violations.clone());
        client.rec.set_hook(move |_, _| {
            if a.load(Ordering::SeqCst) {
                v.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(2));
        });
    }
    client.rec.wait_open();
    let sconn = server.rec.wait(WAIT, "third open", |e| {
        let opens: Vec<_> = e
            .iter()
            .filter_map(|e| if let Ev::Open(c) = e { Some(*c) } else { None })
            .collect();
        (opens.len() == 3).then(|| opens[2])
    }) as *mut wsn_conn;
    for _ in 0..500 {
        unsafe { wsn_conn_send_text(sconn, b"flood".as_ptr() as *const _, 5) };
    }
    client
        .rec
        .wait(WAIT, "some messages", |e| (msg_count(e) >= 5).then_some(()));
    let conn = client.conn;
    std::mem::forget(client);
    unsafe { wsn_conn_free(conn) };
    after_free.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "a callback ran after wsn_conn_free returned"
    );
    let rec = server.rec.clone();
    drop(server); // every close event of its connections was delivered
    let opened: Vec<usize> = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| if let Ev::Open(c) = e { Some(*c) } else { None })
        .collect();
    for c in opened {
        unsafe { wsn_conn_free(c as *mut wsn_conn) };
    }
}

extern "C" fn refuse_or_close(_user: *mut std::ffi::c_void, req: *mut wsn_request) {
    unsafe {
        let path = std::ffi::CStr::from_ptr(wsn_request_get_path(req))
            .to_str()
            .unwrap()
            .to_owned();
        match path.as_str() {
            "/forbidden" => {
                wsn_request_reject(req, 403, cstr("no entry").as_ptr());
            }
            "/kick" => {
                wsn_request_accept_and_close(req, 4001, cstr("token expired").as_ptr());
            }
            _ => {
                let origin = wsn_request_get_header(req, cstr("origin").as_ptr());
                assert!(
                    origin.is_null() || !std::ffi::CStr::from_ptr(origin).to_bytes().is_empty()
                );
            }
        }
    }
}

#[test]
fn server_accept_hook_refuses_with_status_or_closes_with_code() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), Some(refuse_or_close));
    let refused = TestClient::connect(
        &format!("ws://127.0.0.1:{}/forbidden", server.port),
        std::ptr::null(),
    );
    match refused.rec.wait_close() {
        Ev::Close {
            code,
            clean,
            error,
            status,
            http,
            ..
        } => {
            assert_eq!(
                (code, clean, status, http),
                (1006, false, wsn_status::WSN_ERR_HANDSHAKE, 403)
            );
            let e = error.unwrap();
            assert!(e.contains("403") && e.contains("Forbidden"), "{e}");
        }
        _ => unreachable!(),
    }
    assert!(!refused
        .rec
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Ev::Open(_))));

    let kicked = TestClient::connect(
        &format!("ws://127.0.0.1:{}/kick", server.port),
        std::ptr::null(),
    );
    assert_eq!(
        close_parts(&kicked.rec.wait_close()),
        (4001, "token expired".into(), true)
    );

    let fine = TestClient::connect(
        &format!("ws://127.0.0.1:{}/ok", server.port),
        std::ptr::null(),
    );
    fine.rec.wait_open();
    // The server's on_event saw only the accepted connection.
    server.rec.wait_open();
    assert_eq!(
        server
            .rec
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Ev::Open(_)))
            .count(),
        1
    );
}

#[test]
fn connect_failures_say_why() {
    // Refused: nothing listens on a port we just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), std::ptr::null());
    match c.rec.wait_close() {
        Ev::Close {
            code,
            error,
            status,
            ..
        } => {
            assert_eq!((code, status), (1006, wsn_status::WSN_ERR_CONNECT));
            assert!(error.unwrap().contains("refused"));
        }
        _ => unreachable!(),
    }
    // DNS failure (resolution of an invalid name fails locally, without network).
    let c = TestClient::connect("ws://no-such-host.invalid/", std::ptr::null());
    match c.rec.wait_close() {
        Ev::Close { status, error, .. } => {
            assert_eq!(status, wsn_status::WSN_ERR_DNS, "{error:?}");
            assert!(error.unwrap().contains("no-such-host.invalid"));
        }
        _ => unreachable!(),
    }
    // Handshake timeout: a TCP server that never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_handshake_timeout_ms(o, 300) };
    let start = Instant::now();
    let c = TestClient::connect(&format!("ws://{}/", silent.local_addr().unwrap()), o);
    unsafe { wsn_client_options_free(o) };
    match c.rec.wait_close() {
        Ev::Close { status, error, .. } => {
            assert_eq!(status, wsn_status::WSN_ERR_TIMEOUT);
            assert!(error.unwrap().contains("timed out"));
        }
        _ => unreachable!(),
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn server_stop_closes_connections_with_1001() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let clients: Vec<_> = (0..5)
        .map(|_| TestClient::connect(&server.url(), std::ptr::null()))
        .collect();
    for c in &clients {
        c.rec.wait_open();
    }
    assert_eq!(
        unsafe { wsn_server_stop(server.server, 5000) },
        wsn_status::WSN_OK
    );
    for c in &clients {
        assert_eq!(
            close_parts(&c.rec.wait_close()),
            (1001, "server shutting down".into(), true)
        );
    }
    // Not accepting any more.
    let late = TestClient::connect(&server.url(), std::ptr::null());
    assert!(matches!(
        late.rec.wait_close(),
        Ev::Close { code: 1006, .. }
    ));
}

#[test]
fn subprotocol_and_headers_reach_the_server() {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    extern "C" fn look(_u: *mut std::ffi::c_void, req: *mut wsn_request) {
        unsafe {
            let s = |p: *const std::ffi::c_char| {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            };
            let mut seen = SEEN.lock().unwrap();
            seen.push(s(wsn_request_get_header(
                req,
                cstr("authorization").as_ptr(),
            )));
            seen.push(s(wsn_request_get_header(req, cstr("Origin").as_ptr())));
            seen.push(s(wsn_request_get_query(req)));
            seen.push(format!("{}", wsn_request_get_subprotocol_count(req)));
            wsn_request_accept(req, wsn_request_get_subprotocol(req, 1));
        }
    }
    let server = TestServer::start(Recorder::server(), std::ptr::null(), Some(look));
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_add_header(
            o,
            cstr("Authorization").as_ptr(),
            cstr("Bearer abc").as_ptr(),
        );
        wsn_client_options_set_origin(o, cstr("https://app.example").as_ptr());
        wsn_client_options_add_subprotocol(o, cstr("chat.v1").as_ptr());
        wsn_client_options_add_subprotocol(o, cstr("chat.v2").as_ptr());
    }
    let c = TestClient::connect(&format!("ws://127.0.0.1:{}/room?id=7", server.port), o);
    unsafe { wsn_client_options_free(o) };
    c.rec.wait_open();
    let proto = unsafe { std::ffi::CStr::from_ptr(wsn_conn_get_subprotocol(c.conn)) };
    assert_eq!(proto.to_str().unwrap(), "chat.v2");
    assert_eq!(
        *SEEN.lock().unwrap(),
        vec!["Bearer abc", "https://app.example", "id=7", "2"]
    );
    let sconn = server.rec.wait_open() as *mut wsn_conn;
    let sproto = unsafe { std::ffi::CStr::from_ptr(wsn_conn_get_subprotocol(sconn)) };
    assert_eq!(sproto.to_str().unwrap(), "chat.v2");
    let peer = unsafe { std::ffi::CStr::from_ptr(wsn_conn_get_peer_addr(c.conn)) };
    assert_eq!(peer.to_str().unwrap(), format!("127.0.0.1:{}", server.port));
}

#[test]
fn allowed_origins_refuse_cross_site_requests() {
    let so = wsn_server_options_new();
    unsafe { wsn_server_options_add_allowed_origin(so, cstr("https://good.example").as_ptr()) };
    let server = TestServer::start(Recorder::server(), so, None);
    unsafe { wsn_server_options_free(so) };
    let connect_with = |origin: &str| {
        let o = wsn_client_options_new();
        unsafe { wsn_client_options_set_origin(o, cstr(origin).as_ptr()) };
        let c = TestClient::connect(&server.url(), o);
        unsafe { wsn_client_options_free(o) };
        c
    };
    let evil = connect_with("https://evil.example");
    assert!(matches!(evil.rec.wait_close(), Ev::Close { http: 403, .. }));
    let good = connect_with("https://good.example");
    good.rec.wait_open();
}

#[test]
fn version_matches_cargo_toml() {
    let v = unsafe { std::ffi::CStr::from_ptr(wsn_version()) }
        .to_str()
        .unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/wsnative.h"))
            .unwrap();
    let mut parts = env!("CARGO_PKG_VERSION").split('.');
    for name in ["MAJOR", "MINOR", "PATCH"] {
        let want = format!("#define WSN_VERSION_{name} {}\n", parts.next().unwrap());
        assert!(header.contains(&want), "header lacks {want:?}");
    }
    assert!(header.contains(&format!(
        "#define WSN_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn header_is_current() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/wsnative.h"))
            .unwrap();
    let generated = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/wsnative.h")).unwrap();
    assert!(
        committed == generated,
        "include/wsnative.h is stale: build outside CI (cargo build) to regenerate it, then commit it"
    );
}

#[test]
fn every_header_item_is_documented() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/wsnative.h"))
            .unwrap();
    let lines: Vec<&str> = header.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let is_decl = (l.starts_with("wsn_")
            || l.starts_with("const ")
            || l.starts_with("void ")
            || l.starts_with("struct wsn_")
            || l.starts_with("size_t ")
            || l.starts_with("uint16_t ")
            || l.starts_with("typedef void"))
            && l.contains('(');
        if is_decl {
            assert!(
                i > 0 && lines[i - 1].trim_end().ends_with("*/"),
                "undocumented: {l}"
            );
            if !l.starts_with("typedef") {
                let start = lines[..i]
                    .iter()
                    .rposition(|d| d.trim_start().starts_with("/**"))
                    .unwrap();
                let doc = lines[start..i].join("\n");
                assert!(
                    doc.contains("Thread"),
                    "the doc of {l} does not say which thread may call it"
                );
            }
        }
    }
}

/// Sends raw bytes to the server and returns what it answers until it closes (30 s at most).
fn raw_exchange(port: u16, request: &[u8]) -> (String, Duration) {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[test]
fn server_limits_handshake_time_header_size_and_connections() {
    let so = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_handshake_timeout_ms(so, 300);
        wsn_server_options_set_max_header_size(so, 4096);
        wsn_server_options_set_max_connections(so, 1);
    }
    let server = TestServer::start(Recorder::server(), so, None);
    unsafe { wsn_server_options_free(so) };

    // A client that never finishes its request is dropped after the handshake timeout.
    let (answer, took) = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(
        answer.is_empty() && took >= Duration::from_millis(250) && took < Duration::from_secs(10),
        "{answer:?} {took:?}"
    );

    // An oversized request head gets 431.
    let big = format!("{UPGRADE}X-Big: {}\r\n\r\n", "a".repeat(8000));
    let (answer, _) = raw_exchange(server.port, big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // Not a WebSocket request: 426 with the version to use.
    let (answer, _) = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 426") && answer.contains("Sec-WebSocket-Version: 13"),
        "{answer}"
    );

    // Over the connection limit: 503.
    let first = TestClient::connect(&server.url(), std::ptr::null());
    first.rec.wait_open();
    let second = TestClient::connect(&server.url(), std::ptr::null());
    assert!(matches!(
        second.rec.wait_close(),
        Ev::Close { http: 503, .. }
    ));
}

/// A fast sender and a slow application: reading pauses once the receive queue is full, so the
/// sender's data waits in its own queue (TCP pushes back) instead of in the receiver's memory.
#[test]
fn a_slow_application_pushes_back_on_a_fast_peer() {
    let _busy = occupy_callback_threads();
    const COUNT: usize = 400;
    const SIZE: usize = 64 << 10;
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_max_receive_queue(o, 1 << 20) };
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.set_hook(|_, ev| {
        if matches!(ev, Ev::Msg { .. }) {
            std::thread::sleep(Duration::from_millis(2)); // a slow application
        }
    });
    client.rec.wait_open();
    let sconn = server.rec.wait_open() as *mut wsn_conn;
    for i in 0..COUNT {
        let mut payload = vec![0u8; SIZE];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        assert_eq!(
            unsafe { wsn_conn_send_binary(sconn, payload.as_ptr(), payload.len()) },
            wsn_status::WSN_OK
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let held_by_sender = unsafe { wsn_conn_get_buffered_amount(sconn) };
    assert!(
        held_by_sender > 4 << 20,
        "the sender should still hold most of the {} MiB; it holds {held_by_sender} bytes",
        (COUNT * SIZE) >> 20
    );
    client
        .rec
        .wait(Duration::from_secs(60), "every message", |e| {
            (msg_count(e) == COUNT).then_some(())
        });
    for (i, (_, data)) in client.rec.messages().iter().enumerate() {
        assert_eq!(u64::from_be_bytes(data[..8].try_into().unwrap()), i as u64);
    }
}

/// G9: a callback that blocks holds up neither other connections' events nor its own
/// connection's I/O (the peer's Close is still answered, once the close timeout has passed).
#[test]
fn a_blocked_callback_does_not_stall_other_connections() {
    let _busy = occupy_callback_threads();
    let srec = Recorder::server();
    srec.set_hook(|conn, ev| {
        if let Ev::Msg { data, .. } = ev {
            unsafe { wsn_conn_send_binary(conn, data.as_ptr(), data.len()) };
        }
    });
    let server = TestServer::start(srec, std::ptr::null(), None);
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_close_timeout_ms(o, 500) };
    let slow = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    let release = Arc::new(AtomicBool::new(false));
    {
        let release = release.clone();
        slow.rec.set_hook(move |_, ev| {
            if matches!(ev, Ev::Msg { .. }) {
                let end = Instant::now() + Duration::from_secs(20);
                while !release.load(Ordering::SeqCst) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
    }
    slow.rec.wait_open();
    assert_eq!(slow.send_text("block"), wsn_status::WSN_OK);
    // Wait until the slow connection's callback is blocked.
    std::thread::sleep(Duration::from_millis(200));
    let fast = TestClient::connect(&server.url(), std::ptr::null());
    fast.rec.wait_open();
    for i in 0..20 {
        assert_eq!(fast.send_text(&format!("quick {i}")), wsn_status::WSN_OK);
    }
    fast.rec.wait(
        Duration::from_secs(5),
        "echoes while another callback blocks",
        |e| (msg_count(e) == 20).then_some(()),
    );
    // The server closes the blocked connection: its I/O answers (after the close timeout, as
    // its callback is still busy), and the server sees a clean close.
    let sconn = server.rec.wait_open() as *mut wsn_conn;
    unsafe { wsn_conn_close(sconn, 4000, cstr("bye").as_ptr()) };
    match server
        .rec
        .wait_close_of(sconn as usize, Duration::from_secs(10))
    {
        Ev::Close { code, clean, .. } => assert_eq!((code, clean), (4000, true)),
        _ => unreachable!(),
    }
    release.store(true, Ordering::SeqCst);
    assert!(matches!(
        slow.rec.wait_close(),
        Ev::Close {
            code: 4000,
            clean: true,
            ..
        }
    ));
}

static HOOK_AFTER_FREE: AtomicBool = AtomicBool::new(false);
static HOOK_VIOLATIONS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn slow_hook(_user: *mut std::ffi::c_void, req: *mut wsn_request) {
    if HOOK_AFTER_FREE.load(Ordering::SeqCst) {
        HOOK_VIOLATIONS.fetch_add(1, Ordering::SeqCst);
    }
    let path = unsafe { std::ffi::CStr::from_ptr(wsn_request_get_path(req)) }
        .to_bytes()
        .to_vec();
    if path == b"/slow" {
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// A slow accept hook holds up only its own request; freeing the server waits for a running
/// hook, and no hook runs after that.
#[test]
fn accept_hooks_run_side_by_side_and_none_after_the_server_is_freed() {
    let _busy = occupy_callback_threads();
    let server = TestServer::start(Recorder::server(), std::ptr::null(), Some(slow_hook));
    let slow = TestClient::connect(
        &format!("ws://127.0.0.1:{}/slow", server.port),
        std::ptr::null(),
    );
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let fast = TestClient::connect(
        &format!("ws://127.0.0.1:{}/fast", server.port),
        std::ptr::null(),
    );
    fast.rec.wait_open();
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "the fast request waited for the slow hook: {:?}",
        start.elapsed()
    );
    slow.rec.wait_open();

    let again = TestClient::connect(
        &format!("ws://127.0.0.1:{}/slow", server.port),
        std::ptr::null(),
    );
    std::thread::sleep(Duration::from_millis(200)); // its hook is running now
    let freeing = Instant::now();
    drop(server); // wsn_server_free
    HOOK_AFTER_FREE.store(true, Ordering::SeqCst);
    assert!(
        freeing.elapsed() >= Duration::from_millis(800),
        "free returned while a hook was running"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        HOOK_VIOLATIONS.load(Ordering::SeqCst),
        0,
        "an accept hook ran after wsn_server_free returned"
    );
    drop(again);
}

/// Flow control by the application: while it pauses reading, the peer's data stays with the
/// peer; after it resumes, everything arrives in order.
#[test]
fn pausing_reading_pushes_back_until_resumed() {
    const COUNT: usize = 400;
    const SIZE: usize = 64 << 10;
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    assert_eq!(
        unsafe { wsn_conn_set_reading_paused(client.conn, true) },
        wsn_status::WSN_OK
    );
    let sconn = server.rec.wait_open() as *mut wsn_conn;
    // The first message is read (reading pauses after it); the rest stays with the sender.
    for i in 0..COUNT {
        let mut payload = vec![0u8; SIZE];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        unsafe { wsn_conn_send_binary(sconn, payload.as_ptr(), payload.len()) };
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        client.rec.count_messages() <= 1,
        "{} messages read while paused",
        client.rec.count_messages()
    );
    assert!(
        unsafe { wsn_conn_get_buffered_amount(sconn) } > 4 << 20,
        "the sender holds the data"
    );
    assert_eq!(
        unsafe { wsn_conn_set_reading_paused(client.conn, false) },
        wsn_status::WSN_OK
    );
    client
        .rec
        .wait(Duration::from_secs(60), "every message", |e| {
            (msg_count(e) == COUNT).then_some(())
        });
    for (i, (_, data)) in client.rec.messages().iter().enumerate() {
        assert_eq!(u64::from_be_bytes(data[..8].try_into().unwrap()), i as u64);
    }
    assert_eq!(
        unsafe { wsn_conn_set_reading_paused(std::ptr::null_mut(), true) },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
}

/// docs/CONTRACT.md names the tests that prove each guarantee: every name it lists must exist
/// in the file it links to, so the page cannot silently go stale when tests are renamed.
#[test]
fn contract_page_names_only_tests_that_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let page = std::fs::read_to_string(format!("{root}/docs/CONTRACT.md")).unwrap();
    let mut missing = Vec::new();
    for line in page.lines().filter(|l| l.starts_with("- [`")) {
        let Some(path) = line.split("](../").nth(1).and_then(|r| r.split(')').next()) else {
            continue;
        };
        let Ok(source) = std::fs::read_to_string(format!("{root}/{path}")) else {
            missing.push(format!("{path} (no such file)"));
            continue;
        };
        let rest = line.split("): ").nth(1).unwrap_or("");
        for name in rest.split('`').skip(1).step_by(2) {
            let is_identifier =
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && name.contains('_');
            if is_identifier && !source.contains(name) {
                missing.push(format!("{path}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/CONTRACT.md names tests that do not exist: {missing:#?}"
    );
}

/// RFC 6455 4.2.1: what is not a valid upgrade request is refused with a status and a reason.
#[test]
fn server_refuses_invalid_upgrade_requests_with_400_405_and_426() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let cases: [(&str, &str, &str); 6] = [
        (
            "GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ",
            "HTTP/1.1",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!A==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ",
            "base64 of 16 bytes",
        ),
        (
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ",
            "Host",
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 405 ",
            "Allow: GET",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426 ",
            "Sec-WebSocket-Version: 13",
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 ", "Upgrade: websocket"),
    ];
    for (request, status, detail) in cases {
        let (reply, _) = raw_exchange(server.port, request.as_bytes());
        assert!(reply.starts_with(status), "{request:?} got {reply:?}");
        assert!(
            reply.contains(detail),
            "{request:?} got {reply:?}, without {detail:?}"
        );
    }
    // A valid request still upgrades.
    let (reply, _) = {
        let mut r = UPGRADE.to_owned();
        r.push_str("\r\n");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(r.as_bytes()).unwrap();
        let mut b = [0u8; 256];
        let n = s.read(&mut b).unwrap();
        (String::from_utf8_lossy(&b[..n]).into_owned(), ())
    };
    assert!(reply.starts_with("HTTP/1.1 101 "), "{reply}");
}
