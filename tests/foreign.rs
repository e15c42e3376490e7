//! wsnative (through the C ABI) against foreign peers: tokio-tungstenite, and raw sockets that
//! misbehave on purpose (vanish, never answer Close, send fragments, lies, invalid UTF-8).

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use wsnative::ffi::*;

/// Starts a foreign server that runs `serve` on its first WebSocket connection; returns its URL.
fn foreign_server<F, Fut>(rt: &tokio::runtime::Runtime, serve: F) -> String
where
    F: FnOnce(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    rt.spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), serve(ws))
            .await
            .ok();
    });
    url
}

fn close_of(c: &TestClient) -> (u16, bool, Option<String>, wsn_status) {
    match c.rec.wait_close() {
        Ev::Close {
            code,
            clean,
            error,
            status,
            ..
        } => (code, clean, error, status),
        _ => unreachable!(),
    }
}

#[test]
fn nothing_lost_a_vanished_peer_gives_1006_with_an_error() {
    let rt = foreign_runtime();
    let url = foreign_server(&rt, |ws| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tcp = ws.into_inner();
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO)).unwrap(); // close = RST, no Close frame
        drop(tcp);
    });
    let start = Instant::now();
    let c = TestClient::connect(&url, std::ptr::null());
    c.rec.wait_open();
    let (code, clean, error, _) = close_of(&c);
    assert_eq!((code, clean), (1006, false));
    let error = error.expect("an error text");
    assert!(
        error.contains("reset") || error.contains("without a Close"),
        "{error}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn nothing_lost_a_vanished_client_gives_the_server_1006() {
    let server = TestServer::start(Recorder::server(), std::ptr::null(), None);
    let rt = foreign_runtime();
    let url = server.url();
    rt.block_on(async move {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let tcp = match ws.into_inner() {
            tokio_tungstenite::MaybeTlsStream::Plain(t) => t,
            _ => unreachable!(),
        };
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO)).unwrap();
    });
    match server.rec.wait_close() {
        Ev::Close {
            code, clean, error, ..
        } => {
            assert_eq!((code, clean), (1006, false));
            assert!(error.is_some());
        }
        _ => unreachable!(),
    }
}

#[test]
fn close_finishes_when_the_peer_never_answers() {
    let rt = foreign_runtime();
    let url = foreign_server(&rt, |ws| async move {
        tokio::time::sleep(Duration::from_secs(30)).await; // never reads: never answers
        drop(ws);
    });
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_close_timeout_ms(o, 700) };
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    c.rec.wait_open();
    let start = Instant::now();
    assert_eq!(c.close(1000, "bye"), wsn_status::WSN_OK);
    let (code, clean, error, status) = close_of(&c);
    let took = start.elapsed();
    assert_eq!(
        (code, clean, status),
        (1006, false, wsn_status::WSN_ERR_TIMEOUT)
    );
    assert!(error.unwrap().contains("close timed out"));
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn heartbeat_detects_a_peer_that_stopped_answering() {
    let rt = foreign_runtime();
    let url = foreign_server(&rt, |ws| async move {
        tokio::time::sleep(Duration::from_secs(30)).await; // alive but silent: no Pong ever
        drop(ws);
    });
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_ping_interval_ms(o, 200);
        wsn_client_options_set_pong_timeout_ms(o, 400);
    }
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    c.rec.wait_open();
    let (code, clean, error, status) = close_of(&c);
    assert_eq!(
        (code, clean, status),
        (1006, false, wsn_status::WSN_ERR_TIMEOUT)
    );
    assert!(error.unwrap().contains("Pong"));
}

#[test]
fn heartbeat_keeps_an_answering_peer_alive() {
    let rt = foreign_runtime();
    let url = foreign_server(&rt, |mut ws| async move {
        // Reading answers pings (tungstenite replies automatically).
        // Reading until the end also sends tungstenite's automatic Close reply.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_ping_interval_ms(o, 100);
        wsn_client_options_set_pong_timeout_ms(o, 2000);
    }
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    c.rec.wait_open();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        unsafe { wsn_conn_get_state(c.conn) },
        wsn_conn_state::WSN_STATE_OPEN
    );
    c.close(1000, "");
    assert_eq!(close_of(&c).0, 1000);
}

#[test]
fn messages_in_100_fragments_arrive_whole() {
    let rt = foreign_runtime();
    let url = foreign_server(&rt, |mut ws| async move {
        let text: String = (0..100).map(|i| format!("{i:04}-fragment;")).collect();
        let bytes = text.as_bytes();
        let chunk = bytes.len() / 100;
        for i in 0..100 {
            let part = &bytes[i * chunk..if i == 99 {
                bytes.len()
            } else {
                (i + 1) * chunk
            }];
            let op = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            ws.feed(Message::Frame(Frame::message(part.to_vec(), op, i == 99)))
                .await
                .unwrap();
        }
        ws.flush().await.unwrap();
        // Reading until the end also sends tungstenite's automatic Close reply.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let c = TestClient::connect(&url, std::ptr::null());
    c.rec
        .wait(WAIT, "the message", |e| (msg_count(e) == 1).then_some(()));
    let (text, data) = c.rec.messages().remove(0);
    let expected: String = (0..100).map(|i| format!("{i:04}-fragment;")).collect();
    assert!(text);
    assert_eq!(String::from_utf8(data).unwrap(), expected);
    c.close(1000, "");
    assert_eq!(close_of(&c).0, 1000);
}

/// A foreign server that writes raw bytes after the handshake and reports the Close it gets.
fn raw_server(
    rt: &tokio::runtime::Runtime,
    raw: Vec<u8>,
) -> (String, std::sync::mpsc::Receiver<Option<u16>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let url = foreign_server(rt, move |ws| async move {
        let mut tcp = ws.into_inner();
        tcp.write_all(&raw).await.unwrap();
        // Read the client's Close frame: 2-byte header, 4-byte mask, masked payload.
        let mut buf = vec![0u8; 256];
        let mut got = Vec::new();
        let code = loop {
            use tokio::io::AsyncReadExt;
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.len() >= 8 && got[0] & 0x0f == 0x8 {
                let mask = [got[2], got[3], got[4], got[5]];
                break Some(u16::from_be_bytes([got[6] ^ mask[0], got[7] ^ mask[1]]));
            }
        };
        let _ = tx.send(code);
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    (url, rx)
}

#[test]
fn messages_over_the_limit_close_1009_without_buffering() {
    let rt = foreign_runtime();
    // A binary frame header claiming 1 GiB, followed by a few bytes only.
    let mut raw = vec![0x82, 127];
    raw.extend_from_slice(&(1u64 << 30).to_be_bytes());
    raw.extend_from_slice(b"only a few bytes");
    let (url, peer_saw) = raw_server(&rt, raw);
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_max_message_size(o, 1 << 20) };
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    let (code, clean, error, status) = close_of(&c);
    assert_eq!(
        (code, clean, status),
        (1009, false, wsn_status::WSN_ERR_PROTOCOL)
    );
    assert!(error.unwrap().contains("size limit"));
    assert_eq!(
        peer_saw.recv_timeout(WAIT).unwrap(),
        Some(1009),
        "the peer was told why"
    );

    // Over the limit through fragments: closed once the sum passes the limit.
    let rt2 = foreign_runtime();
    let url = foreign_server(&rt2, |mut ws| async move {
        for i in 0..40 {
            let op = if i == 0 {
                OpCode::Data(Data::Binary)
            } else {
                OpCode::Data(Data::Continue)
            };
            if ws
                .send(Message::Frame(Frame::message(
                    vec![0u8; 64 << 10],
                    op,
                    i == 39,
                )))
                .await
                .is_err()
            {
                break;
            }
        }
        while let Some(Ok(_)) = ws.next().await {}
    });
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_max_message_size(o, 1 << 20) };
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    assert_eq!(close_of(&c).0, 1009);
    assert_eq!(c.rec.count_messages(), 0);
}

#[test]
fn messages_invalid_utf8_text_closes_1007() {
    let rt = foreign_runtime();
    let bad = [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xff, 0xfe];
    let mut raw = vec![0x81, bad.len() as u8];
    raw.extend_from_slice(&bad);
    let (url, peer_saw) = raw_server(&rt, raw);
    let c = TestClient::connect(&url, std::ptr::null());
    let (code, clean, error, _) = close_of(&c);
    assert_eq!((code, clean), (1007, false));
    assert!(error.unwrap().contains("UTF-8"));
    assert_eq!(peer_saw.recv_timeout(WAIT).unwrap(), Some(1007));
    assert_eq!(c.rec.count_messages(), 0);
}

#[test]
fn messages_protocol_violation_closes_1002() {
    let rt = foreign_runtime();
    // A frame with a reserved opcode (0x3).
    let (url, peer_saw) = raw_server(&rt, vec![0x83, 0x00]);
    let c = TestClient::connect(&url, std::ptr::null());
    assert_eq!(close_of(&c).0, 1002);
    assert_eq!(peer_saw.recv_timeout(WAIT).unwrap(), Some(1002));
}

fn sizes() -> Vec<usize> {
    vec![0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]
}

#[test]
fn close_finishes_with_a_tokio_tungstenite_server() {
    let rt = foreign_runtime();
    let url = foreign_server(&rt, |mut ws| async move {
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Text(_) | Message::Binary(_) => ws.send(m).await.unwrap(),
                _ => {}
            }
        }
    });
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_set_max_message_size(o, 32 << 20) };
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    c.rec.wait_open();
    let mut expected = Vec::new();
    for n in sizes() {
        let text: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let bin: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(c.send_text(&text), wsn_status::WSN_OK);
        assert_eq!(c.send_binary(&bin), wsn_status::WSN_OK);
        expected.push((true, text.into_bytes()));
        expected.push((false, bin));
    }
    c.rec.wait(Duration::from_secs(60), "echoes", |e| {
        (msg_count(e) == expected.len()).then_some(())
    });
    assert!(c.rec.messages() == expected, "echoes differ");
    c.close(4321, "done");
    let (code, clean, _, _) = close_of(&c);
    assert_eq!((code, clean), (4321, true));
}

#[test]
fn close_finishes_with_a_tokio_tungstenite_client() {
    let srec = Recorder::server();
    srec.set_hook(|conn, ev| {
        if let Ev::Msg { text, data, .. } = ev {
            let st = unsafe {
                if *text {
                    wsn_conn_send_text(conn, data.as_ptr() as *const _, data.len())
                } else {
                    wsn_conn_send_binary(conn, data.as_ptr(), data.len())
                }
            };
            assert_eq!(st, wsn_status::WSN_OK);
        }
    });
    let so = wsn_server_options_new();
    unsafe { wsn_server_options_set_max_message_size(so, 32 << 20) };
    let server = TestServer::start(srec, so, None);
    unsafe { wsn_server_options_free(so) };
    let rt = foreign_runtime();
    let url = server.url();
    let frame = rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(60), async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for n in sizes() {
                let text: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                let bin: Vec<u8> = (0..n).map(|i| (i * 3 % 253) as u8).collect();
                ws.send(Message::text(text.clone())).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
                ws.send(Message::binary(bin.clone())).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(bin));
            }
            ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 4100.into(),
                reason: "tt done".into(),
            }))
            .await
            .unwrap();
            let mut reply = None;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Close(f) = m {
                    reply = f;
                }
            }
            reply
        })
        .await
        .expect("the exchange timed out")
    });
    let f = frame.expect("the server answered the Close");
    assert_eq!((u16::from(f.code), f.reason.as_str()), (4100, "tt done"));
    match server.rec.wait_close() {
        Ev::Close {
            code,
            reason,
            clean,
            ..
        } => assert_eq!((code, reason.as_str(), clean), (4100, "tt done", true)),
        _ => unreachable!(),
    }
}

#[test]
fn replies_to_messages_before_the_peers_close_go_out_before_the_close_reply() {
    let server = echo_server();
    let rt = foreign_runtime();
    let url = server.url();
    let got = rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(30), async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for i in 0..50 {
                ws.feed(Message::text(format!("message {i}")))
                    .await
                    .unwrap();
            }
            // The Close follows the messages at once, in the same write.
            ws.close(None).await.unwrap();
            let mut echoes = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    echoes.push(t.to_string());
                }
            }
            echoes
        })
        .await
        .expect("timed out")
    });
    let want: Vec<String> = (0..50).map(|i| format!("message {i}")).collect();
    assert_eq!(
        got, want,
        "every echo arrives before the server answers the Close"
    );
    assert!(matches!(
        server.rec.wait_close(),
        Ev::Close {
            code: 1005,
            clean: true,
            ..
        }
    ));
}

#[test]
fn echo_of_a_message_before_a_protocol_error_goes_out_before_the_1002() {
    let server = echo_server();
    let rt = foreign_runtime();
    let port = server.port;
    let (echo, code) = rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(30), async move {
            use tokio::io::AsyncReadExt;
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            tcp.write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .unwrap();
            // A masked text "hi", then a frame with reserved opcode 0x3, in one write.
            let mut frames = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
            frames.extend_from_slice(&[0x83, 0x80, 0, 0, 0, 0]);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = tcp.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..i + 4);
                    break;
                }
            }
            tcp.write_all(&frames).await.unwrap();
            while let Ok(n) = tcp.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            // Expect: text frame "hi" (unmasked, from the server), then Close 1002.
            assert!(buf.len() >= 8, "{buf:?}");
            let echo = (buf[0] == 0x81 && buf[1] == 2)
                .then(|| String::from_utf8_lossy(&buf[2..4]).into_owned());
            let close = &buf[4..];
            let code = (close[0] == 0x88).then(|| u16::from_be_bytes([close[2], close[3]]));
            (echo, code)
        })
        .await
        .expect("timed out")
    });
    assert_eq!(echo.as_deref(), Some("hi"));
    assert_eq!(code, Some(1002));
}

#[test]
fn frames_sent_with_the_upgrade_request_are_read_and_the_close_waits_for_their_echo() {
    let server = echo_server();
    let rt = foreign_runtime();
    let port = server.port;
    let answer = rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(30), async move {
            use tokio::io::AsyncReadExt;
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let mut bytes =
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    .to_vec();
            bytes.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]); // text "hi"
            bytes.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]); // Close 1000
            tcp.write_all(&bytes).await.unwrap(); // request and frames in one write
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while let Ok(n) = tcp.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf
        })
        .await
        .expect("timed out")
    });
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response")
        + 4;
    assert!(answer.starts_with(b"HTTP/1.1 101"));
    let frames = &answer[end..];
    assert_eq!(
        &frames[..4],
        &[0x81, 2, b'h', b'i'],
        "the echo first: {frames:?}"
    );
    assert_eq!(
        &frames[4..8],
        &[0x88, 2, 0x03, 0xe8],
        "then the Close reply: {frames:?}"
    );
}
