//! Baseline for bench/pingpong.sh: a tokio-tungstenite client doing N round trips of a
//! SIZE-byte binary message; prints the mean round trip in microseconds.
//! Usage: tt_pingpong URL [N] [SIZE]
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: tt_pingpong URL [N] [SIZE]");
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20000);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("cannot connect");
    let payload = vec![0u8; size];
    let start = std::time::Instant::now();
    for _ in 0..n {
        ws.send(Message::binary(payload.clone()))
            .await
            .expect("send");
        loop {
            match ws.next().await.expect("closed").expect("read") {
                Message::Binary(_) => break,
                _ => continue,
            }
        }
    }
    println!("{:.1}", start.elapsed().as_secs_f64() / n as f64 * 1e6);
    let _ = ws.close(None).await;
}
