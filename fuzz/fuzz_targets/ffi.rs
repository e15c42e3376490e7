//! The C ABI itself: arbitrary sequences of calls on real handles, as a C program could make
//! them, with NULLs, invalid UTF-8, out-of-range values, the double frees the API allows
//! (a connection freed twice inside its own callback, a server stopped twice, NULL frees),
//! calls from several threads at once and from inside callbacks, bytes lent to
//! wsn_conn_send_nocopy, over real loopback
//! connections to a wsnative server (bounded: at most 4 client handles, 48 calls, short
//! timeouts). Checked: no crash, no panic across the boundary (WSN_ERR_INTERNAL), every
//! string returned is readable, at most one CLOSE per connection and nothing after it, no
//! callback after a connection's release hook ran (AddressSanitizer sees a use after free).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;
use wsnative::ffi::*;

/// Per client connection, owned by the connection (freed by its release hook).
struct Track {
    closes: AtomicU32,
    after_close: AtomicU32,
}

fn ok_status(s: wsn_status) {
    assert_ne!(
        s,
        wsn_status::WSN_ERR_INTERNAL,
        "a panic crossed into the C ABI: {}",
        last_error()
    );
    let _ = last_error();
}

fn last_error() -> String {
    let p = wsn_last_error();
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

unsafe fn read_str(p: *const c_char) {
    if !p.is_null() {
        let _ = CStr::from_ptr(p).to_bytes().len();
    }
}

/// Client connections whose release hook has not run yet, and server connections open (not
/// yet closed or freed): an input ends once they are gone (bounded), so that each input starts
/// from a quiet library and LeakSanitizer does not see the previous input's connections
/// half-way through their close (a read buffer consumed to its end is only referenced past it).
static LIVE_CLIENTS: AtomicUsize = AtomicUsize::new(0);
static LIVE_SERVER_CONNS: AtomicUsize = AtomicUsize::new(0);
/// Bytes lent with wsn_conn_send_nocopy, and how often they were released: exactly once (a
/// second release would free the box twice: AddressSanitizer), at once when refused. (That every
/// loan comes back once its connection ended is tests/flow_control.rs's: here a fuzzed
/// close_max may keep a connection closing past the input.)
type Loan = (Vec<u8>, std::sync::Arc<AtomicU32>);

unsafe extern "C" fn release_loan(user: *mut c_void, data: *const u8, len: usize) {
    let loan = Box::from_raw(user as *mut Loan);
    assert!(
        len == loan.0.len() && (len == 0 || data == loan.0.as_ptr()),
        "released other bytes than lent"
    );
    loan.1.fetch_add(1, SeqCst);
}

unsafe extern "C" fn release_track(arg: *mut c_void) {
    drop(Box::from_raw(arg as *mut Track));
    LIVE_CLIENTS.fetch_sub(1, SeqCst);
}

/// Client events: checks the order, and sometimes calls back into the API from inside.
unsafe extern "C" fn client_event(ud: *mut c_void, conn: *mut wsn_conn, ev: *const wsn_event) {
    let t = &*(ud as *const Track);
    if t.closes.load(SeqCst) > 0 {
        t.after_close.fetch_add(1, SeqCst);
        panic!("an event after the CLOSE event");
    }
    let ev = &*ev;
    match ev.kind {
        wsn_event_kind::WSN_EVENT_CLOSE => {
            t.closes.fetch_add(1, SeqCst);
            read_str(ev.reason);
            read_str(ev.error);
        }
        wsn_event_kind::WSN_EVENT_MESSAGE => {
            if ev.len > 0 {
                let d = std::slice::from_raw_parts(ev.data, ev.len);
                if ev.is_text {
                    assert!(
                        std::str::from_utf8(d).is_ok(),
                        "invalid UTF-8 in a text event"
                    );
                }
                match d[0] % 8 {
                    0 => ok_status(wsn_conn_send_binary(conn, d.as_ptr(), d.len().min(3))),
                    1 => ok_status(wsn_conn_close(conn, 4000, c"from a callback".as_ptr())),
                    2 => ok_status(wsn_conn_set_reading_paused(conn, false)),
                    3 => ok_status(wsn_conn_ack(conn, 1)),
                    _ => {}
                }
            }
            read_str(wsn_conn_get_peer_addr(conn));
        }
        _ => {}
    }
}

/// The echo server's events: echoes, and frees its handles inside callbacks (twice: allowed
/// while the handle is alive).
unsafe extern "C" fn server_event(_: *mut c_void, conn: *mut wsn_conn, ev: *const wsn_event) {
    let ev = &*ev;
    match ev.kind {
        wsn_event_kind::WSN_EVENT_OPEN => {
            LIVE_SERVER_CONNS.fetch_add(1, SeqCst);
        }
        wsn_event_kind::WSN_EVENT_MESSAGE => {
            let d = if ev.len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(ev.data, ev.len)
            };
            match d.first().map(|b| b % 16) {
                Some(13) => {
                    // Freed here, it gets no CLOSE event: it ends in the background.
                    LIVE_SERVER_CONNS.fetch_sub(1, SeqCst);
                    wsn_conn_free(conn);
                    wsn_conn_free(conn);
                }
                Some(14) => ok_status(wsn_conn_abort(conn)),
                Some(15) => ok_status(wsn_conn_close(conn, 1000, null())),
                _ => {
                    let flags = if ev.is_text { WSN_SEND_TEXT } else { 0 };
                    ok_status(wsn_conn_send(conn, d.as_ptr(), d.len(), flags, null_mut()));
                }
            }
        }
        wsn_event_kind::WSN_EVENT_CLOSE => {
            LIVE_SERVER_CONNS.fetch_sub(1, SeqCst);
            wsn_conn_free(conn);
            wsn_conn_free(conn);
        }
        _ => {}
    }
}

/// Decides from the request path: "/r..." reject, "/c..." accept and close, "/p" choose the
/// first offered subprotocol, "/x" choose one never offered; otherwise accept.
unsafe extern "C" fn on_accept(_: *mut c_void, req: *mut wsn_request) {
    read_str(wsn_request_get_path(req));
    read_str(wsn_request_get_query(req));
    read_str(wsn_request_get_peer_addr(req));
    read_str(wsn_request_get_header(req, c"host".as_ptr()));
    read_str(wsn_request_get_header(req, null()));
    let n = wsn_request_get_header_count(req);
    for i in 0..=n {
        read_str(wsn_request_get_header_name(req, i));
        read_str(wsn_request_get_header_value(req, i));
    }
    for i in 0..=wsn_request_get_subprotocol_count(req) {
        read_str(wsn_request_get_subprotocol(req, i));
    }
    let path = wsn_request_get_path(req);
    let p = if path.is_null() {
        &[][..]
    } else {
        CStr::from_ptr(path).to_bytes()
    };
    let arg = p.get(2).copied().unwrap_or(0) as u16;
    match p.get(1) {
        Some(b'r') => ok_status(wsn_request_reject(req, 380 + arg, c"no".as_ptr())),
        Some(b'c') => ok_status(wsn_request_accept_and_close(req, 3990 + arg, null())),
        Some(b'p') => ok_status(wsn_request_accept(req, wsn_request_get_subprotocol(req, 0))),
        Some(b'x') => ok_status(wsn_request_accept(req, c"never-offered".as_ptr())),
        _ => {}
    }
}

struct Ptr<T>(*mut T);
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

fn echo_port() -> u16 {
    // The server lives as long as the process (kept here, so it is no leak).
    static SERVER: OnceLock<(Ptr<wsn_server>, u16)> = OnceLock::new();
    SERVER
        .get_or_init(|| unsafe {
            let o = wsn_server_options_new();
            wsn_server_options_add_subprotocol(o, c"chat".as_ptr());
            wsn_server_options_set_compression(o, true);
            wsn_server_options_set_close_timeout_ms(o, 300);
            let mut s = null_mut();
            let st = wsn_server_listen(
                c"127.0.0.1".as_ptr(),
                0,
                o,
                Some(on_accept),
                Some(server_event),
                null_mut(),
                &mut s,
            );
            assert_eq!(st, wsn_status::WSN_OK);
            wsn_server_options_free(o);
            let port = wsn_server_get_port(s);
            (Ptr(s), port)
        })
        .1
}

fn take(u: &mut Unstructured, max: usize) -> AResult<Vec<u8>> {
    let n = u.int_in_range(0..=max)?.min(u.len());
    Ok(u.bytes(n)?.to_vec())
}

fn cstring(u: &mut Unstructured, max: usize) -> AResult<CString> {
    let n = u.int_in_range(0..=max)?;
    let b: Vec<u8> = u
        .bytes(n.min(u.len()))?
        .iter()
        .copied()
        .filter(|b| *b != 0)
        .collect();
    Ok(CString::new(b).unwrap())
}

/// A string argument: NULL, fuzzed bytes (maybe not UTF-8), or one of `picks`.
fn arg(u: &mut Unstructured, picks: &[&str], keep: &mut Vec<CString>) -> AResult<*const c_char> {
    let s = match u.int_in_range(0..=3)? {
        0 => return Ok(null()),
        1 => cstring(u, 40)?,
        _ => CString::new(*u.choose(picks)?).unwrap(),
    };
    keep.push(s);
    Ok(keep.last().unwrap().as_ptr())
}

struct World {
    conns: Vec<*mut wsn_conn>,
    copts: Vec<*mut wsn_client_options>,
    sopts: Vec<*mut wsn_server_options>,
    servers: Vec<*mut wsn_server>,
    queue: *mut wsn_queue,
    events: Vec<wsn_queued_event>,
}

fn pick<T: Copy>(u: &mut Unstructured, v: &[T], null: T) -> AResult<T> {
    if v.is_empty() || u.ratio(1, 8)? {
        Ok(null)
    } else {
        Ok(*u.choose(v)?)
    }
}

/// Calls on connections that any thread may make at any time.
unsafe fn conn_call(u: &mut Unstructured, c: *mut wsn_conn) -> AResult<()> {
    let mut keep = Vec::new();
    let data = take(u, 64)?;
    match u.int_in_range(0..=12)? {
        0 => ok_status(wsn_conn_send_text(
            c,
            data.as_ptr() as *const c_char,
            data.len(),
        )),
        1 => ok_status(wsn_conn_send_binary(c, data.as_ptr(), data.len())),
        2 => ok_status(wsn_conn_send_binary(c, null(), u.int_in_range(0..=3)?)),
        3 => {
            let mut id = 0u64;
            let flags = u.int_in_range(0..=4)?;
            if u.arbitrary()? {
                let released = std::sync::Arc::new(AtomicU32::new(0));
                let loan: Box<Loan> = Box::new((data.to_vec(), released.clone()));
                let (p, n) = (loan.0.as_ptr(), loan.0.len());
                let user = Box::into_raw(loan) as *mut c_void;
                let st = wsn_conn_send_nocopy(c, p, n, flags, Some(release_loan), user, &mut id);
                ok_status(st);
                if st != wsn_status::WSN_OK {
                    assert_eq!(
                        released.load(SeqCst),
                        1,
                        "a refused loan was not released at once"
                    );
                }
            } else {
                ok_status(wsn_conn_send(c, data.as_ptr(), data.len(), flags, &mut id));
            }
        }
        4 => {
            let code = *u.choose(&[1000u16, 1001, 1005, 1006, 2999, 3000, 4999, 5000, 0])?;
            let r = arg(u, &["bye", "é", &"x".repeat(124)], &mut keep)?;
            ok_status(wsn_conn_close(c, code, r));
        }
        5 => ok_status(wsn_conn_abort(c)),
        6 => {
            let _ = wsn_conn_get_state(c);
            let _ = wsn_conn_get_buffered_amount(c);
            let _ = wsn_conn_get_sent_id(c);
            read_str(wsn_conn_get_peer_addr(c));
            read_str(wsn_conn_get_subprotocol(c));
            read_str(wsn_conn_get_extensions(c));
        }
        7 => ok_status(wsn_conn_set_reading_paused(c, u.arbitrary()?)),
        8 => ok_status(wsn_conn_ack(c, u.int_in_range(0..=3)?)),
        9 => ok_status(wsn_conn_set_drain_events(
            c,
            u.arbitrary()?,
            u.int_in_range(0..=100)?,
        )),
        10 => {
            let _ = wsn_conn_get_user_data(c);
        }
        _ => std::thread::sleep(Duration::from_millis(u.int_in_range(0..=5)?)),
    }
    Ok(())
}

unsafe fn client_options_call(u: &mut Unstructured, o: *mut wsn_client_options) -> AResult<()> {
    let mut keep = Vec::new();
    let ms: u32 = *u.choose(&[0, 1, 50, 200, 100_000, u32::MAX])?;
    let n: usize = *u.choose(&[0, 1, 100, 1 << 20, usize::MAX])?;
    let s = match u.int_in_range(0..=17)? {
        0 => wsn_client_options_set_connect_timeout_ms(o, ms),
        1 => wsn_client_options_set_handshake_timeout_ms(o, ms),
        2 => wsn_client_options_set_close_timeout_ms(o, ms),
        3 => wsn_client_options_set_close_max_ms(o, ms),
        4 => wsn_client_options_set_max_receive_messages(o, n),
        5 => wsn_client_options_set_manual_ack(o, u.arbitrary()?),
        6 => wsn_client_options_set_max_send_queue(o, n),
        7 => wsn_client_options_set_send_queue_policy(o, u.int_in_range(0..=2)?),
        8 => wsn_client_options_set_compression(o, u.arbitrary()?),
        9 => wsn_client_options_set_compression_params(
            o,
            u.arbitrary()?,
            u.arbitrary()?,
            u.int_in_range(7..=16)?,
            u.int_in_range(7..=16)?,
        ),
        10 => wsn_client_options_set_compression_threshold(o, n, u.int_in_range(0..=10)?),
        11 => wsn_client_options_set_max_message_size(o, n),
        12 => wsn_client_options_set_ping_interval_ms(o, ms),
        13 => wsn_client_options_set_pong_timeout_ms(o, ms),
        14 => wsn_client_options_set_heartbeat(o, u.int_in_range(0..=2)?),
        15 => {
            let n = arg(u, &["X-Test", "Host", "Bad Name", "Origin"], &mut keep)?;
            let v = arg(u, &["1", "a\r\nb", "\t ok"], &mut keep)?;
            wsn_client_options_add_header(o, n, v)
        }
        16 => wsn_client_options_add_subprotocol(o, arg(u, &["chat", "a,b", ""], &mut keep)?),
        _ => match u.int_in_range(0..=2)? {
            0 => wsn_client_options_set_origin(o, arg(u, &["http://a", "x\ny"], &mut keep)?),
            1 => wsn_client_options_set_tls_roots(o, u.int_in_range(0..=3)?),
            _ => wsn_client_options_add_ca_file(
                o,
                arg(u, &["/nonexistent.pem", "/etc/hostname"], &mut keep)?,
            ),
        },
    };
    ok_status(s);
    Ok(())
}

unsafe fn server_options_call(u: &mut Unstructured, o: *mut wsn_server_options) -> AResult<()> {
    let mut keep = Vec::new();
    let ms: u32 = *u.choose(&[0, 1, 50, 200, 100_000, u32::MAX])?;
    let n: usize = *u.choose(&[0, 1, 100, 1 << 20, usize::MAX])?;
    let s = match u.int_in_range(0..=12)? {
        0 => wsn_server_options_set_handshake_timeout_ms(o, ms),
        1 => wsn_server_options_set_max_header_size(o, n),
        2 => wsn_server_options_set_close_timeout_ms(o, ms),
        3 => wsn_server_options_set_max_connections(o, n),
        4 => wsn_server_options_set_compression(o, u.arbitrary()?),
        5 => wsn_server_options_set_compression_params(
            o,
            u.arbitrary()?,
            u.arbitrary()?,
            u.int_in_range(7..=16)?,
            u.int_in_range(7..=16)?,
        ),
        6 => wsn_server_options_set_max_message_size(o, n),
        7 => wsn_server_options_set_ping_interval_ms(o, ms),
        8 => wsn_server_options_add_subprotocol(o, arg(u, &["chat", "a b"], &mut keep)?),
        9 => wsn_server_options_add_allowed_origin(o, arg(u, &["http://a", "*"], &mut keep)?),
        10 => wsn_server_options_set_tls(
            o,
            arg(u, &["/nonexistent.pem"], &mut keep)?,
            arg(u, &["/etc/hostname"], &mut keep)?,
        ),
        11 => wsn_server_options_set_manual_ack(o, u.arbitrary()?),
        _ => wsn_server_options_set_drain_timeout_ms(o, ms),
    };
    ok_status(s);
    Ok(())
}

unsafe fn step(u: &mut Unstructured, w: &mut World) -> AResult<()> {
    let mut keep = Vec::new();
    match u.int_in_range(0..=13)? {
        0 | 1 if w.conns.len() < 4 => {
            let port = echo_port();
            let good = format!("ws://127.0.0.1:{port}/");
            let paths = [
                good.clone(),
                format!("{good}r{}", u.int_in_range(1..=250u8)? as char),
                format!("{good}c{}", u.int_in_range(1..=20u8)? as char),
                format!("{good}p"),
                format!("{good}x"),
                "ws://127.0.0.1:1/".to_owned(),
                "http://127.0.0.1/".to_owned(),
            ];
            let url = match u.int_in_range(0..=4)? {
                0 => null(),
                1 => {
                    keep.push(cstring(u, 30)?);
                    keep.last().unwrap().as_ptr()
                }
                _ => {
                    keep.push(CString::new(u.choose(&paths)?.as_str()).unwrap());
                    keep.last().unwrap().as_ptr()
                }
            };
            let o = pick(u, &w.copts, null_mut())?;
            let mut c = null_mut();
            let queued = !w.queue.is_null() && u.ratio(1, 3)?;
            let s = if queued {
                wsn_connect_queued(url, o, w.queue, null_mut(), &mut c)
            } else {
                let t = Box::into_raw(Box::new(Track {
                    closes: AtomicU32::new(0),
                    after_close: AtomicU32::new(0),
                }));
                let s = wsn_connect(url, o, Some(client_event), t as *mut c_void, &mut c);
                if s == wsn_status::WSN_OK {
                    LIVE_CLIENTS.fetch_add(1, SeqCst);
                    ok_status(wsn_conn_set_release_hook(
                        c,
                        Some(release_track),
                        t as *mut c_void,
                    ));
                } else {
                    drop(Box::from_raw(t));
                }
                s
            };
            ok_status(s);
            if s == wsn_status::WSN_OK {
                assert!(!c.is_null());
                w.conns.push(c);
            } else {
                assert!(c.is_null(), "a handle was handed out on failure");
            }
        }
        2..=4 => {
            let c = pick(u, &w.conns, null_mut())?;
            conn_call(u, c)?;
        }
        5 if !w.conns.is_empty() => {
            let i = u.choose_index(w.conns.len())?;
            wsn_conn_free(w.conns.swap_remove(i));
        }
        6 => {
            if w.copts.len() < 2 && u.arbitrary()? {
                w.copts.push(wsn_client_options_new());
            } else if !w.copts.is_empty() && u.ratio(1, 4)? {
                let i = u.choose_index(w.copts.len())?;
                wsn_client_options_free(w.copts.swap_remove(i));
            } else {
                wsn_client_options_free(null_mut());
                let o = pick(u, &w.copts, null_mut())?;
                client_options_call(u, o)?;
            }
        }
        7 => {
            if w.sopts.len() < 2 && u.arbitrary()? {
                w.sopts.push(wsn_server_options_new());
            } else {
                wsn_server_options_free(null_mut());
                let o = pick(u, &w.sopts, null_mut())?;
                server_options_call(u, o)?;
            }
        }
        8 => {
            // Several threads at once on the same connections.
            let n = u.int_in_range(2..=3)?;
            let seeds: Vec<Vec<u8>> = (0..n).map(|_| take(u, 64)).collect::<AResult<_>>()?;
            let conns: Vec<Ptr<wsn_conn>> = w.conns.iter().map(|c| Ptr(*c)).collect();
            std::thread::scope(|s| {
                for seed in &seeds {
                    let conns = &conns;
                    s.spawn(move || {
                        let mut u = Unstructured::new(seed);
                        while !u.is_empty() && !conns.is_empty() {
                            let Ok(i) = u.choose_index(conns.len()) else {
                                break;
                            };
                            let _ = conn_call(&mut u, conns[i].0);
                        }
                    });
                }
            });
        }
        9 => {
            if w.queue.is_null() {
                let mut q = null_mut();
                ok_status(wsn_queue_new(if u.arbitrary()? {
                    &mut q
                } else {
                    null_mut()
                }));
                w.queue = q;
            } else {
                let _ = wsn_queue_get_fd(w.queue);
                wsn_queue_wake(w.queue);
                let max = u.int_in_range(0..=8)?;
                let n = wsn_queue_poll(w.queue, w.events.as_mut_ptr(), max, u.int_in_range(0..=5)?);
                assert!(n <= max);
                // The queue wrote `n` events into the buffer (its length stays 0).
                for e in std::slice::from_raw_parts(w.events.as_ptr(), n) {
                    read_str(e.event.reason);
                    read_str(e.event.error);
                    if e.event.kind == wsn_event_kind::WSN_EVENT_MESSAGE
                        && e.event.is_text
                        && e.event.len > 0
                    {
                        let d = std::slice::from_raw_parts(e.event.data, e.event.len);
                        assert!(std::str::from_utf8(d).is_ok());
                    }
                }
            }
            let _ = wsn_queue_get_fd(null());
            wsn_queue_wake(null());
            let _ = wsn_queue_poll(null_mut(), null_mut(), 4, 0);
        }
        10 => {
            if w.servers.is_empty() {
                let o = pick(u, &w.sopts, null_mut())?;
                let host = arg(
                    u,
                    &["127.0.0.1", "::1", "no.such.host.invalid", "256.1.1.1"],
                    &mut keep,
                )?;
                let mut s = null_mut();
                let st = wsn_server_listen(
                    host,
                    0,
                    o,
                    Some(on_accept),
                    Some(server_event),
                    null_mut(),
                    &mut s,
                );
                ok_status(st);
                if st == wsn_status::WSN_OK {
                    let _ = wsn_server_get_port(s);
                    w.servers.push(s);
                }
            } else {
                let s = w.servers[0];
                ok_status(wsn_server_stop(s, u.int_in_range(0..=100)?));
                ok_status(wsn_server_stop(s, 0)); // twice: harmless
            }
            ok_status(wsn_server_stop(null_mut(), 0));
            let _ = wsn_server_get_port(null());
        }
        11 => {
            // Calls on NULL handles.
            conn_call(u, null_mut())?;
            wsn_conn_free(null_mut());
            ok_status(wsn_conn_set_release_hook(null_mut(), None, null_mut()));
            ok_status(wsn_server_set_release_hook(null_mut(), None, null_mut()));
            wsn_server_free(null_mut());
            wsn_queue_free(null_mut());
            read_str(wsn_version());
            ok_status(wsn_connect(null(), null(), None, null_mut(), null_mut()));
        }
        12 => {
            let c = pick(u, &w.conns, null_mut())?;
            // The same value back: the callbacks' Track stays where it is.
            let ud = wsn_conn_get_user_data(c);
            ok_status(wsn_conn_set_user_data(c, ud));
        }
        _ => std::thread::sleep(Duration::from_millis(u.int_in_range(0..=10)?)),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut w = World {
        conns: Vec::new(),
        copts: Vec::new(),
        sopts: Vec::new(),
        servers: Vec::new(),
        queue: null_mut(),
        events: Vec::with_capacity(8),
    };
    for _ in 0..48 {
        if u.is_empty() || unsafe { step(&mut u, &mut w) }.is_err() {
            break;
        }
    }
    unsafe {
        for c in w.conns.drain(..) {
            wsn_conn_free(c);
        }
        for s in w.servers.drain(..) {
            wsn_server_stop(s, 50);
            wsn_server_free(s);
        }
        for o in w.copts.drain(..) {
            wsn_client_options_free(o);
        }
        for o in w.sopts.drain(..) {
            wsn_server_options_free(o);
        }
        if !w.queue.is_null() {
            wsn_queue_free(w.queue);
        }
    }
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while (LIVE_CLIENTS.load(SeqCst) > 0 || LIVE_SERVER_CONNS.load(SeqCst) > 0)
        && std::time::Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(1));
    }
});
