//! Inline callbacks (wsn_*_options_set_inline_callbacks), through the C ABI: events run on the
//! I/O thread that reads the connection, in order, one at a time; what the contract promises
//! of callbacks (frees that never wait, the release hook after the last one, exactly one CLOSE)
//! still holds; and events armed from an application thread never run on that thread.

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wsnative::ffi::*;

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

fn inline_server(rec: Arc<Recorder>) -> TestServer {
    let opts = wsn_server_options_new();
    assert_eq!(
        unsafe { wsn_server_options_set_inline_callbacks(opts, true) },
        wsn_status::WSN_OK
    );
    let s = TestServer::start(rec, opts, None);
    unsafe { wsn_server_options_free(opts) };
    s
}

fn inline_client(url: &str) -> TestClient {
    let opts = wsn_client_options_new();
    unsafe { wsn_client_options_set_inline_callbacks(opts, true) };
    let c = TestClient::connect(url, opts);
    unsafe { wsn_client_options_free(opts) };
    c
}

/// Records the thread each event of a recorder ran on.
fn record_threads(rec: &Recorder) -> Arc<Mutex<Vec<String>>> {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let t = threads.clone();
    rec.set_hook(move |conn, ev| {
        t.lock().unwrap().push(thread_name());
        echo(conn, ev);
    });
    threads
}

#[test]
fn with_inline_callbacks_events_run_on_the_io_thread_in_order() {
    let srec = Recorder::server();
    let server_threads = record_threads(&srec);
    let server = inline_server(srec);
    let client = inline_client(&server.url());
    let client_threads = Arc::new(Mutex::new(Vec::new()));
    let ct = client_threads.clone();
    client
        .rec
        .set_hook(move |_, _| ct.lock().unwrap().push(thread_name()));
    client.rec.wait_open();
    for i in 0..200 {
        assert_eq!(client.send_text(&format!("m{i}")), wsn_status::WSN_OK);
    }
    client
        .rec
        .wait(WAIT, "200 echoes", |e| (msg_count(e) == 200).then_some(()));
    let got: Vec<String> = client
        .rec
        .messages()
        .into_iter()
        .map(|(_, d)| String::from_utf8(d).unwrap())
        .collect();
    let want: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "echoes in the order sent");
    client.close(1000, "");
    assert!(matches!(
        client.rec.wait_close(),
        Ev::Close {
            code: 1000,
            clean: true,
            ..
        }
    ));
    for (side, threads) in [("client", &client_threads), ("server", &server_threads)] {
        let threads = threads.lock().unwrap();
        assert!(!threads.is_empty());
        let on_io = threads.iter().filter(|n| n.starts_with("wsn-io")).count();
        // The first event may find its mailbox busy and go to a callback thread; the rest run
        // where the connection is read.
        assert!(
            on_io + 2 >= threads.len(),
            "{side}: {on_io} of {} events ran on an I/O thread: {threads:?}",
            threads.len()
        );
    }
}

#[test]
fn without_inline_callbacks_events_never_run_on_an_io_thread() {
    let srec = Recorder::server();
    let server_threads = record_threads(&srec);
    let server = TestServer::start(srec, std::ptr::null(), None);
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    for i in 0..20 {
        client.send_text(&format!("m{i}"));
    }
    client
        .rec
        .wait(WAIT, "20 echoes", |e| (msg_count(e) == 20).then_some(()));
    let threads = server_threads.lock().unwrap();
    assert!(
        threads.iter().all(|n| n.starts_with("wsn-callback")),
        "{threads:?}"
    );
}

/// A connection freed from inside its own inline callback: the free returns at once, no
/// event follows, and the release hook runs exactly once, after that callback.
#[test]
fn a_free_from_inside_an_inline_callback_returns_and_the_release_hook_runs_once() {
    let server = echo_server();
    let client = std::mem::ManuallyDrop::new(inline_client(&server.url()));
    static RELEASED: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn released(_: *mut std::ffi::c_void) {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
    unsafe { wsn_conn_set_release_hook(client.conn, Some(released), std::ptr::null_mut()) };
    let after_free = Arc::new(AtomicUsize::new(0));
    let freed_at = Arc::new(AtomicUsize::new(0));
    let (a, f) = (after_free.clone(), freed_at.clone());
    client.rec.set_hook(move |conn, ev| {
        if f.load(Ordering::SeqCst) != 0 {
            a.fetch_add(1, Ordering::SeqCst); // an event after the free: must not happen
            return;
        }
        if let Ev::Msg { .. } = ev {
            unsafe { wsn_conn_free(conn) };
            f.store(1, Ordering::SeqCst);
            assert_eq!(
                RELEASED.load(Ordering::SeqCst),
                0,
                "hook ran inside the callback"
            );
        }
    });
    client.rec.wait_open();
    for _ in 0..50 {
        client.send_text("x");
    }
    let end = Instant::now() + WAIT;
    while RELEASED.load(Ordering::SeqCst) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(freed_at.load(Ordering::SeqCst), 1);
    assert_eq!(
        RELEASED.load(Ordering::SeqCst),
        1,
        "the release hook ran once"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        after_free.load(Ordering::SeqCst),
        0,
        "no event after the free"
    );
    assert_eq!(RELEASED.load(Ordering::SeqCst), 1);
}

/// A drain event armed by wsn_conn_set_drain_events on an application thread is delivered on a
/// callback thread: an inline connection never calls back into a thread inside a wsnative call.
#[test]
fn an_event_armed_from_an_application_thread_does_not_run_on_that_thread() {
    static DRAIN_THREAD: Mutex<Option<String>> = Mutex::new(None);
    unsafe extern "C" fn on_event(
        _: *mut std::ffi::c_void,
        _: *mut wsn_conn,
        ev: *const wsn_event,
    ) {
        if (*ev).kind == wsn_event_kind::WSN_EVENT_DRAIN {
            *DRAIN_THREAD.lock().unwrap() = Some(thread_name());
        }
    }
    let server = echo_server();
    let opts = wsn_client_options_new();
    unsafe { wsn_client_options_set_inline_callbacks(opts, true) };
    let mut conn = std::ptr::null_mut();
    let url = cstr(&server.url());
    let st = unsafe {
        wsn_connect(
            url.as_ptr(),
            opts,
            Some(on_event),
            std::ptr::null_mut(),
            &mut conn,
        )
    };
    assert_eq!(st, wsn_status::WSN_OK);
    unsafe { wsn_client_options_free(opts) };
    let end = Instant::now() + WAIT;
    while unsafe { wsn_conn_get_state(conn) } != wsn_conn_state::WSN_STATE_OPEN {
        assert!(Instant::now() < end, "open");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Nothing is queued: turning drain events on arms one that is due at once.
    unsafe { wsn_conn_set_drain_events(conn, true, 0) };
    while DRAIN_THREAD.lock().unwrap().is_none() {
        assert!(Instant::now() < end, "a DRAIN came");
        std::thread::sleep(Duration::from_millis(2));
    }
    let t = DRAIN_THREAD.lock().unwrap().clone().unwrap();
    assert!(t.starts_with("wsn-callback"), "the DRAIN ran on {t:?}");
    unsafe { wsn_conn_free(conn) };
}

/// A server that runs its callbacks inline still stops and frees from inside one without
/// waiting, and every connection still gets exactly one CLOSE.
#[test]
fn stopping_an_inline_server_from_its_own_callback_returns_and_every_close_comes_once() {
    let srec = Recorder::server();
    let server = Arc::new(Mutex::new(Some(inline_server(srec.clone()))));
    let s2 = server.clone();
    let stopped = Arc::new(AtomicUsize::new(0));
    let st = stopped.clone();
    srec.set_hook(move |_, ev| {
        if let Ev::Msg { data, .. } = ev {
            if data == b"stop" {
                let p = s2
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map(|s| s.server as usize)
                    .unwrap();
                unsafe { wsn_server_stop(p as *mut wsn_server, 2000) };
                st.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let url = server.lock().unwrap().as_ref().unwrap().url();
    let clients: Vec<TestClient> = (0..5)
        .map(|_| TestClient::connect(&url, std::ptr::null()))
        .collect();
    for c in &clients {
        c.rec.wait_open();
    }
    clients[0].send_text("stop");
    for c in &clients {
        match c.rec.wait_close() {
            Ev::Close { code, .. } => assert_eq!(code, 1001),
            _ => unreachable!(),
        }
    }
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        1,
        "the stop returned inside the callback"
    );
    let closes = srec.wait(WAIT, "5 server closes", |e| {
        let n = e.iter().filter(|e| matches!(e, Ev::Close { .. })).count();
        (n >= 5).then_some(n)
    });
    assert_eq!(closes, 5, "exactly one CLOSE per connection");
    drop(server.lock().unwrap().take());
}

#[test]
fn the_inline_setters_refuse_null() {
    unsafe {
        assert_eq!(
            wsn_client_options_set_inline_callbacks(std::ptr::null_mut(), true),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            wsn_server_options_set_inline_callbacks(std::ptr::null_mut(), true),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
    }
    assert!(last_error().contains("options is NULL"), "{}", last_error());
}

/// wsn_shutdown called from an inline callback (on an I/O thread, which the shutdown needs for
/// the closes it waits for) returns at once, and the shutdown still completes: every
/// connection gets its CLOSE.
#[test]
fn shutdown_from_an_inline_callback_returns_and_completes() {
    // One I/O thread: a shutdown that waited on it would stall the very closes it waits for
    // (they would then be aborted: 1006 instead of 1001). Each test runs in its own process
    // under nextest; elsewhere the runtime may already run, and the test still holds.
    let _ = wsn_runtime_set_io_threads(1);
    let srec = Recorder::server();
    let returned = Arc::new(AtomicUsize::new(0));
    let r = returned.clone();
    srec.set_hook(move |_, ev| {
        if let Ev::Msg { .. } = ev {
            wsn_shutdown(1000);
            r.fetch_add(1, Ordering::SeqCst);
        }
    });
    let server = std::mem::ManuallyDrop::new(inline_server(srec.clone()));
    let client = TestClient::connect(&server.url(), std::ptr::null());
    client.rec.wait_open();
    client.send_text("shut down, please");
    assert!(
        matches!(client.rec.wait_close(), Ev::Close { code: 1001, .. }),
        "the client saw the shutdown's 1001"
    );
    srec.wait(WAIT, "the server side's close", |e| {
        e.iter()
            .any(|e| matches!(e, Ev::Close { .. }))
            .then_some(())
    });
    assert_eq!(
        returned.load(Ordering::SeqCst),
        1,
        "wsn_shutdown returned inside the callback"
    );
}

/// A server callback that sends parts of the message it was given, straight from `ev->data`
/// (the send keeps a slice of the delivered message instead of a copy): its second half, then
/// its first half, then the whole as text through wsn_conn_send; a cut through a UTF-8
/// sequence must still be refused as text.
unsafe extern "C" fn send_parts(
    user: *mut std::ffi::c_void,
    conn: *mut wsn_conn,
    ev: *const wsn_event,
) {
    let ev = &*ev;
    match ev.kind {
        wsn_event_kind::WSN_EVENT_MESSAGE => {
            let refused = &*(user as *const AtomicUsize);
            let half = ev.len / 2;
            assert_eq!(
                wsn_conn_send_binary(conn, ev.data.add(half), ev.len - half),
                wsn_status::WSN_OK
            );
            assert_eq!(
                wsn_conn_send_binary(conn, ev.data, half),
                wsn_status::WSN_OK
            );
            let mut id = 0u64;
            assert_eq!(
                wsn_conn_send(conn, ev.data, ev.len, WSN_SEND_TEXT, &mut id),
                wsn_status::WSN_OK
            );
            // "é" is two bytes: a text send of its first byte alone is invalid UTF-8.
            let at = std::slice::from_raw_parts(ev.data, ev.len)
                .iter()
                .position(|&b| b == 0xC3)
                .unwrap();
            if wsn_conn_send_text(conn, ev.data.add(at) as *const _, 1)
                == wsn_status::WSN_ERR_INVALID_ARGUMENT
            {
                refused.fetch_add(1, Ordering::SeqCst);
            }
        }
        wsn_event_kind::WSN_EVENT_CLOSE => wsn_conn_free(conn),
        _ => {}
    }
}

#[test]
fn sends_of_parts_of_the_message_in_its_callback_arrive_intact() {
    for inline in [true, false] {
        let refused = Box::new(AtomicUsize::new(0));
        let opts = wsn_server_options_new();
        unsafe { wsn_server_options_set_inline_callbacks(opts, inline) };
        let mut server = std::ptr::null_mut();
        let st = unsafe {
            wsn_server_listen(
                cstr("127.0.0.1").as_ptr(),
                0,
                opts,
                None,
                Some(send_parts),
                &*refused as *const AtomicUsize as *mut _,
                &mut server,
            )
        };
        unsafe { wsn_server_options_free(opts) };
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        let url = format!("ws://127.0.0.1:{}/", unsafe { wsn_server_get_port(server) });
        let client = TestClient::connect(&url, std::ptr::null());
        client.rec.wait_open();
        // Small (copied out of the read buffer) and large (read into its own buffer) messages.
        let mut sent = Vec::new();
        for (i, size) in [5usize, 300, 5_000, 70_000, 300_000]
            .into_iter()
            .enumerate()
        {
            let mut m: Vec<u8> = (0..size).map(|k| b'a' + ((k * 7 + i) % 26) as u8).collect();
            m[size / 3] = 0xC3;
            m[size / 3 + 1] = 0xA9; // é
            assert_eq!(
                client.send_text(std::str::from_utf8(&m).unwrap()),
                wsn_status::WSN_OK
            );
            sent.push(m);
        }
        let n = sent.len();
        client.rec.wait(WAIT, "three replies per message", |e| {
            (msg_count(e) == 3 * n).then_some(())
        });
        let got = client.rec.messages();
        for (i, m) in sent.iter().enumerate() {
            let half = m.len() / 2;
            assert_eq!(
                got[3 * i],
                (false, m[half..].to_vec()),
                "inline {inline}: second half of message {i}"
            );
            assert_eq!(
                got[3 * i + 1],
                (false, m[..half].to_vec()),
                "inline {inline}: first half of message {i}"
            );
            assert_eq!(
                got[3 * i + 2],
                (true, m.clone()),
                "inline {inline}: message {i} as text"
            );
        }
        assert_eq!(
            refused.load(Ordering::SeqCst),
            n,
            "inline {inline}: a cut UTF-8 sequence is refused as text"
        );
        client.close(1000, "");
        client.rec.wait_close();
        drop(client);
        unsafe { wsn_server_free(server) };
    }
}
