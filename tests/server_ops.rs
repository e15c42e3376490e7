//! A server in operation (issue 15 §3), through the C ABI against wsnative clients and raw
//! sockets on loopback: session deadlines, tags and close by tag, broadcast (a stalled
//! connection under both send-queue policies), the staggered drain, stats and pings.

mod common;

use common::*;
use std::ffi::{c_void, CStr};
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wsnative::ffi::*;

/// The accept hook of these tests: `?deadline=MS` sets the session deadline (4401 "session
/// expired"), `?tag=T` (repeatable) adds tags.
unsafe extern "C" fn ops_hook(_user: *mut c_void, req: *mut wsn_request) {
    let q = CStr::from_ptr(wsn_request_get_query(req))
        .to_string_lossy()
        .into_owned();
    for kv in q.split('&') {
        if let Some(ms) = kv.strip_prefix("deadline=") {
            let st = wsn_request_set_deadline(
                req,
                ms.parse().unwrap(),
                4401,
                c"session expired".as_ptr(),
            );
            assert_eq!(st, wsn_status::WSN_OK);
        }
        if let Some(t) = kv.strip_prefix("tag=") {
            let t = cstr(t);
            assert_eq!(wsn_request_add_tag(req, t.as_ptr()), wsn_status::WSN_OK);
        }
    }
}

fn server_with_hook(opts: *const wsn_server_options) -> TestServer {
    TestServer::start(Recorder::server(), opts, Some(ops_hook))
}

/// The server-side handles open now, in the order they opened.
fn server_conns(s: &TestServer, n: usize) -> Vec<usize> {
    s.rec.wait(WAIT, "server opens", |e| {
        let v: Vec<usize> = e
            .iter()
            .filter_map(|e| if let Ev::Open(c) = e { Some(*c) } else { None })
            .collect();
        (v.len() >= n).then_some(v)
    })
}

/// Of the server's connections `opened`, the one whose peer is our socket on `port`. (Not
/// the last OPEN recorded: the callback threads record OPENs of different connections in any
/// order. Taking the last one once filled a reader's queue instead of the stalled client's.)
fn conn_of_peer_port(opened: &[usize], port: u16) -> *mut wsn_conn {
    let suffix = format!(":{port}");
    opened
        .iter()
        .map(|&c| c as *mut wsn_conn)
        .find(|&c| {
            let addr = unsafe { std::ffi::CStr::from_ptr(wsn_conn_get_peer_addr(c)) };
            addr.to_str().unwrap().ends_with(&suffix)
        })
        .unwrap_or_else(|| panic!("no server connection from port {port}"))
}

/// The one server connection carrying `tag`.
fn tagged_conn(s: &TestServer, tag: &std::ffi::CStr) -> *mut wsn_conn {
    let mut out = [std::ptr::null_mut(); 2];
    let n = unsafe { wsn_server_list_tag(s.server, tag.as_ptr(), out.as_mut_ptr(), out.len()) };
    assert_eq!(n, 1, "connections tagged {tag:?}");
    out[0]
}

fn close_code(ev: &Ev) -> (u16, String, bool) {
    match ev {
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
fn a_deadline_of_one_second_closes_on_time_with_the_chosen_code() {
    let server = server_with_hook(std::ptr::null());
    // Set by the accept hook.
    let t0 = Instant::now();
    let a = TestClient::connect(&format!("{}?deadline=1000", server.url()), std::ptr::null());
    a.rec.wait_open();
    // Set later on the server connection: first 60 s, then replaced by 1 s.
    let b = TestClient::connect(&format!("{}?tag=b", server.url()), std::ptr::null());
    b.rec.wait_open();
    // Set then cleared: stays open.
    let c = TestClient::connect(&format!("{}?tag=c", server.url()), std::ptr::null());
    c.rec.wait_open();
    server_conns(&server, 3);
    // Found by tag: the server's OPENs of different connections may come in another order
    // than the clients opened.
    let (sb, sc) = (tagged_conn(&server, c"b"), tagged_conn(&server, c"c"));
    let tb = Instant::now();
    unsafe {
        assert_eq!(
            wsn_conn_set_deadline(sb, 60_000, 4401, c"session expired".as_ptr()),
            wsn_status::WSN_OK
        );
        assert_eq!(
            wsn_conn_set_deadline(sb, 1000, 4402, c"token expired".as_ptr()),
            wsn_status::WSN_OK
        );
        assert_eq!(
            wsn_conn_set_deadline(sc, 500, 4401, std::ptr::null()),
            wsn_status::WSN_OK
        );
        assert_eq!(
            wsn_conn_set_deadline(sc, 0, 0, std::ptr::null()),
            wsn_status::WSN_OK
        );
        // A code that may not be sent is refused.
        assert_eq!(
            wsn_conn_set_deadline(sc, 1000, 1006, std::ptr::null()),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
    }
    let ea = a.rec.wait_close();
    let ta = t0.elapsed();
    let eb = b.rec.wait_close();
    let tb = tb.elapsed();
    println!("deadline 1 s: closed after {ta:?} (from the hook) and {tb:?} (set later)");
    assert_eq!(close_code(&ea), (4401, "session expired".into(), true));
    assert_eq!(close_code(&eb), (4402, "token expired".into(), true));
    // On time, generously: not before the deadline, and well before a replaced one.
    assert!(ta >= Duration::from_millis(950), "{ta:?}");
    assert!(tb >= Duration::from_millis(950), "{tb:?}");
    assert!(ta < Duration::from_secs(10) && tb < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        unsafe { wsn_conn_get_state(c.conn) },
        wsn_conn_state::WSN_STATE_OPEN,
        "a cleared deadline closes nothing"
    );
}

#[test]
fn closing_by_tag_closes_exactly_the_tagged_connections() {
    let server = server_with_hook(std::ptr::null());
    // user:a on three connections (two from the hook, one added later), user:b on two.
    let urls = [
        "?tag=user:a&tag=room:1",
        "?tag=user:a",
        "?tag=user:b&tag=room:1",
        "?tag=user:b",
        "",
        "",
    ];
    let clients: Vec<TestClient> = urls
        .iter()
        .map(|q| {
            let c = TestClient::connect(&format!("{}{q}", server.url()), std::ptr::null());
            c.rec.wait_open();
            c
        })
        .collect();
    let opened = server_conns(&server, urls.len());
    let s = server.server;
    unsafe {
        let last = opened[5] as *mut wsn_conn;
        assert_eq!(
            wsn_conn_add_tag(last, c"user:a".as_ptr()),
            wsn_status::WSN_OK
        );
        assert!(wsn_conn_has_tag(last, c"user:a".as_ptr()));
        assert_eq!(wsn_server_count_tag(s, c"user:a".as_ptr()), 3);
        assert_eq!(wsn_server_count_tag(s, c"room:1".as_ptr()), 2);
        assert_eq!(wsn_server_count_tag(s, c"nobody".as_ptr()), 0);
        // Removing: room:1 of the first connection.
        assert_eq!(
            wsn_conn_remove_tag(opened[0] as *mut wsn_conn, c"room:1".as_ptr()),
            wsn_status::WSN_OK
        );
        assert_eq!(wsn_server_count_tag(s, c"room:1".as_ptr()), 1);
        // Listing gives the application's own handles, oldest first.
        let mut out = [std::ptr::null_mut(); 8];
        let n = wsn_server_list_tag(s, c"user:a".as_ptr(), out.as_mut_ptr(), out.len());
        assert_eq!(n, 3);
        assert_eq!(
            out[..3].iter().map(|p| *p as usize).collect::<Vec<_>>(),
            vec![opened[0], opened[1], opened[5]]
        );
        // Bad tags are refused.
        assert_eq!(
            wsn_conn_add_tag(last, c"".as_ptr()),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        let mut closed = 0usize;
        assert_eq!(
            wsn_server_close_tag(
                s,
                c"user:a".as_ptr(),
                4000,
                c"logged out".as_ptr(),
                &mut closed
            ),
            wsn_status::WSN_OK
        );
        assert_eq!(closed, 3);
    }
    for i in [0, 1, 5] {
        let e = clients[i].rec.wait_close();
        assert_eq!(
            close_code(&e),
            (4000, "logged out".into(), true),
            "client {i}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in [2, 3, 4] {
        assert_eq!(
            unsafe { wsn_conn_get_state(clients[i].conn) },
            wsn_conn_state::WSN_STATE_OPEN,
            "client {i} does not carry the tag"
        );
    }
    let s = server.server;
    let end = Instant::now() + WAIT;
    while unsafe { wsn_server_count_tag(s, c"user:a".as_ptr()) } != 0 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(unsafe { wsn_server_count_tag(s, c"user:b".as_ptr()) }, 2);
}

/// A client that checks the order of broadcast messages (an 8-byte sequence number first).
#[derive(Default)]
struct Seq {
    next: AtomicU64,
    out_of_order: AtomicU64,
    opened: AtomicBool,
    close_code: AtomicU16,
    clean: AtomicBool,
    closed_at: Mutex<Option<Instant>>,
}

unsafe extern "C" fn seq_cb(user: *mut c_void, _conn: *mut wsn_conn, ev: *const wsn_event) {
    let s = &*(user as *const Seq);
    let ev = &*ev;
    match ev.kind {
        wsn_event_kind::WSN_EVENT_OPEN => s.opened.store(true, Ordering::Release),
        wsn_event_kind::WSN_EVENT_MESSAGE => {
            let d = std::slice::from_raw_parts(ev.data, ev.len);
            let n = u64::from_le_bytes(d[..8].try_into().unwrap());
            if n != s.next.load(Ordering::Relaxed) {
                s.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            s.next.store(n + 1, Ordering::Release);
        }
        wsn_event_kind::WSN_EVENT_CLOSE => {
            *s.closed_at.lock().unwrap() = Some(Instant::now());
            s.clean.store(ev.was_clean, Ordering::Release);
            s.close_code.store(ev.close_code, Ordering::Release);
        }
        _ => {}
    }
}

struct SeqClient {
    conn: *mut wsn_conn,
    seq: Arc<Seq>,
}
unsafe impl Send for SeqClient {}

impl Drop for SeqClient {
    fn drop(&mut self) {
        unsafe { wsn_conn_free(self.conn) };
    }
}

/// `n` wsnative clients, connected in batches of 100 (each batch open before the next).
fn seq_clients(url: &str, n: usize) -> Vec<SeqClient> {
    let mut v: Vec<SeqClient> = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(100) {
        for _ in batch * 100..((batch + 1) * 100).min(n) {
            let seq = Arc::new(Seq::default());
            let mut conn = std::ptr::null_mut();
            let st = unsafe {
                wsn_connect(
                    cstr(url).as_ptr(),
                    std::ptr::null(),
                    Some(seq_cb),
                    Arc::as_ptr(&seq) as *mut c_void,
                    &mut conn,
                )
            };
            assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
            v.push(SeqClient { conn, seq });
        }
        let end = Instant::now() + WAIT;
        while !v.iter().all(|c| c.seq.opened.load(Ordering::Acquire)) {
            assert!(Instant::now() < end, "clients did not open");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    v
}

/// A raw client whose receive buffer is 4 KiB (so the server's kernel holds little for it):
/// it completes the upgrade and never reads again.
fn stalled_client(port: u16) -> TcpStream {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(r, 0);
        let mut s = TcpStream::from_raw_fd(fd);
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        s
    }
}

/// Fills the kernel's buffers of a server connection whose peer never reads: one message of
/// 8 MiB (one message always fits an empty queue), then waits until the socket takes no more.
/// Returns the bytes left queued.
fn fill_stalled(conn: *mut wsn_conn) -> u64 {
    let big = vec![0u8; 8 << 20];
    assert_eq!(
        unsafe { wsn_conn_send_binary(conn, big.as_ptr(), big.len()) },
        wsn_status::WSN_OK
    );
    let end = Instant::now() + Duration::from_secs(30);
    let mut last = (0, Instant::now());
    loop {
        let s = conn_stats(conn);
        if s.bytes_sent != last.0 {
            last = (s.bytes_sent, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(300) {
            return s.queued_bytes;
        }
        assert!(Instant::now() < end, "the socket kept taking bytes");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn conn_stats(c: *const wsn_conn) -> wsn_conn_stats {
    let mut s = wsn_conn_stats {
        size: std::mem::size_of::<wsn_conn_stats>() as u32,
        ..Default::default()
    };
    assert_eq!(unsafe { wsn_conn_get_stats(c, &mut s) }, wsn_status::WSN_OK);
    s
}

fn server_stats(s: *const wsn_server) -> wsn_server_stats {
    let mut st = wsn_server_stats {
        size: std::mem::size_of::<wsn_server_stats>() as u32,
        ..Default::default()
    };
    assert_eq!(
        unsafe { wsn_server_get_stats(s, &mut st) },
        wsn_status::WSN_OK
    );
    st
}

/// Broadcasts `count` messages of `size` bytes (sequence number first), waiting (as an
/// application would, bounded) whenever the slowest reader falls `window` messages behind;
/// returns the reports summed.
fn broadcast_paced(
    server: *mut wsn_server,
    readers: &[SeqClient],
    count: u64,
    window: u64,
    size: usize,
) -> wsn_broadcast_report {
    let mut sum = wsn_broadcast_report::default();
    let end = Instant::now() + Duration::from_secs(120);
    for i in 0..count {
        if i % 100 == 0 {
            while readers
                .iter()
                .map(|c| c.seq.next.load(Ordering::Acquire))
                .min()
                .unwrap_or(i)
                + window
                < i
            {
                if Instant::now() > end {
                    let (k, slow) = readers
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, c)| c.seq.next.load(Ordering::Acquire))
                        .unwrap();
                    panic!(
                        "reader {k} stopped reading at message {} of {i} sent (close code {}, \
                         out of order {})",
                        slow.seq.next.load(Ordering::Acquire),
                        slow.seq.close_code.load(Ordering::Acquire),
                        slow.seq.out_of_order.load(Ordering::Acquire)
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut msg = vec![b'x'; size];
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let mut r = wsn_broadcast_report {
            size: std::mem::size_of::<wsn_broadcast_report>() as u32,
            ..Default::default()
        };
        let st = unsafe {
            wsn_server_broadcast(server, std::ptr::null(), msg.as_ptr(), size, 0, &mut r)
        };
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        sum.queued += r.queued;
        sum.refused += r.refused;
        sum.not_open += r.not_open;
    }
    sum
}

fn wait_all_received(readers: &[SeqClient], count: u64) {
    let end = Instant::now() + Duration::from_secs(120);
    while !readers
        .iter()
        .all(|c| c.seq.next.load(Ordering::Acquire) == count)
    {
        assert!(
            Instant::now() < end,
            "not every reader got every message: least {}",
            readers
                .iter()
                .map(|c| c.seq.next.load(Ordering::Acquire))
                .min()
                .unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for c in readers {
        assert_eq!(c.seq.out_of_order.load(Ordering::Relaxed), 0);
    }
}

fn rss_line() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let get = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!("rss {} hwm {}", get("VmRSS:"), get("VmHWM:"))
}

/// The server of the broadcast test, in a process of its own (so its resident memory is its
/// own): run by the test below through this test binary with WSN_BROADCAST_CHILD=1. It reads
/// commands on stdin and answers on stdout in lines starting with "@@ ". Alone, it does nothing.
#[test]
fn broadcast_server_child() {
    if std::env::var("WSN_BROADCAST_CHILD").is_err() {
        return;
    }
    use std::io::BufRead;
    let o = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_max_send_queue(o, 128 << 10);
        wsn_server_options_set_send_queue_policy(o, WSN_SEND_QUEUE_REFUSE);
        // 100 clients of one address handshake at once here.
        wsn_server_options_set_max_pending_handshakes_per_ip(o, 0);
    }
    let server = TestServer::start(Recorder::server(), o, None);
    unsafe { wsn_server_options_free(o) };
    println!("@@ port {}", server.port);
    let mut stalled: *mut wsn_conn = std::ptr::null_mut();
    let mut held = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["fill", n, port] => {
                let opened = server_conns(&server, n.parse().unwrap());
                stalled = conn_of_peer_port(&opened, port.parse().unwrap());
                held = fill_stalled(stalled);
                println!("@@ held {held} {}", rss_line());
            }
            ["bcast", from, count] => {
                let (from, count): (u64, u64) = (from.parse().unwrap(), count.parse().unwrap());
                let mut sum = (0, 0, 0);
                for i in from..from + count {
                    let mut msg = [b'x'; 32];
                    msg[..8].copy_from_slice(&i.to_le_bytes());
                    let mut r = wsn_broadcast_report {
                        size: std::mem::size_of::<wsn_broadcast_report>() as u32,
                        ..Default::default()
                    };
                    let st = unsafe {
                        wsn_server_broadcast(
                            server.server,
                            std::ptr::null(),
                            msg.as_ptr(),
                            32,
                            0,
                            &mut r,
                        )
                    };
                    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
                    sum = (sum.0 + r.queued, sum.1 + r.refused, sum.2 + r.not_open);
                }
                println!("@@ report {} {} {}", sum.0, sum.1, sum.2);
            }
            ["stats"] => {
                let st = conn_stats(stalled);
                let open = unsafe { wsn_conn_get_state(stalled) } == wsn_conn_state::WSN_STATE_OPEN;
                println!(
                    "@@ stalled {} {} {} {}",
                    st.queued_bytes,
                    held,
                    open as u8,
                    rss_line()
                );
            }
            _ => break,
        }
    }
}

/// The child server of the broadcast test: its stdin, and its "@@" lines with a timeout.
struct Child {
    proc: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Child {
    fn start() -> Child {
        use std::io::BufRead;
        let mut proc = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "broadcast_server_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("WSN_BROADCAST_CHILD", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = proc.stdin.take().unwrap();
        let out = proc.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
                // (libtest may print "test NAME ... " on the same line first)
                if let Some(i) = l.find("@@ ") {
                    let _ = tx.send(l[i + 3..].to_owned());
                }
            }
        });
        Child { proc, stdin, lines }
    }

    fn ask(&mut self, cmd: &str, timeout: Duration) -> Vec<String> {
        if !cmd.is_empty() {
            writeln!(self.stdin, "{cmd}").unwrap();
        }
        let l = self
            .lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("the server process did not answer {cmd:?}"));
        l.split_whitespace().map(str::to_owned).collect()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

#[test]
fn broadcast_of_10000_messages_to_1000_connections_one_stalled_refused() {
    let mut child = Child::start();
    let port: u16 = child.ask("", WAIT)[1].parse().unwrap();
    let readers = seq_clients(&format!("ws://127.0.0.1:{port}/"), 999);
    let stalled = stalled_client(port);
    let stalled_port = stalled.local_addr().unwrap().port();
    let filled = child.ask(
        &format!("fill 1000 {stalled_port}"),
        Duration::from_secs(60),
    );
    let held: u64 = filled[1].parse().unwrap();
    assert!(
        held > 0,
        "the stalled connection's queue holds what its kernel did not take"
    );
    let rss0 = filled[3].clone();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(300);
    let mut sum = (0u64, 0u64, 0u64);
    for from in (0..10_000u64).step_by(100) {
        // As an application would (bounded): wait while the slowest reader is 1,000 behind.
        while readers
            .iter()
            .map(|c| c.seq.next.load(Ordering::Acquire))
            .min()
            .unwrap()
            + 1_000
            < from
        {
            assert!(Instant::now() < end, "readers stopped reading");
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = child.ask(&format!("bcast {from} 100"), WAIT);
        let n = |i: usize| r[i].parse::<u64>().unwrap();
        sum = (sum.0 + n(1), sum.1 + n(2), sum.2 + n(3));
    }
    wait_all_received(&readers, 10_000);
    let took = t0.elapsed();
    let st = child.ask("stats", WAIT);
    println!(
        "broadcast 10,000 x 32 B to 1,000 connections (one stalled, REFUSE), server in its own \
         process: {took:?}; queued {} refused {} not open {}; stalled queue {} bytes (held {} \
         before); server RSS {} KiB before the broadcast, {} KiB after (peak {} KiB)",
        sum.0, sum.1, sum.2, st[1], st[2], rss0, st[5], st[7]
    );
    // Every reader took every message; the stalled connection refused every one, stayed open,
    // and its queue did not grow.
    assert_eq!(sum, (999 * 10_000, 10_000, 0));
    assert_eq!(st[1], st[2], "the stalled queue took nothing more");
    assert_eq!(st[3], "1", "the stalled connection stays open under REFUSE");
    // Bounded: the 10,000 messages (320 KB each way per connection) pass through without
    // piling up. Generous: at most 256 MiB more than before the broadcast.
    let (before, after): (u64, u64) = (rss0.parse().unwrap(), st[5].parse().unwrap());
    assert!(
        after < before + 256 * 1024,
        "server RSS grew from {before} to {after} KiB"
    );
}

#[test]
fn broadcast_under_the_close_policy_closes_the_stalled_connection_with_1008() {
    let o = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_max_send_queue(o, 16 << 10);
        wsn_server_options_set_send_queue_policy(o, WSN_SEND_QUEUE_CLOSE);
    }
    let server = TestServer::start(Recorder::server(), o, None);
    unsafe { wsn_server_options_free(o) };
    let readers = seq_clients(&server.url(), 10);
    let stalled = stalled_client(server.port);
    let opened = server_conns(&server, 11);
    let stalled_conn = conn_of_peer_port(&opened, stalled.local_addr().unwrap().port()) as usize;
    fill_stalled(stalled_conn as *mut wsn_conn);
    // Paced so that no reader's server-side queue can reach the 16 KiB limit: at most 200
    // messages (window + the 100 between checks) are ahead of the slowest reader. The count
    // can lag by as much again: an I/O thread preempted right after a write has not yet
    // counted what the kernel took, while the reader already read it and the broadcast went
    // on (seen under stress with a window of 200: 300 frames written but not yet counted plus
    // 181 queued, 16,354 bytes, and a reader closed with 1008). 2 x 200 x 34 bytes = 13.6 KB.
    let sum = broadcast_paced(server.server, &readers, 10_000, 100, 32);
    wait_all_received(&readers, 10_000);
    let e = server.rec.wait_close_of(stalled_conn, WAIT);
    match e {
        Ev::Close { code, status, .. } => {
            assert_eq!(code, 1008);
            assert_eq!(status, wsn_status::WSN_ERR_WOULD_BLOCK);
        }
        _ => unreachable!(),
    }
    println!(
        "CLOSE policy: queued {} refused {} not open {}",
        sum.queued, sum.refused, sum.not_open
    );
    assert_eq!(sum.refused, 1, "refused once, then closing");
    assert!(sum.not_open > 0);
    assert_eq!(sum.queued + sum.refused + sum.not_open, 10_000 * 11);
}

#[test]
fn broadcast_to_a_tag_reaches_only_its_connections() {
    let server = server_with_hook(std::ptr::null());
    let a = TestClient::connect(&format!("{}?tag=room:7", server.url()), std::ptr::null());
    let b = TestClient::connect(&server.url(), std::ptr::null());
    a.rec.wait_open();
    b.rec.wait_open();
    server_conns(&server, 2);
    let mut r = wsn_broadcast_report {
        size: std::mem::size_of::<wsn_broadcast_report>() as u32,
        ..Default::default()
    };
    unsafe {
        assert_eq!(
            wsn_server_broadcast(
                server.server,
                c"room:7".as_ptr(),
                "hé".as_ptr(),
                3,
                WSN_SEND_TEXT,
                &mut r
            ),
            wsn_status::WSN_OK
        );
        assert_eq!(
            (r.queued, r.refused, r.size as usize),
            (1, 0, std::mem::size_of::<wsn_broadcast_report>())
        );
        assert_eq!(
            wsn_server_broadcast(
                server.server,
                std::ptr::null(),
                [0xffu8].as_ptr(),
                1,
                WSN_SEND_TEXT,
                &mut r
            ),
            wsn_status::WSN_ERR_INVALID_ARGUMENT,
            "text is checked as UTF-8"
        );
        assert_eq!(
            wsn_server_broadcast(
                server.server,
                std::ptr::null(),
                b"all".as_ptr(),
                3,
                0,
                std::ptr::null_mut()
            ),
            wsn_status::WSN_OK
        );
    }
    a.rec
        .wait(WAIT, "two messages", |e| (msg_count(e) == 2).then_some(()));
    b.rec
        .wait(WAIT, "one message", |e| (msg_count(e) == 1).then_some(()));
    assert_eq!(
        a.rec.messages(),
        vec![(true, "hé".as_bytes().to_vec()), (false, b"all".to_vec())]
    );
    assert_eq!(b.rec.messages(), vec![(false, b"all".to_vec())]);
}

#[test]
fn drain_of_1000_clients_spreads_the_closes_over_the_window() {
    let o = wsn_server_options_new();
    // 100 clients of one address handshake at once here.
    unsafe { wsn_server_options_set_max_pending_handshakes_per_ip(o, 0) };
    let server = TestServer::start(Recorder::server(), o, None);
    unsafe { wsn_server_options_free(o) };
    let clients = seq_clients(&server.url(), 1000);
    server_conns(&server, 1000);
    let window = Duration::from_secs(4);
    let mut r = wsn_drain_report {
        size: std::mem::size_of::<wsn_drain_report>() as u32,
        ..Default::default()
    };
    let t0 = Instant::now();
    let st = unsafe {
        wsn_server_drain(
            server.server,
            window.as_millis() as u32,
            1012,
            c"restarting".as_ptr(),
            &mut r,
        )
    };
    let took = t0.elapsed();
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    let times: Vec<Duration> = clients
        .iter()
        .map(|c| {
            c.seq
                .closed_at
                .lock()
                .unwrap()
                .expect("every client saw its close")
                - t0
        })
        .collect();
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    let mut tenths = [0usize; 10];
    for t in &times {
        let i = ((t.as_secs_f64() / window.as_secs_f64()) * 10.0) as usize;
        tenths[i.min(9)] += 1;
    }
    println!(
        "drain of 1,000 over {window:?}: returned after {took:?}; closes from {first:?} to \
         {last:?}; per tenth of the window {tenths:?}; report: {} connections, {} clean, {} \
         aborted, {} failed",
        r.connections, r.closed_clean, r.aborted, r.failed
    );
    for c in &clients {
        assert_eq!(c.seq.close_code.load(Ordering::Acquire), 1012);
        assert!(c.seq.clean.load(Ordering::Acquire));
    }
    assert_eq!(
        (r.connections, r.closed_clean, r.aborted, r.failed),
        (1000, 1000, 0, 0)
    );
    // Spread (generous bounds): over at least half the window, at most a quarter of the
    // closes in any tenth of it (evenly: 10% in each of the first 7.5 tenths).
    assert!(
        last - first >= window / 2,
        "closes from {first:?} to {last:?}"
    );
    assert!(
        tenths.iter().all(|n| *n <= 250),
        "a tenth of the window had too many closes: {tenths:?}"
    );
    // A drained server accepts nobody.
    let late = TestClient::connect(&server.url(), std::ptr::null());
    let e = late.rec.wait_close();
    assert!(matches!(e, Ev::Close { code: 1006, .. }), "{e:?}");
}

#[test]
fn drain_aborts_what_is_still_open_at_the_end_of_the_window() {
    let o = wsn_server_options_new();
    unsafe { wsn_server_options_set_close_timeout_ms(o, 30_000) };
    let server = TestServer::start(Recorder::server(), o, None);
    unsafe { wsn_server_options_free(o) };
    let good = seq_clients(&server.url(), 3);
    // Never reads, never answers the Close.
    let _silent = stalled_client(server.port);
    server_conns(&server, 4);
    let mut r = wsn_drain_report {
        size: std::mem::size_of::<wsn_drain_report>() as u32,
        ..Default::default()
    };
    let t0 = Instant::now();
    let st = unsafe { wsn_server_drain(server.server, 1000, 1001, std::ptr::null(), &mut r) };
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    println!("drain with a silent client: {:?}, {r:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (r.connections, r.closed_clean, r.aborted, r.failed),
        (4, 3, 1, 0)
    );
    for c in &good {
        assert_eq!(c.seq.close_code.load(Ordering::Acquire), 1001);
    }
    // Argument checks.
    unsafe {
        assert_eq!(
            wsn_server_drain(
                server.server,
                10,
                1005,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        let mut unset = wsn_drain_report::default();
        assert_eq!(
            wsn_server_drain(server.server, 10, 1001, std::ptr::null(), &mut unset),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
    }
}

#[test]
fn stats_count_bytes_messages_round_trips_refusals_and_closes() {
    let o = wsn_server_options_new();
    unsafe { wsn_server_options_add_allowed_origin(o, c"https://good.example".as_ptr()) };
    let rec = Recorder::server();
    rec.set_hook(echo);
    let server = TestServer::start(rec, o, None);
    unsafe { wsn_server_options_free(o) };
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    for m in ["one", "two", "three"] {
        assert_eq!(client.send_text(m), wsn_status::WSN_OK);
    }
    client
        .rec
        .wait(WAIT, "3 echoes", |e| (msg_count(e) == 3).then_some(()));
    let sconn = server_conns(&server, 1)[0] as *mut wsn_conn;
    let end = Instant::now() + WAIT;
    while conn_stats(sconn).messages_sent < 3 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = conn_stats(sconn);
    assert_eq!(s.size as usize, std::mem::size_of::<wsn_conn_stats>());
    assert_eq!(s.version, WSN_STATS_VERSION);
    assert_eq!((s.messages_received, s.messages_sent), (3, 3));
    assert!(s.bytes_received >= 3 * 6 + 11, "{s:?}"); // masked frames: 6-byte headers
    assert_eq!(s.bytes_sent, 3 * 2 + 11, "{s:?}"); // unmasked: 2-byte headers
    let c = conn_stats(client.conn);
    assert_eq!((c.messages_sent, c.messages_received), (3, 3));
    assert_eq!(c.bytes_received, s.bytes_sent);
    // A ping from either side measures the round trip.
    for conn in [sconn, client.conn] {
        let before = conn_stats(conn).rtt_count;
        assert_eq!(unsafe { wsn_conn_ping(conn) }, wsn_status::WSN_OK);
        let end = Instant::now() + WAIT;
        while conn_stats(conn).rtt_count == before {
            assert!(Instant::now() < end, "no round trip measured");
            std::thread::sleep(Duration::from_millis(2));
        }
        let s = conn_stats(conn);
        println!("ping round trip: {} us", s.last_rtt_us);
        assert!(s.last_rtt_us > 0 && s.last_rtt_us < 10_000_000);
    }
    // An older, shorter struct is filled only as far as it reaches.
    let mut short = [0u64; 3];
    short[0] = 16; // size 16, version 0
    assert_eq!(
        unsafe { wsn_conn_get_stats(sconn, short.as_mut_ptr() as *mut wsn_conn_stats) },
        wsn_status::WSN_OK
    );
    assert_eq!(short[0] & 0xffff_ffff, 16);
    assert_eq!(short[2], 0, "nothing past the caller's size");
    // Server counters: a refusal (403), a close by code.
    let bad = {
        let o = wsn_client_options_new();
        unsafe {
            wsn_client_options_add_header(o, c"Origin".as_ptr(), c"https://evil.example".as_ptr())
        };
        let c = TestClient::connect(&server.url(), o);
        unsafe { wsn_client_options_free(o) };
        c
    };
    bad.rec.wait_close();
    // A handshake in progress: a client that connected and sent nothing yet.
    let silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let end = Instant::now() + WAIT;
    while server_stats(server.server).handshakes_in_progress != 1 {
        assert!(Instant::now() < end, "the handshake in progress is counted");
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(silent);
    while server_stats(server.server).handshakes_in_progress != 0 {
        assert!(
            Instant::now() < end,
            "the ended handshake is no longer counted"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = server_stats(server.server);
    assert_eq!(
        (st.open_connections, st.accepted_total, st.refused_total),
        (1, 1, 1)
    );
    let (mut codes, mut counts) = ([0u16; 4], [0u64; 4]);
    let n = unsafe {
        wsn_server_get_refusals(server.server, codes.as_mut_ptr(), counts.as_mut_ptr(), 4)
    };
    assert_eq!((n, codes[0], counts[0]), (1, 403, 1));
    assert_eq!(client.close(4000, "bye"), wsn_status::WSN_OK);
    client.rec.wait_close();
    let end = Instant::now() + WAIT;
    while server_stats(server.server).closed_total < 1 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(2));
    }
    let n =
        unsafe { wsn_server_get_closes(server.server, codes.as_mut_ptr(), counts.as_mut_ptr(), 4) };
    assert_eq!((n, codes[0], counts[0]), (1, 4000, 1));
    assert_eq!(server_stats(server.server).open_connections, 0);
}
