//! Spinning while it pays. A connection in ping-pong (one message, one answer, the next
//! message a few µs after the answer) would otherwise put its I/O thread to sleep in
//! epoll_wait after each answer, and waking a sleeping thread costs tens of µs here (more on a
//! virtual machine, whose idle core halts). So after a callback answered a small message that
//! came after a pause, the connection's task keeps its thread awake for up to [`SPIN`]: it
//! yields to tokio, which polls epoll without waiting and then polls the task again. Other
//! connections' work runs in between as usual.
//!
//! Measured with one connection, 64 B ping-pong, one I/O thread: 36k messages/s, p50 23 µs,
//! 26 µs of server CPU each, against 12k, p50 80 µs and 33 µs when the thread slept between
//! messages (fastwebsockets: 12-14k, p50 80 µs, 30-35 µs). Spins that end without a message
//! are counted: after [`MAX_MISSES`] in a row the thread stops spinning (a peer that answers
//! slowly gains nothing from it) and only tries again on one chance in [`PROBE_EVERY`].

use std::cell::Cell;
use std::future::Future;
use std::task::Context;
use std::time::{Duration, Instant};

/// How long a spin lasts when no message comes.
const SPIN: Duration = Duration::from_micros(30);
/// Spins in a row that ended without a message, after which the thread stops spinning.
const MAX_MISSES: u32 = 4;
/// While stopped, one chance to spin in this many is taken anyway.
const PROBE_EVERY: u32 = 64;

#[derive(Clone, Copy)]
struct Spinner {
    /// The connection whose task spins on this thread (its address; 0: none), and until when.
    who: usize,
    until: Option<Instant>,
    /// Spins in a row that ended without a message; chances skipped since spinning stopped.
    misses: u32,
    skipped: u32,
}

thread_local! {
    static SPINNER: Cell<Spinner> = const {
        Cell::new(Spinner { who: 0, until: None, misses: 0, skipped: 0 })
    };
}

/// Called at the end of a connection's turn, just before it returns `Pending`. `me`: the
/// connection's address. `answered`: a callback answered a small message in this turn.
/// `after_a_pause`: the thread was idle before this turn. `read`: the turn read bytes.
/// Spinning: the task is woken again once tokio has looked at epoll (`yield_now`).
pub(super) fn end_of_turn(
    me: usize,
    answered: bool,
    after_a_pause: bool,
    read: bool,
    cx: &mut Context<'_>,
) {
    let Ok(mut s) = SPINNER.try_with(|s| s.get()) else {
        return;
    };
    let mine = s.who == me;
    if !(mine || answered && after_a_pause) {
        return; // the common case: nothing to do, no clock read
    }
    if mine && read {
        s.misses = 0; // a message came while spinning: it paid
    }
    let now = Instant::now();
    if answered && (after_a_pause || mine) {
        let spin = if s.misses < MAX_MISSES {
            true
        } else {
            s.skipped = s.skipped.wrapping_add(1);
            s.skipped % PROBE_EVERY == 0
        };
        if spin {
            s.who = me;
            s.until = Some(now + SPIN);
        }
    }
    if s.who == me {
        if s.until.is_some_and(|until| now < until) {
            // Deferred: woken after tokio polled epoll without waiting.
            let mut y = std::pin::pin!(tokio::task::yield_now());
            let _ = y.as_mut().poll(cx);
        } else {
            s.who = 0;
            s.misses = s.misses.saturating_add(1);
        }
    }
    let _ = SPINNER.try_with(|c| c.set(s));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn spinning() -> bool {
        SPINNER.with(|s| s.get().who != 0)
    }

    // Outside a tokio worker, a deferred wake-up is a plain wake: counted here.
    #[test]
    fn a_spin_starts_after_an_answer_that_followed_a_pause_and_stops_after_misses() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        end_of_turn(1, true, false, true, &mut cx);
        assert!(!spinning(), "no pause before the turn: no spin");
        end_of_turn(1, false, true, true, &mut cx);
        assert!(!spinning(), "nothing answered: no spin");
        end_of_turn(1, true, true, true, &mut cx);
        assert!(spinning(), "an answer after a pause starts a spin");
        let woken = count.0.load(Ordering::SeqCst);
        assert!(woken >= 1, "the spinning task is woken again");
        end_of_turn(2, false, false, true, &mut cx);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            woken,
            "other connections do not spin"
        );

        // Spins that end without a message: after MAX_MISSES the thread stops spinning.
        for _ in 0..MAX_MISSES + 1 {
            end_of_turn(1, true, true, false, &mut cx);
            std::thread::sleep(SPIN * 2);
            end_of_turn(1, false, false, false, &mut cx);
            assert!(!spinning(), "the spin ended at its deadline");
        }
        let mut started = 0;
        for _ in 0..PROBE_EVERY {
            end_of_turn(1, true, true, false, &mut cx);
            started += spinning() as u32;
            SPINNER.with(|s| {
                let mut v = s.get();
                v.who = 0;
                s.set(v)
            });
        }
        assert_eq!(started, 1, "stopped: only one chance in PROBE_EVERY spins");

        // A spin that pays (a message came) starts spinning for good again.
        let mut paid = false;
        for _ in 0..PROBE_EVERY {
            end_of_turn(1, true, true, false, &mut cx);
            if spinning() {
                end_of_turn(1, true, false, true, &mut cx); // the next message came
                paid = true;
                break;
            }
        }
        assert!(paid);
        SPINNER.with(|s| assert_eq!(s.get().misses, 0));
        end_of_turn(1, true, true, true, &mut cx);
        assert!(spinning());
    }
}
