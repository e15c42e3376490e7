//! The receiving side of a connection: the receive budget (bytes and messages delivered and
//! not consumed), manual acknowledgements, and the application's pause. The connection task
//! reads only while there is room.

use super::Conn;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A connection's receive accounting, shared by the deliveries and the connection task.
#[derive(Default)]
pub(super) struct Incoming {
    /// Bytes and count of received messages not consumed yet (see `max_receive_queue`).
    receive_queue: AtomicUsize,
    receive_messages: AtomicUsize,
    /// With `manual_ack`: consumed messages waiting for their acknowledgement.
    acks: Mutex<Acks>,
    /// The application paused reading (flow control of its own).
    reading_paused: AtomicBool,
    /// The reader waits for receive room (paused or over its budget): while it does, a
    /// missing Pong proves nothing.
    read_waiting: AtomicBool,
}

/// With `manual_ack`: the lengths of the messages delivered and not acknowledged yet, oldest
/// first.
#[derive(Default)]
struct Acks {
    unacked: VecDeque<usize>,
}

/// A delivered message's share of the receive budget: given back when its callback finished
/// (or, in poll mode, at the next poll), or with `manual_ack` when the application
/// acknowledges it.
pub(super) struct ReceiveQueued {
    conn: Arc<Conn>,
    len: usize,
}

impl ReceiveQueued {
    /// Counts a delivered message. With `manual_ack` its share waits for `ack` instead
    /// (`None`: nothing to give back on drop).
    pub(super) fn new(conn: Arc<Conn>, len: usize) -> Option<Self> {
        conn.incoming.receive_queue.fetch_add(len, Ordering::AcqRel);
        conn.incoming
            .receive_messages
            .fetch_add(1, Ordering::AcqRel);
        if conn.settings.manual_ack {
            conn.incoming
                .acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unacked
                .push_back(len);
            return None;
        }
        Some(ReceiveQueued { conn, len })
    }
}

impl Drop for ReceiveQueued {
    fn drop(&mut self) {
        self.conn.consumed(self.len);
    }
}

impl Conn {
    /// Whether the reader is waiting for receive room (paused, or over its budget).
    pub(crate) fn read_waiting(&self) -> bool {
        self.incoming.read_waiting.load(Ordering::Acquire)
    }

    /// Pauses or resumes reading from the peer. While paused, no message is read after the
    /// current one, so TCP slows the peer down; pings and Close frames wait as well.
    pub fn set_reading_paused(&self, paused: bool) {
        self.incoming.reading_paused.store(paused, Ordering::SeqCst);
        if !paused {
            self.task_waker.wake(); // receive room, a resume or a close
        }
    }

    /// Acknowledges up to `n` of the oldest messages delivered and not acknowledged yet (with
    /// `manual_ack`): they leave the receive budget at once, whether or not their callback has
    /// returned or a poll moved past them. Returns how many were acknowledged.
    pub fn ack(&self, n: usize) -> usize {
        let taken: Vec<usize> = {
            let mut acks = self.incoming.acks.lock().unwrap_or_else(|p| p.into_inner());
            let k = n.min(acks.unacked.len());
            acks.unacked.drain(..k).collect()
        };
        for len in &taken {
            self.consumed(*len);
        }
        taken.len()
    }

    /// A delivered message's share of the budget is free again.
    fn consumed(&self, len: usize) {
        self.incoming.receive_queue.fetch_sub(len, Ordering::AcqRel);
        self.incoming
            .receive_messages
            .fetch_sub(1, Ordering::AcqRel);
        if self.read_waiting() {
            self.task_waker.wake(); // receive room, a resume or a close
        }
    }

    /// Whether received messages are over the budget (bytes or count), or, with `half`, not
    /// yet down to half of it.
    pub(crate) fn over_budget(&self, half: bool) -> bool {
        let d = if half { 2 } else { 1 };
        self.incoming.receive_queue.load(Ordering::Acquire) > self.settings.max_receive_queue / d
            || self.incoming.receive_messages.load(Ordering::Acquire)
                > self.settings.max_receive_messages / d
    }

    /// Whether the application paused reading.
    pub(crate) fn reading_paused(&self) -> bool {
        self.incoming.reading_paused.load(Ordering::SeqCst)
    }

    /// The connection task waits for receive room (or not any more).
    pub(crate) fn set_read_waiting(&self, waiting: bool) {
        self.incoming.read_waiting.store(waiting, Ordering::Release);
    }
}
