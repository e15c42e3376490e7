//! Option objects for C: opaque, created with `_new`, configured with typed setters, freed
//! with `_free`. A connect or listen copies them, so one object may serve many calls.

use super::handle::{free_box, to_box, try_mut, Boxed, Castable};
use super::{str_arg, wsn_status};
use crate::error::{Error, Result};
use crate::options::{
    check_at_least, check_header, check_subprotocol, ClientOptions, ConnectionSettings, Heartbeat,
    ServerOptions, TlsRoots,
};
use std::ffi::c_char;
use std::time::Duration;
use wsnative_macros::ffi_fn;

/// Options for wsn_connect. Create with wsn_client_options_new, free with
/// wsn_client_options_free. Not thread-safe: configure from one thread at a time.
pub struct wsn_client_options {
    _private: [u8; 0],
}

impl Castable for wsn_client_options {
    type Rust = ClientOptions;
    type Owned = Boxed;
    const WHAT: &'static str = "options";
}

/// Options for wsn_server_listen. Create with wsn_server_options_new, free with
/// wsn_server_options_free. Not thread-safe: configure from one thread at a time.
pub struct wsn_server_options {
    _private: [u8; 0],
}

impl Castable for wsn_server_options {
    type Rust = CServerOptions;
    type Owned = Boxed;
    const WHAT: &'static str = "options";
}

/// What a wsn_server_options handle stands for: the core's options, plus the C HTTP handler,
/// which is bound to the server's user_data only when it listens.
pub(crate) struct CServerOptions {
    pub(crate) inner: ServerOptions,
    pub(crate) http_cb: super::http::wsn_http_cb,
}

/// Which certificate authorities a client trusts for wss:// (plus any CA files added).
#[repr(u32)]
pub enum wsn_tls_roots {
    /// The Mozilla roots bundled in the library (the default).
    WSN_TLS_ROOTS_BUNDLED = 0,
    /// The operating system's certificate store.
    WSN_TLS_ROOTS_SYSTEM = 1,
    /// Only the CA files added with wsn_client_options_add_ca_file.
    WSN_TLS_ROOTS_NONE = 2,
}

/// How a connection checks that its peer is alive.
#[repr(u32)]
pub enum wsn_heartbeat {
    /// Ping every interval; no Pong within the pong timeout ends the connection (the default).
    WSN_HEARTBEAT_PING = 0,
    /// Unsolicited Pong every interval: keeps proxies from idling the connection out, never times out.
    WSN_HEARTBEAT_PONG = 1,
}

fn millis(v: u32) -> Duration {
    Duration::from_millis(v as u64)
}

fn positive(v: u32, what: &str) -> Result<Duration> {
    let d = millis(v);
    crate::options::check_timeout(d, what)?;
    Ok(d)
}

unsafe fn client<'a>(o: *mut wsn_client_options) -> Result<&'a mut ClientOptions> {
    try_mut(o)
}

pub(crate) unsafe fn server<'a>(o: *mut wsn_server_options) -> Result<&'a mut ServerOptions> {
    try_mut(o).map(|o| &mut o.inner)
}

fn set_heartbeat(c: &mut ConnectionSettings, kind: u32) -> Result<()> {
    c.heartbeat = match kind {
        0 => Heartbeat::Ping,
        1 => Heartbeat::Pong,
        k => return Err(Error::invalid(format!("unknown heartbeat kind {k}"))),
    };
    Ok(())
}

fn set_max_receive_queue(c: &mut ConnectionSettings, bytes: usize) -> Result<()> {
    check_at_least(bytes, 1, "max receive queue")?;
    c.max_receive_queue = bytes;
    Ok(())
}

fn set_max_message_size(c: &mut ConnectionSettings, size: usize) -> Result<()> {
    check_at_least(size, 1, "max message size")?;
    c.max_message_size = size;
    Ok(())
}

/// Sets the compression settings when the result is valid (the core's rules).
fn set_compression(
    c: &mut ConnectionSettings,
    f: impl FnOnce(&mut crate::protocol::DeflateConfig),
) -> Result<()> {
    let mut next = c.compression.clone();
    f(&mut next);
    next.validate()?;
    c.compression = next;
    Ok(())
}

/// A new client options object with the defaults: connect and handshake timeouts 10 s, close
/// timeout 5 s, max message 64 MiB, ping every 30 s with a 30 s pong timeout, bundled TLS roots.
/// Ownership: the caller owns it and frees it with wsn_client_options_free. Never NULL.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_client_options_new() -> *mut wsn_client_options {
    to_box(ClientOptions::default())
}

/// Frees client options. NULL is ignored. Connections made with them are not affected.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_free(options: *mut wsn_client_options) {
    drop(free_box(options));
}

/// Time allowed for DNS and the TCP connection (default 10000). Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_connect_timeout_ms(
    options: *mut wsn_client_options,
    ms: u32,
) -> wsn_status {
    client(options)?.connect_timeout = positive(ms, "connect timeout")?;
    Ok(())
}

/// Time allowed for the TLS and WebSocket handshakes (default 10000). Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_handshake_timeout_ms(
    options: *mut wsn_client_options,
    ms: u32,
) -> wsn_status {
    client(options)?.handshake_timeout = positive(ms, "handshake timeout")?;
    Ok(())
}

/// How long a close may go without progress (default 5000): while queued data is still being
/// written before the Close frame, the time counts from the last byte the socket took; once
/// the Close frame is out, it is how long the peer has to answer it. Errors: INVALID_ARGUMENT
/// for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_close_timeout_ms(
    options: *mut wsn_client_options,
    ms: u32,
) -> wsn_status {
    client(options)?.conn.close_timeout = positive(ms, "close timeout")?;
    Ok(())
}

/// The longest a close may take in all (default 30000), however slowly the peer keeps reading:
/// a peer that takes a byte now and then cannot hold a close open past it. The close then
/// ends unclean (1006, WSN_ERR_TIMEOUT). Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_close_max_ms(
    options: *mut wsn_client_options,
    ms: u32,
) -> wsn_status {
    client(options)?.conn.close_max = positive(ms, "close max")?;
    Ok(())
}

/// Most received messages not consumed yet (default 1024): above it, reading pauses until they
/// are down to half, as for the byte budget (wsn_client_options_set_max_receive_queue). A
/// message is consumed when its callback returns (poll mode: at the next poll), or, with manual
/// acknowledgement, when acknowledged. Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_max_receive_messages(
    options: *mut wsn_client_options,
    messages: usize,
) -> wsn_status {
    check_at_least(messages, 1, "max receive messages")?;
    client(options)?.conn.max_receive_messages = messages;
    Ok(())
}

/// With `manual` true, a received message stays in the receive budget until the application
/// acknowledges it with wsn_conn_ack, not only until its callback returns (or the next poll):
/// for applications and bindings that hand messages on to a queue of their own, so that a peer
/// cannot fill memory that nobody reads (default false). Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_manual_ack(
    options: *mut wsn_client_options,
    manual: bool,
) -> wsn_status {
    client(options)?.conn.manual_ack = manual;
    Ok(())
}

/// Bytes queued for sending and not yet handed to the kernel above which a send fails with
/// WSN_ERR_WOULD_BLOCK or closes the connection (wsn_client_options_set_send_queue_policy).
/// One message always fits an empty queue. Default 64 MiB. Errors: INVALID_ARGUMENT for NULL
/// or 0. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_max_send_queue(
    options: *mut wsn_client_options,
    bytes: usize,
) -> wsn_status {
    check_at_least(bytes, 1, "max send queue")?;
    client(options)?.conn.max_send_queue = bytes;
    Ok(())
}

/// What a send does when the send queue is full: WSN_SEND_QUEUE_REFUSE (the default: the send
/// fails with WSN_ERR_WOULD_BLOCK and queues nothing) or WSN_SEND_QUEUE_CLOSE (the connection is
/// closed with 1008, its CLOSE event carrying WSN_ERR_WOULD_BLOCK: a server's answer to a
/// client that reads too slowly). Errors: INVALID_ARGUMENT for NULL or another value.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_send_queue_policy(
    options: *mut wsn_client_options,
    policy: u32,
) -> wsn_status {
    let p = send_queue_policy(policy)?;
    client(options)?.conn.send_queue_policy = p;
    Ok(())
}

/// Turns WSN_EVENT_DRAIN on (`enabled` true) or off (the default) for the connections made
/// with these options: a DRAIN, carrying the id of the last message handed to the kernel, comes
/// once the send queue is at or below `low_water` bytes after it went over it or after a send
/// was refused with WSN_ERR_WOULD_BLOCK (not after every write). For awaiting sends, and for
/// producers that send until WSN_ERR_WOULD_BLOCK and resume at the drain;
/// wsn_conn_set_drain_events changes it per connection. Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_drain_events(
    options: *mut wsn_client_options,
    enabled: bool,
    low_water: usize,
) -> wsn_status {
    client(options)?.conn.drain_low_water = enabled.then_some(low_water);
    Ok(())
}

/// permessage-deflate (RFC 7692), off by default. A client with it on offers it; a server
/// with it on accepts a client's offer (browsers always offer it). When on, by default neither
/// side keeps its compression context between messages: a connection then holds no zlib state
/// while idle (with context takeover each would keep about 418 KiB), at the price of a worse
/// ratio on small messages that repeat earlier ones; wsn_client_options_set_compression_params
/// changes that. Messages under the threshold (64 bytes, see
/// wsn_client_options_set_compression_threshold) and messages sent with WSN_SEND_NO_COMPRESS go
/// uncompressed: compressing secrets next to text an attacker controls leaks them
/// (CRIME/BREACH). An inflated message over the size limit closes the connection with 1009
/// without being inflated further. wsn_conn_get_extensions tells what was agreed.
/// Errors: INVALID_ARGUMENT for NULL. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_compression(
    options: *mut wsn_client_options,
    enabled: bool,
) -> wsn_status {
    client(options)?.conn.compression.enabled = enabled;
    Ok(())
}

/// The permessage-deflate parameters: whether the client and the server drop their
/// compression context after each message (true saves memory: see
/// wsn_client_options_set_compression), and their largest window (8..15 bits). For a client
/// these are what it asks of the server and promises itself; for a server, its own limits and
/// what it asks of clients that allow it. Errors: INVALID_ARGUMENT for NULL or bits outside
/// 8..15. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_compression_params(
    options: *mut wsn_client_options,
    client_no_context_takeover: bool,
    server_no_context_takeover: bool,
    client_max_window_bits: u8,
    server_max_window_bits: u8,
) -> wsn_status {
    set_compression(&mut client(options)?.conn, |c| {
        c.client_no_context_takeover = client_no_context_takeover;
        c.server_no_context_takeover = server_no_context_takeover;
        c.client_max_window_bits = client_max_window_bits;
        c.server_max_window_bits = server_max_window_bits;
    })
}

/// Messages shorter than `bytes` are sent uncompressed (default 64: below that a deflate
/// block costs about what it saves), and the zlib `level` (0-9, default 6). Errors:
/// INVALID_ARGUMENT for NULL or a level over 9. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_compression_threshold(
    options: *mut wsn_client_options,
    bytes: usize,
    level: u32,
) -> wsn_status {
    set_compression(&mut client(options)?.conn, |c| {
        c.threshold = bytes;
        c.level = level;
    })
}

/// Largest incoming message; a larger one closes the connection with 1009 (default 64 MiB).
/// Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_max_message_size(
    options: *mut wsn_client_options,
    bytes: usize,
) -> wsn_status {
    set_max_message_size(&mut client(options)?.conn, bytes)
}

/// Heartbeat interval (default 30000; 0 turns the heartbeat off). Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_ping_interval_ms(
    options: *mut wsn_client_options,
    ms: u32,
) -> wsn_status {
    client(options)?.conn.ping_interval = millis(ms);
    Ok(())
}

/// How long to wait for a Pong before ending the connection (default 30000).
/// Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_pong_timeout_ms(
    options: *mut wsn_client_options,
    ms: u32,
) -> wsn_status {
    client(options)?.conn.pong_timeout = positive(ms, "pong timeout")?;
    Ok(())
}

/// Most bytes of received messages whose callbacks have not finished (default 32 MiB). Above
/// it, reading pauses, so TCP slows the peer down, until the callbacks are down to half of it:
/// a fast peer cannot fill the memory of a slow application. Pings and Close frames wait too.
/// Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_max_receive_queue(
    options: *mut wsn_client_options,
    bytes: usize,
) -> wsn_status {
    set_max_receive_queue(&mut client(options)?.conn, bytes)
}

/// Heartbeat kind: a wsn_heartbeat value. Errors: INVALID_ARGUMENT for NULL or an unknown kind.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_heartbeat(
    options: *mut wsn_client_options,
    kind: u32,
) -> wsn_status {
    set_heartbeat(&mut client(options)?.conn, kind)
}

/// Adds a request header (Authorization, Cookie, ...); both strings are copied.
/// Errors: INVALID_ARGUMENT for NULL, invalid UTF-8, or a name or value HTTP does not allow.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_add_header(
    options: *mut wsn_client_options,
    name: *const c_char,
    value: *const c_char,
) -> wsn_status {
    let header = super::header_arg(name, value)?;
    client(options)?.headers.push(header);
    Ok(())
}

/// Offers a subprotocol (in order of preference). Errors: INVALID_ARGUMENT for NULL, empty,
/// invalid UTF-8, or characters not allowed in a token.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_add_subprotocol(
    options: *mut wsn_client_options,
    protocol: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    let p = str_arg(protocol, "subprotocol")?;
    check_subprotocol(p)?;
    o.subprotocols.push(p.to_owned());
    Ok(())
}

/// Sets the Origin header. Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_origin(
    options: *mut wsn_client_options,
    origin: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    let origin = str_arg(origin, "origin")?;
    check_header("Origin", origin)?;
    o.origin = Some(origin.to_owned());
    Ok(())
}

/// Chooses the trusted roots: a wsn_tls_roots value. Errors: INVALID_ARGUMENT for NULL or an unknown value.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_tls_roots(
    options: *mut wsn_client_options,
    roots: u32,
) -> wsn_status {
    client(options)?.tls_roots = match roots {
        0 => TlsRoots::Bundled,
        1 => TlsRoots::System,
        2 => TlsRoots::None,
        r => return Err(Error::invalid(format!("unknown TLS roots value {r}"))),
    };
    Ok(())
}

/// Adds a PEM file of trusted CA certificates (read at connect time; a bad file fails
/// wsn_connect with WSN_ERR_TLS). Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_add_ca_file(
    options: *mut wsn_client_options,
    path: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    o.ca_files.push(str_arg(path, "CA file path")?.into());
    Ok(())
}

/// A new server options object with the defaults: handshake timeout 10 s, max request header
/// 16 KiB, close timeout 5 s, drain timeout 5 s, max message 64 MiB, ping every 30 s, no
/// connection limit, any Origin, at most 512 handshakes in progress (no per-address cap)
/// (the oldest dropped at a cap), no plain HTTP handler (426). Ownership: the caller frees it
/// with wsn_server_options_free.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_server_options_new() -> *mut wsn_server_options {
    to_box(CServerOptions {
        inner: ServerOptions::default(),
        http_cb: None,
    })
}

/// Frees server options. NULL is ignored. Servers started with them are not affected.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_free(options: *mut wsn_server_options) {
    drop(free_box(options));
}

/// Time a client has for the TLS and WebSocket handshakes (default 10000).
/// Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_handshake_timeout_ms(
    options: *mut wsn_server_options,
    ms: u32,
) -> wsn_status {
    server(options)?.handshake_timeout = positive(ms, "handshake timeout")?;
    Ok(())
}

/// Largest upgrade request (request line plus headers); larger ones get HTTP 431 (default 16384).
/// Errors: INVALID_ARGUMENT for NULL or below 256.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_header_size(
    options: *mut wsn_server_options,
    bytes: usize,
) -> wsn_status {
    check_at_least(bytes, 256, "max header size")?;
    server(options)?.max_header_size = bytes;
    Ok(())
}

/// How long a close may go without progress (default 5000): while queued data is still being
/// written before the Close frame, the time counts from the last byte the socket took; once
/// the Close frame is out, it is how long the peer has to answer it. Errors: INVALID_ARGUMENT
/// for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_close_timeout_ms(
    options: *mut wsn_server_options,
    ms: u32,
) -> wsn_status {
    server(options)?.conn.close_timeout = positive(ms, "close timeout")?;
    Ok(())
}

/// The longest a close may take in all (default 30000), however slowly the peer keeps reading:
/// a peer that takes a byte now and then cannot hold a close open past it. The close then
/// ends unclean (1006, WSN_ERR_TIMEOUT). Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_close_max_ms(
    options: *mut wsn_server_options,
    ms: u32,
) -> wsn_status {
    server(options)?.conn.close_max = positive(ms, "close max")?;
    Ok(())
}

/// Most received messages not consumed yet (default 1024): above it, reading pauses until they
/// are down to half, as for the byte budget (wsn_server_options_set_max_receive_queue). A
/// message is consumed when its callback returns (poll mode: at the next poll), or, with manual
/// acknowledgement, when acknowledged. Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_receive_messages(
    options: *mut wsn_server_options,
    messages: usize,
) -> wsn_status {
    check_at_least(messages, 1, "max receive messages")?;
    server(options)?.conn.max_receive_messages = messages;
    Ok(())
}

/// With `manual` true, a received message stays in the receive budget until the application
/// acknowledges it with wsn_conn_ack, not only until its callback returns (or the next poll):
/// for applications and bindings that hand messages on to a queue of their own, so that a peer
/// cannot fill memory that nobody reads (default false). Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_manual_ack(
    options: *mut wsn_server_options,
    manual: bool,
) -> wsn_status {
    server(options)?.conn.manual_ack = manual;
    Ok(())
}

/// Bytes queued for sending and not yet handed to the kernel above which a send fails with
/// WSN_ERR_WOULD_BLOCK or closes the connection (wsn_server_options_set_send_queue_policy).
/// One message always fits an empty queue. Default 64 MiB. Errors: INVALID_ARGUMENT for NULL
/// or 0. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_send_queue(
    options: *mut wsn_server_options,
    bytes: usize,
) -> wsn_status {
    check_at_least(bytes, 1, "max send queue")?;
    server(options)?.conn.max_send_queue = bytes;
    Ok(())
}

/// What a send does when the send queue is full: WSN_SEND_QUEUE_REFUSE (the default: the send
/// fails with WSN_ERR_WOULD_BLOCK and queues nothing) or WSN_SEND_QUEUE_CLOSE (the connection is
/// closed with 1008, its CLOSE event carrying WSN_ERR_WOULD_BLOCK: a server's answer to a
/// client that reads too slowly). Errors: INVALID_ARGUMENT for NULL or another value.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_send_queue_policy(
    options: *mut wsn_server_options,
    policy: u32,
) -> wsn_status {
    let p = send_queue_policy(policy)?;
    server(options)?.conn.send_queue_policy = p;
    Ok(())
}

/// Turns WSN_EVENT_DRAIN on (`enabled` true) or off (the default) for the connections made
/// with these options: a DRAIN, carrying the id of the last message handed to the kernel, comes
/// once the send queue is at or below `low_water` bytes after it went over it or after a send
/// was refused with WSN_ERR_WOULD_BLOCK (not after every write). For awaiting sends, and for
/// producers that send until WSN_ERR_WOULD_BLOCK and resume at the drain;
/// wsn_conn_set_drain_events changes it per connection. Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_drain_events(
    options: *mut wsn_server_options,
    enabled: bool,
    low_water: usize,
) -> wsn_status {
    server(options)?.conn.drain_low_water = enabled.then_some(low_water);
    Ok(())
}

/// permessage-deflate (RFC 7692), off by default. A client with it on offers it; a server
/// with it on accepts a client's offer (browsers always offer it). When on, by default neither
/// side keeps its compression context between messages: a connection then holds no zlib state
/// while idle (with context takeover each would keep about 418 KiB), at the price of a worse
/// ratio on small messages that repeat earlier ones; wsn_server_options_set_compression_params
/// changes that. Messages under the threshold (64 bytes, see
/// wsn_server_options_set_compression_threshold) and messages sent with WSN_SEND_NO_COMPRESS go
/// uncompressed: compressing secrets next to text an attacker controls leaks them
/// (CRIME/BREACH). An inflated message over the size limit closes the connection with 1009
/// without being inflated further. wsn_conn_get_extensions tells what was agreed.
/// Errors: INVALID_ARGUMENT for NULL. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_compression(
    options: *mut wsn_server_options,
    enabled: bool,
) -> wsn_status {
    server(options)?.conn.compression.enabled = enabled;
    Ok(())
}

/// The permessage-deflate parameters: whether the client and the server drop their
/// compression context after each message (true saves memory: see
/// wsn_server_options_set_compression), and their largest window (8..15 bits). For a client
/// these are what it asks of the server and promises itself; for a server, its own limits and
/// what it asks of clients that allow it. Errors: INVALID_ARGUMENT for NULL or bits outside
/// 8..15. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_compression_params(
    options: *mut wsn_server_options,
    client_no_context_takeover: bool,
    server_no_context_takeover: bool,
    client_max_window_bits: u8,
    server_max_window_bits: u8,
) -> wsn_status {
    set_compression(&mut server(options)?.conn, |c| {
        c.client_no_context_takeover = client_no_context_takeover;
        c.server_no_context_takeover = server_no_context_takeover;
        c.client_max_window_bits = client_max_window_bits;
        c.server_max_window_bits = server_max_window_bits;
    })
}

/// Messages shorter than `bytes` are sent uncompressed (default 64: below that a deflate
/// block costs about what it saves), and the zlib `level` (0-9, default 6). Errors:
/// INVALID_ARGUMENT for NULL or a level over 9. Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_compression_threshold(
    options: *mut wsn_server_options,
    bytes: usize,
    level: u32,
) -> wsn_status {
    set_compression(&mut server(options)?.conn, |c| {
        c.threshold = bytes;
        c.level = level;
    })
}

/// How long stopping the server waits for its connections to close (default 5000).
/// Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_drain_timeout_ms(
    options: *mut wsn_server_options,
    ms: u32,
) -> wsn_status {
    server(options)?.drain_timeout = millis(ms);
    Ok(())
}

/// Largest incoming message; a larger one closes the connection with 1009 (default 64 MiB).
/// Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_message_size(
    options: *mut wsn_server_options,
    bytes: usize,
) -> wsn_status {
    set_max_message_size(&mut server(options)?.conn, bytes)
}

/// Heartbeat interval (default 30000; 0 turns it off). Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_ping_interval_ms(
    options: *mut wsn_server_options,
    ms: u32,
) -> wsn_status {
    server(options)?.conn.ping_interval = millis(ms);
    Ok(())
}

/// How long to wait for a Pong (default 30000). Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_pong_timeout_ms(
    options: *mut wsn_server_options,
    ms: u32,
) -> wsn_status {
    server(options)?.conn.pong_timeout = positive(ms, "pong timeout")?;
    Ok(())
}

/// Most bytes of received messages whose callbacks have not finished, per connection (default
/// 32 MiB); see wsn_client_options_set_max_receive_queue. Errors: INVALID_ARGUMENT for NULL or 0.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_receive_queue(
    options: *mut wsn_server_options,
    bytes: usize,
) -> wsn_status {
    set_max_receive_queue(&mut server(options)?.conn, bytes)
}

/// Heartbeat kind: a wsn_heartbeat value. Errors: INVALID_ARGUMENT for NULL or an unknown kind.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_heartbeat(
    options: *mut wsn_server_options,
    kind: u32,
) -> wsn_status {
    set_heartbeat(&mut server(options)?.conn, kind)
}

/// Adds a subprotocol this server speaks: without an accept callback choosing, the first
/// protocol the client offers that is in this list is chosen. Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_add_subprotocol(
    options: *mut wsn_server_options,
    protocol: *const c_char,
) -> wsn_status {
    let o = server(options)?;
    let p = str_arg(protocol, "subprotocol")?;
    check_subprotocol(p)?;
    o.subprotocols.push(p.to_owned());
    Ok(())
}

/// Allows an Origin (for example "https://app.example.com"). Once any is added, requests whose
/// Origin header is not listed are refused with HTTP 403 (Cross-Site WebSocket Hijacking
/// defence); requests without Origin (non-browser clients) still pass.
/// Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_add_allowed_origin(
    options: *mut wsn_server_options,
    origin: *const c_char,
) -> wsn_status {
    let o = server(options)?;
    o.allowed_origins
        .push(str_arg(origin, "origin")?.to_owned());
    Ok(())
}

/// Most connections open at once; more get HTTP 503 (default 0: no limit). Errors: INVALID_ARGUMENT for NULL.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_max_connections(
    options: *mut wsn_server_options,
    max: usize,
) -> wsn_status {
    server(options)?.max_connections = max;
    Ok(())
}

/// Serves wss: the certificate chain and private key PEM files (read at listen time; bad files
/// fail wsn_server_listen with WSN_ERR_TLS). Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_tls(
    options: *mut wsn_server_options,
    cert_pem_path: *const c_char,
    key_pem_path: *const c_char,
) -> wsn_status {
    let o = server(options)?;
    let cert = str_arg(cert_pem_path, "certificate path")?;
    let key = str_arg(key_pem_path, "key path")?;
    o.tls = Some((cert.into(), key.into()));
    Ok(())
}

/// wsn_*_options_set_send_queue_policy: a send to a full queue fails with WSN_ERR_WOULD_BLOCK.
pub const WSN_SEND_QUEUE_REFUSE: u32 = 0;
/// wsn_*_options_set_send_queue_policy: a send to a full queue closes the connection with 1008.
pub const WSN_SEND_QUEUE_CLOSE: u32 = 1;

fn send_queue_policy(v: u32) -> Result<crate::SendQueuePolicy> {
    match v {
        WSN_SEND_QUEUE_REFUSE => Ok(crate::SendQueuePolicy::Refuse),
        WSN_SEND_QUEUE_CLOSE => Ok(crate::SendQueuePolicy::Close),
        _ => Err(Error::invalid(format!(
            "send queue policy {v} is unknown: use WSN_SEND_QUEUE_REFUSE or WSN_SEND_QUEUE_CLOSE"
        ))),
    }
}

/// Runs the connection's event callbacks on the I/O thread that reads it, inside its task,
/// instead of on a callback thread (default false). No thread switch per event: an echo costs
/// about a third of the CPU, and a send from inside a callback goes out in the same turn. The
/// price: a callback that blocks (a lock held elsewhere, I/O, a sleep, a GIL) stalls every
/// connection of that I/O thread, so use it only for callbacks that return quickly. Everything
/// else holds as before: one callback at a time per connection, in order; a free or stop from
/// inside one never waits; events that start on other threads still run on callback threads.
/// The accept callback always runs on a callback thread. Thread: one thread at a time per
/// options object. Errors: INVALID_ARGUMENT for NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_inline_callbacks(
    options: *mut wsn_client_options,
    enabled: bool,
) -> wsn_status {
    client(options)?.conn.inline_callbacks = enabled;
    Ok(())
}

/// As wsn_client_options_set_inline_callbacks, for every connection of the server.
/// Thread: one thread at a time per options object. Errors: INVALID_ARGUMENT for NULL.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_inline_callbacks(
    options: *mut wsn_server_options,
    enabled: bool,
) -> wsn_status {
    server(options)?.conn.inline_callbacks = enabled;
    Ok(())
}
