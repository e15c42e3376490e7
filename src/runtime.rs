//! The one background tokio runtime: started on first use, with named I/O threads whose count
//! can be chosen before that, and a shutdown that closes what is open.

use crate::error::{Error, Result};
use std::sync::Mutex;
use std::time::Duration;

struct State {
    runtime: Option<tokio::runtime::Runtime>,
    io_threads: usize,
}

static STATE: Mutex<State> = Mutex::new(State { runtime: None, io_threads: 0 });

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the number of I/O threads (0 = one per core, at most 4). Fails once the runtime runs.
pub fn set_io_threads(n: usize) -> Result<()> {
    let mut st = lock();
    if st.runtime.is_some() {
        return Err(Error::state("the runtime is already running: set its thread count before the first connection or server"));
    }
    if n > 256 {
        return Err(Error::invalid(format!("io thread count {n} is out of range (0..=256)")));
    }
    st.io_threads = n;
    Ok(())
}

/// A handle to the runtime, starting it when needed.
pub(crate) fn handle() -> Result<tokio::runtime::Handle> {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child));
    });
    let mut st = lock();
    if let Some(rt) = &st.runtime {
        return Ok(rt.handle().clone());
    }
    let threads = match st.io_threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4),
        n => n,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("wsn-io")
        .enable_all()
        .build()
        .map_err(|e| Error::new(crate::ErrorKind::Internal, format!("cannot start the I/O runtime: {e}")))?;
    let h = rt.handle().clone();
    st.runtime = Some(rt);
    Ok(h)
}

/// Stops every server, closes every open connection (1001), waits up to `grace` for the closes,
/// then stops the runtime. Safe from any thread; a later connection starts a fresh runtime.
pub fn shutdown(grace: Duration) {
    crate::server::stop_all(grace);
    let conns = crate::connection::close_all(grace);
    let rt = lock().runtime.take();
    if let Some(rt) = rt {
        // Dropping a runtime blocks, which tokio forbids inside its own threads.
        if tokio::runtime::Handle::try_current().is_ok() {
            rt.shutdown_background();
        } else {
            rt.shutdown_timeout(Duration::from_millis(500));
        }
    }
    // A connection the runtime's end cut off still gets its one close event.
    crate::connection::end_unfinished(&conns);
    // Close events are delivered first; then no thread of wsnative's is left.
    crate::dispatch::stop_callback_threads(grace.max(Duration::from_millis(100)));
}

// fork(): the child has only the forking thread. The locks that a new connection takes are
// held across the fork, so that the child never inherits one locked by a thread it does not
// have; in the child, the parent's runtime and callback threads are forgotten (not dropped:
// their threads do not exist there), and the first connection or server starts new ones.
// Connections inherited from the parent are dead in the child: leave them alone.

type ForkLocks = (
    std::sync::MutexGuard<'static, State>,
    crate::dispatch::PoolStateGuard,
    std::sync::MutexGuard<'static, Vec<std::sync::Weak<crate::connection::Conn>>>,
);

thread_local! {
    static HELD_FOR_FORK: std::cell::RefCell<Option<ForkLocks>> = const { std::cell::RefCell::new(None) };
}

extern "C" fn before_fork() {
    let locks = (lock(), crate::dispatch::lock_pool(), crate::connection::live_lock());
    let _ = HELD_FOR_FORK.try_with(|h| *h.borrow_mut() = Some(locks));
}

extern "C" fn after_fork_in_parent() {
    let _ = HELD_FOR_FORK.try_with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn after_fork_in_child() {
    let _ = HELD_FOR_FORK.try_with(|h| {
        if let Some((mut state, mut pool, mut live)) = h.borrow_mut().take() {
            if let Some(rt) = state.runtime.take() {
                std::mem::forget(rt);
            }
            crate::dispatch::forget_threads_after_fork(&mut pool);
            live.clear();
        }
    });
}
