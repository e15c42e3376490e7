//! The load generator of bench/run.sh: N connections to a WebSocket echo server, K binary
//! messages of S bytes in flight on each, for a bounded time (and a bounded count).
//!
//!   loadgen HOST:PORT [--conns N=1] [--inflight K=1] [--size S=64] [--secs T=3]
//!                     [--warmup W=0.5] [--max-msgs M=50000000] [--pid SERVER_PID]
//!
//! Raw tokio sockets and a minimal frame writer: each connection sends one prebuilt, masked
//! frame (the mask is applied once, at start), so the generator spends next to nothing per
//! message and the server's costs dominate. Echoes are parsed as frames (FIN ends a message;
//! a server may fragment). Round-trip latency is the time from the write of a message to the
//! end of its echo (echoes come back in order on a connection). Messages are counted after the
//! warm-up, for T seconds. With --pid, the server's CPU time (utime+stime of /proc/PID/stat)
//! over the same window is divided by the messages echoed.
//!
//! Prints one line of key=value pairs:
//!   msgs= secs= msgs_per_s= mb_per_s= p50_us= p99_us= server_cpu_us_per_msg= client_cpu_us_per_msg=
//! MB/s counts payload bytes echoed (one direction), 1 MB = 10^6 bytes.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

struct Args {
    addr: String,
    conns: usize,
    inflight: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    max_msgs: u64,
    pid: Option<u32>,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let usage = "usage: loadgen HOST:PORT [--conns N] [--inflight K] [--size S] [--secs T] [--warmup W] [--max-msgs M] [--pid PID]";
    let addr = it.next().unwrap_or_else(|| {
        eprintln!("{usage}");
        std::process::exit(2)
    });
    let addr = addr.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut a = Args { addr, conns: 1, inflight: 1, size: 64, secs: 3.0, warmup: 0.5, max_msgs: 50_000_000, pid: None };
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        });
        let bad = || -> ! {
            eprintln!("loadgen: bad value for {k}: {v}");
            std::process::exit(2)
        };
        match k.as_str() {
            "--conns" => a.conns = v.parse().unwrap_or_else(|_| bad()),
            "--inflight" => a.inflight = v.parse().unwrap_or_else(|_| bad()),
            "--size" => a.size = v.parse().unwrap_or_else(|_| bad()),
            "--secs" => a.secs = v.parse().unwrap_or_else(|_| bad()),
            "--warmup" => a.warmup = v.parse().unwrap_or_else(|_| bad()),
            "--max-msgs" => a.max_msgs = v.parse().unwrap_or_else(|_| bad()),
            "--pid" => a.pid = Some(v.parse().unwrap_or_else(|_| bad())),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2)
            }
        }
    }
    if a.conns == 0 || a.inflight == 0 || !(a.secs > 0.0 && a.secs <= 600.0) || !(0.0..=60.0).contains(&a.warmup) {
        eprintln!("loadgen: conns and inflight must be positive, 0 < secs <= 600, 0 <= warmup <= 60");
        std::process::exit(2);
    }
    a
}

/// utime+stime of a process, in seconds.
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / if hz > 0.0 { hz } else { 100.0 })
}

fn self_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A client frame: FIN, binary, masked with a fixed non-zero key (the server still unmasks it).
fn masked_frame(size: usize) -> Vec<u8> {
    let key = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = Vec::with_capacity(size + 14);
    f.push(0x82);
    if size < 126 {
        f.push(0x80 | size as u8);
    } else if size <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(size as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(size as u64).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend((0..size).map(|i| (i as u8).wrapping_mul(31) ^ key[i & 3]));
    f
}

async fn handshake(addr: &str) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed during the handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                return Err(std::io::Error::other(format!("handshake refused: {}", String::from_utf8_lossy(&buf[..end]))));
            }
            return Ok((s, buf[end + 4..].to_vec()));
        }
        if buf.len() > 16384 {
            return Err(std::io::Error::other("handshake response too long"));
        }
    }
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    msgs: AtomicU64,
    bytes: AtomicU64,
}

/// Reads echoes: frame headers are parsed, payloads skipped; a FIN data or continuation frame
/// ends a message.
async fn reader(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut pending: Vec<u8>,
    mut sent_at: mpsc::UnboundedReceiver<Instant>,
    credits: Arc<Semaphore>,
    sh: Arc<Shared>,
    lat: Arc<Mutex<Vec<u32>>>,
    size: usize,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut start = 0usize;
    let mut end = pending.len().min(buf.len());
    buf[..end].copy_from_slice(&pending[..end]);
    pending.clear();
    let mut skip: u64 = 0; // payload bytes of the current frame still to come
    let mut fin_data = false; // the current frame ends a message
    loop {
        if skip > 0 {
            if start == end {
                start = 0;
                end = rd.read(&mut buf).await?;
                if end == 0 {
                    return Err(std::io::Error::other("server closed the connection"));
                }
            }
            let take = (skip as usize).min(end - start);
            start += take;
            skip -= take as u64;
            if skip > 0 {
                continue;
            }
        } else {
            // A header: 2 bytes, then the extended length.
            while end - start < 2 || end - start < header_len(&buf[start..end]) {
                if start > 0 {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                let n = rd.read(&mut buf[end..]).await?;
                if n == 0 {
                    return Err(std::io::Error::other("server closed the connection"));
                }
                end += n;
            }
            let h = &buf[start..end];
            let opcode = h[0] & 0x0f;
            let fin = h[0] & 0x80 != 0;
            let hl = header_len(h);
            let len = match h[1] & 0x7f {
                126 => u16::from_be_bytes([h[2], h[3]]) as u64,
                127 => u64::from_be_bytes(h[2..10].try_into().unwrap()),
                n => n as u64,
            };
            if h[1] & 0x80 != 0 {
                return Err(std::io::Error::other("server sent a masked frame"));
            }
            if opcode == 8 {
                return Err(std::io::Error::other("server sent CLOSE"));
            }
            start += hl;
            skip = len;
            fin_data = fin && opcode < 8;
            if skip > 0 {
                continue;
            }
        }
        if fin_data {
            fin_data = false;
            let t = sent_at.recv().await.ok_or_else(|| std::io::Error::other("echo without a message"))?;
            credits.add_permits(1);
            if sh.measuring.load(Ordering::Relaxed) {
                let us = t.elapsed().as_nanos() as u64 / 1000;
                lat.lock().unwrap().push(us.min(u32::MAX as u64) as u32);
                sh.msgs.fetch_add(1, Ordering::Relaxed);
                sh.bytes.fetch_add(size as u64, Ordering::Relaxed);
            }
        }
    }
}

fn header_len(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    mask + match h[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    }
}

async fn writer(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    frame: Arc<Vec<u8>>,
    sent_at: mpsc::UnboundedSender<Instant>,
    credits: Arc<Semaphore>,
    sh: Arc<Shared>,
) -> std::io::Result<()> {
    while !sh.stop.load(Ordering::Relaxed) {
        let Ok(p) = credits.acquire().await else { break };
        p.forget();
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let _ = sent_at.send(Instant::now());
        wr.write_all(&frame).await?;
    }
    Ok(())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = parse_args();
    let frame = Arc::new(masked_frame(a.size));
    let sh = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        msgs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    let (err_tx, mut err_rx) = mpsc::unbounded_channel::<String>();
    let mut lats = Vec::with_capacity(a.conns);
    let mut streams = Vec::with_capacity(a.conns);
    for i in 0..a.conns {
        match tokio::time::timeout(Duration::from_secs(10), handshake(&a.addr)).await {
            Ok(Ok(s)) => streams.push(s),
            Ok(Err(e)) => fail(&format!("connection {i}: {e}")),
            Err(_) => fail(&format!("connection {i}: handshake timed out")),
        }
    }
    for (s, rest) in streams {
        let (rd, wr) = s.into_split();
        let credits = Arc::new(Semaphore::new(a.inflight));
        let (tx, rx) = mpsc::unbounded_channel();
        let lat = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        lats.push(lat.clone());
        let e1 = err_tx.clone();
        let e2 = err_tx.clone();
        let sh1 = sh.clone();
        let size = a.size;
        let c1 = credits.clone();
        tokio::spawn(async move {
            if let Err(e) = reader(rd, rest, rx, c1, sh1.clone(), lat, size).await {
                if !sh1.stop.load(Ordering::Relaxed) {
                    let _ = e1.send(e.to_string());
                }
            }
        });
        let sh2 = sh.clone();
        let f = frame.clone();
        tokio::spawn(async move {
            if let Err(e) = writer(wr, f, tx, credits, sh2.clone()).await {
                if !sh2.stop.load(Ordering::Relaxed) {
                    let _ = e2.send(e.to_string());
                }
            }
        });
    }
    drop(err_tx);
    let check = |rx: &mut mpsc::UnboundedReceiver<String>| {
        if let Ok(e) = rx.try_recv() {
            fail(&e);
        }
    };
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    check(&mut err_rx);
    let cpu0 = a.pid.and_then(proc_cpu);
    let self0 = self_cpu();
    let t0 = Instant::now();
    sh.measuring.store(true, Ordering::Relaxed);
    let deadline = t0 + Duration::from_secs_f64(a.secs);
    // Bounded in time and in count: check every 10 ms.
    while Instant::now() < deadline && sh.msgs.load(Ordering::Relaxed) < a.max_msgs {
        tokio::time::sleep(Duration::from_millis(10)).await;
        check(&mut err_rx);
    }
    sh.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = a.pid.and_then(proc_cpu);
    let self1 = self_cpu();
    sh.stop.store(true, Ordering::Relaxed);
    let msgs = sh.msgs.load(Ordering::Relaxed);
    let bytes = sh.bytes.load(Ordering::Relaxed);
    let mut all: Vec<u32> = Vec::new();
    for l in &lats {
        all.extend_from_slice(&l.lock().unwrap());
    }
    all.sort_unstable();
    let per = |c: f64| if msgs > 0 { format!("{:.2}", c * 1e6 / msgs as f64) } else { "nan".into() };
    let server = match (cpu0, cpu1) {
        (Some(x), Some(y)) => per(y - x),
        _ => "nan".into(),
    };
    println!(
        "msgs={msgs} secs={secs:.3} msgs_per_s={:.0} mb_per_s={:.2} p50_us={:.0} p99_us={:.0} server_cpu_us_per_msg={server} client_cpu_us_per_msg={}",
        msgs as f64 / secs,
        bytes as f64 / secs / 1e6,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        per(self1 - self0),
    );
    // The connections are dropped with the process (the servers see them reset or closed).
    std::process::exit(if msgs > 0 { 0 } else { 1 });
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(1)
}
