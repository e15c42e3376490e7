//! Test helpers: an event recorder behind the C ABI's callback, a wsnative echo server, and a
//! runtime for foreign peers (tokio-tungstenite). Every wait has a timeout.
#![allow(dead_code)]

use std::ffi::{c_void, CStr, CString};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wsnative::ffi::*;

pub const WAIT: Duration = Duration::from_secs(20);

/// Taken by the tests that keep a callback thread busy for a second or more (a blocked callback,
/// a slow accept hook, a slow application). The pool has 2 callback threads, shared by every test
/// of the binary, and the tests run side by side: two such tests at once would leave no thread
/// for the "fast" part that one of them measures.
pub fn occupy_callback_threads() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// An owned copy of a wsn_event.
#[derive(Debug, Clone)]
pub enum Ev {
    Open(usize),
    Msg {
        conn: usize,
        text: bool,
        data: Vec<u8>,
    },
    Close {
        conn: usize,
        code: u16,
        reason: String,
        clean: bool,
        error: Option<String>,
        status: wsn_status,
        http: u16,
    },
}

impl Ev {
    pub fn conn(&self) -> usize {
        match self {
            Ev::Open(c) | Ev::Msg { conn: c, .. } | Ev::Close { conn: c, .. } => *c,
        }
    }
}

/// Per-event hook run on the callback thread before the event is recorded.
pub type Hook = Box<dyn Fn(*mut wsn_conn, &Ev) + Send + Sync>;

/// Records every event it gets; tests wait on it.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Ev>>,
    changed: Condvar,
    pub hook: Mutex<Option<Arc<Hook>>>,
    /// Free server connections at their close event (as an application would).
    pub free_server_conns: bool,
    /// The sent ids of DRAIN events, in order.
    pub drains: Mutex<Vec<u64>>,
}

pub unsafe extern "C" fn record(user: *mut c_void, conn: *mut wsn_conn, ev: *const wsn_event) {
    let r = &*(user as *const Recorder);
    let ev = &*ev;
    let c = conn as usize;
    if ev.kind == wsn_event_kind::WSN_EVENT_DRAIN {
        r.drains.lock().unwrap().push(ev.sent_id);
        let _guard = r.events.lock().unwrap();
        r.changed.notify_all();
        return;
    }
    let owned = match ev.kind {
        wsn_event_kind::WSN_EVENT_OPEN => Ev::Open(c),
        wsn_event_kind::WSN_EVENT_MESSAGE => Ev::Msg {
            conn: c,
            text: ev.is_text,
            data: if ev.len == 0 {
                vec![]
            } else {
                std::slice::from_raw_parts(ev.data, ev.len).to_vec()
            },
        },
        wsn_event_kind::WSN_EVENT_CLOSE => Ev::Close {
            conn: c,
            code: ev.close_code,
            reason: CStr::from_ptr(ev.reason).to_string_lossy().into_owned(),
            clean: ev.was_clean,
            error: (!ev.error.is_null())
                .then(|| CStr::from_ptr(ev.error).to_string_lossy().into_owned()),
            status: ev.error_status,
            http: ev.http_status,
        },
        _ => return,
    };
    let hook = r.hook.lock().unwrap().clone();
    if let Some(h) = hook {
        h(conn, &owned);
    }
    let is_close = matches!(owned, Ev::Close { .. });
    r.events.lock().unwrap().push(owned);
    r.changed.notify_all();
    if is_close && r.free_server_conns {
        wsn_conn_free(conn);
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }
    pub fn server() -> Arc<Recorder> {
        Arc::new(Recorder {
            free_server_conns: true,
            ..Default::default()
        })
    }
    pub fn user(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self) as *mut c_void
    }
    pub fn set_hook(&self, h: impl Fn(*mut wsn_conn, &Ev) + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some(Arc::new(Box::new(h)));
    }
    /// Waits until `pred` holds over the events; panics after `timeout`.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&[Ev]) -> Option<T>,
    ) -> T {
        let end = Instant::now() + timeout;
        let mut g = self.events.lock().unwrap();
        loop {
            if let Some(t) = pred(&g) {
                return t;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; events: {:?}",
                    summary(&g)
                );
            }
            g = self.changed.wait_timeout(g, left).unwrap().0;
        }
    }
    pub fn wait_open(&self) -> usize {
        self.wait(WAIT, "open", |e| {
            e.iter()
                .find_map(|e| if let Ev::Open(c) = e { Some(*c) } else { None })
        })
    }
    pub fn wait_close(&self) -> Ev {
        self.wait(WAIT, "close", |e| {
            e.iter().find(|e| matches!(e, Ev::Close { .. })).cloned()
        })
    }
    pub fn wait_close_of(&self, conn: usize, timeout: Duration) -> Ev {
        self.wait(timeout, "close of a connection", |e| {
            e.iter()
                .find(|e| matches!(e, Ev::Close { .. }) && e.conn() == conn)
                .cloned()
        })
    }
    pub fn messages(&self) -> Vec<(bool, Vec<u8>)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| {
                if let Ev::Msg { text, data, .. } = e {
                    Some((*text, data.clone()))
                } else {
                    None
                }
            })
            .collect()
    }
    pub fn count_messages(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Ev::Msg { .. }))
            .count()
    }
}

/// Messages among `evs`.
pub fn msg_count(evs: &[Ev]) -> usize {
    evs.iter().filter(|e| matches!(e, Ev::Msg { .. })).count()
}

fn summary(evs: &[Ev]) -> Vec<String> {
    let mut out: Vec<String> = evs
        .iter()
        .filter(|e| !matches!(e, Ev::Msg { .. }))
        .map(|e| format!("{e:?}"))
        .collect();
    out.push(format!(
        "{} messages",
        evs.iter().filter(|e| matches!(e, Ev::Msg { .. })).count()
    ));
    out
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

pub fn last_error() -> String {
    unsafe {
        CStr::from_ptr(wsn_last_error())
            .to_string_lossy()
            .into_owned()
    }
}

/// A wsnative server on 127.0.0.1 with a recorder.
pub struct TestServer {
    pub server: *mut wsn_server,
    pub rec: Arc<Recorder>,
    pub port: u16,
}
unsafe impl Send for TestServer {}
unsafe impl Sync for TestServer {}

impl TestServer {
    pub fn start(
        rec: Arc<Recorder>,
        opts: *const wsn_server_options,
        accept: wsn_accept_cb,
    ) -> TestServer {
        let mut server = std::ptr::null_mut();
        let st = unsafe {
            wsn_server_listen(
                cstr("127.0.0.1").as_ptr(),
                0,
                opts,
                accept,
                Some(record),
                rec.user(),
                &mut server,
            )
        };
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        let port = unsafe { wsn_server_get_port(server) };
        TestServer { server, rec, port }
    }
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        unsafe { wsn_server_free(self.server) };
    }
}

/// A client connection with a recorder.
pub struct TestClient {
    pub conn: *mut wsn_conn,
    pub rec: Arc<Recorder>,
}
unsafe impl Send for TestClient {}
unsafe impl Sync for TestClient {}

impl TestClient {
    pub fn connect(url: &str, opts: *const wsn_client_options) -> TestClient {
        let rec = Recorder::new();
        let mut conn = std::ptr::null_mut();
        let st = unsafe {
            wsn_connect(
                cstr(url).as_ptr(),
                opts,
                Some(record),
                rec.user(),
                &mut conn,
            )
        };
        assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
        TestClient { conn, rec }
    }
    pub fn send_text(&self, s: &str) -> wsn_status {
        unsafe { wsn_conn_send_text(self.conn, s.as_ptr() as *const _, s.len()) }
    }
    pub fn send_binary(&self, b: &[u8]) -> wsn_status {
        unsafe { wsn_conn_send_binary(self.conn, b.as_ptr(), b.len()) }
    }
    pub fn close(&self, code: u16, reason: &str) -> wsn_status {
        unsafe { wsn_conn_close(self.conn, code, cstr(reason).as_ptr()) }
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        unsafe { wsn_conn_free(self.conn) };
    }
}

/// A runtime for foreign peers.
pub fn foreign_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn send_ptr(p: *mut wsn_conn) -> usize {
    p as usize
}

/// Echoes a message back on the connection it came from (a server recorder's hook).
pub fn echo(conn: *mut wsn_conn, ev: &Ev) {
    if let Ev::Msg { text, data, .. } = ev {
        unsafe {
            if *text {
                wsn_conn_send_text(conn, data.as_ptr() as *const _, data.len());
            } else {
                wsn_conn_send_binary(conn, data.as_ptr(), data.len());
            }
        }
    }
}

/// A wsnative server on 127.0.0.1 that echoes every message from its callback.
pub fn echo_server() -> TestServer {
    let rec = Recorder::server();
    rec.set_hook(echo);
    TestServer::start(rec, std::ptr::null(), None)
}

/// The 101 response to a raw upgrade request (for hand-made peers).
pub fn upgrade_response(request: &str) -> String {
    let key = request
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_owned())
        })
        .expect("a Sec-WebSocket-Key header");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
}

/// Reads an HTTP head byte by byte (so that nothing after it is consumed).
pub fn read_head(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}
