//! client-reach (issue 13): a pool of pre-connected clients through the C ABI: it hands out open
//! connections at once (OPEN first, nothing the server sent meanwhile lost), refills, says
//! WOULD_BLOCK when none is ready, closes what waits when freed; and a benchmark that prints the
//! time to the first echoed message with and without it (figures, not assertions).

mod common;

use common::*;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

fn pool(url: &str, size: usize) -> *mut wsn_pool {
    let mut p = std::ptr::null_mut();
    let st = unsafe { wsn_pool_new(cstr(url).as_ptr(), std::ptr::null(), size, &mut p) };
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    p
}

fn wait_ready(p: *mut wsn_pool, n: usize) {
    let end = Instant::now() + WAIT;
    while unsafe { wsn_pool_ready(p) } < n {
        assert!(Instant::now() < end, "the pool did not fill to {n}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn take(p: *mut wsn_pool) -> Option<TestClient> {
    let rec = Recorder::new();
    let mut conn = std::ptr::null_mut();
    let st = unsafe { wsn_pool_take(p, Some(record), rec.user(), &mut conn) };
    match st {
        wsn_status::WSN_OK => Some(TestClient { conn, rec }),
        wsn_status::WSN_ERR_WOULD_BLOCK => None,
        s => panic!("{s:?}: {}", last_error()),
    }
}

fn welcome_server() -> TestServer {
    let rec = Recorder::server();
    rec.set_hook(|conn, ev| {
        if let Ev::Open(_) = ev {
            unsafe { wsn_conn_send_text(conn, c"welcome".as_ptr(), 7) };
        } else {
            echo(conn, ev);
        }
    });
    TestServer::start(rec, std::ptr::null(), None)
}

#[test]
fn a_pool_hands_out_open_connections_at_once_and_refills() {
    let server = welcome_server();
    let p = pool(&server.url(), 3);
    wait_ready(p, 3);
    // Taken: OPEN first, then what the server sent while it waited, then the echo.
    let c = take(p).expect("a ready connection");
    assert_eq!(
        unsafe { wsn_conn_get_state(c.conn) },
        wsn_conn_state::WSN_STATE_OPEN
    );
    assert_eq!(c.send_text("hi"), wsn_status::WSN_OK);
    c.rec.wait(WAIT, "welcome and echo", |e| {
        (msg_count(e) == 2).then_some(())
    });
    {
        let evs = c.rec.events.lock().unwrap();
        assert!(matches!(evs[0], Ev::Open(_)), "{evs:?}");
    }
    let msgs: Vec<Vec<u8>> = c.rec.messages().into_iter().map(|(_, d)| d).collect();
    assert_eq!(msgs, [b"welcome".to_vec(), b"hi".to_vec()]);
    // Refilled in the background.
    wait_ready(p, 3);
    let more: Vec<TestClient> = (0..3).map(|_| take(p).unwrap()).collect();
    for m in &more {
        m.rec.wait_open();
    }
    c.close(1000, "");
    c.rec.wait_close();
    // Freed: the connections still waiting are closed with 1001.
    wait_ready(p, 3);
    let before = server
        .rec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Ev::Close { code: 1001, .. }))
        .count();
    unsafe { wsn_pool_free(p) };
    server.rec.wait(WAIT, "three 1001 closes", |evs| {
        (evs.iter()
            .filter(|e| matches!(e, Ev::Close { code: 1001, .. }))
            .count()
            >= before + 3)
            .then_some(())
    });
}

#[test]
fn an_empty_pool_says_would_block_and_bad_arguments_fail_at_once() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = pool(&format!("ws://127.0.0.1:{nobody}/"), 2);
    std::thread::sleep(Duration::from_millis(200));
    assert!(take(p).is_none());
    assert!(
        last_error().contains("connect directly"),
        "{}",
        last_error()
    );
    unsafe { wsn_pool_free(p) };
    let mut out = std::ptr::null_mut();
    let st = unsafe { wsn_pool_new(cstr("ws://x/").as_ptr(), std::ptr::null(), 0, &mut out) };
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    let st = unsafe { wsn_pool_new(cstr("http://x/").as_ptr(), std::ptr::null(), 1, &mut out) };
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
}

/// Prints the time from "I want a connection" to the first echoed message, with a fresh
/// connect and with a pooled connection (loopback: the pool saves the TCP and upgrade round
/// trips; over a real network it saves more).
#[test]
fn bench_time_to_first_message_with_and_without_a_pool() {
    const N: usize = 50;
    let server = echo_server();
    let first_echo = |c: &TestClient| {
        assert_eq!(c.send_text("ping"), wsn_status::WSN_OK);
        c.rec
            .wait(WAIT, "echo", |e| (msg_count(e) == 1).then_some(()));
    };
    let mut direct = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let c = TestClient::connect(&server.url(), std::ptr::null());
        first_echo(&c);
        direct.push(t.elapsed());
    }
    let p = pool(&server.url(), 4);
    let mut pooled = Vec::with_capacity(N);
    for _ in 0..N {
        wait_ready(p, 1);
        let t = Instant::now();
        let c = take(p).unwrap();
        first_echo(&c);
        pooled.push(t.elapsed());
    }
    unsafe { wsn_pool_free(p) };
    direct.sort();
    pooled.sort();
    println!(
        "time to first message over {N} runs on loopback: direct connect median {:?} (p90 {:?}), pooled median {:?} (p90 {:?})",
        direct[N / 2],
        direct[N * 9 / 10],
        pooled[N / 2],
        pooled[N * 9 / 10]
    );
}
