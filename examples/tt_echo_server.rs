//! Baseline for the conformance run: a plain tokio-tungstenite echo server (tests/conformance.sh
//! times Autobahn section 9 against it). Usage: tt_echo_server [PORT] (127.0.0.1; 0 = any free port).
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9003".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("cannot listen");
    println!(
        "tt_echo_server: listening on ws://{}",
        listener.local_addr().expect("no local address")
    );
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
}
