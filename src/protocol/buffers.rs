//! Large message buffers kept for reuse, process-wide.
//!
//! glibc's malloc gives memory at the top of a thread's arena back to the kernel once more
//! than its trim threshold (2 MiB after the first 1 MiB buffer) is free there; the next large
//! message's buffer then faults every page in again. With 1 MiB messages, 16 in flight, that
//! was about 120 page faults per message and a client 0.8x as fast as tokio-tungstenite's
//! (measured: the same run with glibc's trimming turned off matched it). Buffers of at least
//! [`MIN`] bytes are therefore taken from and given back to a small pool: the decoder's
//! message buffers, the copies of large sends, and frames once written.
//!
//! At most [`MAX_KEPT`] bytes are kept in all (an idle process holds at most that), none over
//! [`MAX_ONE`]. The lock is only tried: a busy pool (or one left locked by a fork) is passed
//! by, and the buffer comes from or goes to malloc as usual.

use bytes::{Bytes, BytesMut};
use std::sync::Mutex;

/// Smaller buffers are malloc's business (they come from its bins, never trimmed away).
pub(crate) const MIN: usize = 64 << 10;
/// Larger buffers are not kept.
pub(crate) const MAX_ONE: usize = 16 << 20;
/// Bytes kept in all.
pub(crate) const MAX_KEPT: usize = 16 << 20;

struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            bufs: Vec::new(),
            bytes: 0,
        }
    }

    /// A kept buffer with room for `capacity` bytes, at most twice as large (a larger one
    /// would pin memory the message does not need).
    fn take(&mut self, capacity: usize) -> Option<Vec<u8>> {
        let i = self
            .bufs
            .iter()
            .position(|b| b.capacity() >= capacity && b.capacity() / 2 <= capacity)?;
        let b = self.bufs.swap_remove(i);
        self.bytes -= b.capacity();
        Some(b)
    }

    /// Keeps `v` (emptied) if it is large enough, not too large, and there is room.
    fn keep(&mut self, mut v: Vec<u8>) {
        let cap = v.capacity();
        if (MIN..=MAX_ONE).contains(&cap) && self.bytes + cap <= MAX_KEPT {
            v.clear();
            self.bytes += cap;
            self.bufs.push(v);
        }
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// An empty buffer with room for at least `capacity` bytes: a kept one when one fits, else a
/// new one.
pub fn with_capacity(capacity: usize) -> BytesMut {
    if (MIN..=MAX_ONE).contains(&capacity) {
        let kept = POOL.try_lock().ok().and_then(|mut p| p.take(capacity));
        if let Some(v) = kept {
            return to_bytes_mut(v);
        }
    }
    BytesMut::with_capacity(capacity)
}

/// A copy of `data` in a buffer from [`with_capacity`].
pub fn copy(data: &[u8]) -> Bytes {
    let mut b = with_capacity(data.len());
    b.extend_from_slice(data);
    b.freeze()
}

/// Gives `b`'s buffer back when `b` was its last holder and it is worth keeping; otherwise
/// only drops `b`.
pub fn recycle(b: Bytes) {
    if let Ok(m) = b.try_into_mut() {
        give(m);
    }
}

/// Keeps `m`'s buffer (its contents are dropped) when it is worth keeping and there is room.
pub fn give(mut m: BytesMut) {
    m.clear();
    let v = Vec::from(m); // the whole allocation, whatever was consumed from its front
    if (MIN..=MAX_ONE).contains(&v.capacity()) {
        if let Ok(mut p) = POOL.try_lock() {
            p.keep(v);
        }
    }
}

/// Read buffers larger than this are not kept as a thread's spare.
const SPARE_MAX: usize = 16 << 10;

thread_local! {
    /// This thread's spare read buffer: a connection that goes idle gives its emptied read
    /// buffer here and the next connection with bytes to read takes it. With 50 busy
    /// connections taking turns, each turn otherwise allocated a 4 KiB buffer and freed it,
    /// and every allocation that size makes glibc consolidate its small free chunks first
    /// (`malloc_consolidate`, with `malloc` and `free` about 5% of the server's samples at
    /// 64 B x 50). A connection's first read still allocates its own: glibc consolidates the
    /// small chunks a handshake leaves free only when such an allocation comes, and without it
    /// 10,000 idle connections held 2.04 KiB each instead of 1.98 (measured).
    static SPARE_READ: std::cell::Cell<Option<BytesMut>> = const { std::cell::Cell::new(None) };
}

/// An empty buffer with room for at least `room` bytes: this thread's spare read buffer when
/// it has one that large, else a new one.
pub(crate) fn read_buffer(room: usize) -> BytesMut {
    let spare = SPARE_READ.try_with(|s| s.take()).ok().flatten();
    match spare {
        Some(b) if b.capacity() >= room => b,
        _ => BytesMut::with_capacity(room),
    }
}

/// Keeps `b`, an emptied read buffer, as this thread's spare when it has room for `room`
/// bytes without allocating (room consumed from its front is reclaimed) and is not large;
/// else drops it.
pub(crate) fn spare_read_buffer(mut b: BytesMut, room: usize) {
    b.clear();
    if b.try_reclaim(room) && b.capacity() <= SPARE_MAX {
        let _ = SPARE_READ.try_with(|s| {
            let kept = s.take();
            s.set(Some(kept.unwrap_or(b))); // an earlier spare stays: `b` is freed at once
        });
    }
}

/// A Vec becomes a BytesMut through a Bytes (unique, so never copied).
fn to_bytes_mut(v: Vec<u8>) -> BytesMut {
    let cap = v.capacity();
    Bytes::from(v)
        .try_into_mut()
        .unwrap_or_else(|_| BytesMut::with_capacity(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A pool of the test's own: the process-wide one is shared with every other test.

    #[test]
    fn a_large_buffer_kept_is_the_next_one_handed_out_and_keeps_its_allocation() {
        let mut pool = Pool::new();
        let b = copy(&vec![7u8; 100_000]);
        let at = b.as_ptr();
        let mut m = b.try_into_mut().expect("unique");
        bytes::Buf::advance(&mut m, 100_000); // consumed from the front, as a written frame is
        let v = Vec::from(m);
        assert_eq!(
            v.as_ptr(),
            at,
            "the whole allocation comes back, not a copy"
        );
        pool.keep(v);
        assert!(pool.bytes >= 100_000);
        let again = to_bytes_mut(pool.take(90_000).expect("fits"));
        assert_eq!(again.as_ptr(), at, "the kept buffer is reused");
        assert!(again.is_empty() && again.capacity() >= 90_000);
        assert_eq!(pool.bytes, 0);
    }

    #[test]
    fn small_buffers_and_buffers_too_large_for_the_request_are_not_used() {
        let mut pool = Pool::new();
        pool.keep(vec![0u8; 1000]);
        assert_eq!(pool.bytes, 0, "small buffers are malloc's business");
        pool.keep(Vec::with_capacity(MIN));
        assert!(
            pool.take(MIN / 4).is_none(),
            "more than twice the size asked for"
        );
        assert!(pool.take(MIN + 1).is_none(), "too small");
        assert!(pool.take(MIN).is_some());
    }

    #[test]
    fn no_more_than_max_kept_bytes_are_kept() {
        let mut pool = Pool::new();
        for _ in 0..(MAX_KEPT / MAX_ONE + 3) {
            pool.keep(Vec::with_capacity(MAX_ONE));
        }
        assert!(
            pool.bytes <= MAX_KEPT && pool.bytes >= MAX_ONE,
            "{}",
            pool.bytes
        );
        pool.keep(Vec::with_capacity(MAX_ONE + 1));
        assert!(pool.bytes <= MAX_KEPT);
    }

    // Each test runs on a thread of its own, so the spare read buffer is the test's own.

    #[test]
    fn an_emptied_read_buffer_is_the_next_one_this_thread_hands_out() {
        let mut b = read_buffer(4096);
        let at = b.as_ptr();
        b.extend_from_slice(&[5u8; 3000]);
        bytes::Buf::advance(&mut b, 3000); // read and decoded: consumed from the front
        spare_read_buffer(b, 4096);
        let again = read_buffer(4096);
        assert_eq!(
            again.as_ptr(),
            at,
            "the same allocation, its front reclaimed"
        );
        assert!(again.is_empty() && again.capacity() >= 4096);
        let other = read_buffer(4096);
        assert_ne!(other.as_ptr(), at, "the spare is handed out once");
    }

    #[test]
    fn the_first_spare_stays_and_large_or_too_small_buffers_are_not_kept() {
        let first = read_buffer(4096);
        let at = first.as_ptr();
        spare_read_buffer(first, 4096);
        spare_read_buffer(BytesMut::with_capacity(4096), 4096);
        assert_eq!(
            read_buffer(4096).as_ptr(),
            at,
            "an earlier spare is not replaced"
        );

        spare_read_buffer(BytesMut::with_capacity(SPARE_MAX * 2), 4096);
        assert!(
            read_buffer(4096).capacity() < SPARE_MAX * 2,
            "a large buffer is not kept"
        );
        spare_read_buffer(BytesMut::with_capacity(1024), 4096);
        assert!(
            read_buffer(4096).capacity() >= 4096,
            "room for a whole read"
        );
    }

    #[test]
    fn a_shared_buffer_is_not_given_back_while_another_holder_reads_it() {
        let b = copy(&vec![1u8; MIN]);
        let other = b.clone();
        recycle(b);
        assert_eq!(&other[..], &vec![1u8; MIN][..], "intact");
        assert!(other.clone().try_into_mut().is_err());
    }
}
