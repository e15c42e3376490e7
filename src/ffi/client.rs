//! client-reach (issue 13): the client's reach for C. Proxies (HTTP CONNECT, SOCKS5, the
//! environment's), the handshake response.

use super::handle::{free_box, out_arg, to_arc, to_box, try_mut, try_ref, Boxed, Castable};
use super::{opt_str_arg, str_arg, wsn_client_options, wsn_conn, wsn_status};
use crate::error::{Error, Result};
use crate::options::{ClientOptions, Proxy};
use std::ffi::c_char;
use wsnative_macros::ffi_fn;

unsafe fn client<'a>(o: *mut wsn_client_options) -> Result<&'a mut ClientOptions> {
    super::handle::try_mut(o)
}

/// Connects through a proxy: `http://[user:password@]host[:port]` (HTTP CONNECT, port 80 by
/// default, the user and password sent as Basic `Proxy-Authorization`) or
/// `socks5://[user:password@]host[:port]` (SOCKS5, port 1080 by default, the host name resolved
/// by the proxy; `socks5h://` is the same). A bare `host:port` is an HTTP proxy. User and
/// password are percent-decoded. Works for ws:// and wss:// (TLS runs end to end through the
/// tunnel). A refusal ends the connection with WSN_ERR_HANDSHAKE naming the proxy and, for
/// HTTP, its status in the CLOSE event's http_status (407, 403, 502). NULL removes the proxy.
/// Wins over wsn_client_options_set_proxy_from_env. Default: none (direct connections).
/// Errors: INVALID_ARGUMENT for NULL options, invalid UTF-8 or an invalid proxy URL (https://
/// proxies are not supported).
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_proxy(
    options: *mut wsn_client_options,
    proxy_url: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    o.proxy = match opt_str_arg(proxy_url, "proxy URL")? {
        None => None,
        Some(u) => Some(Proxy::parse(u)?),
    };
    Ok(())
}

/// With `enabled` true, each connect reads its proxy from the environment, as curl does:
/// `https_proxy`/`HTTPS_PROXY` for wss://, `http_proxy`/`HTTP_PROXY` for ws://, else
/// `all_proxy`/`ALL_PROXY` (lower case first); `no_proxy`/`NO_PROXY` lists hosts to reach
/// directly: `*`, host names (with their subdomains; `.example.com` the same), IP addresses and
/// CIDR blocks (`10.0.0.0/8`), each optionally with `:port`. A proxy set with
/// wsn_client_options_set_proxy wins. An invalid proxy URL in the environment fails wsn_connect
/// with INVALID_ARGUMENT naming the variable. Default: false (the environment is not read).
/// Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_proxy_from_env(
    options: *mut wsn_client_options,
    enabled: bool,
) -> wsn_status {
    client(options)?.proxy_from_env = enabled;
    Ok(())
}

/// Adds a header to the HTTP CONNECT request sent to a proxy (not to the WebSocket server):
/// a proxy's own authentication token, for example. Errors: INVALID_ARGUMENT for NULL, invalid
/// UTF-8, or a name or value HTTP does not allow.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_add_proxy_header(
    options: *mut wsn_client_options,
    name: *const c_char,
    value: *const c_char,
) -> wsn_status {
    let header = super::header_arg(name, value)?;
    client(options)?.proxy_headers.push(header);
    Ok(())
}

// --- the handshake response ---

/// The HTTP status of the server's answer to this client's upgrade: 101 from the OPEN event on;
/// in the CLOSE event of a refused upgrade, the refusal's status (as the event's http_status).
/// 0 when there was no answer (server connections, a failure before the server answered, NULL).
/// Thread: any; the response is set before the OPEN or CLOSE event and never changes.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_response_status(conn: *const wsn_conn) -> u16 {
    try_ref(conn)
        .ok()
        .and_then(|c| c.handshake_response())
        .map_or(0, |r| r.status)
}

/// The value of the first header called `name` (case-insensitive) of the server's answer to the
/// upgrade (a `Set-Cookie`, a header of the server's choosing), or NULL when absent, when there
/// was no answer, or for NULL arguments. Ownership: borrowed, valid until wsn_conn_free.
/// Thread: any, from the OPEN event (or the CLOSE event of a refused upgrade) on.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_response_header(
    conn: *const wsn_conn,
    name: *const c_char,
) -> *const c_char {
    let (Ok(c), Ok(name)) = (try_ref(conn), str_arg(name, "name")) else {
        return std::ptr::null();
    };
    c.handshake_response()
        .and_then(|r| r.header(name))
        .map_or(std::ptr::null(), |v| v.as_ptr())
}

/// The number of headers of the server's answer to the upgrade (0 when none, or for NULL).
/// Thread: any, from the OPEN event (or the CLOSE event of a refused upgrade) on.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_response_header_count(conn: *const wsn_conn) -> usize {
    try_ref(conn)
        .ok()
        .and_then(|c| c.handshake_response())
        .map_or(0, |r| r.headers.len())
}

/// The name of response header `index` (0-based, in the order sent), or NULL when out of range.
/// Ownership: borrowed, valid until wsn_conn_free. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_response_header_name(
    conn: *const wsn_conn,
    index: usize,
) -> *const c_char {
    response_header(conn, index, true)
}

/// The value of response header `index` (0-based, in the order sent), or NULL when out of
/// range. Ownership: borrowed, valid until wsn_conn_free. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_response_header_value(
    conn: *const wsn_conn,
    index: usize,
) -> *const c_char {
    response_header(conn, index, false)
}

unsafe fn response_header(conn: *const wsn_conn, index: usize, name: bool) -> *const c_char {
    try_ref(conn)
        .ok()
        .and_then(|c| c.handshake_response())
        .and_then(|r| r.headers.get(index))
        .map_or(
            std::ptr::null(),
            |(n, v)| {
                if name {
                    n.as_ptr()
                } else {
                    v.as_ptr()
                }
            },
        )
}

// --- reconnect ---

/// A reconnect policy for wsn_client_options_set_reconnect. Create with
/// wsn_reconnect_policy_new, free with wsn_reconnect_policy_free. Not thread-safe: configure
/// from one thread at a time.
pub struct wsn_reconnect_policy {
    _private: [u8; 0],
}

impl Castable for wsn_reconnect_policy {
    type Rust = crate::options::ReconnectPolicy;
    type Owned = Boxed;
    const WHAT: &'static str = "policy";
}

/// wsn_reconnect_policy_set_offline_queue: a send to a full offline queue fails with
/// WSN_ERR_WOULD_BLOCK (the default).
pub const WSN_OFFLINE_REFUSE: u32 = 0;
/// wsn_reconnect_policy_set_offline_queue: the oldest queued messages are dropped for the new one.
pub const WSN_OFFLINE_DROP_OLDEST: u32 = 1;
/// wsn_reconnect_policy_set_offline_queue: the new message is dropped (the send still returns
/// its id, and it never goes out).
pub const WSN_OFFLINE_DROP_NEWEST: u32 = 2;

unsafe fn policy<'a>(
    p: *mut wsn_reconnect_policy,
) -> Result<&'a mut crate::options::ReconnectPolicy> {
    try_mut(p)
}

/// A new reconnect policy with the defaults: backoff with full jitter on every attempt (the
/// delay of attempt n drawn uniformly from 0 to min(30000 ms, 500 ms * 2^(n-1))), no limit on
/// attempts or time, stop on close codes 1002, 1003, 1007, 1008, 1009, 1010 and on HTTP 401
/// and 403, an offline queue of 1 MiB that refuses when full.
/// Ownership: the caller frees it with wsn_reconnect_policy_free. Never NULL. Thread: any.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_reconnect_policy_new() -> *mut wsn_reconnect_policy {
    to_box(crate::options::ReconnectPolicy::default())
}

/// Frees a policy. NULL is ignored. Options it was given to keep their copy. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_reconnect_policy_free(policy: *mut wsn_reconnect_policy) {
    drop(free_box(policy));
}

/// The backoff: attempt n waits a delay drawn uniformly from 0 to
/// min(max_ms, initial_ms * 2^(n-1)) (full jitter: reconnects after a server restart spread out
/// instead of arriving together). Defaults 500 and 30000.
/// Errors: INVALID_ARGUMENT for NULL, 0, or initial_ms over max_ms.
/// Thread: one thread at a time per policy.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_reconnect_policy_set_delays(
    policy_: *mut wsn_reconnect_policy,
    initial_ms: u32,
    max_ms: u32,
) -> wsn_status {
    let p = policy(policy_)?;
    let mut next = p.clone();
    next.initial_delay = std::time::Duration::from_millis(initial_ms as u64);
    next.max_delay = std::time::Duration::from_millis(max_ms as u64);
    next.validate()?;
    *p = next;
    Ok(())
}

/// The retry budget after each drop: at most `max_attempts` attempts (0: no limit) and no
/// attempt starting later than `max_total_ms` after the drop (0: no limit). When it is spent:
/// WSN_EVENT_RECONNECT_GAVE_UP, then the CLOSE. Defaults 0 and 0.
/// Errors: INVALID_ARGUMENT for NULL. Thread: one thread at a time per policy.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_reconnect_policy_set_budget(
    policy_: *mut wsn_reconnect_policy,
    max_attempts: u32,
    max_total_ms: u32,
) -> wsn_status {
    let p = policy(policy_)?;
    p.max_attempts = max_attempts;
    p.max_elapsed = std::time::Duration::from_millis(max_total_ms as u64);
    Ok(())
}

/// Adds a close code (from the server, or this side's failure code) that stops reconnecting:
/// an application's "not allowed" code such as 4001. Errors: INVALID_ARGUMENT for NULL or a code
/// outside 1000-4999. Thread: one thread at a time per policy.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_reconnect_policy_add_stop_code(
    policy_: *mut wsn_reconnect_policy,
    code: u16,
) -> wsn_status {
    let p = policy(policy_)?;
    if !(1000..=4999).contains(&code) {
        return Err(Error::invalid(format!(
            "close code {code} is out of range: use 1000 to 4999"
        )));
    }
    p.stop_codes.push(code);
    Ok(())
}

/// Adds an HTTP status of a refused upgrade (or a proxy's refusal) that stops reconnecting
/// (401 and 403 are there by default). Errors: INVALID_ARGUMENT for NULL or a status outside
/// 100-599. Thread: one thread at a time per policy.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_reconnect_policy_add_stop_status(
    policy_: *mut wsn_reconnect_policy,
    http_status: u16,
) -> wsn_status {
    let p = policy(policy_)?;
    if !(100..=599).contains(&http_status) {
        return Err(Error::invalid(format!(
            "HTTP status {http_status} is out of range: use 100 to 599"
        )));
    }
    p.stop_statuses.push(http_status);
    Ok(())
}

/// The offline queue: while reconnecting, sends are queued for the next connection up to
/// `max_bytes` (default 1 MiB); past it, `when_full` decides: WSN_OFFLINE_REFUSE (the send
/// fails with WSN_ERR_WOULD_BLOCK, the default), WSN_OFFLINE_DROP_OLDEST or
/// WSN_OFFLINE_DROP_NEWEST. Messages that were on their way when the connection dropped are
/// not sent again (WebSocket has no acknowledgements). Errors: INVALID_ARGUMENT for NULL, 0
/// bytes or an unknown policy. Thread: one thread at a time per policy.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_reconnect_policy_set_offline_queue(
    policy_: *mut wsn_reconnect_policy,
    max_bytes: usize,
    when_full: u32,
) -> wsn_status {
    let p = policy(policy_)?;
    crate::options::check_at_least(max_bytes, 1, "offline queue")?;
    p.offline_policy = match when_full {
        WSN_OFFLINE_REFUSE => crate::options::OfflinePolicy::Refuse,
        WSN_OFFLINE_DROP_OLDEST => crate::options::OfflinePolicy::DropOldest,
        WSN_OFFLINE_DROP_NEWEST => crate::options::OfflinePolicy::DropNewest,
        v => {
            return Err(Error::invalid(format!(
                "offline queue policy {v} is unknown: use WSN_OFFLINE_REFUSE, WSN_OFFLINE_DROP_OLDEST or WSN_OFFLINE_DROP_NEWEST"
            )))
        }
    };
    p.offline_max_bytes = max_bytes;
    Ok(())
}

/// Makes connections reconnect (a copy of `policy`; NULL: never reconnect, the default). The
/// handle stays the same across reconnects: after a drop (not after wsn_conn_close,
/// wsn_conn_abort or wsn_conn_free, and not on a stop code or status) the connection delivers
/// WSN_EVENT_RECONNECTING, is CONNECTING (sends wait in the offline queue), and on success
/// delivers WSN_EVENT_OPEN again: the reconnect hook. In callback mode, messages the OPEN
/// callback sends go out first, then the offline queue, once the callback returned (at most
/// the handshake timeout later). The CLOSE event comes once, at the very end. The negotiated
/// subprotocol, extensions and handshake response stay those of the first connection.
/// Errors: INVALID_ARGUMENT for NULL options. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_reconnect(
    options: *mut wsn_client_options,
    policy: *const wsn_reconnect_policy,
) -> wsn_status {
    let o = client(options)?;
    o.reconnect = if policy.is_null() {
        None
    } else {
        Some(try_ref(policy)?.clone())
    };
    Ok(())
}

// --- pool ---

/// A pool of pre-connected clients to one URL. Create with wsn_pool_new, free with
/// wsn_pool_free.
pub struct wsn_pool {
    _private: [u8; 0],
}

impl Castable for wsn_pool {
    type Rust = crate::client::pool::Pool;
    type Owned = Boxed;
    const WHAT: &'static str = "pool";
}

/// Starts a pool that keeps `size` upgraded connections to `url` ready (reading paused until
/// taken), so that wsn_pool_take hands one out without a round trip; each one taken, or lost
/// while waiting, is replaced in the background (after failures, one at a time with a growing
/// pause). `options` may be NULL and is copied (a reconnect policy is refused: take a
/// connection and handle drops yourself). Ownership: the caller owns `*pool_out` and frees it
/// with wsn_pool_free. Errors: INVALID_ARGUMENT (NULL url or pool_out, size 0, a bad URL or
/// option), WSN_ERR_TLS (unreadable certificate files); `*pool_out` is untouched then.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_pool_new(
    url: *const c_char,
    options: *const wsn_client_options,
    size: usize,
    pool_out: *mut *mut wsn_pool,
) -> wsn_status {
    let url = str_arg(url, "url")?;
    let pool_out = out_arg(pool_out, "pool_out")?;
    let default = ClientOptions::default();
    let opts = if options.is_null() {
        &default
    } else {
        try_ref(options)?
    };
    *pool_out = to_box(crate::client::pool::Pool::new(url, opts, size)?);
    Ok(())
}

/// Takes a ready connection: WSN_OK with an OPEN connection in `*conn_out`, whose events now go
/// to `on_event` with `user_data`, starting with a WSN_EVENT_OPEN; it is the caller's, as from
/// wsn_connect (free it with wsn_conn_free). WSN_ERR_WOULD_BLOCK when none is ready (connect
/// with wsn_connect instead; the pool is filling). Errors: INVALID_ARGUMENT for NULL pool or
/// conn_out. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_pool_take(
    pool: *const wsn_pool,
    on_event: super::wsn_event_cb,
    user_data: *mut std::ffi::c_void,
    conn_out: *mut *mut wsn_conn,
) -> wsn_status {
    let p = try_ref(pool)?;
    let conn_out = out_arg(conn_out, "conn_out")?;
    let delivery = on_event.map(|cb| {
        crate::connection::Delivery::Callback(std::sync::Arc::new(super::CHandler {
            callback: cb,
            user_data: user_data as usize,
            server: false,
            _release: None,
        }))
    });
    match p.take(delivery) {
        Some(c) => {
            *conn_out = to_arc(c);
            Ok(())
        }
        None => Err(Error::new(
            crate::error::ErrorKind::WouldBlock,
            "no pooled connection is ready (the pool is filling): connect directly",
        )),
    }
}

/// Connections ready now (0 for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_pool_ready(pool: *const wsn_pool) -> usize {
    try_ref(pool).map_or(0, |p| p.ready())
}

/// Closes the ready connections (1001), stops replacing them and frees the pool. Connections
/// already taken are not affected. NULL is ignored. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_pool_free(pool: *mut wsn_pool) {
    drop(free_box(pool));
}
