//! The fastwebsockets baseline of bench/run.sh: an echo server on fastwebsockets (crates.io),
//! as its own documentation writes one (FragmentCollector, so whole messages are echoed;
//! auto pong and auto close; vectored writes, its default), on tokio's multi-thread runtime
//! like the other two servers. The HTTP upgrade is done here on the bare TcpStream (a minimal
//! RFC 6455 handshake) rather than through hyper, so fastwebsockets reads and writes the socket
//! itself, its fastest setting.
//!   fws_echo_server [PORT]   (127.0.0.1; 0 = any free port)
use base64::Engine;
use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn upgrade(s: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 16384 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    // A client speaks only after the 101, so nothing follows the request yet.
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let key = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("sec-websocket-key").then(|| v.trim().to_string())
    })?;
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
    s.write_all(resp.as_bytes()).await.ok()
}

async fn serve(mut tcp: TcpStream) -> Result<(), fastwebsockets::WebSocketError> {
    let _ = tcp.set_nodelay(true);
    if upgrade(&mut tcp).await.is_none() {
        return Ok(());
    }
    let mut ws = WebSocket::after_handshake(tcp, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws.set_max_message_size(64 << 20);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9005".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await.expect("cannot listen");
    println!("fws_echo_server: listening on ws://{}", listener.local_addr().expect("no local address"));
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = serve(tcp).await;
        });
    }
}
