//! client-reach (issue 13): the client's reach for C. Proxies (HTTP CONNECT, SOCKS5, the
//! environment's).

use super::{opt_str_arg, status, str_arg, wsn_client_options, wsn_status};
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
