//! How a connection's events reach the application: callbacks on wsnative's callback threads,
//! or an event queue that the application polls (poll mode).

use super::{Conn, Event, Handler};
use crate::delivery::Stale;
use std::sync::Arc;

/// The queue of poll mode, holding connections' events.
pub type EventQueue = crate::delivery::EventQueue<Queued>;

/// How a connection's events reach the application.
#[derive(Clone)]
pub enum Delivery {
    /// Callbacks on wsnative's callback threads.
    Callback(Arc<dyn Handler>),
    /// An event queue the application polls.
    Queue(QueueTarget),
}

/// A queue and what to tag its events with.
#[derive(Clone)]
pub struct QueueTarget {
    /// The queue.
    pub queue: Arc<EventQueue>,
    /// A value handed back with every event of the connection.
    pub user_data: usize,
    /// Server connections: the application takes its reference at the open event.
    pub server: bool,
    /// Kept alive until the connection's last event was queued (a server's count of
    /// undelivered closes).
    pub(crate) keep: Option<Arc<dyn Send + Sync>>,
}

impl From<Arc<dyn Handler>> for Delivery {
    fn from(h: Arc<dyn Handler>) -> Self {
        Delivery::Callback(h)
    }
}

/// One event taken from a queue.
pub struct Queued {
    /// The connection.
    pub conn: Arc<Conn>,
    /// The event.
    pub event: Event,
    /// The tag of the connection's queue target.
    pub user_data: usize,
    /// Whether it is a server connection.
    pub server: bool,
    /// Released when the event is dropped (the receive queue share of a message).
    pub(crate) _keep: Option<Box<dyn Send>>,
}

impl Stale for Queued {
    /// Events of a connection freed meanwhile are not handed out (G7).
    fn is_stale(&self) -> bool {
        self.conn.mailbox.is_released()
    }
}
