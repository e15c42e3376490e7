//! Measurements rather than checks: a counting allocator (per thread, so parallel tests do
//! not disturb it), deflate memory per connection, and an ignored throughput benchmark:
//! `cargo test --release --lib protocol::bench -- --ignored --nocapture`.

use super::deflate::{self, DeflateParams, Deflater, Inflater};
use super::*;
use bytes::{Bytes, BytesMut};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as isize - l.size() as isize);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Bytes allocated by this thread and still live.
pub(crate) fn live() -> isize {
    LIVE.with(|l| l.get())
}

/// Runs `f` and returns its result with the peak of live bytes above the starting level.
pub(crate) fn peak_during<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let base = live();
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(|p| p.get()) - base)
}

fn params(bits: u8, no_ctx: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: no_ctx,
        client_no_context_takeover: no_ctx,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    }
}

fn sample_json(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0u64;
    while v.len() < n {
        v.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"user{}\",\"score\":{}}},",
                i * 7919 % 1000,
                i * 31 % 977
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(n);
    v
}

/// Memory that stays with a connection between messages, per window size, with and
/// without context takeover. Printed with --nocapture; the numbers are in deflate.rs.
#[test]
fn deflate_memory() {
    let msg = sample_json(16 << 10);
    println!(
        "bits  deflater(ctx)  inflater(ctx)  peak-deflate  peak-inflate  idle(no ctx)  thread pool"
    );
    for bits in 8..=15u8 {
        let mut idle_no_ctx = 0;
        let mut pooled = 0;
        let mut row = Vec::new();
        for no_ctx in [false, true] {
            deflate::clear_thread_pool();
            let p = params(bits, no_ctx);
            let base = live();
            let (mut d, peak_d) = peak_during(|| {
                let mut d = Deflater::new(&p, Role::Server, 6);
                let mut out = BytesMut::new();
                d.compress(&msg, &mut out);
                (d, out)
            });
            let z = std::mem::take(&mut d.1);
            let zcap = z.capacity() as isize;
            let after_d = live() - base - zcap;
            let (i, peak_i) = peak_during(|| {
                let mut i = Inflater::new(&p, Role::Client);
                let mut out = BytesMut::new();
                i.inflate(&z, &mut out, 1 << 30).unwrap();
                i.finish(&mut out, 1 << 30).unwrap();
                assert_eq!(&out[..], &msg[..]);
                i
            });
            let after_i = live() - base - zcap - after_d;
            if no_ctx {
                assert!(!d.0.is_allocated() && !i.is_allocated());
                pooled = after_d + after_i; // in this thread's pool, not the connection
                deflate::clear_thread_pool();
                idle_no_ctx = live() - base - zcap;
            } else {
                row = vec![after_d, after_i, peak_d, peak_i];
            }
            drop((d, i, z));
        }
        println!(
            "{bits:>4}  {:>13}  {:>13}  {:>12}  {:>12}  {idle_no_ctx:>12}  {pooled:>12}",
            row[0], row[1], row[2], row[3]
        );
        assert_eq!(
            idle_no_ctx, 0,
            "no context takeover must hold nothing while idle"
        );
    }
}

/// A socket that replays `wire` forever, `chunk` bytes per read, and swallows writes.
struct Replay {
    wire: Bytes,
    at: usize,
    chunk: usize,
}

impl std::io::Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.wire.len() {
            self.at = 0;
        }
        let n = buf.len().min(self.chunk).min(self.wire.len() - self.at);
        buf[..n].copy_from_slice(&self.wire[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl std::io::Write for Replay {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Encodes `count` messages and drains them through `io_slices` into a sink that copies
/// like a socket write would. Returns the seconds taken and, if `capture`, the wire (first
/// 64 MiB).
fn encode_run(role: Role, payload: &Bytes, count: usize, capture: bool) -> (f64, Bytes) {
    let mut enc = Encoder::new(&EncoderConfig::new(role));
    let mut wb = WriteBuf::new();
    let mut wire = BytesMut::new();
    let mut sink: Vec<u8> = Vec::with_capacity(256 << 10);
    let t = Instant::now();
    for i in 0..count {
        enc.message(&mut wb, true, payload.clone(), false).unwrap();
        if wb.len() >= 64 << 10 || i + 1 == count {
            let capture = capture && wire.len() < 64 << 20; // whole frames only
            while !wb.is_empty() {
                let mut sl = [std::io::IoSlice::new(&[]); 64];
                let n = wb.io_slices(&mut sl);
                let mut bytes = 0;
                sink.clear();
                for s in &sl[..n] {
                    let k = s.len().min(sink.capacity() - sink.len());
                    sink.extend_from_slice(&s[..k]);
                    bytes += k;
                }
                if capture {
                    wire.extend_from_slice(&sink);
                }
                wb.advance(bytes);
            }
        }
    }
    (t.elapsed().as_secs_f64(), wire.freeze())
}

/// Decodes `wire` (repeated) in 64 KiB reads, direct reads for large payloads, until
/// `want` payload bytes came out. Returns the seconds taken.
fn decode_run(role: Role, wire: &Bytes, want: usize) -> f64 {
    let mut dec = Decoder::new(&DecoderConfig::new(role, 64 << 20));
    let mut got = 0usize;
    let mut buf = BytesMut::with_capacity(64 << 10);
    let t = Instant::now();
    while got < want {
        let mut at = 0;
        while at < wire.len() {
            match dec.read_hint() {
                ReadHint::Direct { remaining } if buf.is_empty() => {
                    let n = remaining.min(wire.len() - at).min(1 << 20);
                    use bytes::BufMut;
                    dec.direct_buf().put_slice(&wire[at..at + n]);
                    at += n;
                    if let Some(Incoming::Message { data, .. }) = dec.direct_filled(n).unwrap() {
                        got += data.len();
                    }
                }
                _ => {
                    let n = (64 << 10).min(wire.len() - at);
                    buf.extend_from_slice(&wire[at..at + n]);
                    at += n;
                    while let Some(Incoming::Message { data, .. }) = dec.decode(&mut buf).unwrap() {
                        got += data.len();
                    }
                }
            }
        }
    }
    t.elapsed().as_secs_f64()
}

/// tungstenite reading the same frames, for scale.
fn tungstenite_run(role: Role, wire: &Bytes, want: usize) -> f64 {
    let tt_role = match role {
        Role::Client => tungstenite::protocol::Role::Client,
        Role::Server => tungstenite::protocol::Role::Server,
    };
    let cfg = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let replay = Replay {
        wire: wire.clone(),
        at: 0,
        chunk: 64 << 10,
    };
    let mut tt = tungstenite::WebSocket::from_raw_socket(replay, tt_role, Some(cfg));
    let mut got = 0usize;
    let t = Instant::now();
    while got < want {
        match tt.read().unwrap() {
            tungstenite::Message::Text(m) => got += m.len(),
            tungstenite::Message::Binary(m) => got += m.len(),
            _ => {}
        }
    }
    t.elapsed().as_secs_f64()
}

/// Decode and encode throughput for 64 B, 64 KiB and 1 MiB messages, both roles, no
/// deflate; best of 5 runs of 64 MiB each (the machine is shared). No timed assertions.
#[test]
#[ignore]
fn throughput() {
    for &size in &[64usize, 64 << 10, 1 << 20] {
        let count = ((64usize << 20) / size).max(1);
        let total = count * size;
        let payload = Bytes::from(sample_json(size));
        for role in [Role::Server, Role::Client] {
            let peer = if role == Role::Client {
                Role::Server
            } else {
                Role::Client
            };
            let (mut enc, mut dec, mut tt) = (f64::MAX, f64::MAX, f64::MAX);
            let (_, wire) = encode_run(role, &payload, count, true);
            for _ in 0..5 {
                enc = enc.min(encode_run(role, &payload, count, false).0);
                dec = dec.min(decode_run(peer, &wire, total));
                tt = tt.min(tungstenite_run(peer, &wire, total));
            }
            println!(
                "{size:>8} B  {role:?} frames: encode {:>6.0} MB/s   decode ({peer:?} side) {:>6.0} MB/s   tungstenite decode {:>6.0} MB/s",
                mbps(total, enc),
                mbps(total, dec),
                mbps(total, tt),
            );
        }
    }
    // Deflate, 64 KiB JSON, context takeover.
    let payload = Bytes::from(sample_json(64 << 10));
    let p = params(15, false);
    let mut enc = Encoder::new(&EncoderConfig {
        role: Role::Server,
        deflate: Some(p),
        level: 6,
        threshold: 64,
    });
    let mut dec = Decoder::new(&DecoderConfig {
        deflate: Some(p),
        ..DecoderConfig::new(Role::Client, 64 << 20)
    });
    let mut wb = WriteBuf::new();
    let n = 400;
    let t = Instant::now();
    let mut wire = BytesMut::new();
    for _ in 0..n {
        enc.message(&mut wb, true, payload.clone(), true).unwrap();
        let mut sl = [std::io::IoSlice::new(&[]); 8];
        let k = wb.io_slices(&mut sl);
        for s in &sl[..k] {
            wire.extend_from_slice(s);
        }
        let l = wb.len();
        wb.advance(l);
    }
    let enc_s = t.elapsed().as_secs_f64();
    let zlen = wire.len();
    let t = Instant::now();
    let mut got = 0;
    while let Some(Incoming::Message { data, .. }) = dec.decode(&mut wire).unwrap() {
        got += data.len();
    }
    let dec_s = t.elapsed().as_secs_f64();
    println!(
        "deflate 64 KiB JSON (ratio {:.1}%): compress {:.0} MB/s, inflate {:.0} MB/s",
        zlen as f64 * 100.0 / (n * payload.len()) as f64,
        mbps(n * payload.len(), enc_s),
        mbps(got, dec_s)
    );
}

/// Cost of building a deflater per message (no context takeover) against keeping one.
#[test]
#[ignore]
fn deflate_small_messages() {
    for size in [256usize, 1024, 16 << 10] {
        let m = sample_json(size);
        for no_ctx in [false, true] {
            let mut d = Deflater::new(&params(15, no_ctx), Role::Server, 6);
            let mut i = Inflater::new(&params(15, no_ctx), Role::Client);
            let n = (64 << 20) / size;
            let mut out = BytesMut::new();
            let mut back = BytesMut::new();
            let t = Instant::now();
            let mut z = 0;
            for _ in 0..n {
                out.clear();
                d.compress(&m, &mut out);
                z += out.len();
            }
            let ct = t.elapsed().as_secs_f64();
            let mut d = Deflater::new(&params(15, no_ctx), Role::Server, 6);
            let t = Instant::now();
            for _ in 0..n.min(2000) {
                out.clear();
                d.compress(&m, &mut out);
                back.clear();
                i.inflate(&out, &mut back, 1 << 30).unwrap();
                i.finish(&mut back, 1 << 30).unwrap();
            }
            let rt = t.elapsed().as_secs_f64();
            println!(
                "{size:>6} B no_context_takeover={no_ctx:<5}: compress {:>6.1} us/msg ({:.0} MB/s, ratio {:.1}%), compress+inflate {:>6.1} us/msg",
                ct * 1e6 / n as f64,
                mbps(n * size, ct),
                z as f64 * 100.0 / (n * size) as f64,
                rt * 1e6 / n.min(2000) as f64
            );
        }
    }
}

/// Profiling aid: decoding 64-byte messages only.
#[test]
#[ignore]
fn decode_small_only() {
    let payload = Bytes::from(sample_json(64));
    let (_, wire) = encode_run(Role::Server, &payload, 1 << 20, true);
    let mut best = f64::MAX;
    let mut tt = f64::MAX;
    for _ in 0..5 {
        best = best.min(decode_run(Role::Client, &wire, 64 << 20));
        tt = tt.min(tungstenite_run(Role::Client, &wire, 64 << 20));
    }
    println!(
        "64 B decode: {:.0} MB/s ({:.1} ns/msg), tungstenite {:.0} MB/s",
        mbps(64 << 20, best),
        best * 1e9 / (1 << 20) as f64,
        mbps(64 << 20, tt)
    );
}

/// Profiling aid: only our decoder on 64-byte messages (for `perf stat`).
#[test]
#[ignore]
fn decode_small_ours() {
    let payload = Bytes::from(sample_json(64));
    let (_, wire) = encode_run(Role::Server, &payload, 1 << 20, true);
    for _ in 0..5 {
        decode_run(Role::Client, &wire, 64 << 20);
    }
}

/// Profiling aid: only tungstenite on 64-byte messages (for `perf stat`).
#[test]
#[ignore]
fn decode_small_tungstenite() {
    let payload = Bytes::from(sample_json(64));
    let (_, wire) = encode_run(Role::Server, &payload, 1 << 20, true);
    for _ in 0..5 {
        tungstenite_run(Role::Client, &wire, 64 << 20);
    }
}

/// Profiling aid: the setup of the two above alone (subtract it).
#[test]
#[ignore]
fn decode_small_baseline() {
    let payload = Bytes::from(sample_json(64));
    let (_, wire) = encode_run(Role::Server, &payload, 1 << 20, true);
    assert!(!wire.is_empty());
}

/// Masking: in place and while copying (the client's sends, a payload arriving in pieces),
/// 64 KiB and 1 MiB, best of 200 runs.
#[test]
#[ignore]
fn masking() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    for size in [64usize << 10, 1 << 20] {
        let src = vec![0xa5u8; size];
        let mut buf = src.clone();
        let mut dst = BytesMut::with_capacity(size);
        let (mut inplace, mut copying) = (f64::MAX, f64::MAX);
        for _ in 0..200 {
            let t = Instant::now();
            frame::apply_mask(&mut buf, mask, 1);
            inplace = inplace.min(t.elapsed().as_secs_f64());
            dst.clear();
            let t = Instant::now();
            frame::extend_masked(&mut dst, &src, mask, 1);
            copying = copying.min(t.elapsed().as_secs_f64());
        }
        assert_eq!(dst.len(), size);
        println!(
            "{:>5} KiB: in place {:.1} us ({:.0} MB/s), while copying {:.1} us ({:.0} MB/s)",
            size >> 10,
            inplace * 1e6,
            mbps(size, inplace),
            copying * 1e6,
            mbps(size, copying)
        );
    }
}
