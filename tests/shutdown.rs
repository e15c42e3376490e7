//! wsn_shutdown closes what is open (1001), delivers the close events, and a later connection
//! starts the runtime again. Its own test binary: it stops the process-wide runtime.

mod common;

use common::*;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

#[test]
fn shutdown_closes_everything_and_the_runtime_restarts() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let clients: Vec<_> = (0..3)
        .map(|_| TestClient::connect(&server.url(), std::ptr::null()))
        .collect();
    for c in &clients {
        c.rec.wait_open();
    }
    let start = Instant::now();
    wsn_shutdown(2000);
    assert!(start.elapsed() < Duration::from_secs(10));
    for c in &clients {
        match c.rec.wait_close() {
            Ev::Close { code, .. } => assert_eq!(code, 1001),
            _ => unreachable!(),
        }
        assert_eq!(
            unsafe { wsn_conn_get_state(c.conn) },
            wsn_conn_state::WSN_STATE_CLOSED
        );
    }
    // No thread of wsnative's is left (runtimes like Mono wait for every thread at exit).
    let ours = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("wsn-"))
            .count()
    };
    let end = Instant::now() + Duration::from_secs(5);
    while ours() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(ours(), 0, "wsnative threads left after wsn_shutdown");
    // Shutting down twice, from another thread, is harmless.
    std::thread::spawn(|| wsn_shutdown(100)).join().unwrap();

    let again = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let c = TestClient::connect(&again.url(), std::ptr::null());
    c.rec.wait_open();
    c.close(1000, "after restart");
    assert!(matches!(
        c.rec.wait_close(),
        Ev::Close {
            code: 1000,
            clean: true,
            ..
        }
    ));
}
