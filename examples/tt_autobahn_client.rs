//! Baseline for the conformance run: a plain tokio-tungstenite Autobahn testee client
//! (AUTOBAHN_URL, AUTOBAHN_AGENT), as the crate's own autobahn-client example.
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;

#[tokio::main]
async fn main() {
    let base = std::env::var("AUTOBAHN_URL").unwrap_or_else(|_| "ws://127.0.0.1:9001".into());
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "tokio-tungstenite".into());
    let (mut ws, _) = connect_async(format!("{base}/getCaseCount"))
        .await
        .expect("getCaseCount");
    let count: u32 = ws
        .next()
        .await
        .expect("no case count")
        .expect("case count")
        .to_text()
        .unwrap()
        .parse()
        .unwrap();
    let _ = ws.close(None).await;
    for case in 1..=count {
        let Ok((mut ws, _)) =
            connect_async(format!("{base}/runCase?case={case}&agent={agent}")).await
        else {
            continue;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    }
    let (mut ws, _) = connect_async(format!("{base}/updateReports?agent={agent}"))
        .await
        .expect("updateReports");
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
}
