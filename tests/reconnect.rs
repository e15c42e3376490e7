//! client-reach (issue 13): reconnecting clients through the C ABI, against wsnative servers
//! the tests stop and restart on the same port. The handle stays the same; attempts are spread
//! by full jitter within their caps; the OPEN callback (the hook) runs before queued messages go
//! out and its own messages go first; a stop code (4001) or status (403) and the budget end it;
//! the offline queue keeps its bound with each policy; 1,000 clients reconnect after a restart
//! spread out (the histogram is printed).

mod common;

use common::*;
use std::ffi::{c_void, CStr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wsnative::ffi::*;

#[derive(Debug, Clone)]
struct REv {
    kind: wsn_event_kind,
    conn: usize,
    attempt: u32,
    delay_ms: u32,
    code: u16,
    http: u16,
    error: Option<String>,
    at: Instant,
}

/// Runs in each OPEN with the connection and the OPEN's number (1: the first).
type OpenHook = Box<dyn Fn(*mut wsn_conn, usize) + Send + Sync>;

/// Records a reconnecting client's events; `hook` runs in each OPEN (after the first: the
/// reconnect hook).
#[derive(Default)]
struct RRec {
    events: Mutex<Vec<REv>>,
    changed: Condvar,
    hook: Mutex<Option<OpenHook>>,
}

unsafe extern "C" fn rrecord(user: *mut c_void, conn: *mut wsn_conn, ev: *const wsn_event) {
    let r = &*(user as *const RRec);
    let ev = &*ev;
    let e = REv {
        kind: ev.kind,
        conn: conn as usize,
        attempt: ev.attempt,
        delay_ms: ev.delay_ms,
        code: ev.close_code,
        http: ev.http_status,
        error: (!ev.error.is_null())
            .then(|| CStr::from_ptr(ev.error).to_string_lossy().into_owned()),
        at: Instant::now(),
    };
    if ev.kind == wsn_event_kind::WSN_EVENT_OPEN {
        let opens = r
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == wsn_event_kind::WSN_EVENT_OPEN)
            .count();
        if let Some(h) = &*r.hook.lock().unwrap() {
            h(conn, opens + 1);
        }
    }
    r.events.lock().unwrap().push(e);
    r.changed.notify_all();
}

impl RRec {
    fn wait<T>(&self, timeout: Duration, what: &str, mut f: impl FnMut(&[REv]) -> Option<T>) -> T {
        let end = Instant::now() + timeout;
        let mut g = self.events.lock().unwrap();
        loop {
            if let Some(t) = f(&g) {
                return t;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}: {:?}",
                g.iter()
                    .map(|e| (e.kind, e.attempt, e.code))
                    .collect::<Vec<_>>()
            );
            g = self.changed.wait_timeout(g, left).unwrap().0;
        }
    }
    fn count(&self, kind: wsn_event_kind) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }
    fn wait_count(&self, kind: wsn_event_kind, n: usize, timeout: Duration) {
        self.wait(timeout, &format!("{n} x {kind:?}"), |evs| {
            (evs.iter().filter(|e| e.kind == kind).count() >= n).then_some(())
        })
    }
}

struct RClient {
    conn: *mut wsn_conn,
    rec: Arc<RRec>,
}
unsafe impl Send for RClient {}
unsafe impl Sync for RClient {}

impl Drop for RClient {
    fn drop(&mut self) {
        unsafe { wsn_conn_free(self.conn) };
    }
}

fn policy(initial_ms: u32, max_ms: u32) -> *mut wsn_reconnect_policy {
    let p = wsn_reconnect_policy_new();
    assert_eq!(
        unsafe { wsn_reconnect_policy_set_delays(p, initial_ms, max_ms) },
        wsn_status::WSN_OK
    );
    p
}

fn rconnect(url: &str, p: *mut wsn_reconnect_policy, rec: Arc<RRec>) -> RClient {
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_connect_timeout_ms(o, 2000);
        assert_eq!(wsn_client_options_set_reconnect(o, p), wsn_status::WSN_OK);
        wsn_reconnect_policy_free(p);
    }
    let mut conn = std::ptr::null_mut();
    let st = unsafe {
        wsn_connect(
            cstr(url).as_ptr(),
            o,
            Some(rrecord),
            Arc::as_ptr(&rec) as *mut c_void,
            &mut conn,
        )
    };
    unsafe { wsn_client_options_free(o) };
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    RClient { conn, rec }
}

/// A wsnative server recording messages on `port` (0: any).
fn server_on(port: u16, accept: wsn_accept_cb) -> TestServer {
    let rec = Recorder::server();
    let mut server = std::ptr::null_mut();
    let end = Instant::now() + WAIT;
    loop {
        let st = unsafe {
            wsn_server_listen(
                cstr("127.0.0.1").as_ptr(),
                port,
                std::ptr::null(),
                accept,
                Some(record),
                rec.user(),
                &mut server,
            )
        };
        if st == wsn_status::WSN_OK {
            break;
        }
        assert!(
            Instant::now() < end,
            "cannot listen on {port}: {}",
            last_error()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = unsafe { wsn_server_get_port(server) };
    TestServer { server, rec, port }
}

fn texts(s: &TestServer) -> Vec<String> {
    s.rec
        .messages()
        .into_iter()
        .map(|(_, d)| String::from_utf8(d).unwrap())
        .collect()
}

fn send(c: &RClient, s: &str) -> wsn_status {
    unsafe { wsn_conn_send_text(c.conn, s.as_ptr() as *const _, s.len()) }
}

#[test]
fn a_client_reconnects_to_a_restarted_server_with_the_same_handle_hook_first_then_the_queue() {
    let server = server_on(0, None);
    let port = server.port;
    let rec = Arc::new(RRec::default());
    // The hook: after each reconnect, authenticate first.
    *rec.hook.lock().unwrap() = Some(Box::new(|conn, open_no| {
        if open_no > 1 {
            let m = format!("auth #{open_no}");
            unsafe { wsn_conn_send_text(conn, m.as_ptr() as *const _, m.len()) };
        }
    }));
    let c = rconnect(
        &format!("ws://127.0.0.1:{port}/"),
        policy(100, 800),
        rec.clone(),
    );
    rec.wait_count(wsn_event_kind::WSN_EVENT_OPEN, 1, WAIT);
    assert_eq!(send(&c, "before"), wsn_status::WSN_OK);
    server
        .rec
        .wait(WAIT, "before", |e| (msg_count(e) == 1).then_some(()));
    drop(server); // closes the client with 1001
    rec.wait_count(wsn_event_kind::WSN_EVENT_RECONNECTING, 1, WAIT);
    assert_eq!(
        unsafe { wsn_conn_get_state(c.conn) },
        wsn_conn_state::WSN_STATE_CONNECTING
    );
    for m in ["q1", "q2", "q3"] {
        assert_eq!(send(&c, m), wsn_status::WSN_OK, "{}", last_error());
    }
    // Let a few attempts fail against the closed port, then restart on the same port.
    rec.wait_count(wsn_event_kind::WSN_EVENT_RECONNECTING, 4, WAIT);
    let restarted = server_on(port, None);
    rec.wait_count(wsn_event_kind::WSN_EVENT_OPEN, 2, WAIT);
    restarted.rec.wait(WAIT, "auth and the queue", |e| {
        (msg_count(e) == 4).then_some(())
    });
    assert_eq!(texts(&restarted), ["auth #2", "q1", "q2", "q3"]);
    assert_eq!(
        unsafe { wsn_conn_get_state(c.conn) },
        wsn_conn_state::WSN_STATE_OPEN
    );
    let evs = rec.events.lock().unwrap().clone();
    assert!(evs.iter().all(|e| e.conn == c.conn as usize), "one handle");
    assert_eq!(rec.count(wsn_event_kind::WSN_EVENT_CLOSE), 0);
    // Attempts count up from 1; each delay is within its cap (100 ms * 2^(n-1), at most 800).
    let attempts: Vec<&REv> = evs
        .iter()
        .filter(|e| e.kind == wsn_event_kind::WSN_EVENT_RECONNECTING)
        .collect();
    for (i, e) in attempts.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(e.attempt, n);
        let cap = (100u32 << (n - 1).min(10)).min(800);
        assert!(
            e.delay_ms <= cap,
            "attempt {n}: {} ms over its cap {cap}",
            e.delay_ms
        );
        println!(
            "attempt {n}: delay {} ms (cap {cap}), last error: {:?}",
            e.delay_ms, e.error
        );
    }
    assert_eq!(attempts[0].code, 1001, "the drop's close code");
    assert!(attempts[1]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("refused"));
    // The next close is the end: no reconnect after the application's close.
    unsafe { wsn_conn_close(c.conn, 1000, cstr("bye").as_ptr()) };
    rec.wait_count(wsn_event_kind::WSN_EVENT_CLOSE, 1, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rec.count(wsn_event_kind::WSN_EVENT_OPEN), 2);
}

unsafe extern "C" fn close_4001(_: *mut c_void, req: *mut wsn_request) {
    wsn_request_accept_and_close(req, 4001, cstr("not allowed").as_ptr());
}

unsafe extern "C" fn refuse_403(_: *mut c_void, req: *mut wsn_request) {
    wsn_request_reject(req, 403, cstr("go away").as_ptr());
}

#[test]
fn a_4001_close_or_a_403_stops_reconnecting_and_the_budget_ends_it() {
    // 4001 in the stop list: gave up, then CLOSE with 4001.
    let server = server_on(0, Some(close_4001));
    let p = policy(50, 200);
    unsafe { wsn_reconnect_policy_add_stop_code(p, 4001) };
    let rec = Arc::new(RRec::default());
    let _c = rconnect(&server.url(), p, rec.clone());
    rec.wait_count(wsn_event_kind::WSN_EVENT_CLOSE, 1, WAIT);
    let evs = rec.events.lock().unwrap().clone();
    let kinds: Vec<_> = evs.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            wsn_event_kind::WSN_EVENT_OPEN,
            wsn_event_kind::WSN_EVENT_RECONNECT_GAVE_UP,
            wsn_event_kind::WSN_EVENT_CLOSE
        ]
    );
    assert!(
        evs[1]
            .error
            .as_deref()
            .unwrap()
            .contains("close code 4001 stops"),
        "{evs:?}"
    );
    assert_eq!(evs[2].code, 4001);

    // Without it in the list, the same server is tried again.
    let rec = Arc::new(RRec::default());
    let _c = rconnect(&server.url(), policy(50, 200), rec.clone());
    rec.wait_count(wsn_event_kind::WSN_EVENT_RECONNECTING, 2, WAIT);
    assert_eq!(rec.events.lock().unwrap()[1].code, 4001);

    // 403 stops by default.
    let refusing = server_on(0, Some(refuse_403));
    let rec = Arc::new(RRec::default());
    let _c = rconnect(&refusing.url(), policy(50, 200), rec.clone());
    rec.wait_count(wsn_event_kind::WSN_EVENT_CLOSE, 1, WAIT);
    let evs = rec.events.lock().unwrap().clone();
    assert_eq!(evs[0].kind, wsn_event_kind::WSN_EVENT_RECONNECT_GAVE_UP);
    assert_eq!(
        (evs[1].kind, evs[1].http),
        (wsn_event_kind::WSN_EVENT_CLOSE, 403)
    );

    // A budget of 3 attempts against nothing: three attempts, then it gives up.
    let nobody = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = policy(10, 50);
    unsafe { wsn_reconnect_policy_set_budget(p, 3, 0) };
    let rec = Arc::new(RRec::default());
    let _c = rconnect(&format!("ws://127.0.0.1:{nobody}/"), p, rec.clone());
    rec.wait_count(wsn_event_kind::WSN_EVENT_CLOSE, 1, WAIT);
    let evs = rec.events.lock().unwrap().clone();
    let attempts: Vec<u32> = evs
        .iter()
        .filter(|e| e.kind == wsn_event_kind::WSN_EVENT_RECONNECTING)
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let gave_up = &evs[evs.len() - 2];
    assert_eq!(
        (gave_up.kind, gave_up.attempt),
        (wsn_event_kind::WSN_EVENT_RECONNECT_GAVE_UP, 3)
    );
    assert!(
        gave_up.error.as_deref().unwrap().contains("budget"),
        "{gave_up:?}"
    );
}

#[test]
fn the_offline_queue_is_bounded_with_each_policy() {
    for (when_full, expect) in [
        (WSN_OFFLINE_REFUSE, vec!["m1xx", "m2xx"]),
        (WSN_OFFLINE_DROP_OLDEST, vec!["m3xx", "m4xx"]),
        (WSN_OFFLINE_DROP_NEWEST, vec!["m1xx", "m2xx"]),
    ] {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let p = policy(50, 200);
        unsafe { wsn_reconnect_policy_set_offline_queue(p, 8, when_full) };
        let rec = Arc::new(RRec::default());
        let c = rconnect(&format!("ws://127.0.0.1:{port}/"), p, rec.clone());
        rec.wait_count(wsn_event_kind::WSN_EVENT_RECONNECTING, 1, WAIT);
        let results: Vec<wsn_status> = ["m1xx", "m2xx", "m3xx", "m4xx"]
            .iter()
            .map(|m| send(&c, m))
            .collect();
        if when_full == WSN_OFFLINE_REFUSE {
            assert_eq!(results[2], wsn_status::WSN_ERR_WOULD_BLOCK);
        } else {
            assert!(
                results.iter().all(|s| *s == wsn_status::WSN_OK),
                "{results:?}"
            );
        }
        let server = server_on(port, None);
        server.rec.wait(WAIT, "the kept messages", |e| {
            (msg_count(e) == 2).then_some(())
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(texts(&server), expect, "policy {when_full}");
    }
}

#[test]
fn a_thousand_clients_reconnect_spread_out_after_a_server_restart() {
    const N: usize = 1000;
    let server = server_on(0, None);
    let port = server.port;
    let clients: Vec<RClient> = (0..N)
        .map(|_| {
            rconnect(
                &format!("ws://127.0.0.1:{port}/"),
                policy(250, 2000),
                Arc::new(RRec::default()),
            )
        })
        .collect();
    for c in &clients {
        c.rec
            .wait_count(wsn_event_kind::WSN_EVENT_OPEN, 1, Duration::from_secs(60));
    }
    drop(server);
    let down = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let restarted = server_on(port, None);
    let up = Instant::now();
    for c in &clients {
        c.rec
            .wait_count(wsn_event_kind::WSN_EVENT_OPEN, 2, Duration::from_secs(60));
    }
    // When each client was back, from the restart: a histogram in 250 ms buckets.
    let mut back: Vec<f64> = clients
        .iter()
        .map(|c| {
            let evs = c.rec.events.lock().unwrap();
            let second_open = evs
                .iter()
                .filter(|e| e.kind == wsn_event_kind::WSN_EVENT_OPEN)
                .nth(1)
                .unwrap()
                .at;
            second_open.saturating_duration_since(up).as_secs_f64()
        })
        .collect();
    back.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let buckets = (back.last().unwrap() / 0.25) as usize + 1;
    let mut hist = vec![0usize; buckets];
    for t in &back {
        hist[(t / 0.25) as usize] += 1;
    }
    println!(
        "{N} clients, server down {} ms; reconnected after the restart (250 ms buckets):",
        (up - down).as_millis()
    );
    for (i, n) in hist.iter().enumerate() {
        println!(
            "  {:>5}-{:<5} ms {:>4} {}",
            i * 250,
            (i + 1) * 250,
            n,
            "#".repeat(n.div_ceil(10))
        );
    }
    let attempts: usize = clients
        .iter()
        .map(|c| c.rec.count(wsn_event_kind::WSN_EVENT_RECONNECTING))
        .sum();
    println!(
        "median {:.0} ms, 90th percentile {:.0} ms, {attempts} attempts in all",
        back[N / 2] * 1000.0,
        back[N * 9 / 10] * 1000.0
    );
    // Spread, not a spike: no 250 ms bucket holds most of the clients (jitter is uniform over
    // caps of up to 2 s, so a bucket holds far fewer).
    assert!(
        hist.iter().all(|n| *n < N / 2),
        "reconnects came as a spike: {hist:?}"
    );
    drop(clients);
    drop(restarted);
}

/// A loan whose release sends on the connection that lent it (the contract asks releases not
/// to call wsnative; one that does must still not deadlock on the send queue's lock).
struct SendingLoan {
    conn: usize,
    bytes: Vec<u8>,
    sent: std::sync::mpsc::Sender<wsn_status>,
}

unsafe extern "C" fn release_and_send(user: *mut c_void, _data: *const u8, _len: usize) {
    let loan = Box::from_raw(user as *mut SendingLoan);
    let st = wsn_conn_send_text(loan.conn as *mut wsn_conn, c"r".as_ptr(), 1);
    let _ = loan.sent.send(st);
}

#[test]
fn a_lent_message_dropped_from_a_full_offline_queue_is_released_after_the_queue_lock() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = policy(50, 200);
    unsafe { wsn_reconnect_policy_set_offline_queue(p, 8, WSN_OFFLINE_DROP_OLDEST) };
    let rec = Arc::new(RRec::default());
    let c = rconnect(&format!("ws://127.0.0.1:{port}/"), p, rec.clone());
    rec.wait_count(wsn_event_kind::WSN_EVENT_RECONNECTING, 1, WAIT);
    let (tx, rx) = std::sync::mpsc::channel();
    let conn = c.conn as usize;
    // Sent from another thread: a deadlock fails the test instead of hanging it.
    let sender = std::thread::spawn(move || {
        let loan = Box::new(SendingLoan {
            conn,
            bytes: b"m1xx".to_vec(),
            sent: tx,
        });
        let (ptr, len) = (loan.bytes.as_ptr(), loan.bytes.len());
        let user = Box::into_raw(loan) as *mut c_void;
        let lent = unsafe {
            wsn_conn_send_nocopy(
                conn as *mut wsn_conn,
                ptr,
                len,
                WSN_SEND_TEXT,
                Some(release_and_send),
                user,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(lent, wsn_status::WSN_OK, "{}", last_error());
        // Two more fill the 8-byte offline queue: the lent message is the oldest and goes.
        for m in ["m2xx", "m3xx"] {
            let st =
                unsafe { wsn_conn_send_text(conn as *mut wsn_conn, m.as_ptr() as *const _, 4) };
            assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        }
    });
    let Ok(from_release) = rx.recv_timeout(Duration::from_secs(10)) else {
        // Deadlocked: freeing the handle would wait for the same lock.
        std::mem::forget(c);
        panic!("the lent message was not released, or its release deadlocked on the queue's lock");
    };
    assert_eq!(from_release, wsn_status::WSN_OK, "a send from the release");
    sender.join().unwrap();
}
