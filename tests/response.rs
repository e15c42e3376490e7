//! client-reach (issue 13): the server's answer to the upgrade is readable through the C ABI:
//! status and headers of the 101 on the open connection (a Set-Cookie, a header the server
//! chose), and of a refused upgrade in the CLOSE event. The peer is tokio-tungstenite's server,
//! whose handshake callback adds headers or refuses; the request's own Cookie and Authorization
//! (extra headers) reach it.
#![allow(clippy::result_large_err)] // tungstenite's handshake callback returns its ErrorResponse

/// The request headers a server saw.
type SeenHeaders = Arc<Mutex<Vec<(String, String)>>>;

mod common;

use common::*;
use std::ffi::{c_void, CStr};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use wsnative::ffi::*;

/// What the OPEN or CLOSE callback read of the response: (status, Set-Cookie, all headers).
type Seen = (u16, Option<String>, Vec<(String, String)>);

fn read_response(conn: *mut wsn_conn) -> Seen {
    unsafe {
        let cstr = |p: *const std::ffi::c_char| {
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        let n = wsn_conn_get_response_header_count(conn);
        let all = (0..n)
            .map(|i| {
                (
                    cstr(wsn_conn_get_response_header_name(conn, i)).unwrap(),
                    cstr(wsn_conn_get_response_header_value(conn, i)).unwrap(),
                )
            })
            .collect();
        (
            wsn_conn_get_response_status(conn),
            cstr(wsn_conn_get_response_header(
                conn,
                cstr_static(c"set-cookie"),
            )),
            all,
        )
    }
}

fn cstr_static(c: &'static CStr) -> *const std::ffi::c_char {
    c.as_ptr()
}

/// A tokio-tungstenite server on loopback whose handshake callback decides; it records the
/// request's Cookie and Authorization headers.
fn foreign_server(refuse: bool) -> (tokio::runtime::Runtime, u16, SeenHeaders) {
    let rt = foreign_runtime();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = seen.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let cb = move |req: &Request,
                               mut resp: Response|
                      -> Result<Response, ErrorResponse> {
                    for name in ["cookie", "authorization"] {
                        if let Some(v) = req.headers().get(name) {
                            s.lock()
                                .unwrap()
                                .push((name.into(), v.to_str().unwrap().into()));
                        }
                    }
                    if refuse {
                        let mut e = ErrorResponse::new(Some("log in first".into()));
                        *e.status_mut() =
                            tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
                        e.headers_mut()
                            .insert("WWW-Authenticate", "Bearer realm=\"chat\"".parse().unwrap());
                        return Err(e);
                    }
                    let h = resp.headers_mut();
                    h.insert("Set-Cookie", "session=abc123; HttpOnly".parse().unwrap());
                    h.insert("X-Server-Choice", "blue".parse().unwrap());
                    Ok(resp)
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await {
                    use futures_util::{SinkExt, StreamExt};
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_close() {
                            break;
                        }
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    (rt, port, seen)
}

static OPENED: Mutex<Option<Seen>> = Mutex::new(None);
static CLOSED: Mutex<Option<Seen>> = Mutex::new(None);

unsafe extern "C" fn on_event(user: *mut c_void, conn: *mut wsn_conn, ev: *const wsn_event) {
    match (*ev).kind {
        wsn_event_kind::WSN_EVENT_OPEN => *OPENED.lock().unwrap() = Some(read_response(conn)),
        wsn_event_kind::WSN_EVENT_CLOSE => *CLOSED.lock().unwrap() = Some(read_response(conn)),
        _ => {}
    }
    record(user, conn, ev);
}

fn connect_with_auth(port: u16) -> TestClient {
    let o = wsn_client_options_new();
    unsafe {
        // Cookies and Authorization go out as extra request headers.
        wsn_client_options_add_header(o, cstr("Cookie").as_ptr(), cstr("theme=dark").as_ptr());
        wsn_client_options_add_header(
            o,
            cstr("Authorization").as_ptr(),
            cstr("Bearer t0ken").as_ptr(),
        );
    }
    let rec = Recorder::new();
    let mut conn = std::ptr::null_mut();
    let st = unsafe {
        wsn_connect(
            cstr(&format!("ws://127.0.0.1:{port}/")).as_ptr(),
            o,
            Some(on_event),
            rec.user(),
            &mut conn,
        )
    };
    unsafe { wsn_client_options_free(o) };
    assert_eq!(st, wsn_status::WSN_OK, "{}", last_error());
    TestClient { conn, rec }
}

#[test]
fn the_101_and_a_refusal_are_readable_with_their_headers() {
    // Accepted: the 101's status and headers, in the OPEN event and after.
    let (_rt, port, seen) = foreign_server(false);
    let c = connect_with_auth(port);
    c.rec.wait_open();
    let (status, cookie, all) = OPENED.lock().unwrap().clone().unwrap();
    assert_eq!(status, 101);
    assert_eq!(cookie.as_deref(), Some("session=abc123; HttpOnly"));
    assert!(
        all.iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-server-choice") && v == "blue"),
        "{all:?}"
    );
    assert!(
        all.iter().any(|(n, _)| n.eq_ignore_ascii_case("upgrade")),
        "{all:?}"
    );
    assert_eq!(read_response(c.conn).0, 101);
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![
            ("cookie".to_string(), "theme=dark".to_string()),
            ("authorization".to_string(), "Bearer t0ken".to_string())
        ]
    );
    c.close(1000, "");
    c.rec.wait_close();

    // Refused: the status and headers of the refusal, in the CLOSE event.
    let (_rt2, port2, _) = foreign_server(true);
    let c = connect_with_auth(port2);
    match c.rec.wait_close() {
        Ev::Close { http, status, .. } => {
            assert_eq!((http, status), (401, wsn_status::WSN_ERR_HANDSHAKE))
        }
        _ => unreachable!(),
    }
    let (status, _, all) = CLOSED.lock().unwrap().clone().unwrap();
    assert_eq!(status, 401);
    assert!(
        all.iter().any(
            |(n, v)| n.eq_ignore_ascii_case("www-authenticate") && v == "Bearer realm=\"chat\""
        ),
        "{all:?}"
    );
    unsafe {
        assert_eq!(
            CStr::from_ptr(wsn_conn_get_response_header(
                c.conn,
                cstr_static(c"WWW-Authenticate")
            ))
            .to_str()
            .unwrap(),
            "Bearer realm=\"chat\""
        );
        assert!(wsn_conn_get_response_header(c.conn, cstr_static(c"set-cookie")).is_null());
        assert!(wsn_conn_get_response_header_name(c.conn, 999).is_null());
        assert_eq!(wsn_conn_get_response_status(std::ptr::null()), 0);
    }

    // A server connection has no response.
    let server = echo_server();
    let c = TestClient::connect(&server.url(), std::ptr::null());
    c.rec.wait_open();
    let sconn = server
        .rec
        .wait(WAIT, "server open", |evs| evs.first().map(|e| e.conn()));
    assert_eq!(
        unsafe { wsn_conn_get_response_status(sconn as *const wsn_conn) },
        0
    );
}
