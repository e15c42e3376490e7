//! The log callback: the core's records (the `log` crate's macros, and rustls's) forwarded to
//! the application. Off by default; while off a log macro costs one relaxed atomic load
//! (`log::max_level()`), since the level filter is `Off`.

use super::{to_cstring, wsn_status};
use crate::error::{Error, ErrorKind};
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::RwLock;
use wsnative_macros::ffi_fn;

/// The level of a log record, and the most detailed level wanted (wsn_log_set_callback).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsn_log_level {
    /// No records (logging off).
    WSN_LOG_OFF = 0,
    /// Something failed that the library could not handle.
    WSN_LOG_ERROR = 1,
    /// A connection failed in a way an operator should know of: timeouts (heartbeat, close),
    /// protocol errors (with the position in the peer's byte stream), limits hit.
    WSN_LOG_WARN = 2,
    /// Refused handshakes and why, TLS and handshake failures, connects that failed,
    /// connections that ended with an error.
    WSN_LOG_INFO = 3,
    /// Clean closes and other details.
    WSN_LOG_DEBUG = 4,
    /// Everything, including the TLS library's traces.
    WSN_LOG_TRACE = 5,
}

/// Receives one log record. `target` names the part that logged ("wsnative::server",
/// "wsnative::client", "wsnative::connection", or "rustls::..." for the TLS library);
/// `message` is one line of text; `conn_id` is the connection's id (wsn_conn_get_id), or 0 when
/// the record is not about one connection. Both strings are borrowed until it returns.
pub type wsn_log_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: wsn_log_level,
        target: *const c_char,
        message: *const c_char,
        conn_id: u64,
    ),
>;

struct Sink {
    f: unsafe extern "C" fn(*mut c_void, wsn_log_level, *const c_char, *const c_char, u64),
    user_data: usize,
}

/// The callback; read-locked while it runs, so that replacing it waits for calls in flight.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

thread_local! {
    /// This thread runs the log callback now: records logged from inside it are dropped.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct Forward;
static FORWARD: Forward = Forward;

impl log::Log for Forward {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) || IN_CALLBACK.try_with(|c| c.get()).unwrap_or(true) {
            return;
        }
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner());
        let Some(sink) = sink.as_ref() else { return };
        let level = match record.level() {
            log::Level::Error => wsn_log_level::WSN_LOG_ERROR,
            log::Level::Warn => wsn_log_level::WSN_LOG_WARN,
            log::Level::Info => wsn_log_level::WSN_LOG_INFO,
            log::Level::Debug => wsn_log_level::WSN_LOG_DEBUG,
            log::Level::Trace => wsn_log_level::WSN_LOG_TRACE,
        };
        let conn_id = record
            .key_values()
            .get(log::kv::Key::from_str("conn"))
            .and_then(|v| v.to_u64())
            .unwrap_or(0);
        let target = to_cstring(record.target());
        let message = to_cstring(&record.args().to_string());
        IN_CALLBACK.with(|c| c.set(true));
        // SAFETY: the application gave this function and user_data to wsn_log_set_callback.
        unsafe {
            (sink.f)(
                sink.user_data as *mut c_void,
                level,
                target.as_ptr(),
                message.as_ptr(),
                conn_id,
            )
        };
        IN_CALLBACK.with(|c| c.set(false));
    }

    fn flush(&self) {}
}

/// Sets the function that receives wsnative's log records, and the most detailed level it
/// wants (records above it are not even formatted). Logging is off by default; a NULL
/// `callback` or WSN_LOG_OFF turns it off again, after which a log point costs one atomic load.
///
/// The callback runs on the thread that logs: an I/O thread (most records), a callback thread,
/// or an application thread inside a wsnative call. It must return quickly and must not call
/// wsnative functions that wait (wsn_server_stop, wsn_server_free, wsn_shutdown,
/// wsn_log_set_callback); records logged from inside it are dropped. Several threads may run
/// it at once.
///
/// Thread: any, at any time. When it returns, the previous callback is not running on any
/// other thread and is not called again (its user_data may be freed).
/// Ownership: `user_data` is passed back as is.
/// Errors: WSN_ERR_INVALID_ARGUMENT for a level over WSN_LOG_TRACE; WSN_ERR_INVALID_STATE when
/// called from inside the log callback, or when the process's Rust code installed another
/// logger of the `log` crate first (only possible when wsnative is linked as a Rust library).
#[no_mangle]
#[ffi_fn]
pub extern "C" fn wsn_log_set_callback(
    callback: wsn_log_fn,
    max_level: u32,
    user_data: *mut c_void,
) -> wsn_status {
    let filter = match max_level {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        5 => log::LevelFilter::Trace,
        n => {
            return Err(Error::invalid(format!(
                "max_level {n} is not a wsn_log_level (0 to 5)"
            )))
        }
    };
    if IN_CALLBACK.try_with(|c| c.get()).unwrap_or(false) {
        return Err(Error::new(
            ErrorKind::InvalidState,
            "wsn_log_set_callback called from inside the log callback",
        ));
    }
    install()?;
    let filter = if callback.is_some() {
        filter
    } else {
        log::LevelFilter::Off
    };
    // Off first: new records stop being formatted while the callback is replaced.
    log::set_max_level(log::LevelFilter::Off);
    let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
    *sink = callback.map(|f| Sink {
        f,
        user_data: user_data as usize,
    });
    drop(sink);
    log::set_max_level(filter);
    Ok(())
}

/// Installs the forwarding logger once per process.
fn install() -> crate::Result<()> {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *INSTALLED.get_or_init(|| log::set_logger(&FORWARD).is_ok()) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidState,
            "another logger of the log crate is installed in this process",
        ))
    }
}
