//! Opens N idle WebSocket connections (tokio-tungstenite) to a URL, prints "ready N", and
//! holds them until stdin closes. Used by bench/idle_memory.sh to load a server.
//! Usage: tt_idle_clients URL N
use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: tt_idle_clients URL N");
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: tt_idle_clients URL N");
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        {
            Ok(Ok((ws, _))) => conns.push(ws),
            other => {
                eprintln!("connection {i} failed: {other:?}");
                std::process::exit(1);
            }
        }
    }
    println!("ready {}", conns.len());
    // Keep reading so pings are answered; end when stdin closes.
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    let _ = tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await;
    drop(readers);
}
