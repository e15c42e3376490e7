//! Poll mode for C: an event queue the application drains on its own thread.

use super::conn::{c_event, connect_with, hand_over_at_open};
use super::handle::{as_ptr, free_box, out_arg, to_box, try_ref, Boxed, Castable};
use super::server::{listen_with, wsn_accept_cb, ServerCallbacks};
use super::{wsn_client_options, wsn_conn, wsn_event, wsn_server, wsn_server_options, wsn_status};
use crate::connection::{Delivery, EventQueue, QueueTarget, Queued};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wsnative_macros::ffi_fn;

/// An event queue: events of the connections registered with it (wsn_connect_queued,
/// wsn_server_listen_queued), taken with wsn_queue_poll on the application's own thread
/// instead of callbacks. Create with wsn_queue_new, free with wsn_queue_free.
pub struct wsn_queue {
    _private: [u8; 0],
}

impl Castable for wsn_queue {
    type Rust = PollQueue;
    type Owned = Boxed;
    const WHAT: &'static str = "queue";
}

/// What a wsn_queue handle stands for.
pub(crate) struct PollQueue {
    queue: Arc<EventQueue>,
    /// What the last poll handed out, alive until the next poll.
    batch: Mutex<(Vec<Queued>, Vec<CString>)>,
}

/// One event taken from a queue.
#[repr(C)]
pub struct wsn_queued_event {
    /// The connection the event belongs to (for a server connection, owned by the application
    /// from its WSN_EVENT_OPEN on).
    pub conn: *mut wsn_conn,
    /// The connection's own user data when set (wsn_conn_set_user_data), else the user_data
    /// given to wsn_connect_queued or wsn_server_listen_queued.
    pub user_data: *mut c_void,
    /// The event, as a callback would get it.
    pub event: wsn_event,
}

/// Creates an event queue. Ownership: the caller frees it with wsn_queue_free (after the
/// connections using it, or they lose their events). Thread: any.
/// Errors: INVALID_ARGUMENT for NULL `queue_out`; WSN_ERR_IO when no descriptor can be made.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_queue_new(queue_out: *mut *mut wsn_queue) -> wsn_status {
    let queue_out = out_arg(queue_out, "queue_out")?;
    *queue_out = to_box(PollQueue {
        queue: EventQueue::new()?,
        batch: Mutex::new((Vec::new(), Vec::new())),
    });
    Ok(())
}

/// A file descriptor that is readable while events wait (level-triggered): add it to
/// select/poll/epoll or an event loop, and call wsn_queue_poll when it is readable. Do not read
/// or close it. -1 for NULL. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_queue_get_fd(queue: *const wsn_queue) -> i32 {
    try_ref(queue).map(|q| q.queue.fd()).unwrap_or(-1)
}

/// Takes up to `max` events into `events`, in order per connection, waiting up to
/// `timeout_ms` for the first (0: do not wait; negative: without limit; wsn_queue_wake ends the
/// wait early). Returns how many were written; 0 is possible even when the descriptor was
/// readable (the queue then wanted a poll to know the previous events were handled). Everything they point to (conn, data, reason,
/// error) stays valid until the next wsn_queue_poll or wsn_queue_free on this queue; a
/// connection freed with wsn_conn_free returns no more events. Messages count against the
/// connection's receive queue until that next poll, and a peer's Close is answered once the
/// messages before it were polled past, so poll regularly.
/// Thread: one thread at a time per queue. 0 for NULL `queue` or `events`.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_queue_poll(
    queue: *mut wsn_queue,
    events: *mut wsn_queued_event,
    max: usize,
    timeout_ms: i32,
) -> usize {
    let Ok(q) = try_ref(queue) else { return 0 };
    if events.is_null() {
        return 0;
    }
    let mut batch = q.batch.lock().unwrap_or_else(|p| p.into_inner());
    batch.0.clear(); // the previous batch is no longer needed
    batch.1.clear();
    let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
    let taken = q.queue.poll(max, timeout);
    let (keep, strings) = &mut *batch;
    for (i, item) in taken.into_iter().enumerate() {
        hand_over_at_open(&item.conn, &item.event, item.server);
        let ev = c_event(&item.event, strings);
        events.add(i).write(wsn_queued_event {
            conn: as_ptr(&item.conn),
            // The connection's own user data when it has some (a server's connections
            // are told apart without a lookup), else its queue target's.
            user_data: match item.conn.user_data() {
                0 => item.user_data as *mut c_void,
                own => own as *mut c_void,
            },
            event: ev,
        });
        keep.push(item);
    }
    keep.len()
}

/// Makes a waiting (or the next) wsn_queue_poll return at once, for example to stop a loop.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_queue_wake(queue: *const wsn_queue) {
    if let Ok(q) = try_ref(queue) {
        q.queue.wake();
    }
}

/// Frees the queue; events still waiting are dropped, and later events of its connections
/// are discarded (free those connections too). NULL is ignored; must not be called twice or
/// while another thread polls it. Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_queue_free(queue: *mut wsn_queue) {
    if let Some(q) = free_box(queue) {
        q.queue.close();
    }
}

unsafe fn target(
    queue: *mut wsn_queue,
    user_data: *mut c_void,
    server: bool,
) -> crate::Result<Delivery> {
    let q = try_ref(queue)?;
    Ok(Delivery::Queue(QueueTarget {
        queue: q.queue.clone(),
        user_data: user_data as usize,
        server,
        keep: None,
    }))
}

/// As wsn_connect, with the connection's events going to `queue` (tagged with `user_data`)
/// instead of a callback. Thread: any. Errors: as wsn_connect; INVALID_ARGUMENT for NULL queue.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_connect_queued(
    url: *const c_char,
    options: *const wsn_client_options,
    queue: *mut wsn_queue,
    user_data: *mut c_void,
    conn_out: *mut *mut wsn_conn,
) -> wsn_status {
    connect_with(
        url,
        options,
        Some(target(queue, user_data, false)?),
        conn_out,
    )
}

/// As wsn_server_listen, with every connection's events going to `queue` (tagged with
/// `user_data`); the accept callback, when given, still runs on a callback thread.
/// Thread: any. Errors: as wsn_server_listen; INVALID_ARGUMENT for NULL queue.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_listen_queued(
    host: *const c_char,
    port: u16,
    options: *const wsn_server_options,
    on_accept: wsn_accept_cb,
    queue: *mut wsn_queue,
    user_data: *mut c_void,
    server_out: *mut *mut wsn_server,
) -> wsn_status {
    let callbacks = ServerCallbacks {
        on_accept,
        user_data,
        release: Default::default(),
    };
    listen_with(
        host,
        port,
        options,
        callbacks,
        target(queue, user_data, true)?,
        server_out,
    )
}
