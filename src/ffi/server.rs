//! Servers for C: listen, the accept callback and its request, stop, free.

use super::{
    guard, opt_str_arg, status, str_arg, to_cstring, wsn_event_cb, wsn_release_cb,
    wsn_server_options, wsn_status, CHandler,
};
use crate::connection::{check_close, Delivery};
use crate::error::{Error, Result};
use crate::server::{AcceptHook, Decision, Request, Server};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

/// A listening server. Created by wsn_server_listen, freed with wsn_server_free.
pub struct wsn_server {
    inner: Server,
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
    request: Request,
    decision: RefCell<Decision>,
    strings: RefCell<Vec<CString>>,
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
        let default = Decision::Accept { subprotocol: None };
        let mut r = wsn_request {
            request: req.clone(),
            decision: RefCell::new(default),
            strings: RefCell::new(Vec::new()),
        };
        unsafe { (self.callback)(self.user_data as *mut c_void, &mut r) };
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

unsafe fn req_ref<'a>(r: *const wsn_request) -> Result<&'a wsn_request> {
    r.as_ref().ok_or_else(|| Error::invalid("request is NULL"))
}

impl wsn_request {
    /// Keeps a C copy of `s` alive for the rest of the callback.
    fn keep(&self, s: &str) -> *const c_char {
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
    let delivery = match on_event {
        Some(cb) => Ok(Delivery::Callback(Arc::new(CHandler {
            callback: cb,
            user_data: user_data as usize,
            server: true,
            _release: Some(release.clone()),
        }))),
        None => Err(Error::invalid(
            "on_event is NULL: a server must take its connections",
        )),
    };
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
    delivery: Result<Delivery>,
    server_out: *mut *mut wsn_server,
) -> wsn_status {
    let ServerCallbacks {
        on_accept,
        user_data,
        release,
    } = callbacks;
    status(|| {
        let host = str_arg(host, "host")?;
        if server_out.is_null() {
            return Err(Error::invalid("server_out is NULL"));
        }
        let delivery = delivery?;
        let default = crate::ServerOptions::default();
        let opts = options.as_ref().map(|o| &o.inner).unwrap_or(&default);
        let server = Server::listen(
            host,
            port,
            opts,
            hook(on_accept, user_data, &release),
            Some(delivery),
        )?;
        *server_out = Box::into_raw(Box::new(wsn_server {
            inner: server,
            release,
        }));
        Ok(())
    })
}

/// The port the server listens on (0 for NULL). Thread: any.
#[no_mangle]
pub unsafe extern "C" fn wsn_server_get_port(server: *const wsn_server) -> u16 {
    guard(|| {
        server
            .as_ref()
            .map(|s| s.inner.local_addr().port())
            .unwrap_or(0)
    })
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
pub unsafe extern "C" fn wsn_server_stop(
    server: *mut wsn_server,
    drain_timeout_ms: u32,
) -> wsn_status {
    status(|| {
        let s = server
            .as_ref()
            .ok_or_else(|| Error::invalid("server is NULL"))?;
        s.inner.stop(Duration::from_millis(drain_timeout_ms as u64));
        Ok(())
    })
}

/// Stops the server (as wsn_server_stop with the options' drain timeout) and frees it. From a
/// thread that is not running a wsnative callback: when this returns, every connection's
/// CLOSE was delivered and no callback of the server or of its connections runs. From inside a
/// callback it never waits: remaining CLOSE events are delivered afterwards, and the server's
/// release hook (wsn_server_set_release_hook) runs after the last callback that carries its
/// user_data. Connection handles stay valid until freed. NULL is ignored; must not be called
/// twice. Thread: any.
#[no_mangle]
pub unsafe extern "C" fn wsn_server_free(server: *mut wsn_server) {
    guard(|| {
        if !server.is_null() {
            let s = Box::from_raw(server);
            s.inner.release();
        }
    })
}

/// Sets a hook that runs once, as `release(arg)`, after the server was freed and the last
/// callback that carries its user_data (accept callbacks, events of its connections) ended:
/// the place to free that user data. It runs on the thread that let go last. In poll mode,
/// events already queued may still carry the server's user_data as their tag after it ran
/// (wsnative never reads through it). `release` NULL removes it. Thread: any, before
/// wsn_server_free. Errors: INVALID_ARGUMENT for NULL server.
#[no_mangle]
pub unsafe extern "C" fn wsn_server_set_release_hook(
    server: *mut wsn_server,
    release: wsn_release_cb,
    arg: *mut c_void,
) -> wsn_status {
    status(|| {
        let s = server
            .as_ref()
            .ok_or_else(|| Error::invalid("server is NULL"))?;
        *s.release.0.lock().unwrap_or_else(|p| p.into_inner()) = release.map(|f| (f, arg as usize));
        Ok(())
    })
}

/// The request path without the query, e.g. "/chat". NULL for NULL.
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_path(request: *const wsn_request) -> *const c_char {
    guard(|| {
        req_ref(request)
            .map(|r| r.keep(&r.request.path))
            .unwrap_or(std::ptr::null())
    })
}

/// The query string without '?' ("" when none). NULL for NULL.
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_query(request: *const wsn_request) -> *const c_char {
    guard(|| {
        req_ref(request)
            .map(|r| r.keep(&r.request.query))
            .unwrap_or(std::ptr::null())
    })
}

/// The value of the first header called `name` (case-insensitive; "Origin", "Cookie", ...),
/// or NULL when absent.
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_header(
    request: *const wsn_request,
    name: *const c_char,
) -> *const c_char {
    guard(|| {
        let (Ok(r), Ok(name)) = (req_ref(request), str_arg(name, "name")) else {
            return std::ptr::null();
        };
        r.request
            .header(name)
            .map(|v| r.keep(v))
            .unwrap_or(std::ptr::null())
    })
}

/// The number of request headers (0 for NULL).
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_header_count(request: *const wsn_request) -> usize {
    guard(|| {
        req_ref(request)
            .map(|r| r.request.headers.len())
            .unwrap_or(0)
    })
}

/// The name of header `index` (NULL when out of range).
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_header_name(
    request: *const wsn_request,
    index: usize,
) -> *const c_char {
    guard(|| match req_ref(request) {
        Ok(r) => r
            .request
            .headers
            .get(index)
            .map(|h| r.keep(&h.0))
            .unwrap_or(std::ptr::null()),
        Err(_) => std::ptr::null(),
    })
}

/// The value of header `index` (NULL when out of range).
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_header_value(
    request: *const wsn_request,
    index: usize,
) -> *const c_char {
    guard(|| match req_ref(request) {
        Ok(r) => r
            .request
            .headers
            .get(index)
            .map(|h| r.keep(&h.1))
            .unwrap_or(std::ptr::null()),
        Err(_) => std::ptr::null(),
    })
}

/// The client's address as "ip:port". NULL for NULL.
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_peer_addr(request: *const wsn_request) -> *const c_char {
    guard(|| {
        req_ref(request)
            .map(|r| r.keep(&r.request.peer_addr.to_string()))
            .unwrap_or(std::ptr::null())
    })
}

/// The number of subprotocols the client offered.
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_subprotocol_count(request: *const wsn_request) -> usize {
    guard(|| {
        req_ref(request)
            .map(|r| r.request.subprotocols.len())
            .unwrap_or(0)
    })
}

/// Offered subprotocol `index`, in the client's order of preference (NULL when out of range).
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_subprotocol(
    request: *const wsn_request,
    index: usize,
) -> *const c_char {
    guard(|| match req_ref(request) {
        Ok(r) => r
            .request
            .subprotocols
            .get(index)
            .map(|p| r.keep(p))
            .unwrap_or(std::ptr::null()),
        Err(_) => std::ptr::null(),
    })
}

/// Accepts the request, choosing `subprotocol` (NULL: none; else one the client offered).
/// Errors: INVALID_ARGUMENT (NULL request, a protocol the client did not offer).
/// Thread: only inside the accept callback that was given `request`; the last call decides.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_accept(
    request: *mut wsn_request,
    subprotocol: *const c_char,
) -> wsn_status {
    status(|| {
        let r = req_ref(request)?;
        let p = r
            .request
            .offered(opt_str_arg(subprotocol, "subprotocol")?)?;
        *r.decision.borrow_mut() = Decision::Accept { subprotocol: p };
        Ok(())
    })
}

/// Refuses the request with HTTP `http_status` (400-599) and a short text `body` (may be NULL).
/// Remember that browsers do not show the status to scripts: to tell a browser client why, use
/// wsn_request_accept_and_close. Errors: INVALID_ARGUMENT (NULL request, status out of range).
/// Thread: only inside the accept callback that was given `request`; the last call decides.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_reject(
    request: *mut wsn_request,
    http_status: u16,
    body: *const c_char,
) -> wsn_status {
    status(|| {
        let r = req_ref(request)?;
        if !(400..=599).contains(&http_status) {
            return Err(Error::invalid(format!(
                "HTTP status {http_status} is not a refusal (use 400-599)"
            )));
        }
        let body = opt_str_arg(body, "body")?.unwrap_or("").to_owned();
        *r.decision.borrow_mut() = Decision::Reject {
            status: http_status,
            body,
        };
        Ok(())
    })
}

/// Accepts the request and closes the connection at once with `code` (use 4000-4999 for the
/// application's reasons, which browsers can read) and `reason` (may be NULL; at most 123
/// bytes). The on_event callback sees nothing of this connection.
/// Errors: INVALID_ARGUMENT (NULL request, a code that may not be sent, long reason).
/// Thread: only inside the accept callback that was given `request`; the last call decides.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_accept_and_close(
    request: *mut wsn_request,
    code: u16,
    reason: *const c_char,
) -> wsn_status {
    status(|| {
        let r = req_ref(request)?;
        let reason = opt_str_arg(reason, "reason")?.unwrap_or("");
        check_close(code, reason)?;
        *r.decision.borrow_mut() = Decision::Close {
            code,
            reason: reason.to_owned(),
            subprotocol: None,
        };
        Ok(())
    })
}

// --- client-reach (issue 13): mutual TLS ---

/// The subject of the client certificate the server verified (wsn_server_options_set_client_auth),
/// e.g. "CN=alice, O=Example"; NULL when the client presented none (or for NULL).
/// Thread: only inside the accept callback that was given `request`; a returned string is
/// borrowed until that callback returns.
#[no_mangle]
pub unsafe extern "C" fn wsn_request_get_peer_cert_subject(
    request: *const wsn_request,
) -> *const c_char {
    guard(|| {
        req_ref(request)
            .ok()
            .and_then(|r| r.request.peer_cert_subject.as_deref().map(|s| r.keep(s)))
            .unwrap_or(std::ptr::null())
    })
}
