//! Servers for C, continued (issue 15 §2 and §3.5): caps on handshakes in progress, the plain
//! HTTP handler for requests that are not upgrades, and response headers from the callbacks.

use super::handle::{lend, try_mut};
use super::options::server;
use super::server::{req_ref, AcceptRequest, ReleaseSlot};
use super::{str_arg, wsn_request, wsn_server_options, wsn_status};
use crate::error::{Error, Result};
use crate::options::PendingHandshakePolicy;
use crate::server::{check_response, check_response_header, HttpHandler, HttpHandlerRef};
use crate::server::{Request, Response};
use std::ffi::{c_char, c_void};
use std::sync::Arc;
use wsnative_macros::ffi_fn;

/// Answers a plain HTTP request (one that is not a WebSocket upgrade, such as a load
/// balancer's `GET /healthz`): read it with the wsn_request_get_* functions (method, path,
/// query, headers, peer address) and answer with wsn_request_respond (plus
/// wsn_request_add_response_header). Returning without wsn_request_respond leaves the request
/// to the default answer, 426 Upgrade Required (405 for methods other than GET). A request
/// body is not read (the handler is for health checks and small answers, not uploads). Gets the
/// `user_data` given to wsn_server_listen. Runs on a wsnative callback thread, never on an I/O
/// thread, while the client waits (bounded by the handshake timeout: keep it short);
/// callbacks for different requests may run at the same time on different threads; none
/// starts after wsn_server_free returned. It must not unwind into wsnative.
pub type wsn_http_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, request: *mut wsn_request)>;

/// wsn_server_options_set_pending_handshake_policy: at a cap, drop the oldest unfinished
/// handshake (of that address, for the per-address cap) and take the new connection.
pub const WSN_PENDING_HANDSHAKE_DROP_OLDEST: u32 = 0;
/// wsn_server_options_set_pending_handshake_policy: at a cap, refuse the new connection
/// (HTTP 503 on plain TCP, then close).
pub const WSN_PENDING_HANDSHAKE_REFUSE: u32 = 1;

struct CHttpHandler {
    callback: unsafe extern "C" fn(*mut c_void, *mut wsn_request),
    user_data: usize,
    _release: Arc<ReleaseSlot>,
}

impl HttpHandler for CHttpHandler {
    fn handle(&self, req: &Request) -> Option<Response> {
        let r = AcceptRequest::new(req, true);
        unsafe { (self.callback)(self.user_data as *mut c_void, lend(&r)) };
        let headers = r.response_headers.into_inner();
        r.response.into_inner().map(|mut resp| {
            resp.headers = headers;
            resp
        })
    }
}

/// The options of a server whose C HTTP handler gets `user_data` (and keeps the server's
/// release hook waiting until it is gone).
pub(crate) fn with_http_handler(
    opts: &crate::ServerOptions,
    cb: unsafe extern "C" fn(*mut c_void, *mut wsn_request),
    user_data: *mut c_void,
    release: &Arc<ReleaseSlot>,
) -> crate::ServerOptions {
    let mut o = opts.clone();
    o.http_handler = Some(HttpHandlerRef(Arc::new(CHttpHandler {
        callback: cb,
        user_data: user_data as usize,
        _release: release.clone(),
    })));
    o
}

/// Most handshakes in progress at once: accepted TCP connections whose upgrade (or plain HTTP
/// request) is not answered yet, TLS included (default 512: room for a burst of reconnects,
/// half of a common descriptor limit; 0: no limit). What happens to a
/// new connection at the cap is the policy's (wsn_server_options_set_pending_handshake_policy:
/// by default the oldest unfinished handshake is dropped). Keep it well under the process's
/// descriptor limit (`ulimit -n`, often 1024). Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_pending_handshakes(
    options: *mut wsn_server_options,
    max: usize,
) -> wsn_status {
    server(options)?.max_pending_handshakes = max;
    Ok(())
}

/// Most handshakes in progress from one client address, an IPv4 address or an IPv6 /64
/// (default 0: no limit, because behind a reverse proxy or a NAT many clients share one
/// address, and a cap would throttle all of them). For a server facing its clients directly,
/// 32 leaves room for many browsers behind one NAT while one address cannot fill the total cap.
/// Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_pending_handshakes_per_ip(
    options: *mut wsn_server_options,
    max: usize,
) -> wsn_status {
    server(options)?.max_pending_handshakes_per_ip = max;
    Ok(())
}

/// What happens to a new connection when a cap on handshakes in progress is reached:
/// WSN_PENDING_HANDSHAKE_DROP_OLDEST (the default) drops the oldest unfinished handshake (of
/// that address, for the per-address cap; its socket is closed) and takes the new one;
/// WSN_PENDING_HANDSHAKE_REFUSE answers the new one with HTTP 503 and closes it. Dropping the
/// oldest is the default because it keeps the server serving while slow clients attack: a
/// legitimate client finishes its handshake within a round trip, so it is never the oldest
/// for long, while a client that sends a byte and stops soon is; refusing would let a few
/// hundred such sockets lock everyone out until their handshake timeouts expire. The price: a
/// very slow legitimate client (a TLS handshake over a bad link) may be dropped during an
/// attack, and retries. When accept runs out of descriptors (EMFILE), the oldest handshake is
/// dropped too (under DROP_OLDEST), or else one waiting connection is accepted with a reserved
/// descriptor and turned away, so the listener never spins or stalls.
/// Errors: INVALID_ARGUMENT for NULL or an unknown policy.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_pending_handshake_policy(
    options: *mut wsn_server_options,
    policy: u32,
) -> wsn_status {
    let p = match policy {
        WSN_PENDING_HANDSHAKE_DROP_OLDEST => PendingHandshakePolicy::DropOldest,
        WSN_PENDING_HANDSHAKE_REFUSE => PendingHandshakePolicy::Refuse,
        _ => {
            return Err(Error::invalid(format!(
                "pending handshake policy {policy} is unknown: use \
                 WSN_PENDING_HANDSHAKE_DROP_OLDEST or WSN_PENDING_HANDSHAKE_REFUSE"
            )))
        }
    };
    server(options)?.pending_handshake_policy = p;
    Ok(())
}

/// Sets the handler of plain HTTP requests, those that are not WebSocket upgrades (see
/// wsn_http_cb); NULL removes it (the default: such requests get 426 Upgrade Required, 405
/// for methods other than GET). With a handler, a non-upgrade request of any method and of
/// HTTP/1.0 or 1.1 goes to it; upgrade requests are checked as before. Each answer closes its
/// connection (no keep-alive). The handler gets the user_data of wsn_server_listen.
/// Errors: INVALID_ARGUMENT for NULL options.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_http_handler(
    options: *mut wsn_server_options,
    on_http: wsn_http_cb,
) -> wsn_status {
    try_mut(options)?.http_cb = on_http;
    Ok(())
}

/// The request method ("GET", "HEAD", "POST", ...). NULL for NULL.
/// Thread: only inside the accept or HTTP callback that was given `request`; the string is
/// borrowed until that callback returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_get_method(request: *const wsn_request) -> *const c_char {
    req_ref(request)
        .map(|r| r.keep(&r.request.method))
        .unwrap_or(std::ptr::null())
}

/// Adds a header to the response: in the accept callback, to the 101 (a `Set-Cookie`, for
/// example) or to the refusal it chooses; in the HTTP handler, to its answer. Headers that
/// wsnative writes itself (Content-Length, Transfer-Encoding, Connection, Upgrade,
/// Sec-WebSocket-Accept, -Protocol, -Extensions) cannot be set. Copied.
/// Errors: INVALID_ARGUMENT (NULL, an invalid name or value, a reserved name).
/// Thread: only inside the accept or HTTP callback that was given `request`.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_add_response_header(
    request: *mut wsn_request,
    name: *const c_char,
    value: *const c_char,
) -> wsn_status {
    let r = req_ref(request)?;
    let name = str_arg(name, "name")?;
    let value = str_arg(value, "value")?;
    check_response_header(name, value)?;
    r.response_headers
        .borrow_mut()
        .push((name.to_owned(), value.to_owned()));
    Ok(())
}

/// Answers a plain HTTP request with `http_status` (200-599) and `body_len` bytes of `body`
/// (copied; at most 1 MiB; NULL with 0 for none; not sent in answer to HEAD). Content-Type is
/// text/plain; charset=utf-8 unless a Content-Type header was added. The last call decides.
/// Errors: INVALID_ARGUMENT (NULL request, NULL body with a length, status out of range, body
/// over 1 MiB); INVALID_STATE in the accept callback (decide an upgrade with
/// wsn_request_accept, _reject or _accept_and_close).
/// Thread: only inside the HTTP callback that was given `request`.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_respond(
    request: *mut wsn_request,
    http_status: u16,
    body: *const u8,
    body_len: usize,
) -> wsn_status {
    let r = req_ref(request)?;
    if !r.plain {
        return Err(Error::new(
            crate::error::ErrorKind::InvalidState,
            "wsn_request_respond answers plain HTTP requests: in the accept callback use \
             wsn_request_accept, wsn_request_reject or wsn_request_accept_and_close",
        ));
    }
    check_response(http_status, body_len)?;
    let body = bytes_arg(body, body_len)?;
    *r.response.borrow_mut() = Some(Response {
        status: http_status,
        headers: Vec::new(),
        body,
    });
    Ok(())
}

unsafe fn bytes_arg(p: *const u8, len: usize) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(Error::invalid("body is NULL but body_len is not 0"));
    }
    Ok(std::slice::from_raw_parts(p, len).to_vec())
}
