//! Handshake rate (issue 15 §3.8) for bench/run.sh: C clients at a time (8 by default) each
//! open a WebSocket connection and close it again, over and over, for a bounded time: TCP
//! connect, the upgrade request (a fresh random key each time, as browsers send), the 101
//! (checked), a masked Close 1000, the server's Close (checked), then the server's FIN (the
//! server closes TCP first, RFC 6455 §7.1.1, so the TIME_WAIT stays on its side), then close.
//!
//!   hsrate HOST:PORT [--clients C=8] [--secs T=3] [--warmup W=0.5] [--max N=2000000]
//!                    [--pid SERVER_PID]
//!
//! Prints one line of key=value pairs:
//!   handshakes= secs= per_s= p50_us= p99_us= server_cpu_us_per_hs= errors=
//! p50/p99: the time of one whole open-and-close cycle.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    clients: usize,
    secs: f64,
    warmup: f64,
    max: u64,
    pid: Option<u32>,
}

fn parse_args() -> Args {
    let usage = "usage: hsrate HOST:PORT [--clients C] [--secs T] [--warmup W] [--max N] [--pid PID]";
    let mut it = std::env::args().skip(1);
    let addr = it.next().unwrap_or_else(|| {
        eprintln!("{usage}");
        std::process::exit(2)
    });
    let addr = addr.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut a = Args { addr, clients: 8, secs: 3.0, warmup: 0.5, max: 2_000_000, pid: None };
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        });
        let bad = || -> ! {
            eprintln!("hsrate: bad value for {k}: {v}");
            std::process::exit(2)
        };
        match k.as_str() {
            "--clients" => a.clients = v.parse().unwrap_or_else(|_| bad()),
            "--secs" => a.secs = v.parse().unwrap_or_else(|_| bad()),
            "--warmup" => a.warmup = v.parse().unwrap_or_else(|_| bad()),
            "--max" => a.max = v.parse().unwrap_or_else(|_| bad()),
            "--pid" => a.pid = Some(v.parse().unwrap_or_else(|_| bad())),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2)
            }
        }
    }
    if a.clients == 0 || !(a.secs > 0.0 && a.secs <= 600.0) || !(0.0..=60.0).contains(&a.warmup) {
        eprintln!("hsrate: clients must be positive, 0 < secs <= 600, 0 <= warmup <= 60");
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

/// A random Sec-WebSocket-Key: 16 bytes of a cheap generator (xorshift), in base64.
fn key(state: &mut u64) -> String {
    use base64::Engine;
    let mut b = [0u8; 16];
    for chunk in b.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 1024];
    let n = s.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// One open-and-close cycle.
async fn cycle(addr: &str, req_head: &str, rng: &mut u64) -> std::io::Result<()> {
    let io = |m: &str| std::io::Error::other(m.to_string());
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!("{req_head}Sec-WebSocket-Key: {}\r\n\r\n", key(rng));
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(512);
    let end = loop {
        if read_some(&mut s, &mut buf).await? == 0 {
            return Err(io("closed during the handshake"));
        }
        if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break e + 4;
        }
        if buf.len() > 16384 {
            return Err(io("response head too long"));
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        return Err(io(&format!("refused: {}", String::from_utf8_lossy(&buf[..end]))));
    }
    buf.drain(..end);
    // Close 1000, masked with a fixed key.
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let code = 1000u16.to_be_bytes();
    let close = [0x88, 0x82, mask[0], mask[1], mask[2], mask[3], code[0] ^ mask[0], code[1] ^ mask[1]];
    s.write_all(&close).await?;
    while buf.len() < 2 || buf.len() < 2 + (buf[1] & 0x7f) as usize {
        if read_some(&mut s, &mut buf).await? == 0 {
            return Err(io("closed before its Close frame"));
        }
    }
    if buf[0] != 0x88 {
        return Err(io(&format!("expected a Close frame, got opcode byte {:#x}", buf[0])));
    }
    // The server closes TCP once its Close is out.
    let mut rest = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io("the server did not close TCP within 5 s")),
        }
    }
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    done: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let sh = Arc::new(Shared {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let lat = Arc::new(Mutex::new(Vec::<u32>::new()));
        let head = Arc::new(format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
            a.addr
        ));
        let max = a.max;
        let mut tasks = Vec::new();
        for i in 0..a.clients {
            let (sh, lat, head, addr) = (sh.clone(), lat.clone(), head.clone(), a.addr.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((i as u64 + 1) << 32);
                let mut mine = Vec::new();
                while !sh.stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    match cycle(&addr, &head, &mut rng).await {
                        Ok(()) => {
                            if sh.measuring.load(Ordering::Relaxed) {
                                mine.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                if sh.done.fetch_add(1, Ordering::Relaxed) + 1 >= max {
                                    sh.stop.store(true, Ordering::Relaxed);
                                }
                            }
                        }
                        Err(e) => {
                            sh.errors.fetch_add(1, Ordering::Relaxed);
                            sh.first_error.lock().unwrap().get_or_insert_with(|| e.to_string());
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                lat.lock().unwrap().extend(mine);
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
        let cpu0 = a.pid.and_then(proc_cpu);
        let t0 = Instant::now();
        sh.measuring.store(true, Ordering::Relaxed);
        let end = t0 + Duration::from_secs_f64(a.secs);
        while Instant::now() < end && !sh.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sh.measuring.store(false, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        let done = sh.done.load(Ordering::Relaxed);
        let cpu1 = a.pid.and_then(proc_cpu);
        sh.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let mut l = lat.lock().unwrap().clone();
        l.sort_unstable();
        let pct = |p: f64| if l.is_empty() { 0 } else { l[((l.len() - 1) as f64 * p) as usize] };
        let cpu = match (cpu0, cpu1) {
            (Some(c0), Some(c1)) if done > 0 => format!("{:.2}", (c1 - c0) * 1e6 / done as f64),
            _ => "-".into(),
        };
        println!(
            "handshakes={done} secs={secs:.3} per_s={:.0} p50_us={} p99_us={} server_cpu_us_per_hs={cpu} errors={}",
            done as f64 / secs,
            pct(0.5),
            pct(0.99),
            sh.errors.load(Ordering::Relaxed)
        );
        let first = sh.first_error.lock().unwrap().clone();
        if let Some(e) = first {
            eprintln!("hsrate: first error: {e}");
        }
    });
}
