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

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Decode and encode throughput for 64 B, 64 KiB and 1 MiB messages (both roles, no
/// deflate). No timed assertions.
#[test]
#[ignore]
fn throughput() {
    for &size in &[64usize, 64 << 10, 1 << 20] {
        let total = 256usize << 20;
        let count = (total / size).max(1);
        let payload = Bytes::from(sample_json(size));
        for role in [Role::Server, Role::Client] {
            // Encode: frames of `role`, written into a WriteBuf and drained.
            let mut enc = Encoder::new(&EncoderConfig::new(role));
            let mut wb = WriteBuf::new();
            let mut wire = BytesMut::new();
            let t = Instant::now();
            for i in 0..count {
                enc.message(&mut wb, true, payload.clone(), false).unwrap();
                if wb.len() >= 64 << 10 || i + 1 == count {
                    let mut sl = [std::io::IoSlice::new(&[]); 64];
                    let n = wb.io_slices(&mut sl);
                    let bytes: usize = sl[..n].iter().map(|s| s.len()).sum();
                    if wire.len() < 64 << 20 {
                        for s in &sl[..n] {
                            wire.extend_from_slice(s);
                        }
                    }
                    wb.advance(bytes);
                }
            }
            let enc_s = t.elapsed().as_secs_f64();
            // Decode what the peer of `role` receives: the wire above, in 64 KiB reads.
            let peer = if role == Role::Client {
                Role::Server
            } else {
                Role::Client
            };
            let wire = wire.freeze();
            let mut dec = Decoder::new(&DecoderConfig::new(peer, 64 << 20));
            let t = Instant::now();
            let mut got = 0usize;
            let mut rounds = 0;
            while got < count * size {
                rounds += 1;
                let mut buf = BytesMut::with_capacity(64 << 10);
                let mut at = 0;
                while at < wire.len() {
                    match dec.read_hint() {
                        ReadHint::Direct { remaining } if buf.is_empty() => {
                            let n = remaining.min(wire.len() - at).min(1 << 20);
                            use bytes::BufMut;
                            dec.direct_buf().put_slice(&wire[at..at + n]);
                            at += n;
                            if let Some(Incoming::Message { data, .. }) =
                                dec.direct_filled(n).unwrap()
                            {
                                got += data.len();
                            }
                        }
                        _ => {
                            let n = (64 << 10).min(wire.len() - at);
                            buf.extend_from_slice(&wire[at..at + n]);
                            at += n;
                            while let Some(Incoming::Message { data, .. }) =
                                dec.decode(&mut buf).unwrap()
                            {
                                got += data.len();
                            }
                        }
                    }
                }
            }
            let dec_s = t.elapsed().as_secs_f64();
            println!(
                "{:>8} B  {:?} frames: encode {:>8.0} MB/s   decode ({:?} side) {:>8.0} MB/s",
                size,
                role,
                mbps(count * size, enc_s),
                peer,
                mbps(got, dec_s),
            );
            let _ = rounds;
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
