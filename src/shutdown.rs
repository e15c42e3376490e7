//! Shutting wsnative down: above every part it stops (servers, connections, the runtime, the
//! callback threads), so that none of them reaches up to the others.

use std::time::Duration;

/// Stops every server, closes every open connection (1001), waits up to `grace` for the
/// closes, aborts the rest, stops the runtime, delivers the last events and ends the callback
/// threads. Safe from any thread; a later connection starts everything again.
pub fn shutdown(grace: Duration) {
    if tokio::runtime::Handle::try_current().is_ok() {
        // Called from a callback running on an I/O thread (inline callbacks): that thread must
        // go on serving the closes this waits for, so the shutdown runs on a thread of its own.
        let _ = std::thread::Builder::new()
            .name("wsn-shutdown".into())
            .spawn(move || shutdown(grace));
        return;
    }
    crate::server::stop_all(grace);
    let conns = crate::connection::close_all(grace);
    crate::runtime::stop();
    // A connection the runtime's end cut off still gets its one close event.
    crate::connection::end_unfinished(&conns);
    // Close events are delivered first; then no thread of wsnative's is left.
    crate::delivery::stop_callback_threads(grace.max(Duration::from_millis(100)));
}
