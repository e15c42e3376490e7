//! Servers for C: listen, the accept callback and its request, stop, free.

use super::handle::{free_box, lend, out_arg, to_box, try_ref, Borrowed, Boxed, Castable};
use super::{
    opt_str_arg, str_arg, to_cstring, wsn_event_cb, wsn_release_cb, wsn_server_options, wsn_status,
    CHandler,
};
use crate::connection::Delivery;
use crate::error::{Error, Result};
use crate::server::{AcceptHook, Decision, Request, Server};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;
use wsnative_macros::ffi_fn;

/// A listening server. Created by wsn_server_listen, freed with wsn_server_free.
pub struct wsn_server {
    _private: [u8; 0],
}

impl Castable for wsn_server {
    type Rust = ServerHandle;
    type Owned = Boxed;
    const WHAT: &'static str = "server";
}

/// What a wsn_server handle stands for: the server and its release hook.
pub(crate) struct ServerHandle {
    pub(crate) inner: Server,
    release: Arc<ReleaseSlot>,
}

/// The application's release hook of a server: runs when the last thing that may still call
/// back with the server's user_data (the handle, the accept hook, each connection's
/// delivery) lets go of it.
#[derive(Default)]
pub(crate) struct ReleaseSlot(std::sync::Mutex<Option<(unsafe extern "C" fn(*mut c_void), usize)>>);

impl Drop for ReleaseSlot {
    fn drop(&mut self) {
        let hook = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((f, arg)) = hook {
            // A panic here would cross into C: the hook is C code and does not unwind.
            unsafe { f(arg as *mut c_void) }
        }
    }
}

/// An upgrade request, seen by the accept callback. Valid only during that callback; every
/// string it returns is borrowed until the callback returns.
pub struct wsn_request {
    _private: [u8; 0],
}

impl Castable for wsn_request {
    type Rust = AcceptRequest;
    type Owned = Borrowed;
    const WHAT: &'static str = "request";
}

/// What a wsn_request stands for during the accept callback or the HTTP handler.
pub(crate) struct AcceptRequest {
    pub(crate) request: Request,
    decision: RefCell<Decision>,
    strings: RefCell<Vec<CString>>,
    // srv-defense (issue 15 §3.5): which callback has it, and the response it builds.
    pub(crate) plain: bool,
    pub(crate) response_headers: RefCell<Vec<(String, String)>>,
    pub(crate) response: RefCell<Option<crate::server::Response>>,
}

/// Decides on an upgrade request. Without a call to wsn_request_reject or
/// wsn_request_accept_and_close the request is accepted (with the subprotocol chosen by
/// wsn_request_accept, or by the server options' list). Runs on a wsnative callback thread
/// while the client waits (bounded by the handshake timeout); callbacks for different requests
/// may run at the same time on different threads. It must not unwind into wsnative.
pub type wsn_accept_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, request: *mut wsn_request)>;

struct CAcceptHook {
    callback: unsafe extern "C" fn(*mut c_void, *mut wsn_request),
    user_data: usize,
    _release: Arc<ReleaseSlot>,
}

impl AcceptHook for CAcceptHook {
    fn accept(&self, req: &Request) -> Decision {
        self.accept_with_headers(req, &mut Vec::new())
    }

    fn accept_with_headers(&self, req: &Request, headers: &mut Vec<(String, String)>) -> Decision {
        let r = AcceptRequest::new(req, false);
        unsafe { (self.callback)(self.user_data as *mut c_void, lend(&r)) };
        *headers = r.response_headers.into_inner();
        r.decision.into_inner()
    }
}

/// The accept hook of a C accept callback.
fn hook(
    on_accept: wsn_accept_cb,
    user_data: *mut c_void,
    release: &Arc<ReleaseSlot>,
) -> Option<Arc<dyn AcceptHook>> {
    on_accept.map(|cb| {
        Arc::new(CAcceptHook {
            callback: cb,
            user_data: user_data as usize,
            _release: release.clone(),
        }) as Arc<dyn AcceptHook>
    })
}

pub(crate) unsafe fn req_ref<'a>(r: *const wsn_request) -> Result<&'a AcceptRequest> {
    try_ref(r)
}

impl AcceptRequest {
    /// A request for the accept callback (`plain` false) or the HTTP handler (`plain` true).
    pub(crate) fn new(req: &Request, plain: bool) -> AcceptRequest {
        AcceptRequest {
            request: req.clone(),
            decision: RefCell::new(Decision::Accept { subprotocol: None }),
            strings: RefCell::new(Vec::new()),
            plain,
            response_headers: RefCell::new(Vec::new()),
            response: RefCell::new(None),
        }
    }

    /// Refuses the upgrade decisions inside the HTTP handler.
    fn upgrade_only(&self) -> Result<()> {
        if self.plain {
            return Err(Error::new(
                crate::error::ErrorKind::InvalidState,
                "this request is not a WebSocket upgrade: answer it with wsn_request_respond",
            ));
        }
        Ok(())
    }

    /// Keeps a C copy of `s` alive for the rest of the callback.
    pub(crate) fn keep(&self, s: &str) -> *const c_char {
        let c = to_cstring(s);
        let p = c.as_ptr();
        self.strings.borrow_mut().push(c);
        p
    }
}

/// Starts a server on `host`:`port` (port 0 picks a free port: see wsn_server_get_port).
/// `options` may be NULL (defaults) and is copied. `on_accept` may be NULL (accept all).
/// `on_event` gets every connection's events with `user_data`, starting with WSN_EVENT_OPEN,
/// from which on the application owns that connection handle (free it with wsn_conn_free).
/// Ownership: the caller owns `*server_out`. Thread: any.
/// Errors: INVALID_ARGUMENT (NULL host, server_out or on_event), WSN_ERR_IO (address in use,
/// permission), WSN_ERR_TLS (unreadable certificate or key); `*server_out` is untouched then.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_listen(
    host: *const c_char,
    port: u16,
    options: *const wsn_server_options,
    on_accept: wsn_accept_cb,
    on_event: wsn_event_cb,
    user_data: *mut c_void,
    server_out: *mut *mut wsn_server,
) -> wsn_status {
    let release = Arc::new(ReleaseSlot::default());
    let Some(cb) = on_event else {
        return Err(Error::invalid(
            "on_event is NULL: a server must take its connections",
        ));
    };
    let delivery = Delivery::Callback(Arc::new(CHandler {
        callback: cb,
        user_data: user_data as usize,
        server: true,
        _release: Some(release.clone()),
    }));
    let callbacks = ServerCallbacks {
        on_accept,
        user_data,
        release,
    };
    listen_with(host, port, options, callbacks, delivery, server_out)
}

/// What a server calls back with: the accept callback and the user data it gets, and the
/// server's release hook.
pub(crate) struct ServerCallbacks {
    pub(crate) on_accept: wsn_accept_cb,
    pub(crate) user_data: *mut c_void,
    pub(crate) release: Arc<ReleaseSlot>,
}

/// The body of wsn_server_listen and wsn_server_listen_queued: checks, listens, hands out the
/// handle.
pub(crate) unsafe fn listen_with(
    host: *const c_char,
    port: u16,
    options: *const wsn_server_options,
    callbacks: ServerCallbacks,
    delivery: Delivery,
    server_out: *mut *mut wsn_server,
) -> Result<()> {
    let ServerCallbacks {
        on_accept,
        user_data,
        release,
    } = callbacks;
    let host = str_arg(host, "host")?;
    let server_out = out_arg(server_out, "server_out")?;
    let c_options = if options.is_null() {
        None
    } else {
        Some(try_ref(options)?)
    };
    let default = crate::ServerOptions::default();
    let opts = c_options.map(|o| &o.inner).unwrap_or(&default);
    // The C HTTP handler, bound to the server's user_data.
    let with_http;
    let opts = match c_options.and_then(|o| o.http_cb) {
        Some(cb) => {
            with_http = super::http::with_http_handler(opts, cb, user_data, &release);
            &with_http
        }
        None => opts,
    };
    let server = Server::listen(
        host,
        port,
        opts,
        hook(on_accept, user_data, &release),
        Some(delivery),
    )?;
    *server_out = to_box(ServerHandle {
        inner: server,
        release,
    });
    Ok(())
}

/// The port the server listens on (0 for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_get_port(server: *const wsn_server) -> u16 {
    try_ref(server)
        .map(|s| s.inner.local_addr().port())
        .unwrap_or(0)
}

/// Stops accepting and closes every connection with 1001. From a thread that is not running
/// a wsnative callback, it returns once every connection has ended and its WSN_EVENT_CLOSE was
/// delivered (its callback returned, or it was queued for wsn_queue_poll); connections still
/// open after `drain_timeout_ms` are aborted and their CLOSE events delivered too (waiting at
/// most `drain_timeout_ms` again, at least 1 s, for callbacks that are slow to return). From
/// inside a callback it never waits: the aborts and CLOSE events follow in the background.
/// Calling it twice is harmless. Thread: any, including a callback.
/// Errors: INVALID_ARGUMENT for NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_stop(
    server: *mut wsn_server,
    drain_timeout_ms: u32,
) -> wsn_status {
    let s = try_ref(server)?;
    s.inner.stop(Duration::from_millis(drain_timeout_ms as u64));
    Ok(())
}

/// Stops the server (as wsn_server_stop with the options' drain timeout) and frees it. From a
/// thread that is not running a wsnative callback: when this returns, every connection's
/// CLOSE was delivered and no callback of the server or of its connections runs. From inside a
/// callback it never waits: remaining CLOSE events are delivered afterwards, and the server's
/// release hook (wsn_server_set_release_hook) runs after the last callback that carries its
/// user_data. Connection handles stay valid until freed. NULL is ignored; must not be called
/// twice. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_free(server: *mut wsn_server) {
    if let Some(s) = free_box(server) {
        s.inner.release();
    }
}

/// Sets a hook that runs once, as `release(arg)`, after the server was freed and the last
/// callback that carries its user_data (accept callbacks, events of its connections) ended:
/// the place to free that user data. It runs on the thread that let go last. In poll mode,
/// events already queued may still carry the server's user_data as their tag after it ran
/// (wsnative never reads through it). `release` NULL removes it. Thread: any, before
/// wsn_server_free. Errors: INVALID_ARGUMENT for NULL server.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_set_release_hook(
    server: *mut wsn_server,
    release: wsn_release_cb,
    arg: *mut c_void,
) -> wsn_status {
    let s = try_ref(server)?;
    *s.release.0.lock().unwrap_or_else(|p| p.into_inner()) = release.map(|f| (f, arg as usize));
    Ok(())
}

/// The request path without the query, e.g. "/chat". NULL for NULL.
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_path(request: *const wsn_request) -> *const c_char {
    req_ref(request)
        .map(|r| r.keep(&r.request.path))
        .unwrap_or(std::ptr::null())
}

/// The query string without '?' ("" when none). NULL for NULL.
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_query(request: *const wsn_request) -> *const c_char {
    req_ref(request)
        .map(|r| r.keep(&r.request.query))
        .unwrap_or(std::ptr::null())
}

/// The value of the first header called `name` (case-insensitive; "Origin", "Cookie", ...),
/// or NULL when absent.
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_header(
    request: *const wsn_request,
    name: *const c_char,
) -> *const c_char {
    let (Ok(r), Ok(name)) = (req_ref(request), str_arg(name, "name")) else {
        return std::ptr::null();
    };
    r.request
        .header(name)
        .map(|v| r.keep(v))
        .unwrap_or(std::ptr::null())
}

/// The number of request headers (0 for NULL).
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_header_count(request: *const wsn_request) -> usize {
    req_ref(request)
        .map(|r| r.request.headers.len())
        .unwrap_or(0)
}

/// The name of header `index` (NULL when out of range).
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_header_name(
    request: *const wsn_request,
    index: usize,
) -> *const c_char {
    match req_ref(request) {
        Ok(r) => r
            .request
            .headers
            .get(index)
            .map(|h| r.keep(&h.0))
            .unwrap_or(std::ptr::null()),
        Err(_) => std::ptr::null(),
    }
}

/// The value of header `index` (NULL when out of range).
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_header_value(
    request: *const wsn_request,
    index: usize,
) -> *const c_char {
    match req_ref(request) {
        Ok(r) => r
            .request
            .headers
            .get(index)
            .map(|h| r.keep(&h.1))
            .unwrap_or(std::ptr::null()),
        Err(_) => std::ptr::null(),
    }
}

/// The client's address as "ip:port". NULL for NULL.
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_peer_addr(request: *const wsn_request) -> *const c_char {
    req_ref(request)
        .map(|r| r.keep(&r.request.peer_addr.to_string()))
        .unwrap_or(std::ptr::null())
}

/// The number of subprotocols the client offered.
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_subprotocol_count(request: *const wsn_request) -> usize {
    req_ref(request)
        .map(|r| r.request.subprotocols.len())
        .unwrap_or(0)
}

/// Offered subprotocol `index`, in the client's order of preference (NULL when out of range).
/// Thread: only inside the accept (or HTTP) callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_subprotocol(
    request: *const wsn_request,
    index: usize,
) -> *const c_char {
    match req_ref(request) {
        Ok(r) => r
            .request
            .subprotocols
            .get(index)
            .map(|p| r.keep(p))
            .unwrap_or(std::ptr::null()),
        Err(_) => std::ptr::null(),
    }
}

/// Accepts the request, choosing `subprotocol` (NULL: none; else one the client offered).
/// Errors: INVALID_ARGUMENT (NULL request, a protocol the client did not offer).
/// Thread: only inside the accept callback that was given `request`; the last call decides.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_accept(
    request: *mut wsn_request,
    subprotocol: *const c_char,
) -> wsn_status {
    let r = req_ref(request)?;
    r.upgrade_only()?;
    let d = Decision::accept(&r.request, opt_str_arg(subprotocol, "subprotocol")?)?;
    *r.decision.borrow_mut() = d;
    Ok(())
}

/// Refuses the request with HTTP `http_status` (400-599) and a short text `body` (may be NULL).
/// Remember that browsers do not show the status to scripts: to tell a browser client why, use
/// wsn_request_accept_and_close. Errors: INVALID_ARGUMENT (NULL request, status out of range).
/// Thread: only inside the accept callback that was given `request`; the last call decides.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_reject(
    request: *mut wsn_request,
    http_status: u16,
    body: *const c_char,
) -> wsn_status {
    let r = req_ref(request)?;
    r.upgrade_only()?;
    let d = Decision::reject(http_status, opt_str_arg(body, "body")?.unwrap_or(""))?;
    *r.decision.borrow_mut() = d;
    Ok(())
}

/// Accepts the request and closes the connection at once with `code` (use 4000-4999 for the
/// application's reasons, which browsers can read) and `reason` (may be NULL; at most 123
/// bytes). The on_event callback sees nothing of this connection.
/// Errors: INVALID_ARGUMENT (NULL request, a code that may not be sent, long reason).
/// Thread: only inside the accept callback that was given `request`; the last call decides.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_accept_and_close(
    request: *mut wsn_request,
    code: u16,
    reason: *const c_char,
) -> wsn_status {
    let r = req_ref(request)?;
    r.upgrade_only()?;
    let d = Decision::close(code, opt_str_arg(reason, "reason")?.unwrap_or(""))?;
    *r.decision.borrow_mut() = d;
    Ok(())
}

// --- client-reach (issue 13): mutual TLS ---

/// The subject of the client certificate the server verified (wsn_server_options_set_client_auth),
/// e.g. "CN=alice, O=Example"; NULL when the client presented none (or for NULL).
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_peer_cert_subject(
    request: *const wsn_request,
) -> *const c_char {
    req_ref(request)
        .ok()
        .and_then(|r| r.request.peer_cert_subject.as_deref().map(|s| r.keep(s)))
        .unwrap_or(std::ptr::null())
}
