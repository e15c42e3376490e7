//! The log callback (wsn_log_set_callback): what it reports, off by default, set at any time.
//! One binary of its own: the callback is process-wide, so these tests take turns (LOCK).

mod common;
use common::*;
use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

static LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone)]
struct Rec {
    level: wsn_log_level,
    target: String,
    message: String,
    conn: u64,
}

static RECORDS: Mutex<Vec<Rec>> = Mutex::new(Vec::new());

unsafe extern "C" fn keep(
    user: *mut c_void,
    level: wsn_log_level,
    target: *const c_char,
    message: *const c_char,
    conn: u64,
) {
    assert_eq!(user as usize, 0x5eed);
    RECORDS.lock().unwrap().push(Rec {
        level,
        target: CStr::from_ptr(target).to_string_lossy().into_owned(),
        message: CStr::from_ptr(message).to_string_lossy().into_owned(),
        conn,
    });
}

fn set(level: wsn_log_level) {
    let st = wsn_log_set_callback(Some(keep), level as u32, 0x5eed as *mut c_void);
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    RECORDS.lock().unwrap().clear();
}

/// Waits (20 s at most) for a record that `want` accepts.
fn wait_for(want: impl Fn(&Rec) -> bool) -> Rec {
    let start = Instant::now();
    loop {
        if let Some(r) = RECORDS.lock().unwrap().iter().find(|r| want(r)) {
            return r.clone();
        }
        assert!(
            start.elapsed() < WAIT,
            "no such record; got {:?}",
            RECORDS.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A client refused with 403 by a server that allows one origin only.
fn refused_connection() -> (u64, Ev) {
    let so = wsn_server_options_new();
    unsafe { wsn_server_options_add_allowed_origin(so, cstr("https://good.example").as_ptr()) };
    let server = TestServer::start(Recorder::server(), so, None);
    unsafe { wsn_server_options_free(so) };
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_origin(o, cstr("https://evil.example").as_ptr()) };
    let c = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    let id = unsafe { wsn_conn_get_id(c.conn) };
    (id, c.rec.wait_close())
}

#[test]
fn a_refused_handshake_is_logged_with_its_reason_on_both_sides() {
    let _turn = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    set(wsn_log_level::WSN_LOG_INFO);
    let (id, ev) = refused_connection();
    assert!(matches!(ev, Ev::Close { http: 403, .. }), "{ev:?}");
    assert_ne!(id, 0);
    let server = wait_for(|r| r.target == "wsnative::server");
    assert!(
        server.message.contains("403") && server.message.contains("origin not allowed"),
        "{server:?}"
    );
    assert_eq!(server.level, wsn_log_level::WSN_LOG_INFO);
    let client = wait_for(|r| r.target == "wsnative::client");
    assert_eq!(client.conn, id, "{client:?}");
    assert!(client.message.contains("403"), "{client:?}");
    wsn_log_set_callback(None, 0, std::ptr::null_mut());
}

#[test]
fn logging_costs_no_record_when_off_or_above_the_level() {
    let _turn = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Off by default: nothing was set in this test, and earlier tests turned it off again.
    for level in [wsn_log_level::WSN_LOG_OFF, wsn_log_level::WSN_LOG_WARN] {
        set(level);
        let (_, ev) = refused_connection();
        assert!(matches!(ev, Ev::Close { http: 403, .. }), "{ev:?}");
        std::thread::sleep(Duration::from_millis(200));
        let got = RECORDS.lock().unwrap().clone();
        assert!(got.is_empty(), "level {level:?}: {got:?}");
    }
    // NULL turns it off too.
    set(wsn_log_level::WSN_LOG_INFO);
    wsn_log_set_callback(None, 5, std::ptr::null_mut());
    let (_, _) = refused_connection();
    std::thread::sleep(Duration::from_millis(200));
    assert!(RECORDS.lock().unwrap().is_empty());
}

#[test]
fn a_protocol_error_is_logged_with_its_position_and_connection() {
    use std::io::{Read, Write};
    let _turn = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    set(wsn_log_level::WSN_LOG_DEBUG);
    let server = echo_server();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    // A masked "hi", then an unmasked frame: clients must mask.
    s.write_all(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i', 0x81, 0x02, b'h', b'i'])
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let fail = wait_for(|r| r.message.contains("failing with 1002"));
    assert_eq!(fail.level, wsn_log_level::WSN_LOG_WARN);
    assert_eq!(fail.target, "wsnative::connection");
    assert!(fail.message.contains("not masked"), "{fail:?}");
    assert!(fail.message.contains("at byte 8"), "{fail:?}");
    assert_ne!(fail.conn, 0);
    let end = wait_for(|r| r.message.starts_with("closed with 1002"));
    assert_eq!(end.conn, fail.conn);
    wsn_log_set_callback(None, 0, std::ptr::null_mut());
}

unsafe extern "C" fn reenter(
    _user: *mut c_void,
    _level: wsn_log_level,
    _target: *const c_char,
    _message: *const c_char,
    _conn: u64,
) {
    let st = wsn_log_set_callback(None, 0, std::ptr::null_mut());
    RECORDS.lock().unwrap().push(Rec {
        level: wsn_log_level::WSN_LOG_OFF,
        target: format!("{st:?}"),
        message: last_error(),
        conn: 0,
    });
}

#[test]
fn setting_the_callback_from_inside_it_is_refused_and_bad_levels_too() {
    let _turn = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let st = wsn_log_set_callback(Some(keep), 6, std::ptr::null_mut());
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    RECORDS.lock().unwrap().clear();
    assert_eq!(
        wsn_log_set_callback(Some(reenter), 3, std::ptr::null_mut()),
        wsn_status::WSN_OK
    );
    let _ = refused_connection();
    let r = wait_for(|_| true);
    assert_eq!(r.target, "WSN_ERR_INVALID_STATE", "{r:?}");
    assert!(r.message.contains("inside the log callback"), "{r:?}");
    wsn_log_set_callback(None, 0, std::ptr::null_mut());
}

#[test]
fn a_heartbeat_timeout_is_logged_as_a_warning_with_the_connection() {
    use std::io::{Read, Write};
    let _turn = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    set(wsn_log_level::WSN_LOG_INFO);
    // A peer that completes the handshake and then never answers a Ping (10 s at most).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = read_head(&mut s);
        s.write_all(upgrade_response(&request).as_bytes()).unwrap();
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    });
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_ping_interval_ms(o, 100);
        wsn_client_options_set_pong_timeout_ms(o, 300);
    }
    let c = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), o);
    unsafe { wsn_client_options_free(o) };
    let id = unsafe { wsn_conn_get_id(c.conn) };
    assert!(matches!(c.rec.wait_close(), Ev::Close { code: 1006, .. }));
    let r = wait_for(|r| r.conn == id && r.message.contains("no Pong within 300 ms"));
    assert_eq!(r.level, wsn_log_level::WSN_LOG_WARN);
    assert_eq!(r.target, "wsnative::connection");
    drop(c);
    wsn_log_set_callback(None, 0, std::ptr::null_mut());
    peer.join().unwrap();
}
