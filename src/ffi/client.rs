//! client-reach (issue 13): the client's reach for C. Proxies (HTTP CONNECT, SOCKS5, the
//! environment's), the handshake response.

use super::{
    conn_ref, guard, opt_str_arg, status, str_arg, wsn_client_options, wsn_conn, wsn_status,
};
use crate::error::{Error, Result};
use crate::options::{check_header, ClientOptions, Proxy};
use std::ffi::c_char;

unsafe fn client<'a>(o: *mut wsn_client_options) -> Result<&'a mut ClientOptions> {
    o.as_mut()
        .map(|o| &mut o.inner)
        .ok_or_else(|| Error::invalid("options is NULL"))
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
pub unsafe extern "C" fn wsn_client_options_set_proxy(
    options: *mut wsn_client_options,
    proxy_url: *const c_char,
) -> wsn_status {
    status(|| {
        let o = client(options)?;
        o.proxy = match opt_str_arg(proxy_url, "proxy URL")? {
            None => None,
            Some(u) => Some(Proxy::parse(u)?),
        };
        Ok(())
    })
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
pub unsafe extern "C" fn wsn_client_options_set_proxy_from_env(
    options: *mut wsn_client_options,
    enabled: bool,
) -> wsn_status {
    status(|| {
        client(options)?.proxy_from_env = enabled;
        Ok(())
    })
}

/// Adds a header to the HTTP CONNECT request sent to a proxy (not to the WebSocket server):
/// a proxy's own authentication token, for example. Errors: INVALID_ARGUMENT for NULL, invalid
/// UTF-8, or a name or value HTTP does not allow.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
pub unsafe extern "C" fn wsn_client_options_add_proxy_header(
    options: *mut wsn_client_options,
    name: *const c_char,
    value: *const c_char,
) -> wsn_status {
    status(|| {
        let o = client(options)?;
        let name = str_arg(name, "header name")?;
        let value = str_arg(value, "header value")?;
        check_header(name, value)?;
        o.proxy_headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    })
}

// --- the handshake response ---

/// The HTTP status of the server's answer to this client's upgrade: 101 from the OPEN event on;
/// in the CLOSE event of a refused upgrade, the refusal's status (as the event's http_status).
/// 0 when there was no answer (server connections, a failure before the server answered, NULL).
/// Thread: any; the response is set before the OPEN or CLOSE event and never changes.
#[no_mangle]
pub unsafe extern "C" fn wsn_conn_get_response_status(conn: *const wsn_conn) -> u16 {
    guard(|| {
        conn_ref(conn)
            .ok()
            .and_then(|c| c.handshake_response())
            .map_or(0, |r| r.status)
    })
}

/// The value of the first header called `name` (case-insensitive) of the server's answer to the
/// upgrade (a `Set-Cookie`, a header of the server's choosing), or NULL when absent, when there
/// was no answer, or for NULL arguments. Ownership: borrowed, valid until wsn_conn_free.
/// Thread: any, from the OPEN event (or the CLOSE event of a refused upgrade) on.
#[no_mangle]
pub unsafe extern "C" fn wsn_conn_get_response_header(
    conn: *const wsn_conn,
    name: *const c_char,
) -> *const c_char {
    guard(|| {
        let (Ok(c), Ok(name)) = (conn_ref(conn), str_arg(name, "name")) else {
            return std::ptr::null();
        };
        c.handshake_response()
            .and_then(|r| r.header(name))
            .map_or(std::ptr::null(), |v| v.as_ptr())
    })
}

/// The number of headers of the server's answer to the upgrade (0 when none, or for NULL).
/// Thread: any, from the OPEN event (or the CLOSE event of a refused upgrade) on.
#[no_mangle]
pub unsafe extern "C" fn wsn_conn_get_response_header_count(conn: *const wsn_conn) -> usize {
    guard(|| {
        conn_ref(conn)
            .ok()
            .and_then(|c| c.handshake_response())
            .map_or(0, |r| r.headers.len())
    })
}

/// The name of response header `index` (0-based, in the order sent), or NULL when out of range.
/// Ownership: borrowed, valid until wsn_conn_free. Thread: any.
#[no_mangle]
pub unsafe extern "C" fn wsn_conn_get_response_header_name(
    conn: *const wsn_conn,
    index: usize,
) -> *const c_char {
    guard(|| response_header(conn, index, true))
}

/// The value of response header `index` (0-based, in the order sent), or NULL when out of
/// range. Ownership: borrowed, valid until wsn_conn_free. Thread: any.
#[no_mangle]
pub unsafe extern "C" fn wsn_conn_get_response_header_value(
    conn: *const wsn_conn,
    index: usize,
) -> *const c_char {
    guard(|| response_header(conn, index, false))
}

unsafe fn response_header(conn: *const wsn_conn, index: usize, name: bool) -> *const c_char {
    conn_ref(conn)
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
