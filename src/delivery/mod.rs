//! Event delivery off the I/O threads, behind one small interface: callback threads with
//! per-handle ordered mailboxes (`callbacks`), and queues that the application polls (`queue`).
//! This part knows nothing of WebSockets: it runs jobs and hands out items.

mod callbacks;
mod queue;

pub(crate) use callbacks::{in_callback, stop_callback_threads, Mailbox};
pub use callbacks::{set_callback_spin, set_callback_threads};
pub use queue::{EventQueue, Stale};
