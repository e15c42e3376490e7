//! The C ABI: every `extern "C"` function and raw pointer of wsnative lives under this module.
//! It converts and decides nothing: every export is marked `#[ffi_fn]` (the `macros/` crate),
//! which runs its body inside [`guard`] or [`status`] (no panic crosses into C; an error
//! becomes a [`wsn_status`] plus the thread's last-error message); handles become their Rust
//! values through the [`handle::Castable`] trait; the rules themselves live in the core.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod conn;
mod handle;
mod http;
mod logging;
mod options;
mod queue;
mod server;
mod server_ops;
// client-reach (issue 13)
mod client;
mod tls;

pub use client::*;
pub use conn::*;
pub use http::*;
pub use logging::*;
pub use options::*;
pub use queue::*;
pub use server::*;
pub use server_ops::*;
pub use tls::*;

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use wsnative_macros::ffi_fn;

/// Result of a call: WSN_OK (0) or a negative error; wsn_last_error() then says why.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsn_status {
    /// Success.
    WSN_OK = 0,
    /// An argument was NULL, out of range, or not valid UTF-8.
    WSN_ERR_INVALID_ARGUMENT = -1,
    /// Not allowed in the current state (send after close, configure after start).
    WSN_ERR_INVALID_STATE = -2,
    /// The host name could not be resolved.
    WSN_ERR_DNS = -3,
    /// The TCP connection could not be made (refused, unreachable).
    WSN_ERR_CONNECT = -4,
    /// TLS failed: certificate (unknown issuer, name mismatch, expired) or protocol; or a
    /// certificate or key file could not be loaded.
    WSN_ERR_TLS = -5,
    /// The upgrade was refused (see wsn_event.http_status) or malformed.
    WSN_ERR_HANDSHAKE = -6,
    /// A connect, handshake, close or pong timeout expired.
    WSN_ERR_TIMEOUT = -7,
    /// The peer broke the protocol, sent invalid UTF-8 text, or a message over the size limit.
    WSN_ERR_PROTOCOL = -8,
    /// Socket or file error (reset, broken pipe, address in use, unreadable file).
    WSN_ERR_IO = -9,
    /// This side aborted the connection.
    WSN_ERR_ABORTED = -10,
    /// A bug in wsnative (a panic was caught); please report it with wsn_last_error().
    WSN_ERR_INTERNAL = -11,
    /// The connection's send queue is full (wsn_*_options_set_max_send_queue): nothing was
    /// queued; send again after WSN_EVENT_DRAIN (or once wsn_conn_get_buffered_amount fell).
    /// In a CLOSE event: the connection was closed because its peer read too slowly
    /// (WSN_SEND_QUEUE_CLOSE).
    WSN_ERR_WOULD_BLOCK = -12,
}

impl From<ErrorKind> for wsn_status {
    fn from(k: ErrorKind) -> Self {
        use wsn_status::*;
        match k {
            ErrorKind::InvalidArgument => WSN_ERR_INVALID_ARGUMENT,
            ErrorKind::InvalidState => WSN_ERR_INVALID_STATE,
            ErrorKind::Dns => WSN_ERR_DNS,
            ErrorKind::Connect => WSN_ERR_CONNECT,
            ErrorKind::Tls => WSN_ERR_TLS,
            ErrorKind::Handshake => WSN_ERR_HANDSHAKE,
            ErrorKind::Timeout => WSN_ERR_TIMEOUT,
            ErrorKind::Protocol => WSN_ERR_PROTOCOL,
            ErrorKind::Io => WSN_ERR_IO,
            ErrorKind::Aborted => WSN_ERR_ABORTED,
            ErrorKind::Internal => WSN_ERR_INTERNAL,
            ErrorKind::WouldBlock => WSN_ERR_WOULD_BLOCK,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `e` as this thread's last error and returns its status.
pub(crate) fn fail(e: Error) -> wsn_status {
    // During thread exit the slot may be gone already: the status still says what failed.
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = to_cstring(e.message());
        }
    });
    e.kind().into()
}

/// A C string from Rust text; NUL bytes (legal in UTF-8, not in C strings) are dropped.
pub(crate) fn to_cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// What an export returns when a panic was caught.
pub(crate) trait PanicDefault {
    fn panic_default() -> Self;
}
impl PanicDefault for wsn_status {
    fn panic_default() -> Self {
        wsn_status::WSN_ERR_INTERNAL
    }
}
impl PanicDefault for () {
    fn panic_default() -> Self {}
}
impl PanicDefault for usize {
    fn panic_default() -> Self {
        0
    }
}
impl PanicDefault for u64 {
    fn panic_default() -> Self {
        0
    }
}
impl PanicDefault for i32 {
    fn panic_default() -> Self {
        -1
    }
}
impl PanicDefault for u16 {
    fn panic_default() -> Self {
        0
    }
}
impl PanicDefault for bool {
    fn panic_default() -> Self {
        false
    }
}
impl PanicDefault for conn::wsn_conn_state {
    fn panic_default() -> Self {
        conn::wsn_conn_state::WSN_STATE_CLOSED
    }
}
impl<T> PanicDefault for *const T {
    fn panic_default() -> Self {
        std::ptr::null()
    }
}
impl<T> PanicDefault for *mut T {
    fn panic_default() -> Self {
        std::ptr::null_mut()
    }
}

/// Runs an export's body; a panic becomes WSN_ERR_INTERNAL (or NULL, 0) and a last error.
pub(crate) fn guard<T: PanicDefault>(f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        fail(Error::new(
            ErrorKind::Internal,
            format!("internal error (panic): {msg}"),
        ));
        T::panic_default()
    })
}

/// Runs a fallible body: `Err` becomes its status and the last error.
pub(crate) fn status(f: impl FnOnce() -> crate::Result<()>) -> wsn_status {
    guard(|| match f() {
        Ok(()) => wsn_status::WSN_OK,
        Err(e) => fail(e),
    })
}

/// Borrows a required C string argument as UTF-8.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> crate::Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// An HTTP header from two C strings, checked by the core's rule (`options::check_header`).
pub(crate) unsafe fn header_arg(
    name: *const c_char,
    value: *const c_char,
) -> crate::Result<(String, String)> {
    let name = str_arg(name, "header name")?;
    let value = str_arg(value, "header value")?;
    crate::options::check_header(name, value)?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Borrows an optional C string argument (NULL: `None`).
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    what: &str,
) -> crate::Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        str_arg(p, what).map(Some)
    }
}

/// Borrows a byte buffer argument; NULL is allowed only with length 0.
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> crate::Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// The message of the last failed call on this thread ("" when none failed yet).
///
/// Thread: the calling thread's own message. Ownership: borrowed; valid until the next failing
/// wsnative call on this thread.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|l| l.try_borrow().map(|s| s.as_ptr()).unwrap_or(c"".as_ptr()))
        .unwrap_or(c"(no last error: this thread is exiting)".as_ptr())
}

/// The library version ("major.minor.patch"), matching WSN_VERSION of the header it was built
/// with. Thread: any. Ownership: static string, never free it.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_version() -> *const c_char {
    static V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"",
        };
    V.as_ptr()
}

/// Sets the number of I/O threads (0: the default, one per two cores, at least 1, at most 4:
/// the application keeps cores of its own). Call before the first connection or server.
/// Thread: any.
/// Errors: WSN_ERR_INVALID_STATE when the runtime already runs; WSN_ERR_INVALID_ARGUMENT over 256.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_runtime_set_io_threads(threads: u32) -> wsn_status {
    crate::runtime::set_io_threads(threads as usize)
}

/// Sets the number of callback threads that run event and accept callbacks (0: 2). More
/// threads let slow callbacks of different connections run side by side. Call before the first
/// connection or server. Thread: any.
/// Errors: WSN_ERR_INVALID_STATE when they already run; WSN_ERR_INVALID_ARGUMENT over 256.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_runtime_set_callback_threads(threads: u32) -> wsn_status {
    crate::delivery::set_callback_threads(threads as usize)
}

/// Sets how long, in microseconds, an idle callback thread keeps looking for new events before
/// it sleeps (default 400; 0: sleep at once). Looking saves a thread wake-up per message in
/// request/response traffic (about 150 -> 60 us per round trip between two wsnative ends here);
/// a thread whose looks keep finding nothing stops looking but for one look in 32, so sparse
/// traffic costs no extra CPU. Thread: any, at any time.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_runtime_set_callback_spin_us(microseconds: u32) {
    crate::delivery::set_callback_spin(microseconds)
}

/// Stops every server, closes every open connection with 1001, waits up to `grace_ms` for
/// the closing handshakes, aborts what is left, stops the I/O threads, delivers the remaining
/// events, and ends the callback threads, so that no thread of wsnative's is left (call it
/// before exit in runtimes that wait for every thread, such as Mono). Handles stay valid and
/// must still be freed. A later connect or listen starts everything again.
/// Thread: any (from a callback, that callback thread ends after it returns; from an inline
/// callback, which runs on an I/O thread, the shutdown runs on a thread of its own and this
/// returns at once); never panics; blocks up to about three times `grace_ms`.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_shutdown(grace_ms: u32) {
    crate::shutdown::shutdown(std::time::Duration::from_millis(grace_ms as u64))
}
