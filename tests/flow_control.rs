//! Flow control in the core, through the C ABI: send ids and drain events, a bounded send
//! queue with its two policies, and a receive budget in messages and bytes that counts until
//! the application acknowledges, so a peer cannot fill a process that does not read.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

/// A raw server on a thread of its own: it accepts one client, completes the upgrade, then
/// hands the socket to `then`. Returns its port.
fn upgraded_server(then: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let head = read_head(&mut s);
            let _ = s.write_all(upgrade_response(&head).as_bytes());
            then(s);
        }
    });
    port
}

/// A server that completes the upgrade and then never reads again (for `hold` at most).
fn non_reading_server(hold: Duration) -> u16 {
    upgraded_server(move |_s| std::thread::sleep(hold))
}

#[test]
fn sends_return_growing_ids_and_drain_events_report_what_was_written() {
    let server = echo_server();
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_drain_events(o, true, 0) };
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    let mut ids = Vec::new();
    for i in 0..50u32 {
        let mut id = 0u64;
        let payload = i.to_le_bytes();
        let st = unsafe { wsn_conn_send(client.conn, payload.as_ptr(), 4, 0, &mut id) };
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        ids.push(id);
    }
    assert_eq!(
        ids,
        (1..=50).collect::<Vec<u64>>(),
        "ids start at 1 and grow by one in queue order"
    );
    let end = Instant::now() + WAIT;
    while unsafe { wsn_conn_get_sent_id(client.conn) } < 50 {
        assert!(Instant::now() < end, "sent id stuck at {}", unsafe {
            wsn_conn_get_sent_id(client.conn)
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    // Text with the flag, checked as UTF-8; unknown flags are refused.
    let mut id = 0u64;
    assert_eq!(
        unsafe { wsn_conn_send(client.conn, "é".as_ptr(), 2, WSN_SEND_TEXT, &mut id) },
        wsn_status::WSN_OK
    );
    assert_eq!(id, 51);
    assert_eq!(
        unsafe { wsn_conn_send(client.conn, [0xffu8].as_ptr(), 1, WSN_SEND_TEXT, &mut id) },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { wsn_conn_send(client.conn, [1u8].as_ptr(), 1, 0x80, &mut id) },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe {
            wsn_conn_send(
                client.conn,
                [1u8].as_ptr(),
                1,
                WSN_SEND_NO_COMPRESS,
                std::ptr::null_mut(),
            )
        },
        wsn_status::WSN_OK
    );
    // Drain events come, the last one naming the last id.
    client.rec.wait(WAIT, "a drain event for message 52", |_| {
        let last = drained_ids(&client);
        (last.last() == Some(&52)).then_some(())
    });
    let ids = drained_ids(&client);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "drain ids grow: {ids:?}"
    );
}

/// The sent ids of the DRAIN events the client's recorder saw (the recorder keeps only OPEN,
/// MESSAGE and CLOSE; DRAIN events are counted through wsn_conn_get_sent_id instead).
fn drained_ids(client: &TestClient) -> Vec<u64> {
    client.rec.drains.lock().unwrap().clone()
}

#[test]
fn a_full_send_queue_refuses_with_would_block_and_one_message_fits_an_empty_queue() {
    let port = non_reading_server(Duration::from_secs(20));
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_max_send_queue(o, 1 << 20) };
    let client = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    // A message larger than the limit still goes into the empty queue.
    assert_eq!(
        client.send_binary(&vec![0u8; 2 << 20]),
        wsn_status::WSN_OK,
        "{}",
        last_error()
    );
    let chunk = vec![1u8; 64 << 10];
    let mut refused = None;
    for i in 0..4000 {
        let st = client.send_binary(&chunk);
        if st != wsn_status::WSN_OK {
            refused = Some((i, st, last_error()));
            break;
        }
    }
    let (i, st, msg) = refused.expect("no send was refused although the peer never reads");
    assert_eq!(
        st,
        wsn_status::WSN_ERR_WOULD_BLOCK,
        "after {i} sends: {msg}"
    );
    assert!(msg.contains("limit of 1048576 bytes"), "{msg}");
    let queued = unsafe { wsn_conn_get_buffered_amount(client.conn) };
    assert!(
        queued <= (3 << 20) + (64 << 10),
        "the queue held {queued} bytes"
    );
    // Nothing happened to the connection.
    assert_eq!(
        unsafe { wsn_conn_get_state(client.conn) },
        wsn_conn_state::WSN_STATE_OPEN
    );
    unsafe { wsn_conn_abort(client.conn) };
}

#[test]
fn a_full_send_queue_under_the_close_policy_closes_a_slow_consumer_with_1008() {
    let rec = Recorder::server();
    let o = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_max_send_queue(o, 256 << 10);
        wsn_server_options_set_send_queue_policy(o, WSN_SEND_QUEUE_CLOSE);
        wsn_server_options_set_close_timeout_ms(o, 500);
        assert_eq!(
            wsn_server_options_set_send_queue_policy(o, 7),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
    }
    let server = TestServer::start(rec.clone(), o, None);
    unsafe { wsn_server_options_free(o) };
    // A raw client that upgrades and never reads.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let conn = rec.wait_open();
    let chunk = vec![2u8; 64 << 10];
    let mut last = wsn_status::WSN_OK;
    for _ in 0..4000 {
        last = unsafe { wsn_conn_send_binary(conn as *mut wsn_conn, chunk.as_ptr(), chunk.len()) };
        if last != wsn_status::WSN_OK {
            break;
        }
    }
    assert_eq!(last, wsn_status::WSN_ERR_WOULD_BLOCK);
    match rec.wait_close_of(conn, Duration::from_secs(10)) {
        Ev::Close {
            code: 1008,
            status: wsn_status::WSN_ERR_WOULD_BLOCK,
            error: Some(e),
            ..
        } => {
            assert!(e.contains("reads too slowly"), "{e}")
        }
        other => panic!("expected 1008 for the slow consumer, got {other:?}"),
    }
    drop(s);
}

#[test]
fn with_manual_ack_messages_count_until_acknowledged_in_messages_and_bytes() {
    let rec = Recorder::server();
    let server = TestServer::start(rec.clone(), std::ptr::null(), None);
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_manual_ack(o, true);
        wsn_client_options_set_max_receive_messages(o, 10);
        assert_eq!(
            wsn_client_options_set_max_receive_messages(o, 0),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
    }
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    let sconn = rec.wait_open();
    for i in 0..100u32 {
        let b = i.to_le_bytes();
        unsafe { wsn_conn_send_binary(sconn as *mut wsn_conn, b.as_ptr(), 4) };
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = client.rec.count_messages();
    assert!(
        (10..=12).contains(&got),
        "with 10 unacknowledged messages allowed, {got} were read"
    );
    // Acknowledging lets reading go on; everything arrives in order.
    let end = Instant::now() + WAIT;
    while client.rec.count_messages() < 100 {
        assert!(
            Instant::now() < end,
            "stuck at {} messages",
            client.rec.count_messages()
        );
        unsafe { wsn_conn_ack(client.conn, 5) };
        std::thread::sleep(Duration::from_millis(5));
    }
    let msgs = client.rec.messages();
    assert!(
        msgs.iter()
            .enumerate()
            .all(|(i, (_, d))| d == &(i as u32).to_le_bytes()),
        "out of order"
    );
    // Without acknowledgements a close still completes cleanly (closing reads on).
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

fn rss_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// A peer (its own process, so its buffers are not ours) that upgrades and then sends
/// `count` binary messages of `size` bytes as fast as TCP lets it, for at most `secs`.
fn flooding_peer(count: usize, size: usize, secs: u32) -> (u16, std::process::Child) {
    let script = format!(
        r#"
import socket, base64, hashlib, struct, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
l.settimeout({secs}); c, _ = l.accept(); c.settimeout({secs})
head = b""
while b"\r\n\r\n" not in head:
    head += c.recv(4096)
key = [h.split(b":", 1)[1].strip() for h in head.split(b"\r\n") if h.lower().startswith(b"sec-websocket-key:")][0]
acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
frame = struct.pack("!BBQ", 0x82, 127, {size}) + bytes({size})
end = time.time() + {secs}
try:
    for i in range({count}):
        if time.time() > end: break
        c.sendall(frame)
except Exception:
    pass
"#
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let mut out = child.stdout.take().unwrap();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0] as char);
    }
    (line.trim().parse().expect("port"), child)
}

#[test]
fn a_peer_flooding_60_mib_messages_into_an_application_that_does_not_read_stays_under_200_mib() {
    let (port, mut peer) = flooding_peer(300, 60 << 20, 20);
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_manual_ack(o, true) };
    let before = rss_kib("VmRSS:");
    let client = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    // The application never acknowledges: one message is read, then reading pauses.
    std::thread::sleep(Duration::from_secs(6));
    let peak = rss_kib("VmHWM:");
    let got = client.rec.count_messages();
    eprintln!("flood: {got} messages of 60 MiB read; RSS before {before} KiB, peak {peak} KiB");
    assert!(got >= 1, "no message arrived");
    assert!(
        got <= 2,
        "{got} messages were read although none was acknowledged"
    );
    assert!(
        peak < 200 << 10,
        "peak resident memory {peak} KiB (limit 200 MiB)"
    );
    unsafe { wsn_conn_abort(client.conn) };
    let _ = peer.kill();
    let _ = peer.wait();
}

#[test]
fn drain_events_come_when_due_not_after_every_write_and_can_be_turned_on_per_connection() {
    let server = echo_server();
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_drain_events(o, true, 1 << 20) };
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    // Small messages that never fill the queue past the mark: no drain event is due.
    for i in 0..100u32 {
        client.send_binary(&i.to_le_bytes());
        std::thread::sleep(Duration::from_millis(1));
    }
    client
        .rec
        .wait(WAIT, "100 echoes", |e| (msg_count(e) == 100).then_some(()));
    assert!(
        client.rec.drains.lock().unwrap().is_empty(),
        "drain events without a full queue: {:?}",
        client.rec.drains.lock().unwrap()
    );
    // Turned on for this connection, with nothing in flight: one comes at once.
    assert_eq!(
        unsafe { wsn_conn_set_drain_events(client.conn, true, 0) },
        wsn_status::WSN_OK
    );
    client.rec.wait(WAIT, "the drain event", |_| {
        (client.rec.drains.lock().unwrap().len() == 1).then_some(())
    });
    assert_eq!(client.rec.drains.lock().unwrap()[0], 100);
    // Off: none, whatever is sent.
    unsafe { wsn_conn_set_drain_events(client.conn, false, 0) };
    client.send_binary(&vec![0u8; 4 << 20]);
    client.rec.wait(WAIT, "the big echo", |e| {
        (msg_count(e) == 101).then_some(())
    });
    assert_eq!(client.rec.drains.lock().unwrap().len(), 1);
    assert_eq!(
        unsafe { wsn_conn_set_drain_events(std::ptr::null_mut(), true, 0) },
        wsn_status::WSN_ERR_INVALID_ARGUMENT
    );
}

/// A server that completes the upgrade, then reads slowly (a little at a time, with pauses) for
/// `hold` at most: the client's queue fills and keeps moving.
fn slow_reading_server(hold: Duration) -> u16 {
    upgraded_server(move |mut s| {
        let end = Instant::now() + hold;
        let mut buf = vec![0u8; 16 << 10];
        while Instant::now() < end {
            if s.read(&mut buf).map_or(true, |n| n == 0) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

#[test]
fn the_buffered_amount_never_counts_a_message_twice_while_the_queue_moves() {
    // The count is queued plus encoded-and-unwritten bytes. Read as two numbers, a reader
    // preempted between them while the connection task moved messages from one to the other
    // saw those messages twice (seen as a broadcast reader closed with 1008 under the CLOSE
    // policy though well under its limit). Readers on more threads than cores, so that they
    // are preempted often, check every value against what can truly be buffered.
    let port = slow_reading_server(Duration::from_secs(30));
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_max_send_queue(o, 64 << 20) };
    let client = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    const SIZE: usize = 1000;
    // Frame header of a masked client frame of SIZE bytes: 2 + 2 (length) + 4 (mask).
    const HEADER: usize = 8;
    let enqueued = Arc::new(AtomicUsize::new(0)); // bytes counted before each send
    let stop = Arc::new(AtomicBool::new(false));
    let conn = send_ptr(client.conn);
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (enqueued, stop) = (enqueued.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = conn as *mut wsn_conn;
                let (mut reads, mut worst) = (0u64, None);
                while !stop.load(Ordering::Acquire) {
                    let mut st = wsn_conn_stats {
                        size: std::mem::size_of::<wsn_conn_stats>() as u32,
                        ..Default::default()
                    };
                    unsafe { wsn_conn_get_stats(conn, &mut st) };
                    let b = unsafe { wsn_conn_get_buffered_amount(conn) };
                    let e = enqueued.load(Ordering::Acquire);
                    // At most what was queued (with headers), less what the socket took.
                    let bound = (e / SIZE) * (SIZE + HEADER) - st.bytes_sent as usize;
                    if b > bound && worst.is_none() {
                        worst = Some((b, bound));
                    }
                    reads += 1;
                }
                (reads, worst)
            })
        })
        .collect();
    let msg = vec![7u8; SIZE];
    let end = Instant::now() + Duration::from_secs(3);
    let mut sent = 0u64;
    while Instant::now() < end {
        // Keep about 2 MiB queued: the connection task moves messages as the reader takes them.
        if unsafe { wsn_conn_get_buffered_amount(client.conn) } > (2 << 20) {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        enqueued.fetch_add(SIZE, Ordering::AcqRel);
        assert_eq!(
            client.send_binary(&msg),
            wsn_status::WSN_OK,
            "{}",
            last_error()
        );
        sent += 1;
    }
    stop.store(true, Ordering::Release);
    let mut total = 0;
    for r in readers {
        let (reads, worst) = r.join().unwrap();
        total += reads;
        if let Some((b, bound)) = worst {
            panic!("buffered_amount said {b} bytes where at most {bound} could be buffered");
        }
    }
    println!("{sent} messages sent; buffered_amount read {total} times, never over the bound");
    assert!(sent > 2000, "the queue moved ({sent} messages)");
    unsafe { wsn_conn_abort(client.conn) };
}

/// Bytes lent to wsn_conn_send_nocopy by a test: the buffer, a copy of what it must still
/// hold when it is given back, and the ledger that counts returns.
struct Loan {
    bytes: Vec<u8>,
    expected: Vec<u8>,
    ledger: Arc<Ledger>,
}

#[derive(Default)]
struct Ledger {
    released: AtomicUsize,
    /// Returns with another pointer or length than lent, or with changed bytes.
    wrong: AtomicUsize,
}

unsafe extern "C" fn give_back(user: *mut std::ffi::c_void, data: *const u8, len: usize) {
    let loan = Box::from_raw(user as *mut Loan);
    let same_place = len == loan.bytes.len() && (len == 0 || data == loan.bytes.as_ptr());
    if !same_place || loan.bytes != loan.expected {
        loan.ledger.wrong.fetch_add(1, Ordering::SeqCst);
    }
    loan.ledger.released.fetch_add(1, Ordering::SeqCst);
}

/// Lends `bytes` to `conn`; the status and the message id.
fn lend(
    conn: *mut wsn_conn,
    bytes: Vec<u8>,
    flags: u32,
    ledger: &Arc<Ledger>,
) -> (wsn_status, u64) {
    let loan = Box::new(Loan {
        expected: bytes.clone(),
        bytes,
        ledger: ledger.clone(),
    });
    let (ptr, len) = (loan.bytes.as_ptr(), loan.bytes.len());
    let user = Box::into_raw(loan) as *mut std::ffi::c_void;
    let mut id = 0u64;
    let st = unsafe { wsn_conn_send_nocopy(conn, ptr, len, flags, Some(give_back), user, &mut id) };
    (st, id)
}

fn wait_released(ledger: &Ledger, want: usize, what: &str) {
    let end = Instant::now() + WAIT;
    while ledger.released.load(Ordering::SeqCst) < want {
        assert!(
            Instant::now() < end,
            "{what}: {} of {want} lent messages released",
            ledger.released.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Payloads of every frame-length class (7-bit, 16-bit and 64-bit lengths, the read buffer's
/// size, several MiB), each with its own content.
fn lent_payloads() -> Vec<Vec<u8>> {
    [0usize, 1, 125, 126, 4096, 65535, 65536, 1 << 20, 3 << 20]
        .iter()
        .enumerate()
        .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
        .collect()
}

/// A client and a server that both lend their messages (the server lends a copy of each
/// message back from its callback), with and without permessage-deflate.
fn lent_round_trip(compression: bool) {
    let server_ledger = Arc::new(Ledger::default());
    let rec = Recorder::server();
    let sl = server_ledger.clone();
    rec.set_hook(move |conn, ev| {
        if let Ev::Msg { text, data, .. } = ev {
            let flags = if *text { WSN_SEND_TEXT } else { 0 };
            let (st, _) = lend(conn, data.clone(), flags, &sl);
            assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        }
    });
    let so = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_compression(so, compression);
        wsn_server_options_set_max_message_size(so, 16 << 20);
    }
    let server = TestServer::start(rec, so, None);
    unsafe { wsn_server_options_free(so) };
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_compression(o, compression);
        wsn_client_options_set_max_message_size(o, 16 << 20);
    }
    let client = TestClient::connect(&server.url(), o);
    unsafe { wsn_client_options_free(o) };
    client.rec.wait_open();
    let negotiated = unsafe { std::ffi::CStr::from_ptr(wsn_conn_get_extensions(client.conn)) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        negotiated.contains("permessage-deflate"),
        compression,
        "{negotiated:?}"
    );
    let client_ledger = Arc::new(Ledger::default());
    let mut sent = Vec::new();
    for (i, p) in lent_payloads().into_iter().enumerate() {
        let (st, id) = lend(client.conn, p.clone(), 0, &client_ledger);
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        assert_eq!(id, i as u64 + 1);
        sent.push((false, p));
    }
    let text = "lent text, é, and more text ".repeat(100).into_bytes();
    let (st, _) = lend(client.conn, text.clone(), WSN_SEND_TEXT, &client_ledger);
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    sent.push((true, text));
    client.rec.wait(WAIT, "every echo", |e| {
        (msg_count(e) == sent.len()).then_some(())
    });
    assert!(
        client.rec.messages() == sent,
        "the echoes differ from what was lent"
    );
    wait_released(&client_ledger, sent.len(), "client");
    wait_released(&server_ledger, sent.len(), "server");
    assert_eq!(
        client_ledger.wrong.load(Ordering::SeqCst),
        0,
        "a client loan came back changed"
    );
    assert_eq!(
        server_ledger.wrong.load(Ordering::SeqCst),
        0,
        "a server loan came back changed"
    );
    assert_eq!(
        client_ledger.released.load(Ordering::SeqCst),
        sent.len(),
        "released twice"
    );
}

#[test]
fn lent_messages_are_sent_unchanged_and_each_loan_is_released_once_by_client_and_server() {
    lent_round_trip(false);
}

#[test]
fn lent_messages_are_released_once_when_they_are_compressed() {
    lent_round_trip(true);
}

#[test]
fn a_lent_message_that_is_not_queued_is_released_before_the_call_returns() {
    let ledger = Arc::new(Ledger::default());
    let server = echo_server();
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    let refused =
        |conn: *mut wsn_conn, bytes: Vec<u8>, flags: u32, want: wsn_status, what: &str| {
            let before = ledger.released.load(Ordering::SeqCst);
            let (st, _) = lend(conn, bytes, flags, &ledger);
            assert_eq!(st, want, "{what}: {}", last_error());
            assert_eq!(
                ledger.released.load(Ordering::SeqCst),
                before + 1,
                "{what}: released once, before the call returned"
            );
        };
    refused(
        std::ptr::null_mut(),
        vec![1, 2, 3],
        0,
        wsn_status::WSN_ERR_INVALID_ARGUMENT,
        "NULL conn",
    );
    refused(
        client.conn,
        vec![1],
        0x80,
        wsn_status::WSN_ERR_INVALID_ARGUMENT,
        "unknown flags",
    );
    refused(
        client.conn,
        vec![b'a', 0xff],
        WSN_SEND_TEXT,
        wsn_status::WSN_ERR_INVALID_ARGUMENT,
        "invalid UTF-8",
    );
    assert!(last_error().contains("UTF-8"), "{}", last_error());
    // NULL data with a length: refused, and the release still comes (with what was passed).
    let before = ledger.released.load(Ordering::SeqCst);
    let st = unsafe {
        wsn_conn_send_nocopy(
            client.conn,
            std::ptr::null(),
            5,
            0,
            Some(count_release),
            Arc::as_ptr(&ledger) as *mut _,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    assert_eq!(ledger.released.load(Ordering::SeqCst), before + 1);
    // No release function: refused, nothing to call.
    let st = unsafe {
        wsn_conn_send_nocopy(
            client.conn,
            [1u8].as_ptr(),
            1,
            0,
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("release is NULL"), "{}", last_error());
    // After the close: INVALID_STATE, released at once.
    assert_eq!(client.close(1000, "bye"), wsn_status::WSN_OK);
    client.rec.wait_close();
    refused(
        client.conn,
        vec![7; 100],
        0,
        wsn_status::WSN_ERR_INVALID_STATE,
        "after close",
    );
    assert_eq!(ledger.wrong.load(Ordering::SeqCst), 0);
}

/// A release that only counts (for a loan without a `Loan` box).
unsafe extern "C" fn count_release(user: *mut std::ffi::c_void, _data: *const u8, _len: usize) {
    (*(user as *const Ledger))
        .released
        .fetch_add(1, Ordering::SeqCst);
}

#[test]
fn lent_messages_still_queued_when_the_connection_ends_are_released_once() {
    let port = non_reading_server(Duration::from_secs(20));
    let client = TestClient::connect(&format!("ws://127.0.0.1:{port}/"), std::ptr::null());
    client.rec.wait_open();
    let ledger = Arc::new(Ledger::default());
    // The peer never reads: most of these stay in the kernel's buffers and the send queue.
    let n = 24;
    for i in 0..n {
        let (st, _) = lend(client.conn, vec![i as u8; 1 << 20], 0, &ledger);
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        ledger.released.load(Ordering::SeqCst) < n,
        "every loan came back although the peer reads nothing"
    );
    assert_eq!(unsafe { wsn_conn_abort(client.conn) }, wsn_status::WSN_OK);
    client.rec.wait_close();
    wait_released(&ledger, n, "after the abort");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        ledger.released.load(Ordering::SeqCst),
        n,
        "a loan was released twice"
    );
    assert_eq!(ledger.wrong.load(Ordering::SeqCst), 0);
}
