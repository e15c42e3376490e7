//! The contract at its edges, through the C ABI: frees that cannot deadlock, exactly one CLOSE
//! per connection across stop, free, shutdown and a close while paused, hard connection limits,
//! close timing in bytes, and the loose ends of threads, poll batches, fork and last_error.
//! Every wait has a timeout; a deadlock fails the test instead of hanging it.

mod common;

use common::*;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

/// Runs `f` on a thread and fails the test when it has not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?} (deadlock?)"))
}

/// Waits until `cond` holds, polling; false after `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Options of a client with the given close timeout (ms) and heartbeat.
fn client_opts(close_ms: u32, ping_ms: u32, pong_ms: u32) -> *mut wsn_client_options {
    unsafe {
        let o = wsn_client_options_new();
        wsn_client_options_set_close_timeout_ms(o, close_ms);
        wsn_client_options_set_ping_interval_ms(o, ping_ms);
        wsn_client_options_set_pong_timeout_ms(o, pong_ms);
        o
    }
}

// --- 1. frees from callbacks never deadlock --------------------------------------------------

/// Two connections whose CLOSE callbacks run at the same time on two callback threads, each
/// freeing the other.
#[test]
fn frees_of_each_other_from_two_running_close_callbacks_return() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let a = TestClient::connect(&server.url(), std::ptr::null());
    let b = TestClient::connect(&server.url(), std::ptr::null());
    a.rec.wait_open();
    b.rec.wait_open();
    let started = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(AtomicUsize::new(0));
    for (me, other) in [(&a, b.conn as usize), (&b, a.conn as usize)] {
        let (started, freed) = (started.clone(), freed.clone());
        me.rec.set_hook(move |_, ev| {
            if let Ev::Close { .. } = ev {
                started.fetch_add(1, Ordering::SeqCst);
                // Both callbacks are running before either frees.
                eventually(Duration::from_secs(5), || {
                    started.load(Ordering::SeqCst) == 2
                });
                unsafe { wsn_conn_free(other as *mut wsn_conn) };
                freed.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // Both handles are freed by the callbacks: keep the test's own frees from running.
    let (a, b) = (
        std::mem::ManuallyDrop::new(a),
        std::mem::ManuallyDrop::new(b),
    );
    unsafe {
        wsn_conn_close(a.conn, 1000, std::ptr::null());
        wsn_conn_close(b.conn, 1000, std::ptr::null());
    }
    assert!(
        eventually(Duration::from_secs(10), || freed.load(Ordering::SeqCst)
            == 2),
        "the two frees called from running CLOSE callbacks did not return (deadlock)"
    );
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "both CLOSE callbacks ran at the same time"
    );
    // The callback threads still work: a new connection opens and closes.
    let c = TestClient::connect(&server.url(), std::ptr::null());
    c.rec.wait_open();
    c.close(1000, "");
    assert!(matches!(
        c.rec.wait_close(),
        Ev::Close {
            code: 1000,
            clean: true,
            ..
        }
    ));
}

/// A server connection's callback frees a client while that client's callback frees the server.
#[test]
fn freeing_the_server_from_a_callback_while_another_callback_frees_a_connection_returns() {
    let server = echo_server();
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let s_running = Arc::new(AtomicBool::new(false));
    let c_running = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    {
        let (s_running, c_running, done) = (s_running.clone(), c_running.clone(), done.clone());
        let client_conn = client.conn as usize;
        server.rec.set_hook(move |conn, ev| {
            echo(conn, ev);
            if let Ev::Msg { .. } = ev {
                if s_running.swap(true, Ordering::SeqCst) {
                    return;
                }
                eventually(Duration::from_secs(5), || c_running.load(Ordering::SeqCst));
                unsafe { wsn_conn_free(client_conn as *mut wsn_conn) };
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    {
        let (s_running, c_running, done) = (s_running.clone(), c_running.clone(), done.clone());
        let srv = server.server as usize;
        client.rec.set_hook(move |_, ev| {
            if let Ev::Msg { .. } = ev {
                if c_running.swap(true, Ordering::SeqCst) {
                    return;
                }
                eventually(Duration::from_secs(5), || s_running.load(Ordering::SeqCst));
                unsafe { wsn_server_free(srv as *mut wsn_server) };
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let server = std::mem::ManuallyDrop::new(server);
    let client = std::mem::ManuallyDrop::new(client);
    // The server echoes: the client gets a message while the server's callback still runs.
    client.send_text("hello");
    let _ = (&server, &client);
    assert!(
        eventually(Duration::from_secs(15), || done.load(Ordering::SeqCst) == 2),
        "wsn_server_free and wsn_conn_free called from two running callbacks did not both return"
    );
}

/// The release hook runs once, after the last callback, also when freed from a callback.
#[test]
fn the_release_hook_runs_once_after_the_last_callback() {
    static RELEASED: AtomicUsize = AtomicUsize::new(0);
    static IN_CALLBACK: AtomicBool = AtomicBool::new(false);
    unsafe extern "C" fn on_release(arg: *mut c_void) {
        assert!(
            !IN_CALLBACK.load(Ordering::SeqCst),
            "the release hook ran while a callback was running"
        );
        RELEASED.fetch_add(arg as usize, Ordering::SeqCst);
    }
    let server = echo_server();
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let conn = client.conn as usize;
    assert_eq!(
        unsafe { wsn_conn_set_release_hook(client.conn, Some(on_release), 7 as *mut c_void) },
        wsn_status::WSN_OK
    );
    // The connection is freed from inside its own MESSAGE callback, which then goes on a while.
    client.rec.set_hook(move |_, ev| {
        if let Ev::Msg { .. } = ev {
            IN_CALLBACK.store(true, Ordering::SeqCst);
            unsafe { wsn_conn_free(conn as *mut wsn_conn) };
            std::thread::sleep(Duration::from_millis(100));
            IN_CALLBACK.store(false, Ordering::SeqCst);
        }
    });
    let client = std::mem::ManuallyDrop::new(client);
    client.send_text("one");
    assert!(
        eventually(Duration::from_secs(10), || RELEASED.load(Ordering::SeqCst)
            == 7),
        "the release hook did not run"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        RELEASED.load(Ordering::SeqCst),
        7,
        "the release hook ran more than once"
    );
    // NULL handle is an argument error.
    assert_eq!(
        unsafe {
            wsn_conn_set_release_hook(std::ptr::null_mut(), Some(on_release), std::ptr::null_mut())
        },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
}

// --- 2. closing while reading is paused ------------------------------------------------------

#[test]
fn a_close_while_reading_is_paused_completes_cleanly_at_once() {
    let server = echo_server();
    let opts = client_opts(3000, 0, 0);
    let client = TestClient::connect(&server.url(), opts);
    unsafe { wsn_client_options_free(opts) };
    client.rec.wait_open();
    unsafe { wsn_conn_set_reading_paused(client.conn, true) };
    for i in 0..20 {
        client.send_text(&format!("message {i}"));
    }
    std::thread::sleep(Duration::from_millis(300)); // the echoes wait unread
    let t0 = Instant::now();
    assert_eq!(client.close(1000, "bye"), wsn_status::WSN_OK);
    let ev = client
        .rec
        .wait_close_of(client.conn as usize, Duration::from_secs(10));
    let took = t0.elapsed();
    match ev {
        Ev::Close {
            code,
            clean,
            ref reason,
            ..
        } => {
            assert!(
                clean && code == 1000 && reason == "bye",
                "expected a clean 1000, got {ev:?} after {took:?}"
            );
        }
        _ => unreachable!(),
    }
    assert!(
        took < Duration::from_millis(2500),
        "the close waited for its timeout ({took:?}) instead of reading the reply"
    );
    // Nothing is lost: the echoes that waited were delivered before the CLOSE.
    assert_eq!(client.rec.count_messages(), 20);
}

#[test]
fn a_paused_connection_is_not_declared_dead_by_its_own_heartbeat() {
    let server = echo_server();
    let opts = client_opts(2000, 100, 200);
    let client = TestClient::connect(&server.url(), opts);
    unsafe { wsn_client_options_free(opts) };
    client.rec.wait_open();
    unsafe { wsn_conn_set_reading_paused(client.conn, true) };
    client.send_text("one");
    std::thread::sleep(Duration::from_millis(1500)); // many heartbeat periods
    assert_eq!(
        unsafe { wsn_conn_get_state(client.conn) },
        wsn_conn_state::WSN_STATE_OPEN,
        "paused connection was closed: {:?}",
        client.rec.events.lock().unwrap().last()
    );
    unsafe { wsn_conn_set_reading_paused(client.conn, false) };
    client.rec.wait(WAIT, "the echo after resuming", |e| {
        (msg_count(e) == 1).then_some(())
    });
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

// --- 3. stop and free deliver every server-side CLOSE ----------------------------------------

#[test]
fn server_stop_then_free_delivers_every_close_even_with_slow_callbacks() {
    let rec = Recorder::server();
    rec.set_hook(|_, ev| {
        if let Ev::Close { .. } = ev {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let opts_srv = wsn_server_options_new();
    unsafe { wsn_server_options_set_drain_timeout_ms(opts_srv, 5000) };
    let server = TestServer::start(rec.clone(), opts_srv, None);
    unsafe { wsn_server_options_free(opts_srv) };
    let clients: Vec<TestClient> = (0..20)
        .map(|_| TestClient::connect(&server.url(), std::ptr::null()))
        .collect();
    for c in &clients {
        c.rec.wait_open();
    }
    rec.wait(WAIT, "20 server opens", |e| {
        (e.iter().filter(|e| matches!(e, Ev::Open(_))).count() == 20).then_some(())
    });
    let srv = server.server as usize;
    within(Duration::from_secs(20), "wsn_server_stop", move || unsafe {
        wsn_server_stop(srv as *mut wsn_server, 5000)
    });
    let closes = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Ev::Close { .. }))
        .count();
    assert_eq!(
        closes, 20,
        "wsn_server_stop returned before every server-side CLOSE was delivered"
    );
    drop(server); // wsn_server_free
    std::thread::sleep(Duration::from_millis(100));
    let closes: Vec<Ev> = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Ev::Close { .. }))
        .cloned()
        .collect();
    assert_eq!(closes.len(), 20, "exactly one CLOSE per connection");
    for c in &clients {
        assert!(matches!(c.rec.wait_close(), Ev::Close { code: 1001, .. }));
    }
}

#[test]
fn server_free_alone_delivers_every_close_first() {
    let rec = Recorder::server();
    rec.set_hook(|_, ev| {
        if let Ev::Close { .. } = ev {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let server = TestServer::start(rec.clone(), std::ptr::null(), None);
    let clients: Vec<TestClient> = (0..10)
        .map(|_| TestClient::connect(&server.url(), std::ptr::null()))
        .collect();
    for c in &clients {
        c.rec.wait_open();
    }
    rec.wait(WAIT, "10 server opens", |e| {
        (e.iter().filter(|e| matches!(e, Ev::Open(_))).count() == 10).then_some(())
    });
    within(Duration::from_secs(20), "wsn_server_free", move || {
        drop(server)
    });
    let closes = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Ev::Close { .. }))
        .count();
    assert_eq!(
        closes, 10,
        "wsn_server_free returned before every server-side CLOSE was delivered"
    );
}

// --- 4. shutdown delivers the CLOSE of a connection whose peer ignores Close ------------------

/// A server that completes the upgrade and then reads everything and never answers.
fn deaf_server() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        while !stop2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    std::thread::spawn(move || deaf_peer(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (port, stop)
}

fn deaf_peer(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let head = read_head(&mut s);
    let _ = s.write_all(upgrade_response(&head).as_bytes());
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

#[test]
fn shutdown_delivers_the_close_of_a_connection_whose_peer_ignores_close() {
    let (port, stop) = deaf_server();
    for round in 0..5 {
        let client = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), std::ptr::null());
        client.rec.wait_open();
        within(Duration::from_secs(10), "wsn_shutdown", || {
            wsn_shutdown(200)
        });
        let ev = client
            .rec
            .wait_close_of(client.conn as usize, Duration::from_secs(5));
        assert!(
            matches!(ev, Ev::Close { clean: false, .. }),
            "round {round}: {ev:?}"
        );
        assert_eq!(
            unsafe { wsn_conn_get_state(client.conn) },
            wsn_conn_state::WSN_STATE_CLOSED,
            "round {round}"
        );
        std::thread::sleep(Duration::from_millis(50));
        let closes = client
            .rec
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Ev::Close { .. }))
            .count();
        assert_eq!(closes, 1, "round {round}: exactly one CLOSE");
    }
    stop.store(true, Ordering::SeqCst);
}

// --- 5. max_connections is hard --------------------------------------------------------------

unsafe extern "C" fn slow_accept(_user: *mut c_void, req: *mut wsn_request) {
    std::thread::sleep(Duration::from_millis(200));
    wsn_request_accept(req, std::ptr::null());
}

#[test]
fn max_connections_counts_handshakes_waiting_in_the_accept_hook() {
    wsn_runtime_set_callback_threads(12);
    let opts = wsn_server_options_new();
    unsafe { wsn_server_options_set_max_connections(opts, 1) };
    let server = TestServer::start(Recorder::server(), opts, Some(slow_accept));
    unsafe { wsn_server_options_free(opts) };
    let clients: Vec<TestClient> = (0..10)
        .map(|_| TestClient::connect(&server.url(), std::ptr::null()))
        .collect();
    let mut opened = 0;
    let mut refused = 0;
    for c in &clients {
        let first = c.rec.wait(WAIT, "open or close", |e| e.first().cloned());
        match first {
            Ev::Open(_) => opened += 1,
            Ev::Close { http: 503, .. } => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (opened, refused),
        (1, 9),
        "a limit of 1 let {opened} connections open"
    );
}

// --- 6. the close timeout counts bytes, with an absolute cap ---------------------------------

/// A relay from a local port to `to` that forwards client-to-server bytes at `rate` bytes per
/// second in chunks of `chunk` bytes (server-to-client unthrottled).
fn throttled_relay(to: u16, rate: usize, chunk: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = listener.accept() else {
            return;
        };
        let mut s = TcpStream::connect(("127.0.0.1", to)).unwrap();
        let (mut c2, mut s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
            let _ = c2.shutdown(std::net::Shutdown::Write);
        });
        let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
        // A small kernel buffer so the throttle is felt at once.
        let mut buf = vec![0u8; chunk];
        let pause = Duration::from_secs_f64(chunk as f64 / rate as f64);
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(pause);
                }
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
    });
    port
}

#[test]
fn a_close_behind_16_mib_finishes_while_bytes_keep_moving() {
    let server = echo_server();
    let relay = throttled_relay(server.port, 4 << 20, 64 << 10);
    // The message takes 4 s through the relay (4 MiB/s toward the server) and the close
    // starts after 1 s, so 3 s of it are left, twice this close timeout: a timeout counted
    // from the close call would fail the close. 1.5 s, not less: on a loaded machine the echo
    // server can stall for half a second (this failed at 500 ms under load 15).
    let opts = client_opts(1500, 0, 0);
    let client = TestClient::connect(&format!("ws://127.0.0.1:{relay}/"), opts);
    unsafe { wsn_client_options_free(opts) };
    client.rec.wait_open();
    let payload = vec![7u8; 16 << 20];
    assert_eq!(client.send_binary(&payload), wsn_status::WSN_OK);
    // buffered_amount goes down as bytes leave, not at once at the end of the message.
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.push(unsafe { wsn_conn_get_buffered_amount(client.conn) });
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        seen.iter().any(|&b| b > 0 && b < (16 << 20) - (1 << 20)),
        "buffered_amount did not count bytes as they were written: {seen:?}"
    );
    client.close(1000, "done");
    let ev = client
        .rec
        .wait_close_of(client.conn as usize, Duration::from_secs(30));
    assert!(
        matches!(
            ev,
            Ev::Close {
                code: 1000,
                clean: true,
                ..
            }
        ),
        "close ended {ev:?} although bytes kept moving"
    );
    // The echo of the whole message came back before the close.
    server
        .rec
        .wait(WAIT, "the 16 MiB message at the server", |e| {
            e.iter()
                .any(|e| matches!(e, Ev::Msg { data, .. } if data.len() == 16 << 20))
                .then_some(())
        });
}

#[test]
fn a_trickling_peer_cannot_hold_a_close_past_its_cap() {
    let server = echo_server();
    let relay = throttled_relay(server.port, 16 << 10, 4 << 10); // 16 KiB/s: bytes move, slowly
    let opts = client_opts(1000, 0, 0);
    unsafe { wsn_client_options_set_close_max_ms(opts, 2000) };
    let client = TestClient::connect(&format!("ws://127.0.0.1:{relay}/"), opts);
    unsafe { wsn_client_options_free(opts) };
    client.rec.wait_open();
    assert_eq!(client.send_binary(&vec![1u8; 8 << 20]), wsn_status::WSN_OK);
    let t0 = Instant::now();
    client.close(1000, "");
    let ev = client
        .rec
        .wait_close_of(client.conn as usize, Duration::from_secs(20));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "the close took {took:?} with a cap of 2 s"
    );
    match ev {
        Ev::Close {
            clean: false,
            status: wsn_status::WSN_ERR_TIMEOUT,
            error: Some(e),
            ..
        } => {
            assert!(e.contains("2000 ms"), "the error should name the cap: {e}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Option checks.
    let o = wsn_client_options_new();
    assert_eq!(
        unsafe { wsn_client_options_set_close_max_ms(std::ptr::null_mut(), 1) },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
    unsafe { wsn_client_options_free(o) };
}

// --- 7. threads, poll batches, fork, last_error ----------------------------------------------

fn callback_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("wsn-callback"))
        .count()
}

#[test]
fn a_callback_thread_that_calls_shutdown_ends() {
    let server = echo_server();
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let called = Arc::new(AtomicBool::new(false));
    let c2 = called.clone();
    client.rec.set_hook(move |_, ev| {
        if let Ev::Msg { .. } = ev {
            if !c2.swap(true, Ordering::SeqCst) {
                wsn_shutdown(200);
            }
        }
    });
    client.send_text("x");
    assert!(eventually(Duration::from_secs(10), || called.load(Ordering::SeqCst)));
    assert!(
        eventually(Duration::from_secs(10), || callback_threads() == 0),
        "{} callback thread(s) left after wsn_shutdown was called from a callback",
        callback_threads()
    );
}

#[test]
fn a_second_free_of_a_connection_in_the_same_poll_batch_is_harmless() {
    let server = echo_server();
    let mut q = std::ptr::null_mut();
    assert_eq!(unsafe { wsn_queue_new(&mut q) }, wsn_status::WSN_OK);
    for _ in 0..20 {
        let mut conn = std::ptr::null_mut();
        let st = unsafe {
            wsn_connect_queued(
                cstr(&server.url()).as_ptr(),
                std::ptr::null(),
                q,
                std::ptr::null_mut(),
                &mut conn,
            )
        };
        assert_eq!(st, wsn_status::WSN_OK);
        // OPEN, the echo and the CLOSE wait in the queue together.
        let end = Instant::now() + WAIT;
        while unsafe { wsn_conn_get_state(conn) } != wsn_conn_state::WSN_STATE_OPEN {
            assert!(Instant::now() < end, "no open");
            std::thread::sleep(Duration::from_millis(2));
        }
        unsafe {
            wsn_conn_send_text(conn, c"hi".as_ptr(), 2);
            wsn_conn_close(conn, 1000, std::ptr::null());
        }
        let end = Instant::now() + WAIT;
        while unsafe { wsn_conn_get_state(conn) } != wsn_conn_state::WSN_STATE_CLOSED {
            assert!(Instant::now() < end, "no close");
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut evs: Vec<wsn_queued_event> = Vec::with_capacity(16);
        let n = unsafe { wsn_queue_poll(q, evs.as_mut_ptr(), 16, 1000) };
        unsafe { evs.set_len(n) };
        let kinds: Vec<_> = evs.iter().map(|e| e.event.kind).collect();
        assert!(
            kinds.contains(&wsn_event_kind::WSN_EVENT_OPEN)
                && kinds.contains(&wsn_event_kind::WSN_EVENT_CLOSE),
            "OPEN and CLOSE in one batch: {kinds:?}"
        );
        // The application frees the connection at the first event it sees of it, and again at
        // its CLOSE, later in the same batch.
        for e in &evs {
            if e.event.kind == wsn_event_kind::WSN_EVENT_OPEN
                || e.event.kind == wsn_event_kind::WSN_EVENT_CLOSE
            {
                unsafe { wsn_conn_free(e.conn) };
            }
        }
        let mut more: Vec<wsn_queued_event> = Vec::with_capacity(16);
        unsafe { wsn_queue_poll(q, more.as_mut_ptr(), 16, 0) };
    }
    unsafe { wsn_queue_free(q) };
}

#[test]
fn a_forked_child_can_use_wsnative() {
    let server = echo_server();
    // The parent has a running runtime and callback threads.
    let parent = TestClient::connect(&server.url(), std::ptr::null());
    parent.rec.wait_open();
    let url = server.url();
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The child: a new connection must open, echo and close.
        let ok = std::panic::catch_unwind(|| {
            let c = TestClient::connect(&url, std::ptr::null());
            c.rec.wait_open();
            c.send_text("from the child");
            c.rec.wait(Duration::from_secs(10), "echo", |e| {
                (msg_count(e) == 1).then_some(())
            });
            c.close(1000, "");
            matches!(
                c.rec.wait_close(),
                Ev::Close {
                    code: 1000,
                    clean: true,
                    ..
                }
            )
        });
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
    }
    let end = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > end {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed: status {status}"
    );
    // The parent still works.
    parent.send_text("parent");
    parent
        .rec
        .wait(WAIT, "echo", |e| (msg_count(e) == 1).then_some(()));
}

#[test]
fn last_error_during_thread_exit_does_not_panic() {
    struct CallsLastError;
    impl Drop for CallsLastError {
        fn drop(&mut self) {
            let p = wsn_last_error();
            assert!(!p.is_null());
            let _ = unsafe { wsn_conn_close(std::ptr::null_mut(), 1000, std::ptr::null()) }; // records an error
            let _ = wsn_last_error();
        }
    }
    thread_local! { static LATE: std::cell::RefCell<Option<CallsLastError>> = const { std::cell::RefCell::new(None) }; }
    let h = std::thread::spawn(|| {
        let _ = wsn_last_error(); // wsnative's thread-local exists first, so it is destroyed last... or not
        LATE.with(|l| *l.borrow_mut() = Some(CallsLastError));
    });
    assert!(h.join().is_ok());
    let h = std::thread::spawn(|| {
        LATE.with(|l| *l.borrow_mut() = Some(CallsLastError));
        let _ = unsafe { wsn_conn_close(std::ptr::null_mut(), 1000, std::ptr::null()) };
    });
    assert!(h.join().is_ok());
}

/// From a thread that runs no callback, the release hook has run when wsn_conn_free returns,
/// even while a callback of the connection was running on another thread.
#[test]
fn the_release_hook_has_run_when_a_free_from_outside_returns() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn on_release(_: *mut c_void) {
        RAN.fetch_add(1, Ordering::SeqCst);
    }
    let server = echo_server();
    for round in 0..50 {
        let client = TestClient::connect(&server.url(), std::ptr::null());
        client.rec.wait_open();
        client.rec.set_hook(|_, ev| {
            if let Ev::Msg { .. } = ev {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        unsafe { wsn_conn_set_release_hook(client.conn, Some(on_release), std::ptr::null_mut()) };
        client.send_text("x");
        std::thread::sleep(Duration::from_millis(round % 4));
        let before = RAN.load(Ordering::SeqCst);
        drop(client); // wsn_conn_free from this thread
        assert_eq!(
            RAN.load(Ordering::SeqCst),
            before + 1,
            "round {round}: the hook had not run when free returned"
        );
    }
}

/// A close whose CLOSE callback frees the connection (the usual "free in on_close") while the
/// closing call has not returned yet: each call holds the connection for its own length, so
/// the callback's free cannot pull it from under the call. Many rounds on several threads,
/// with the server answering Close at once; a use after free crashes the test.
#[test]
fn a_close_whose_callback_frees_the_connection_before_the_call_returns_is_safe() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let url = server.url();
    let rounds = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (url, rounds) = (url.clone(), rounds.clone());
            std::thread::spawn(move || {
                for i in 0..500 {
                    let client =
                        std::mem::ManuallyDrop::new(TestClient::connect(&url, std::ptr::null()));
                    client.rec.set_hook(|conn, ev| {
                        if let Ev::Close { .. } = ev {
                            unsafe { wsn_conn_free(conn) };
                        }
                    });
                    client.rec.wait_open();
                    if (t + i) % 2 == 0 {
                        client.close(1000, "bye");
                    } else {
                        unsafe { wsn_conn_abort(client.conn) };
                    }
                    client.rec.wait_close();
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        within(Duration::from_secs(120), "the close rounds", move || {
            t.join().unwrap()
        });
    }
    assert_eq!(rounds.load(Ordering::SeqCst), 2000);
}
