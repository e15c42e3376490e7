//! Connections for C: connect, send, close, state, events.
//!
//! A `wsn_conn *` is the address of the connection's shared state (`Arc::into_raw`); the
//! application's handle owns one reference, released by wsn_conn_free.

use super::handle::{as_ptr, free_arc, out_arg, to_arc, try_clone_arc, try_ref, Castable, Shared};
use super::{bytes_arg, opt_str_arg, str_arg, to_cstring, wsn_client_options, wsn_status};
use crate::connection::{Conn, Delivery, Event, Handler, State};
use crate::error::{Error, Result};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use wsnative_macros::ffi_fn;

/// A WebSocket connection, client or server side. Created by wsn_connect (client) or handed
/// over in the WSN_EVENT_OPEN event of a server; freed with wsn_conn_free. Every function on
/// it may be called from any thread.
pub struct wsn_conn {
    _private: [u8; 0],
}

impl Castable for wsn_conn {
    type Rust = Conn;
    type Owned = Shared;
    const WHAT: &'static str = "conn";
}

/// The kind of a wsn_event.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsn_event_kind {
    /// The connection is open. For a server connection, the application now owns `conn` and
    /// must eventually free it with wsn_conn_free.
    WSN_EVENT_OPEN = 1,
    /// A whole message arrived: `data`/`len`, `is_text`.
    WSN_EVENT_MESSAGE = 2,
    /// The connection ended: `close_code`, `reason`, `was_clean`, `error`. Always the last event.
    WSN_EVENT_CLOSE = 3,
    /// Messages were written to the socket and the send queue is at or below its low-water
    /// mark (only when asked for with wsn_*_options_set_drain_events): every message up to
    /// `sent_id` was handed to the kernel. The time to send more, or to complete awaited sends.
    WSN_EVENT_DRAIN = 4,
    /// client-reach (issue 13), with a reconnect policy only: the connection dropped (or a
    /// reconnect attempt failed) and attempt `attempt` starts in `delay_ms`; `close_code`,
    /// `error`, `error_status`, `http_status` say why the last connection or attempt ended.
    /// The state is CONNECTING; sends go to the offline queue. An OPEN follows when an
    /// attempt succeeds (messages it sends go out before the offline queue).
    WSN_EVENT_RECONNECTING = 5,
    /// client-reach (issue 13): reconnecting stopped (the budget is spent, or a stop code or
    /// HTTP status came): `attempt` attempts were made, `error` says why. The CLOSE follows.
    WSN_EVENT_RECONNECT_GAVE_UP = 6,
}

/// The state of a connection.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsn_conn_state {
    /// Resolving, connecting, handshaking. Sends are queued until open.
    WSN_STATE_CONNECTING = 0,
    /// Messages flow both ways.
    WSN_STATE_OPEN = 1,
    /// A Close frame was sent or received; sends fail.
    WSN_STATE_CLOSING = 2,
    /// Ended; the close event was or is being delivered.
    WSN_STATE_CLOSED = 3,
}

/// One event of a connection. Everything it points to is borrowed until the callback returns:
/// copy what you keep.
#[repr(C)]
pub struct wsn_event {
    /// Which event this is.
    pub kind: wsn_event_kind,
    /// MESSAGE: true for a text message (valid UTF-8, not NUL-terminated), false for binary.
    pub is_text: bool,
    /// MESSAGE: the payload (NULL only when `len` is 0).
    pub data: *const u8,
    /// MESSAGE: the payload length in bytes.
    pub len: usize,
    /// CLOSE: the close code (1000 normal, 1001 going away, 1005 no code sent, 1006 no closing
    /// handshake, 1002/1007/1009 protocol/UTF-8/size failures, 4000-4999 the application's).
    pub close_code: u16,
    /// CLOSE: both Close frames were exchanged.
    pub was_clean: bool,
    /// CLOSE: the close reason, NUL-terminated ("" when none).
    pub reason: *const c_char,
    /// CLOSE: what went wrong, NUL-terminated, or NULL when nothing did.
    pub error: *const c_char,
    /// CLOSE: the kind of error (WSN_OK when none): WSN_ERR_DNS, WSN_ERR_CONNECT, WSN_ERR_TLS,
    /// WSN_ERR_HANDSHAKE, WSN_ERR_TIMEOUT, WSN_ERR_PROTOCOL, WSN_ERR_IO, WSN_ERR_ABORTED.
    pub error_status: wsn_status,
    /// CLOSE: the HTTP status when the server refused the upgrade, else 0.
    pub http_status: u16,
    /// DRAIN: the id of the last message handed to the kernel (ids as wsn_conn_send returns
    /// them); 0 for the other events.
    pub sent_id: u64,
    /// RECONNECTING: the attempt about to start (1 after each drop); RECONNECT_GAVE_UP: the
    /// attempts made. 0 for the other events.
    pub attempt: u32,
    /// RECONNECTING: the delay before that attempt, in milliseconds (full jitter). 0 otherwise.
    pub delay_ms: u32,
}

/// Receives a connection's events. `user_data` is the pointer given at registration; `conn` is
/// the connection's handle (valid during the call; for a server connection, owned by the
/// application from its OPEN event on); `event` is borrowed until the callback returns.
/// Runs on a wsnative callback thread. It may call any wsnative function, including
/// wsn_conn_free(conn); it must not unwind (C++ exceptions, longjmp) into wsnative.
pub type wsn_event_cb = Option<
    unsafe extern "C" fn(user_data: *mut c_void, conn: *mut wsn_conn, event: *const wsn_event),
>;

/// Calls a C event callback.
pub(crate) struct CHandler {
    pub(crate) callback: unsafe extern "C" fn(*mut c_void, *mut wsn_conn, *const wsn_event),
    pub(crate) user_data: usize,
    /// Server connections: the application's reference is taken at the open event.
    pub(crate) server: bool,
    /// A server's release hook, run once every holder let go.
    pub(crate) _release: Option<Arc<super::server::ReleaseSlot>>,
}

impl Handler for CHandler {
    fn on_event(&self, conn: &Arc<Conn>, event: &Event) {
        hand_over_at_open(conn, event, self.server);
        let mut strings = Vec::new();
        let ev = c_event(event, &mut strings);
        let _message = match event {
            Event::Message { data, .. } => Some(InCallback::enter(data)),
            _ => None,
        };
        unsafe { (self.callback)(self.user_data as *mut c_void, as_ptr(conn), &ev) }
    }
}

thread_local! {
    /// The message whose callback this thread is running.
    static MESSAGE_IN_CALLBACK: std::cell::RefCell<Option<bytes::Bytes>> = const { std::cell::RefCell::new(None) };
}

/// Marks a message as the one whose callback runs on this thread, until dropped.
struct InCallback(Option<bytes::Bytes>);

impl InCallback {
    fn enter(data: &bytes::Bytes) -> InCallback {
        let prev = MESSAGE_IN_CALLBACK
            .try_with(|m| m.replace(Some(data.clone())))
            .unwrap_or(None);
        InCallback(prev)
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        let prev = self.0.take();
        let _ = MESSAGE_IN_CALLBACK.try_with(|m| *m.borrow_mut() = prev);
    }
}

/// The bytes of a message to send, as the send queue keeps them: copied, except when they lie
/// inside the message whose callback is running on this thread (an echo or a relay from the
/// callback): that message's buffer is immutable and shared by reference count, so the send
/// keeps a slice of it instead of a copy (64 KiB echoed: one memcpy and one allocation fewer).
fn payload(bytes: &[u8]) -> bytes::Bytes {
    if !bytes.is_empty() {
        let shared = MESSAGE_IN_CALLBACK
            .try_with(|m| {
                m.borrow().as_ref().and_then(|msg| {
                    let start = msg.as_ptr() as usize;
                    let at = bytes.as_ptr() as usize;
                    (at >= start && at + bytes.len() <= start + msg.len())
                        .then(|| msg.slice_ref(bytes))
                })
            })
            .ok()
            .flatten();
        if let Some(b) = shared {
            return b;
        }
    }
    crate::protocol::buffers::copy(bytes)
}

/// At a server connection's open event the application takes its handle: one reference of
/// the connection, given back with wsn_conn_free. (A client's handle was handed out by
/// wsn_connect.)
pub(crate) fn hand_over_at_open(conn: &Arc<Conn>, event: &Event, server: bool) {
    if server && matches!(event, Event::Open) {
        let _owned_by_the_application: *mut wsn_conn = to_arc(conn.clone());
    }
}

/// The C view of `event`; its strings are kept in `strings`, which must outlive the view.
pub(crate) fn c_event(event: &Event, strings: &mut Vec<CString>) -> wsn_event {
    let mut ev = wsn_event {
        kind: wsn_event_kind::WSN_EVENT_OPEN,
        is_text: false,
        data: std::ptr::null(),
        len: 0,
        close_code: 0,
        was_clean: false,
        reason: c"".as_ptr(),
        error: std::ptr::null(),
        error_status: wsn_status::WSN_OK,
        http_status: 0,
        sent_id: 0,
        attempt: 0,
        delay_ms: 0,
    };
    match event {
        Event::Open => {}
        Event::Message { text, data } => {
            ev.kind = wsn_event_kind::WSN_EVENT_MESSAGE;
            ev.is_text = *text;
            ev.data = if data.is_empty() {
                std::ptr::null()
            } else {
                data.as_ptr()
            };
            ev.len = data.len();
        }
        Event::Drain { sent_id } => {
            ev.kind = wsn_event_kind::WSN_EVENT_DRAIN;
            ev.sent_id = *sent_id;
        }
        Event::Close(info) => {
            ev.kind = wsn_event_kind::WSN_EVENT_CLOSE;
            ev.close_code = info.code;
            ev.was_clean = info.was_clean;
            let reason = to_cstring(&info.reason);
            ev.reason = reason.as_ptr(); // a CString's buffer does not move with it
            strings.push(reason);
            if let Some(e) = &info.error {
                let text = to_cstring(e.message());
                ev.error = text.as_ptr();
                strings.push(text);
                ev.error_status = e.kind().into();
                ev.http_status = e.http_status();
            }
        }
        // client-reach (issue 13)
        Event::Reconnecting {
            attempt,
            delay,
            code,
            error,
        } => {
            ev.kind = wsn_event_kind::WSN_EVENT_RECONNECTING;
            ev.attempt = *attempt;
            ev.delay_ms = delay.as_millis().min(u32::MAX as u128) as u32;
            ev.close_code = *code;
            if let Some(e) = error {
                let text = to_cstring(e.message());
                ev.error = text.as_ptr();
                strings.push(text);
                ev.error_status = e.kind().into();
                ev.http_status = e.http_status();
            }
        }
        Event::ReconnectGaveUp { attempts, error } => {
            ev.kind = wsn_event_kind::WSN_EVENT_RECONNECT_GAVE_UP;
            ev.attempt = *attempts;
            let text = to_cstring(error.message());
            ev.error = text.as_ptr();
            strings.push(text);
            ev.error_status = error.kind().into();
            ev.http_status = error.http_status();
        }
    }
    ev
}

/// A connection handle, held for the length of the call (see `try_clone_arc`: the
/// application's own reference may be given up by a callback while the call runs).
pub(crate) unsafe fn conn_ref(conn: *const wsn_conn) -> Result<Arc<Conn>> {
    try_clone_arc(conn)
}
/// Opens a client connection to `url` (ws:// or wss://) and returns at once with the handle in
/// `*conn_out` (state CONNECTING). Then `on_event` gets WSN_EVENT_OPEN, or a WSN_EVENT_CLOSE
/// whose `error` says why it failed (DNS, refused, TLS reason, HTTP status, timeout).
/// `options` may be NULL (defaults) and is copied. `on_event` may be NULL (no events).
/// Ownership: the caller owns `*conn_out` and frees it with wsn_conn_free. Thread: any.
/// Errors: INVALID_ARGUMENT (NULL url or conn_out, bad URL or header), WSN_ERR_TLS (unreadable
/// CA file); `*conn_out` is untouched then.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_connect(
    url: *const c_char,
    options: *const wsn_client_options,
    on_event: wsn_event_cb,
    user_data: *mut c_void,
    conn_out: *mut *mut wsn_conn,
) -> wsn_status {
    let delivery = on_event.map(|cb| {
        Delivery::Callback(Arc::new(CHandler {
            callback: cb,
            user_data: user_data as usize,
            server: false,
            _release: None,
        }))
    });
    connect_with(url, options, delivery, conn_out)
}

/// The body of wsn_connect and wsn_connect_queued: checks, connects, hands out the handle.
pub(crate) unsafe fn connect_with(
    url: *const c_char,
    options: *const wsn_client_options,
    delivery: Option<Delivery>,
    conn_out: *mut *mut wsn_conn,
) -> Result<()> {
    let url = str_arg(url, "url")?;
    let conn_out = out_arg(conn_out, "conn_out")?;
    let default = crate::ClientOptions::default();
    let opts = if options.is_null() {
        &default
    } else {
        try_ref(options)?
    };
    let conn = crate::client::connect(url, opts, delivery)?;
    *conn_out = to_arc(conn);
    Ok(())
}

/// Queues a text message (`len` bytes of UTF-8, no NUL needed) and returns at once; the bytes
/// are copied. Safe from any thread; messages sent from one thread arrive in that order.
/// Allowed while CONNECTING (sent once open). Errors: INVALID_ARGUMENT (NULL conn, NULL data
/// with len > 0, invalid UTF-8), INVALID_STATE (closing or closed).
/// Thread: any, concurrently. Ownership: `data` is copied before this returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_send_text(
    conn: *mut wsn_conn,
    data: *const c_char,
    len: usize,
) -> wsn_status {
    let c = conn_ref(conn)?;
    let bytes = bytes_arg(data as *const u8, len, "data")?;
    c.send(true, payload(bytes), true).map(drop)
}

/// Queues a binary message and returns at once; the bytes are copied. Same rules as
/// wsn_conn_send_text. Errors: INVALID_ARGUMENT, INVALID_STATE.
/// Thread: any, concurrently. Ownership: `data` is copied before this returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_send_binary(
    conn: *mut wsn_conn,
    data: *const u8,
    len: usize,
) -> wsn_status {
    conn_ref(conn)?
        .send(false, payload(bytes_arg(data, len, "data")?), true)
        .map(drop)
}

/// wsn_conn_send flag: the message is text (UTF-8, checked); without it, binary.
pub const WSN_SEND_TEXT: u32 = 1;
/// wsn_conn_send flag: never compress this message, even when permessage-deflate was
/// negotiated. Use it for messages that carry secrets next to text an attacker controls
/// (CRIME/BREACH: compression ratios leak the secret).
pub const WSN_SEND_NO_COMPRESS: u32 = 2;

/// Queues a message (`flags`: WSN_SEND_TEXT or binary, WSN_SEND_NO_COMPRESS) and returns at
/// once; the bytes are copied. When `id_out` is not NULL it receives the message's id: ids
/// start at 1 and grow by one per message in queue order, so "message N was handed to the
/// kernel" is wsn_conn_get_sent_id(conn) >= N, and a WSN_EVENT_DRAIN reports the same.
/// Same rules as wsn_conn_send_text. Errors: INVALID_ARGUMENT (NULL conn, NULL data with
/// len > 0, invalid UTF-8 text, unknown flags), INVALID_STATE (closing or closed),
/// WSN_ERR_WOULD_BLOCK (the send queue is full: nothing was queued; with the
/// WSN_SEND_QUEUE_CLOSE policy the connection is being closed with 1008).
/// Thread: any, concurrently. Ownership: `data` is copied before this returns.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_send(
    conn: *mut wsn_conn,
    data: *const u8,
    len: usize,
    flags: u32,
    id_out: *mut u64,
) -> wsn_status {
    let c = conn_ref(conn)?;
    let (text, compress) = send_flags(flags)?;
    let bytes = bytes_arg(data, len, "data")?;
    let id = c.send(text, payload(bytes), compress)?;
    if !id_out.is_null() {
        *id_out = id;
    }
    Ok(())
}

/// wsn_conn_send's `flags`: (text, may be compressed); unknown flags are refused.
fn send_flags(flags: u32) -> Result<(bool, bool)> {
    if flags & !(WSN_SEND_TEXT | WSN_SEND_NO_COMPRESS) != 0 {
        return Err(Error::invalid(format!(
            "unknown send flags {flags:#x}: use WSN_SEND_TEXT and WSN_SEND_NO_COMPRESS"
        )));
    }
    Ok((
        flags & WSN_SEND_TEXT != 0,
        flags & WSN_SEND_NO_COMPRESS == 0,
    ))
}

/// Called once, as `release(user_data, data, len)`, when wsnative no longer reads the bytes
/// lent to it by wsn_conn_send_nocopy.
pub type wsn_lent_release_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, data: *const u8, len: usize)>;

/// Queues a message like wsn_conn_send, without copying its bytes: wsnative reads `data` in
/// place until it calls `release(user_data, data, len)`, after which the bytes are the
/// caller's again; until then they must stay valid and unchanged. wsnative never writes to
/// them (a client masks into its frame buffer as it writes; a server hands them to the socket
/// as they are). For large messages: a copy of each 1 MiB message costs a client about a
/// tenth of its CPU per message (`bench/`).
/// `release` is called exactly once for every call with a non-NULL `release`, whatever this
/// returns: before it returns when the message was not queued (any error); else on an I/O
/// thread once the message was written (a server's, or a client's compressed one), masked
/// into its frame (a client's), or dropped because the connection ended, also after
/// wsn_conn_free. It must not block and must not call wsnative functions: it frees or reuses
/// the buffer, or tells a thread that does. Errors: as wsn_conn_send; INVALID_ARGUMENT also
/// for a NULL `release` (nothing is called then). Thread: any, concurrently.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_send_nocopy(
    conn: *mut wsn_conn,
    data: *const u8,
    len: usize,
    flags: u32,
    release: wsn_lent_release_cb,
    user_data: *mut c_void,
    id_out: *mut u64,
) -> wsn_status {
    let Some(release) = release else {
        return Err(Error::invalid(
            "release is NULL: wsn_conn_send_nocopy must say when the bytes are free again",
        ));
    };
    // Owned from here on: every way out of this function, or the message's end, releases it.
    let lent = Lent {
        data,
        len,
        release,
        user_data,
    };
    let c = conn_ref(conn)?;
    let (text, compress) = send_flags(flags)?;
    bytes_arg(data, len, "data")?;
    let id = c.send(text, bytes::Bytes::from_owner(lent), compress)?;
    if !id_out.is_null() {
        *id_out = id;
    }
    Ok(())
}

/// Bytes lent by the application (wsn_conn_send_nocopy), handed back when dropped.
struct Lent {
    data: *const u8,
    len: usize,
    release: unsafe extern "C" fn(*mut c_void, *const u8, usize),
    user_data: *mut c_void,
}

// SAFETY: the caller of wsn_conn_send_nocopy promised that the bytes stay valid and unchanged
// until `release`, from whichever thread reads them, and that `release` may run on any thread.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        if self.data.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: valid until `release` (the caller's promise); checked non-NULL above.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // SAFETY: the caller's function, called once, with what it lent.
        unsafe { (self.release)(self.user_data, self.data, self.len) }
    }
}

/// Turns WSN_EVENT_DRAIN on (`enabled`, with a `low_water` mark in bytes) or off for this
/// connection, whatever its options said. A DRAIN comes once after the queue went over the
/// mark, after a send was refused with WSN_ERR_WOULD_BLOCK, or after this call turned them on,
/// as soon as the queue is at or below the mark (at once when it already is). Bindings turn it
/// on only while a send is awaited, so that traffic that awaits nothing pays nothing.
/// Thread: any. Errors: INVALID_ARGUMENT for NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_set_drain_events(
    conn: *mut wsn_conn,
    enabled: bool,
    low_water: usize,
) -> wsn_status {
    conn_ref(conn)?.set_drain_events(enabled, low_water);
    Ok(())
}

/// The id of the last message handed to the kernel (0 before the first, and for NULL).
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_sent_id(conn: *const wsn_conn) -> u64 {
    conn_ref(conn).map(|c| c.sent_id()).unwrap_or(0)
}

/// With manual acknowledgement (wsn_*_options_set_manual_ack): acknowledges the `count`
/// oldest received messages not acknowledged yet, which then leave the connection's receive
/// budget (so reading resumes once the budget is down to half). A message may be acknowledged
/// from inside its own callback. Acknowledging more than were received acknowledges those.
/// Without manual acknowledgement it does nothing. Thread: any. Errors: INVALID_ARGUMENT for
/// NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_ack(conn: *mut wsn_conn, count: usize) -> wsn_status {
    conn_ref(conn)?.ack(count);
    Ok(())
}

/// Starts the closing handshake and returns at once: what is queued is sent first, then the
/// Close frame; the peer's Close is awaited up to the close timeout, then the stream ends and
/// the CLOSE event reports the outcome. Closing again or after the peer closed does nothing.
/// `reason` may be NULL; at most 123 bytes. Thread: any.
/// Errors: INVALID_ARGUMENT (NULL conn, a code that may not be sent, long or non-UTF-8 reason).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_close(
    conn: *mut wsn_conn,
    code: u16,
    reason: *const c_char,
) -> wsn_status {
    let c = conn_ref(conn)?;
    let reason = opt_str_arg(reason, "reason")?.unwrap_or("");
    c.close(code, reason)
}

/// Ends the connection at once, without a closing handshake; the CLOSE event follows
/// (1006, WSN_ERR_ABORTED). Thread: any. Errors: INVALID_ARGUMENT for NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_abort(conn: *mut wsn_conn) -> wsn_status {
    conn_ref(conn)?.abort();
    Ok(())
}

/// The connection's state (WSN_STATE_CLOSED for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_state(conn: *const wsn_conn) -> wsn_conn_state {
    match conn_ref(conn).map(|c| c.state()) {
        Ok(State::Connecting) => wsn_conn_state::WSN_STATE_CONNECTING,
        Ok(State::Open) => wsn_conn_state::WSN_STATE_OPEN,
        Ok(State::Closing) => wsn_conn_state::WSN_STATE_CLOSING,
        Ok(State::Closed) | Err(_) => wsn_conn_state::WSN_STATE_CLOSED,
    }
}

/// Bytes queued by the send functions and not yet handed to the socket (0 for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_buffered_amount(conn: *const wsn_conn) -> usize {
    conn_ref(conn).map(|c| c.buffered_amount()).unwrap_or(0)
}

/// The connection's id: a number unique in the process, never 0 (0 for NULL). Log records about
/// the connection carry it as their `conn_id` (wsn_log_set_callback). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_id(conn: *const wsn_conn) -> u64 {
    conn_ref(conn).map(|c| c.id()).unwrap_or(0)
}

/// The peer's address as "ip:port" ("" before the TCP connection exists, NULL for NULL).
/// Ownership: borrowed, valid until wsn_conn_free. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_peer_addr(conn: *const wsn_conn) -> *const c_char {
    conn_ref(conn)
        .map(|c| c.peer_addr_cstr().as_ptr())
        .unwrap_or(std::ptr::null())
}

/// The negotiated subprotocol ("" when none, NULL for NULL). Ownership: borrowed, valid until
/// wsn_conn_free. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_subprotocol(conn: *const wsn_conn) -> *const c_char {
    conn_ref(conn)
        .map(|c| c.subprotocol().as_ptr())
        .unwrap_or(std::ptr::null())
}

/// The extensions agreed in the handshake, as the Sec-WebSocket-Extensions header said them
/// (for example "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
/// "" when none, NULL for NULL. Ownership: borrowed, valid until wsn_conn_free. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_extensions(conn: *const wsn_conn) -> *const c_char {
    conn_ref(conn)
        .map(|c| c.extensions().as_ptr())
        .unwrap_or(std::ptr::null())
}

/// Pauses (`paused` true) or resumes reading from the peer: while paused, no message is read
/// after the one in progress, so TCP slows the peer down instead of messages piling up in the
/// application. A close overrides the pause (the peer's Close is read, and the messages before
/// it delivered), and the heartbeat does not declare a paused connection dead: a Pong may wait
/// unread behind messages. Thread: any. Errors: INVALID_ARGUMENT for NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_set_reading_paused(
    conn: *mut wsn_conn,
    paused: bool,
) -> wsn_status {
    conn_ref(conn)?.set_reading_paused(paused);
    Ok(())
}

/// Stores a pointer of the application's with the connection (wsnative never reads it).
/// Useful for server connections, whose events carry the server's user_data. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_set_user_data(
    conn: *mut wsn_conn,
    user_data: *mut c_void,
) -> wsn_status {
    conn_ref(conn)?.set_user_data(user_data as usize);
    Ok(())
}

/// The pointer stored with wsn_conn_set_user_data (NULL when none or for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_user_data(conn: *const wsn_conn) -> *mut c_void {
    conn_ref(conn)
        .map(|c| c.user_data() as *mut c_void)
        .unwrap_or(std::ptr::null_mut())
}

/// Frees the handle. No callback for this connection starts after this returns. Called from a
/// thread that is not running a wsnative callback, it also waits for a callback of this
/// connection running on another thread, so none runs after it returns. Called from inside any
/// wsnative callback it never waits (two callbacks freeing each other's handles would
/// otherwise wait forever): its own callback finishes, and a callback of this connection on
/// another thread may still be finishing; free what callbacks use in the release hook
/// (wsn_conn_set_release_hook), which runs after the last one. An open connection is closed
/// with 1001 in the background, bounded by its close timeout. NULL is ignored. A second free
/// of the same handle is harmless while the handle is still alive (inside one of its callbacks,
/// or later in the same poll batch), and undefined after that. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_free(conn: *mut wsn_conn) {
    let Ok(c) = conn_ref(conn) else { return };
    if !c.mark_app_freed() {
        return;
    }
    if let Some(conn) = free_arc(conn) {
        conn.release();
    }
}

/// Called once with its `arg` when a freed handle's callbacks have all ended.
pub type wsn_release_cb = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// Sets a hook that runs once, as `release(arg)`, after the connection was freed with
/// wsn_conn_free and no callback of it runs any more: the place to free the user data its
/// callbacks use (a binding's GCHandle or Python object), with no lock and no waiting. It runs
/// on the thread whose work ended last: the one calling wsn_conn_free, or the callback thread
/// whose callback ended after it. `release` NULL removes the hook. Setting it again replaces
/// the previous hook, which then never runs. Thread: any, before wsn_conn_free.
/// Errors: INVALID_ARGUMENT for NULL conn.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_set_release_hook(
    conn: *mut wsn_conn,
    release: wsn_release_cb,
    arg: *mut c_void,
) -> wsn_status {
    let c = conn_ref(conn)?;
    let arg = arg as usize;
    match release {
        Some(f) => c.set_release_hook(Box::new(move || unsafe { f(arg as *mut c_void) })),
        None => c.set_release_hook(Box::new(|| {})),
    }
    Ok(())
}
