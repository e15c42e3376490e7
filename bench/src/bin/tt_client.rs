//! The client baseline of bench/run.sh: one tokio-tungstenite connection keeps W binary
//! messages of SIZE bytes in flight against an echo server (a new one is sent for each echo)
//! for SECS seconds (after a short warm-up) or until N echoes, whichever comes first. Same
//! output as bench/client_inflight.c:
//!   msgs= secs= msgs_per_s= mb_per_s= client_cpu_us_per_msg=
//!   tt_client URL [SECS=3] [SIZE=64] [W=16] [N=50000000]
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};

fn self_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: tt_client URL [SECS] [SIZE] [W] [N]");
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let window: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let total: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(50_000_000);
    let cfg = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(cfg), true),
    )
    .await
    .expect("connect timed out")
    .expect("cannot connect");
    // The reader and the writer are separate tasks: with large messages in flight, a writer
    // that waits for its write while nobody reads would deadlock against the echo server.
    let (mut tx, mut rx) = ws.split();
    let payload = bytes_of(size);
    let credits = std::sync::Arc::new(tokio::sync::Semaphore::new(window));
    let c2 = credits.clone();
    tokio::spawn(async move {
        while let Ok(p) = c2.acquire().await {
            p.forget();
            // Feed what is due, flush once (what a client with a queue would do).
            if tx.feed(Message::Binary(payload.clone())).await.is_err() {
                return;
            }
            while let Ok(p) = c2.try_acquire() {
                p.forget();
                if tx.feed(Message::Binary(payload.clone())).await.is_err() {
                    return;
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
        }
    });
    let warmup_end = Instant::now() + Duration::from_millis(300);
    let (mut t0, mut cpu0, mut got) = (None::<Instant>, 0.0, 0u64);
    let hard_end = Instant::now() + Duration::from_secs_f64(secs + 30.0);
    loop {
        let msg = match tokio::time::timeout_at(hard_end.into(), rx.next()).await {
            Ok(Some(Ok(m))) => m,
            other => {
                eprintln!("tt_client: stopped: {other:?}");
                std::process::exit(1);
            }
        };
        if !msg.is_binary() {
            continue;
        }
        match t0 {
            None if Instant::now() >= warmup_end => {
                t0 = Some(Instant::now());
                cpu0 = self_cpu();
            }
            Some(t) => {
                got += 1;
                if got >= total || t.elapsed().as_secs_f64() >= secs {
                    break;
                }
            }
            None => {}
        }
        credits.add_permits(1);
    }
    let s = t0.unwrap().elapsed().as_secs_f64();
    let cpu = self_cpu() - cpu0;
    println!(
        "msgs={got} secs={s:.3} msgs_per_s={:.0} mb_per_s={:.2} client_cpu_us_per_msg={:.2}",
        got as f64 / s,
        got as f64 * size as f64 / s / 1e6,
        cpu * 1e6 / got as f64
    );
    std::process::exit(0);
}

fn bytes_of(size: usize) -> tokio_tungstenite::tungstenite::Bytes {
    (0..size).map(|i| (i as u8).wrapping_mul(31)).collect::<Vec<u8>>().into()
}
