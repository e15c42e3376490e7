//! Poll mode through the C ABI: one thread drives a server and its clients from one queue.

mod common;

use common::*;
use std::collections::HashMap;
use std::ffi::CStr;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

struct Queue(*mut wsn_queue);
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}
impl Drop for Queue {
    fn drop(&mut self) {
        unsafe { wsn_queue_free(self.0) };
    }
}

fn new_queue() -> Queue {
    let mut q = std::ptr::null_mut();
    assert_eq!(unsafe { wsn_queue_new(&mut q) }, wsn_status::WSN_OK);
    Queue(q)
}

/// An owned copy of a queued event: (conn, user_data, event).
fn poll(q: &Queue, timeout_ms: i32) -> Vec<(usize, usize, Ev)> {
    let mut buf: Vec<wsn_queued_event> = Vec::with_capacity(64);
    let n = unsafe { wsn_queue_poll(q.0, buf.as_mut_ptr(), 64, timeout_ms) };
    unsafe { buf.set_len(n) };
    buf.iter()
        .map(|e| {
            let ev = &e.event;
            let owned = match ev.kind {
                wsn_event_kind::WSN_EVENT_OPEN => Ev::Open(e.conn as usize),
                wsn_event_kind::WSN_EVENT_MESSAGE => Ev::Msg {
                    conn: e.conn as usize,
                    text: ev.is_text,
                    data: if ev.len == 0 {
                        vec![]
                    } else {
                        unsafe { std::slice::from_raw_parts(ev.data, ev.len) }.to_vec()
                    },
                },
                wsn_event_kind::WSN_EVENT_CLOSE => Ev::Close {
                    conn: e.conn as usize,
                    code: ev.close_code,
                    reason: unsafe { CStr::from_ptr(ev.reason) }
                        .to_string_lossy()
                        .into_owned(),
                    clean: ev.was_clean,
                    error: (!ev.error.is_null()).then(|| {
                        unsafe { CStr::from_ptr(ev.error) }
                            .to_string_lossy()
                            .into_owned()
                    }),
                    status: ev.error_status,
                    http: ev.http_status,
                },
                wsn_event_kind::WSN_EVENT_DRAIN => unreachable!("drain events were not asked for"),
                k => unreachable!("{k:?} was not asked for"),
            };
            (e.conn as usize, e.user_data as usize, owned)
        })
        .collect()
}

const SERVER_TAG: usize = 1;
const CLIENT_TAG: usize = 2;

fn listen(q: &Queue) -> (*mut wsn_server, u16) {
    let mut server = std::ptr::null_mut();
    let st = unsafe {
        wsn_server_listen_queued(
            cstr("127.0.0.1").as_ptr(),
            0,
            std::ptr::null(),
            None,
            q.0,
            SERVER_TAG as *mut _,
            &mut server,
        )
    };
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    (server, unsafe { wsn_server_get_port(server) })
}

fn connect(q: &Queue, port: u16) -> *mut wsn_conn {
    let mut conn = std::ptr::null_mut();
    let url = cstr(&format!("ws://127.0.0.1:{port}/"));
    assert_eq!(
        unsafe {
            wsn_connect_queued(
                url.as_ptr(),
                std::ptr::null(),
                q.0,
                CLIENT_TAG as *mut _,
                &mut conn,
            )
        },
        wsn_status::WSN_OK
    );
    conn
}

/// One thread, one queue: a server echoing and a client; both sides close cleanly.
#[test]
fn one_thread_drives_server_and_client_from_one_queue() {
    let q = new_queue();
    let (server, port) = listen(&q);
    let client = connect(&q, port);
    let end = Instant::now() + WAIT;
    let mut echoes = Vec::new();
    let mut closes = HashMap::new();
    while closes.len() < 2 && Instant::now() < end {
        for (conn, tag, ev) in poll(&q, 100) {
            match (tag, ev) {
                (CLIENT_TAG, Ev::Open(_)) => {
                    for i in 0..10 {
                        let m = format!("m{i}");
                        unsafe { wsn_conn_send_text(client, m.as_ptr() as *const _, m.len()) };
                    }
                }
                (CLIENT_TAG, Ev::Msg { data, .. }) => {
                    echoes.push(String::from_utf8(data).unwrap());
                    if echoes.len() == 10 {
                        unsafe { wsn_conn_close(client, 4000, cstr("done").as_ptr()) };
                    }
                }
                (SERVER_TAG, Ev::Msg { text, data, .. }) => {
                    assert!(text);
                    unsafe {
                        wsn_conn_send_text(
                            conn as *mut wsn_conn,
                            data.as_ptr() as *const _,
                            data.len(),
                        )
                    };
                }
                (
                    tag,
                    Ev::Close {
                        code,
                        reason,
                        clean,
                        ..
                    },
                ) => {
                    closes.insert(tag, (code, reason, clean));
                    if tag == SERVER_TAG {
                        unsafe { wsn_conn_free(conn as *mut wsn_conn) };
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(echoes, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(
        closes.get(&CLIENT_TAG),
        Some(&(4000, "done".to_string(), true))
    );
    assert_eq!(
        closes.get(&SERVER_TAG),
        Some(&(4000, "done".to_string(), true))
    );
    unsafe {
        wsn_conn_free(client);
        wsn_server_free(server);
    }
}

#[test]
fn the_descriptor_is_readable_while_events_wait() {
    let q = new_queue();
    let fd = unsafe { wsn_queue_get_fd(q.0) };
    assert!(fd >= 0);
    let readable = |ms: i32| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    };
    assert!(!readable(0), "nothing waits yet");
    let (server, port) = listen(&q);
    let client = connect(&q, port);
    assert!(readable(10_000), "the open events make it readable");
    let end = Instant::now() + WAIT;
    let mut opens = 0;
    while opens < 2 && Instant::now() < end {
        opens += poll(&q, 100)
            .iter()
            .filter(|e| matches!(e.2, Ev::Open(_)))
            .count();
    }
    assert_eq!(opens, 2);
    assert!(!readable(0), "drained: not readable");
    unsafe {
        wsn_conn_free(client);
        wsn_server_free(server);
    }
}

#[test]
fn wake_ends_a_waiting_poll() {
    let q = std::sync::Arc::new(new_queue());
    let q2 = q.clone();
    let start = Instant::now();
    let waiter = std::thread::spawn(move || poll(&q2, -1).len());
    std::thread::sleep(Duration::from_millis(100));
    unsafe { wsn_queue_wake(q.0) };
    assert_eq!(waiter.join().unwrap(), 0);
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// The seed scenario in poll mode: the client's Close is answered after every reply the
/// server's loop sent in answer to the messages before it.
#[test]
fn two_way_stream_then_close_in_poll_mode() {
    const CHUNK: usize = 128 << 10;
    const STEP: usize = 4 << 20;
    let q = new_queue();
    let (server, port) = listen(&q);
    let client = connect(&q, port);
    let end = Instant::now() + Duration::from_secs(60);
    let (mut received, mut replies, mut got, mut closes) = (0usize, 0usize, 0usize, 0);
    let (mut open, mut sent) = (false, 0);
    let buf = vec![7u8; CHUNK];
    let reply = b"Server got 4 MiB";
    while closes < 2 && Instant::now() < end {
        // A full send queue (64 MiB) refuses: this loop polls, so it does not wait for the
        // drain; what did not fit is sent on a later turn, then the Close.
        if open && sent < 1024 {
            while sent < 1024
                && unsafe { wsn_conn_send_binary(client, buf.as_ptr(), buf.len()) }
                    == wsn_status::WSN_OK
            {
                sent += 1;
            }
            if sent == 1024 {
                unsafe { wsn_conn_close(client, 1000, std::ptr::null()) };
            }
        }
        for (conn, tag, ev) in poll(&q, 5) {
            match (tag, ev) {
                (CLIENT_TAG, Ev::Open(_)) => open = true,
                (SERVER_TAG, Ev::Msg { data, .. }) => {
                    let before = received;
                    received += data.len();
                    if received / STEP > before / STEP
                        && unsafe {
                            wsn_conn_send_text(
                                conn as *mut wsn_conn,
                                reply.as_ptr() as *const _,
                                reply.len(),
                            )
                        } == wsn_status::WSN_OK
                    {
                        replies += 1;
                    }
                }
                (CLIENT_TAG, Ev::Msg { .. }) => got += 1,
                (tag, Ev::Close { code, clean, .. }) => {
                    assert_eq!((code, clean), (1000, true));
                    closes += 1;
                    if tag == SERVER_TAG {
                        unsafe { wsn_conn_free(conn as *mut wsn_conn) };
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(closes, 2, "both sides closed");
    assert_eq!(received, 1024 * CHUNK);
    assert_eq!(
        (replies, got),
        (32, 32),
        "every reply arrived before the close"
    );
    unsafe {
        wsn_conn_free(client);
        wsn_server_free(server);
    }
}

#[test]
fn a_freed_connection_returns_no_more_events() {
    let q = new_queue();
    let (server, port) = listen(&q);
    let client = connect(&q, port);
    let end = Instant::now() + WAIT;
    let mut sconn = 0;
    while sconn == 0 && Instant::now() < end {
        for (conn, tag, ev) in poll(&q, 100) {
            if let (SERVER_TAG, Ev::Open(_)) = (tag, ev) {
                sconn = conn;
            }
        }
    }
    assert_ne!(sconn, 0);
    for _ in 0..50 {
        unsafe { wsn_conn_send_text(sconn as *mut wsn_conn, b"x".as_ptr() as *const _, 1) };
    }
    std::thread::sleep(Duration::from_millis(200)); // the messages are in the queue now
    unsafe { wsn_conn_free(client) };
    let mut after = 0;
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        after += poll(&q, 50).iter().filter(|e| e.1 == CLIENT_TAG).count();
    }
    assert_eq!(after, 0, "events of a freed connection were returned");
    unsafe {
        wsn_conn_free(sconn as *mut wsn_conn);
        wsn_server_free(server);
    }
}

/// With manual acknowledgement, an acknowledgement frees the budget at once: reading resumes
/// without waiting for the next poll (which nothing would trigger otherwise).
#[test]
fn with_manual_ack_an_acknowledgement_resumes_reading_without_a_poll() {
    let q = new_queue();
    let (server, port) = listen(&q);
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_manual_ack(o, true);
        wsn_client_options_set_max_receive_messages(o, 4);
    }
    let mut client = std::ptr::null_mut();
    let url = cstr(&format!("ws://127.0.0.1:{port}/"));
    assert_eq!(
        unsafe { wsn_connect_queued(url.as_ptr(), o, q.0, CLIENT_TAG as *mut _, &mut client) },
        wsn_status::WSN_OK
    );
    unsafe { wsn_client_options_free(o) };
    let end = Instant::now() + Duration::from_secs(20);
    let mut server_conn = 0usize;
    let mut got = 0usize;
    let mut acked = 0usize;
    while got < 40 && Instant::now() < end {
        // As an event loop does: poll only when the queue's descriptor says so.
        let mut pfd = libc::pollfd {
            fd: unsafe { wsn_queue_get_fd(q.0) },
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut pfd, 1, 3000) } != 1 {
            break; // nothing woke the loop: stalled
        }
        for (conn, tag, ev) in poll(&q, 0) {
            match (tag, ev) {
                (SERVER_TAG, Ev::Open(_)) => {
                    server_conn = conn;
                    for i in 0..40u32 {
                        unsafe {
                            wsn_conn_send_binary(conn as *mut wsn_conn, i.to_le_bytes().as_ptr(), 4)
                        };
                    }
                }
                (CLIENT_TAG, Ev::Msg { .. }) => got += 1,
                _ => {}
            }
        }
        // Acknowledge what arrived, between polls.
        if got > acked {
            unsafe { wsn_conn_ack(client, got - acked) };
            acked = got;
        }
    }
    assert_eq!(got, 40, "reading stalled with every message acknowledged");
    let _ = server_conn;
    unsafe {
        wsn_conn_free(client);
        wsn_server_free(server);
    }
}
