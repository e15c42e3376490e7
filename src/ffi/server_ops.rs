//! Operations for C (issue 15 §3): session deadlines, tags and close by tag, broadcast, the
//! staggered drain, stats, and pings with their round-trip time.

use super::handle::{as_ptr, try_clone_arc, try_ref};
use super::{bytes_arg, opt_str_arg, str_arg, wsn_conn, wsn_request, wsn_server, wsn_status};
use crate::error::{Error, Result};
use crate::server::Server;
use std::ffi::c_char;
use std::time::Duration;
use wsnative_macros::ffi_fn;

/// The version of the stats and report structs below (grows when fields are added at their
/// end).
pub const WSN_STATS_VERSION: u32 = 1;

/// A connection's counters, filled by wsn_conn_get_stats. Set `size` to sizeof(wsn_conn_stats)
/// before the call: the library fills at most that many bytes (so a program built against an
/// older, shorter struct keeps working) and sets `size` to the bytes it filled and `version`
/// to WSN_STATS_VERSION.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct wsn_conn_stats {
    /// In: sizeof(wsn_conn_stats). Out: the bytes filled.
    pub size: u32,
    /// Out: WSN_STATS_VERSION.
    pub version: u32,
    /// Bytes the socket took (frame headers included; compressed payloads as compressed).
    pub bytes_sent: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Messages handed to the kernel (the last sent id).
    pub messages_sent: u64,
    /// Whole messages received.
    pub messages_received: u64,
    /// Bytes queued and not yet handed to the kernel (wsn_conn_get_buffered_amount).
    pub queued_bytes: u64,
    /// Round-trip time of the last answered Ping (the heartbeat's or wsn_conn_ping's), in
    /// microseconds; 0 before the first.
    pub last_rtt_us: u64,
    /// How many round trips were measured (grows by one with each answered Ping).
    pub rtt_count: u64,
    /// Milliseconds since the connection was made (a server's: since its handshake began).
    pub age_ms: u64,
}

/// A server's counters, filled by wsn_server_get_stats (same `size`/`version` rule as
/// wsn_conn_stats). Refusals by HTTP status and closes by code: wsn_server_get_refusals and
/// wsn_server_get_closes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct wsn_server_stats {
    /// In: sizeof(wsn_server_stats). Out: the bytes filled.
    pub size: u32,
    /// Out: WSN_STATS_VERSION.
    pub version: u32,
    /// Connections open now (handshake complete, not yet ended).
    pub open_connections: u64,
    /// Handshakes in progress (TCP accepted, upgrade not decided yet).
    pub handshakes_in_progress: u64,
    /// Connections that completed their handshake since the server started.
    pub accepted_total: u64,
    /// Upgrade requests refused with an HTTP status (any).
    pub refused_total: u64,
    /// Connections that ended (any close code).
    pub closed_total: u64,
}

/// What wsn_server_broadcast did (same `size`/`version` rule as wsn_conn_stats).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct wsn_broadcast_report {
    /// In: sizeof(wsn_broadcast_report). Out: the bytes filled.
    pub size: u32,
    /// Out: WSN_STATS_VERSION.
    pub version: u32,
    /// Connections whose send queue took the message.
    pub queued: u64,
    /// Connections whose send queue was full: nothing queued (WSN_SEND_QUEUE_REFUSE), or the
    /// connection is being closed with 1008 (WSN_SEND_QUEUE_CLOSE).
    pub refused: u64,
    /// Connections already closing or closed (nothing queued).
    pub not_open: u64,
}

/// What wsn_server_drain did (same `size`/`version` rule as wsn_conn_stats).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct wsn_drain_report {
    /// In: sizeof(wsn_drain_report). Out: the bytes filled.
    pub size: u32,
    /// Out: WSN_STATS_VERSION.
    pub version: u32,
    /// Connections open when the drain began.
    pub connections: u64,
    /// Of those, the ones whose closing handshake completed.
    pub closed_clean: u64,
    /// The ones still open at the end of the window, aborted then.
    pub aborted: u64,
    /// The ones that ended otherwise (the peer vanished, a close timeout).
    pub failed: u64,
}

/// A struct that starts with `size` and `version` (u32 each).
trait Sized2: Copy {
    fn set_header(&mut self, size: u32);
}
macro_rules! sized2 {
    ($($t:ty),*) => {$(
        impl Sized2 for $t {
            fn set_header(&mut self, size: u32) {
                self.size = size;
                self.version = WSN_STATS_VERSION;
            }
        }
    )*};
}
sized2!(
    wsn_conn_stats,
    wsn_server_stats,
    wsn_broadcast_report,
    wsn_drain_report
);

/// Copies `full` into `out`, at most the caller's `out->size` bytes.
unsafe fn fill<T: Sized2>(out: *mut T, mut full: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    let theirs = std::ptr::read_unaligned(out as *const u32) as usize;
    if theirs < 8 {
        return Err(Error::invalid(format!(
            "{what}->size is {theirs}: set it to sizeof the struct before the call"
        )));
    }
    let n = theirs.min(std::mem::size_of::<T>());
    full.set_header(n as u32);
    std::ptr::copy_nonoverlapping(&full as *const T as *const u8, out as *mut u8, n);
    Ok(())
}

/// Fills an optional report (NULL: not wanted).
unsafe fn fill_opt<T: Sized2>(out: *mut T, full: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Ok(());
    }
    fill(out, full, what)
}

unsafe fn server_ref<'a>(server: *const wsn_server) -> Result<&'a Server> {
    try_ref(server).map(|s| &s.inner)
}

unsafe fn request_ref<'a>(request: *const wsn_request) -> Result<&'a crate::server::Request> {
    try_ref(request).map(|r| &r.request)
}

unsafe fn reason_arg<'a>(reason: *const c_char) -> Result<&'a str> {
    Ok(opt_str_arg(reason, "reason")?.unwrap_or(""))
}

// --- session deadlines ---------------------------------------------------------------------

/// Sets the connection's session deadline: `after_ms` milliseconds from now the connection is
/// closed with `code` and `reason` (for example 4401 "session expired"; `reason` may be NULL,
/// at most 123 bytes). Calling it again replaces the deadline; `after_ms` 0 clears it (no
/// deadline is the default). A connection that has ended ignores it. Works on client
/// connections too. Thread: any, including callbacks.
/// Errors: INVALID_ARGUMENT (NULL conn, a code that may not be sent, long reason).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_set_deadline(
    conn: *mut wsn_conn,
    after_ms: u64,
    code: u16,
    reason: *const c_char,
) -> wsn_status {
    let reason = reason_arg(reason)?;
    let after = (after_ms > 0).then(|| Duration::from_millis(after_ms));
    try_clone_arc(conn)?.set_deadline(after, code, reason)
}

/// From the accept callback: the session deadline of the connection if it is accepted,
/// counted from this call (same rules as wsn_conn_set_deadline; 0 clears).
/// Thread: only inside the accept callback that was given `request`.
/// Errors: INVALID_ARGUMENT (NULL request, a code that may not be sent, long reason).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_set_deadline(
    request: *mut wsn_request,
    after_ms: u64,
    code: u16,
    reason: *const c_char,
) -> wsn_status {
    let r = request_ref(request)?;
    let reason = reason_arg(reason)?;
    let after = (after_ms > 0).then(|| Duration::from_millis(after_ms));
    r.set_deadline(after, code, reason)
}

// --- tags ----------------------------------------------------------------------------------

/// From the accept callback: a tag (a user id, a session id, a room: 1-256 bytes of UTF-8)
/// the connection carries from its open on, if it is accepted.
/// Thread: only inside the accept callback that was given `request`.
/// Errors: INVALID_ARGUMENT (NULL, empty or long tag, more than 64 tags).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_request_add_tag(
    request: *mut wsn_request,
    tag: *const c_char,
) -> wsn_status {
    let r = request_ref(request)?;
    r.add_tag(str_arg(tag, "tag")?)
}

/// Adds a tag (1-256 bytes of UTF-8; at most 64 per connection) to a connection; a server
/// connection is then found by wsn_server_close_tag, wsn_server_count_tag,
/// wsn_server_list_tag and wsn_server_broadcast. Adding a tag it carries does nothing.
/// Thread: any. Errors: INVALID_ARGUMENT (NULL, empty or long tag, too many tags).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_add_tag(conn: *mut wsn_conn, tag: *const c_char) -> wsn_status {
    let tag = str_arg(tag, "tag")?;
    try_clone_arc(conn)?.add_tag(tag).map(drop)
}

/// Removes a tag from a connection (nothing happens when it did not carry it).
/// Thread: any. Errors: INVALID_ARGUMENT (NULL conn or tag).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_remove_tag(
    conn: *mut wsn_conn,
    tag: *const c_char,
) -> wsn_status {
    let tag = str_arg(tag, "tag")?;
    try_clone_arc(conn)?.remove_tag(tag);
    Ok(())
}

/// Whether the connection carries `tag` (false for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_has_tag(conn: *const wsn_conn, tag: *const c_char) -> bool {
    match (try_ref(conn), str_arg(tag, "tag")) {
        (Ok(c), Ok(t)) => c.has_tag(t),
        _ => false,
    }
}

/// Closes every open connection of the server that carries `tag` (a log-out) with `code`
/// and `reason` (may be NULL); `*closed_out` (may be NULL) gets how many. Their CLOSE events
/// follow as usual. Thread: any, including callbacks; never waits.
/// Errors: INVALID_ARGUMENT (NULL server or tag, a code that may not be sent, long reason).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_close_tag(
    server: *mut wsn_server,
    tag: *const c_char,
    code: u16,
    reason: *const c_char,
    closed_out: *mut usize,
) -> wsn_status {
    let s = server_ref(server)?;
    let n = s.close_tag(str_arg(tag, "tag")?, code, reason_arg(reason)?)?;
    if !closed_out.is_null() {
        *closed_out = n;
    }
    Ok(())
}

/// How many open connections of the server carry `tag` (0 for NULL). Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_count_tag(
    server: *const wsn_server,
    tag: *const c_char,
) -> usize {
    match (server_ref(server), str_arg(tag, "tag")) {
        (Ok(s), Ok(t)) => s.count_tag(t),
        _ => 0,
    }
}

/// Lists the open connections of the server that carry `tag`, oldest first: writes up to
/// `capacity` handles into `out` (may be NULL when `capacity` is 0) and returns how many carry
/// the tag (which may be more than `capacity`). The handles are the very ones the application
/// got in their WSN_EVENT_OPEN (compare them, or read their user data); no new reference is
/// made, so one the application frees meanwhile must not be used. 0 for NULL server or tag.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_list_tag(
    server: *const wsn_server,
    tag: *const c_char,
    out: *mut *mut wsn_conn,
    capacity: usize,
) -> usize {
    let (Ok(s), Ok(t)) = (server_ref(server), str_arg(tag, "tag")) else {
        return 0;
    };
    let conns = s.connections_with_tag(t);
    if !out.is_null() {
        for (i, c) in conns.iter().take(capacity).enumerate() {
            *out.add(i) = as_ptr::<wsn_conn>(c);
        }
    }
    conns.len()
}

// --- broadcast -----------------------------------------------------------------------------

/// Sends one message to every open connection of the server, or, with `tag` non-NULL, to
/// those carrying it. The frame is built once, uncompressed, and each connection's send queue
/// holds a reference to it (not a copy); each connection's send limit and policy apply
/// (wsn_server_options_set_max_send_queue, _send_queue_policy), and no connection waits for
/// another. `flags`: WSN_SEND_TEXT (UTF-8 checked) or 0 for binary. `*report` (may be NULL;
/// set its `size`) says how many queued it and how many refused. Thread: any, including
/// callbacks; never waits for the network. Ownership: `data` is copied once before this
/// returns.
/// Errors: INVALID_ARGUMENT (NULL server, NULL data with len > 0, invalid UTF-8 text, unknown
/// flags, a report whose size is not set).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_broadcast(
    server: *mut wsn_server,
    tag: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
    report: *mut wsn_broadcast_report,
) -> wsn_status {
    let s = server_ref(server)?;
    if flags & !super::WSN_SEND_TEXT != 0 {
        return Err(Error::invalid(format!(
            "unknown broadcast flags {flags:#x} (WSN_SEND_TEXT or 0)"
        )));
    }
    let tag = opt_str_arg(tag, "tag")?;
    let bytes = bytes_arg(data, len, "data")?;
    let r = s.broadcast(tag, flags & super::WSN_SEND_TEXT != 0, bytes)?;
    fill_opt(
        report,
        wsn_broadcast_report {
            queued: r.queued as u64,
            refused: r.refused as u64,
            not_open: r.not_open as u64,
            ..Default::default()
        },
        "report",
    )
}

// --- drain ---------------------------------------------------------------------------------

/// Drains the server for a deploy: stops accepting (new requests get 503), then closes its
/// open connections with `code` and `reason` (1001 going away, 1012 service restart, or an
/// application code; `reason` may be NULL) at even intervals over the first three quarters of
/// `window_ms`, oldest first, so that their clients do not all reconnect at once; the last
/// quarter lets the last closing handshakes finish. Connections still open at the end of the
/// window are aborted. Returns once every connection's CLOSE was delivered, with `*report`
/// (may be NULL; set its `size`) counting the clean closes and the aborts. The server then is
/// stopped; free it as usual.
/// Thread: not inside a wsnative callback (it waits for the whole window).
/// Errors: INVALID_ARGUMENT (NULL server, a code that may not be sent, long reason, a report
/// whose size is not set), INVALID_STATE (called from a callback).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_drain(
    server: *mut wsn_server,
    window_ms: u32,
    code: u16,
    reason: *const c_char,
    report: *mut wsn_drain_report,
) -> wsn_status {
    let s = server_ref(server)?;
    if !report.is_null() && std::ptr::read_unaligned(report as *const u32) < 8 {
        return Err(Error::invalid(
            "report->size is not set: set it to sizeof(wsn_drain_report)",
        ));
    }
    let r = s.drain(
        Duration::from_millis(window_ms as u64),
        code,
        reason_arg(reason)?,
    )?;
    fill_opt(
        report,
        wsn_drain_report {
            connections: r.connections as u64,
            closed_clean: r.closed_clean as u64,
            aborted: r.aborted as u64,
            failed: r.failed as u64,
            ..Default::default()
        },
        "report",
    )
}

// --- stats and pings -----------------------------------------------------------------------

/// Fills `*stats` with the connection's counters (set `stats->size` first).
/// Thread: any. Errors: INVALID_ARGUMENT (NULL, size not set).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_get_stats(
    conn: *const wsn_conn,
    stats: *mut wsn_conn_stats,
) -> wsn_status {
    let s = try_ref(conn)?.stats();
    fill(
        stats,
        wsn_conn_stats {
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            messages_sent: s.messages_sent,
            messages_received: s.messages_received,
            queued_bytes: s.queued_bytes,
            last_rtt_us: s.last_rtt_us,
            rtt_count: s.rtt_count,
            age_ms: s.age_ms,
            ..Default::default()
        },
        "stats",
    )
}

/// Sends a Ping now (besides the heartbeat's); when its Pong comes, the connection's stats
/// record the round-trip time (`last_rtt_us`, and `rtt_count` grows by one), for applications
/// with their own liveness policy. Thread: any; never waits.
/// Errors: INVALID_ARGUMENT (NULL), INVALID_STATE (not open).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_conn_ping(conn: *mut wsn_conn) -> wsn_status {
    try_ref(conn)?.ping()
}

/// Fills `*stats` with the server's counters (set `stats->size` first).
/// Thread: any. Errors: INVALID_ARGUMENT (NULL, size not set).
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_get_stats(
    server: *const wsn_server,
    stats: *mut wsn_server_stats,
) -> wsn_status {
    let s = server_ref(server)?.stats();
    fill(
        stats,
        wsn_server_stats {
            open_connections: s.open_connections as u64,
            handshakes_in_progress: s.handshakes_in_progress as u64,
            accepted_total: s.accepted_total,
            refused_total: s.refused_total(),
            closed_total: s.closed_total(),
            ..Default::default()
        },
        "stats",
    )
}

/// Writes up to `capacity` (code, count) pairs into `codes`/`counts` (may be NULL when
/// `capacity` is 0), lowest code first, and returns how many there are.
unsafe fn pairs(
    map: &std::collections::BTreeMap<u16, u64>,
    codes: *mut u16,
    counts: *mut u64,
    capacity: usize,
) -> usize {
    if !codes.is_null() && !counts.is_null() {
        for (i, (c, n)) in map.iter().take(capacity).enumerate() {
            *codes.add(i) = *c;
            *counts.add(i) = *n;
        }
    }
    map.len()
}

/// The server's refusals by HTTP status: writes up to `capacity` statuses and their counts
/// into `statuses` and `counts` (both may be NULL when `capacity` is 0), lowest status first,
/// and returns how many different statuses there are. 0 for NULL server. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_get_refusals(
    server: *const wsn_server,
    statuses: *mut u16,
    counts: *mut u64,
    capacity: usize,
) -> usize {
    match server_ref(server) {
        Ok(s) => pairs(&s.stats().refusals, statuses, counts, capacity),
        Err(_) => 0,
    }
}

/// The server's ended connections by close code (as their CLOSE events said): writes up to
/// `capacity` codes and their counts into `codes` and `counts` (both may be NULL when
/// `capacity` is 0), lowest code first, and returns how many different codes there are. 0 for
/// NULL server. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_get_closes(
    server: *const wsn_server,
    codes: *mut u16,
    counts: *mut u64,
    capacity: usize,
) -> usize {
    match server_ref(server) {
        Ok(s) => pairs(&s.stats().closes, codes, counts, capacity),
        Err(_) => 0,
    }
}
