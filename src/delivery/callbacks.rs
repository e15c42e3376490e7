//! Callback delivery off the I/O threads (G8, G9) with a plain lifetime (G7).
//!
//! Every connection has a [`Mailbox`]: an ordered queue of jobs. A small pool of callback
//! threads runs each mailbox's jobs one at a time, in order, never two at once for the same
//! mailbox, and never holding a lock while a job runs.
//!
//! [`Mailbox::release`] starts no job after it returns. Called from a thread that is not
//! running a callback, it also waits for a job running elsewhere, so none runs after it
//! returns. Called from inside a callback, it never waits: two callbacks that free each
//! other's handles would otherwise wait for each other forever. The release hook
//! ([`Mailbox::set_release_hook`]) runs once the mailbox is released and no job of it runs, so
//! the application frees what its callbacks use exactly when it is safe.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

type Job = Box<dyn FnOnce() + Send>;

/// Runs once, after its handle was released and its last callback ended.
pub(crate) type ReleaseHook = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Set while this thread runs a callback (an event or accept hook).
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is running a wsnative callback: such a thread must never wait
/// for another callback.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.try_with(|c| c.get()).unwrap_or(false)
}

/// Marks the calling thread as running a callback until dropped.
pub(crate) struct CallbackScope(bool);

impl CallbackScope {
    pub(crate) fn enter() -> CallbackScope {
        CallbackScope(IN_CALLBACK.try_with(|c| c.replace(true)).unwrap_or(false))
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        let _ = IN_CALLBACK.try_with(|c| c.set(self.0));
    }
}

/// Jobs run per turn before a busy mailbox yields its thread to the others.
const JOBS_PER_TURN: usize = 64;

#[derive(Default)]
struct Inner {
    jobs: VecDeque<Job>,
    scheduled: bool,
    running_on: Option<ThreadId>,
    released: bool,
    sealed: bool,
    hook: Option<ReleaseHook>,
    /// A release waits for the running job: it runs the hook itself, after the job, so that
    /// the hook has run when that release returns.
    release_waiting: bool,
}

/// An ordered queue of callbacks for one handle.
#[derive(Default)]
pub(crate) struct Mailbox {
    inner: Mutex<Inner>,
    idle: Condvar,
}

/// The calling thread's id (`thread::current()` clones and drops an `Arc` each time).
fn this_thread() -> ThreadId {
    thread_local! {
        static ME: ThreadId = std::thread::current().id();
    }
    ME.try_with(|id| *id)
        .unwrap_or_else(|_| std::thread::current().id())
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mailbox {
    /// Queues `job`; dropped when the mailbox was released or sealed.
    pub(crate) fn post(self: &Arc<Self>, job: Job) {
        let mut g = relock(&self.inner);
        if g.released || g.sealed {
            drop(g);
            drop(job);
            return;
        }
        g.jobs.push_back(job);
        if !g.scheduled {
            g.scheduled = true;
            drop(g);
            pool().schedule(self.clone());
        }
    }

    /// Queues `job` as the last one: later posts are dropped.
    pub(crate) fn post_last(self: &Arc<Self>, job: Job) {
        self.post(job);
        relock(&self.inner).sealed = true;
    }

    /// Runs `job` now on the calling thread when the mailbox is idle (nothing queued, none
    /// running, not scheduled), else queues it as `post` does: jobs keep their order and never
    /// run two at a time either way. `last`: as `post_last`.
    /// Generic so that a job run at once (the usual case) is never boxed.
    pub(crate) fn run_or_post<F: FnOnce() + Send + 'static>(self: &Arc<Self>, job: F, last: bool) {
        let me = this_thread();
        let mut g = relock(&self.inner);
        if g.released || g.sealed {
            drop(g);
            drop(job);
            return;
        }
        g.sealed |= last;
        if g.scheduled {
            g.jobs.push_back(Box::new(job));
            return;
        }
        // Held while the job runs: posts from other threads queue behind it.
        g.scheduled = true;
        g.running_on = Some(me);
        drop(g);
        {
            let _scope = CallbackScope::enter();
            let _ = catch_unwind(AssertUnwindSafe(job));
        }
        let mut g = relock(&self.inner);
        g.running_on = None;
        if g.released {
            g.scheduled = false;
            self.idle.notify_all();
            let hook = if g.release_waiting {
                None
            } else {
                g.hook.take()
            };
            drop(g);
            if let Some(hook) = hook {
                run_hook(hook);
            }
            return;
        }
        if g.jobs.is_empty() {
            g.scheduled = false;
        } else {
            drop(g); // still scheduled: what queued meanwhile runs on a callback thread
            pool().schedule(self.clone());
        }
    }

    /// Starts no job after this returns. From a thread that is not running a callback, also
    /// waits for a job running on another thread; from inside a callback, never waits (see the
    /// module doc). Runs the release hook when no job runs any more.
    pub(crate) fn release(&self) {
        let me = std::thread::current().id();
        let mut g = relock(&self.inner);
        g.released = true;
        let dropped = std::mem::take(&mut g.jobs);
        if g.running_on != Some(me) && !in_callback() {
            while g.running_on.is_some() {
                g.release_waiting = true;
                g = self.idle.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            g.release_waiting = false;
        }
        let hook = if g.running_on.is_none() {
            g.hook.take()
        } else {
            None
        };
        drop(g);
        drop(dropped); // may drop the last reference to the owner of this mailbox
        if let Some(hook) = hook {
            run_hook(hook);
        }
    }

    /// Sets the hook that runs once the mailbox is released and none of its jobs runs (at
    /// once when that is already so). Replaces an earlier hook, which then never runs.
    pub(crate) fn set_release_hook(&self, hook: ReleaseHook) {
        let mut g = relock(&self.inner);
        if g.released && g.running_on.is_none() {
            drop(g);
            run_hook(hook);
        } else {
            g.hook = Some(hook);
        }
    }

    /// Whether every job posted so far has run (or was dropped): nothing queued, none running.
    pub(crate) fn is_idle(&self) -> bool {
        let g = relock(&self.inner);
        g.jobs.is_empty() && g.running_on.is_none()
    }

    /// Whether `release` was called.
    pub(crate) fn is_released(&self) -> bool {
        relock(&self.inner).released
    }

    fn run_turn(self: Arc<Self>) {
        let me = std::thread::current().id();
        for _ in 0..JOBS_PER_TURN {
            let job = {
                let mut g = relock(&self.inner);
                match (g.released, g.jobs.pop_front()) {
                    (false, Some(job)) => {
                        g.running_on = Some(me);
                        job
                    }
                    _ => {
                        g.scheduled = false;
                        return;
                    }
                }
            };
            // A panicking callback must not take the callback thread down with it.
            {
                let _scope = CallbackScope::enter();
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
            let mut g = relock(&self.inner);
            g.running_on = None;
            if g.released {
                self.idle.notify_all();
                // A waiting release runs the hook; else the job that ended last does.
                let hook = if g.release_waiting {
                    None
                } else {
                    g.hook.take()
                };
                drop(g);
                if let Some(hook) = hook {
                    run_hook(hook);
                }
                return;
            }
        }
        pool().schedule(self);
    }
}

/// Runs a release hook; a panic in it is contained.
fn run_hook(hook: ReleaseHook) {
    let _ = catch_unwind(AssertUnwindSafe(hook));
}

struct PoolState {
    queue: VecDeque<Arc<Mailbox>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Threads to start (0 = 2).
    wanted: usize,
    /// Threads of an older generation end as soon as they are not running a callback: a
    /// stop retires every thread at once, also the one calling it and one stuck in a callback.
    generation: u64,
    /// Threads waiting on `ready`: a post wakes one only when there is one (a notify is a
    /// system call even when nobody waits).
    sleepers: usize,
}

struct Pool {
    state: Mutex<PoolState>,
    ready: Condvar,
    /// The queue's length, for spinning threads to look at without taking the lock.
    queued: std::sync::atomic::AtomicUsize,
}

static POOL: Pool = Pool {
    state: Mutex::new(PoolState {
        queue: VecDeque::new(),
        threads: Vec::new(),
        wanted: 0,
        generation: 0,
        sleepers: 0,
    }),
    ready: Condvar::new(),
    queued: std::sync::atomic::AtomicUsize::new(0),
};

fn pool() -> &'static Pool {
    &POOL
}

/// Sets the number of callback threads (0 = 2). Fails while they run.
pub fn set_callback_threads(n: usize) -> Result<()> {
    if n > 256 {
        return Err(Error::invalid(format!(
            "callback thread count {n} is out of range (0..=256)"
        )));
    }
    let mut st = relock(&POOL.state);
    if !st.threads.is_empty() {
        return Err(Error::state("the callback threads are already running: set their count before the first connection or server"));
    }
    st.wanted = n;
    Ok(())
}

impl Pool {
    fn schedule(&self, mb: Arc<Mailbox>) {
        let mut st = relock(&self.state);
        if st.threads.is_empty() {
            crate::runtime::on_fork(&POOL_FORK);
            let n = if st.wanted == 0 { 2 } else { st.wanted };
            let generation = st.generation;
            for i in 0..n {
                match std::thread::Builder::new()
                    .name(format!("wsn-callback-{i}"))
                    .spawn(move || worker(generation))
                {
                    Ok(t) => st.threads.push(t),
                    Err(_) if i > 0 => break, // fewer threads still work
                    Err(e) => panic!("cannot start a wsnative callback thread: {e}"),
                }
            }
        }
        st.queue.push_back(mb);
        self.queued
            .store(st.queue.len(), std::sync::atomic::Ordering::Release);
        let wake = st.sleepers > 0;
        drop(st);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// Runs what is queued, then ends the callback threads and waits up to `grace` for them, so
/// that a process (or a runtime such as Mono) can exit with no thread of ours left. Threads
/// start again on the next event. A thread stuck in a callback ends when its callback
/// returns; called from a callback thread, that thread ends after its callback returns.
pub(crate) fn stop_callback_threads(grace: std::time::Duration) {
    let threads = {
        let mut st = relock(&POOL.state);
        st.generation += 1;
        std::mem::take(&mut st.threads)
    };
    POOL.ready.notify_all();
    let me = std::thread::current().id();
    let end = std::time::Instant::now() + grace;
    for t in threads {
        if t.thread().id() == me {
            continue;
        }
        while !t.is_finished() && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

thread_local! {
    static HELD_FOR_FORK: std::cell::RefCell<Option<MutexGuard<'static, PoolState>>> = const { std::cell::RefCell::new(None) };
}

/// Around fork(): the pool's lock is held across it; in the child the parent's callback
/// threads (which do not exist there) are forgotten, and the next event starts new ones.
static POOL_FORK: crate::runtime::ForkHooks = crate::runtime::ForkHooks {
    prepare: || {
        let g = relock(&POOL.state);
        let _ = HELD_FOR_FORK.try_with(|h| *h.borrow_mut() = Some(g));
    },
    parent: || {
        let _ = HELD_FOR_FORK.try_with(|h| drop(h.borrow_mut().take()));
    },
    child: || {
        let _ = HELD_FOR_FORK.try_with(|h| {
            if let Some(mut st) = h.borrow_mut().take() {
                st.generation += 1;
                st.queue.clear();
                st.sleepers = 0;
                POOL.queued.store(0, std::sync::atomic::Ordering::Release);
                for t in std::mem::take(&mut st.threads) {
                    std::mem::forget(t);
                }
            }
        });
    },
};

/// How long an idle callback thread looks for new work before sleeping, in microseconds.
static SPIN_US: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(400);

/// Sets how long an idle callback thread keeps looking for work before it sleeps (default
/// 400 us; 0 = sleep at once). Looking saves a thread wake-up per message in request/response
/// traffic (measured here: 150 -> 60 us per round trip between two wsnative ends, and 6k ->
/// 14k round trips/s for a Python client). A thread whose looks keep finding nothing stops
/// looking (but for one look in 32), so sparse traffic costs no extra CPU.
pub fn set_callback_spin(micros: u32) {
    SPIN_US.store(micros, std::sync::atomic::Ordering::Relaxed);
}

fn worker(generation: u64) {
    let pool = pool();
    // Looking for work pays only in dense traffic: after a few looks that found nothing, look
    // only now and then, so sparse traffic costs no extra CPU.
    let mut misses = 0u32;
    let mut idles = 0u32;
    loop {
        let mb = {
            let mut st = relock(&pool.state);
            let mut looked_again = false;
            loop {
                if let Some(mb) = st.queue.pop_front() {
                    pool.queued
                        .store(st.queue.len(), std::sync::atomic::Ordering::Release);
                    break mb;
                }
                if st.generation != generation {
                    return;
                }
                let spin = std::time::Duration::from_micros(
                    SPIN_US.load(std::sync::atomic::Ordering::Relaxed) as u64,
                );
                if !looked_again && !spin.is_zero() && (misses < 3 || idles % 32 == 0) {
                    // Busy connections post again within microseconds: look again briefly
                    // before sleeping (see `set_callback_spin`).
                    looked_again = true;
                    drop(st);
                    let until = std::time::Instant::now() + spin;
                    let mut found = false;
                    while !found && std::time::Instant::now() < until {
                        std::thread::yield_now();
                        found = pool.queued.load(std::sync::atomic::Ordering::Acquire) > 0;
                    }
                    misses = if found { 0 } else { misses.saturating_add(1) };
                    st = relock(&pool.state);
                    continue;
                }
                idles = idles.wrapping_add(1);
                st.sleepers += 1;
                st = pool.ready.wait(st).unwrap_or_else(|p| p.into_inner());
                st.sleepers -= 1;
            }
        };
        mb.run_turn();
    }
}
