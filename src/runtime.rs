//! The one background tokio runtime: started on first use, with named I/O threads whose count
//! can be chosen before that; stopped by `shutdown`. Also the process-wide fork hooks.

use crate::error::{Error, ErrorKind, Result};
use std::sync::Mutex;
use std::time::Duration;

struct State {
    runtime: Option<tokio::runtime::Runtime>,
    io_threads: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    runtime: None,
    io_threads: 0,
});

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the number of I/O threads (0 = the default, see [`default_io_threads`]). Fails once
/// the runtime runs.
pub fn set_io_threads(n: usize) -> Result<()> {
    let mut st = lock();
    if st.runtime.is_some() {
        return Err(Error::state("the runtime is already running: set its thread count before the first connection or server"));
    }
    if n > 256 {
        return Err(Error::invalid(format!(
            "io thread count {n} is out of range (0..=256)"
        )));
    }
    st.io_threads = n;
    Ok(())
}

/// I/O threads by default: one per two cores, at least one, at most four. The library shares
/// the machine with its application (its callbacks, its own threads, a garbage collector), and
/// a second I/O thread on two cores costs more than it brings: measured on 2 cores with the
/// load generator beside the server, one I/O thread echoed 64 B x 50 at 210k messages/s and
/// 4.4 µs of CPU each, two at 174k and 5.3 µs (futex wake-ups between the workers were 9% of
/// the samples); 64 KiB x 50 and 1 MiB x 50 were as fast or faster with one.
pub(crate) fn default_io_threads(cores: usize) -> usize {
    (cores / 2).clamp(1, 4)
}

/// A handle to the runtime, starting it when needed.
pub(crate) fn handle() -> Result<tokio::runtime::Handle> {
    on_fork(&RUNTIME_FORK);
    let mut st = lock();
    if let Some(rt) = &st.runtime {
        return Ok(rt.handle().clone());
    }
    let threads = match st.io_threads {
        0 => default_io_threads(std::thread::available_parallelism().map_or(2, |n| n.get())),
        n => n,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("wsn-io")
        // A write to a socket the peer closed raises SIGPIPE, whose default kills the
        // process (C programs keep that default). Blocked on the I/O threads, which alone
        // write to sockets, it stays pending there and the write fails with EPIPE instead.
        .on_thread_start(|| unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        })
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot start the I/O runtime: {e}"),
            )
        })?;
    let h = rt.handle().clone();
    st.runtime = Some(rt);
    Ok(h)
}

// fork(): the child has only the forking thread. Each part that keeps process-wide state
// registers hooks here: before the fork it takes its locks (so that the child never inherits
// one locked by a thread it does not have), after it the parent lets go, and the child resets
// that state (threads of the parent are forgotten, not joined: they do not exist there). The
// first connection or server in the child starts everything anew; connections inherited from
// the parent are dead in the child: leave them alone.

/// Hooks of one part around fork(); see above.
pub(crate) struct ForkHooks {
    pub(crate) prepare: fn(),
    pub(crate) parent: fn(),
    pub(crate) child: fn(),
}

static FORK_HOOKS: Mutex<Vec<&'static ForkHooks>> = Mutex::new(Vec::new());

/// Registers a part's fork hooks (once per part; the runtime registers its own first).
pub(crate) fn on_fork(hooks: &'static ForkHooks) {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        );
    });
    let mut all = FORK_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|h| std::ptr::eq(*h, hooks)) {
        all.push(hooks);
    }
}

thread_local! {
    static HELD_FOR_FORK: std::cell::RefCell<Option<std::sync::MutexGuard<'static, State>>> = const { std::cell::RefCell::new(None) };
}

static RUNTIME_FORK: ForkHooks = ForkHooks {
    prepare: || {
        let g = lock();
        let _ = HELD_FOR_FORK.try_with(|h| *h.borrow_mut() = Some(g));
    },
    parent: || {
        let _ = HELD_FOR_FORK.try_with(|h| drop(h.borrow_mut().take()));
    },
    child: || {
        let _ = HELD_FOR_FORK.try_with(|h| {
            if let Some(mut state) = h.borrow_mut().take() {
                if let Some(rt) = state.runtime.take() {
                    std::mem::forget(rt);
                }
            }
        });
    },
};

fn registered() -> Vec<&'static ForkHooks> {
    FORK_HOOKS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

extern "C" fn before_fork() {
    // The registry's own lock is not held across the fork: it is taken again just below.
    for h in registered() {
        (h.prepare)();
    }
}

extern "C" fn after_fork_in_parent() {
    for h in registered().iter().rev() {
        (h.parent)();
    }
}

extern "C" fn after_fork_in_child() {
    for h in registered().iter().rev() {
        (h.child)();
    }
}

/// Stops the runtime (a later connection or server starts a new one): its tasks are dropped.
pub(crate) fn stop() {
    let rt = lock().runtime.take();
    if let Some(rt) = rt {
        // Dropping a runtime blocks, which tokio forbids inside its own threads.
        if tokio::runtime::Handle::try_current().is_ok() {
            rt.shutdown_background();
        } else {
            rt.shutdown_timeout(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_io_thread_per_two_cores_at_least_one_at_most_four() {
        let got: Vec<usize> = [1, 2, 3, 4, 6, 8, 16, 64]
            .iter()
            .map(|&c| super::default_io_threads(c))
            .collect();
        assert_eq!(got, [1, 1, 1, 2, 3, 4, 4, 4]);
    }
}
