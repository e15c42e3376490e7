//! client-reach (issue 13): proxies through the C ABI, against real Debian programs started by
//! the test with a generated configuration: tinyproxy (HTTP CONNECT, with and without Basic
//! authentication, a 403 rule) and microsocks (SOCKS5, with and without a password). The test
//! installs them itself through tests/lib/install.sh, so it passes alone on a fresh machine.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};
use wsnative::ffi::*;

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let st = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". {root}/tests/lib/install.sh && wsn_apt_install tinyproxy microsocks"
            ))
            .status()
            .expect("bash");
        assert!(st.success(), "installing tinyproxy and microsocks failed");
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy process this test started; killed on drop.
struct Proc {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Proc {
    fn wait_listening(mut self) -> Proc {
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("the proxy exited at start: {st}: {}", self.log());
            }
            assert!(Instant::now() < end, "the proxy did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }
    /// CONNECT requests tinyproxy logged.
    fn connects(&self) -> usize {
        self.log().matches("Request (file descriptor").count()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tinyproxy(tag: &str, extra: &str) -> Proc {
    install();
    let dir = std::env::temp_dir().join(format!("wsn-tinyproxy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 200\nAllow 127.0.0.1\n{extra}\n",
        dir.join("proxy.log").display()
    );
    std::fs::write(dir.join("tinyproxy.conf"), conf).unwrap();
    let child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(dir.join("tinyproxy.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tinyproxy");
    Proc { child, port, dir }.wait_listening()
}

fn microsocks(tag: &str, auth: Option<(&str, &str)>) -> Proc {
    install();
    let dir = std::env::temp_dir().join(format!("wsn-microsocks-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut cmd = Command::new("microsocks");
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("microsocks");
    Proc { child, port, dir }.wait_listening()
}

/// An echo server over TLS with a self-signed certificate for localhost, and its PEM file.
struct TlsEcho {
    server: TestServer,
    cert: PathBuf,
}

fn tls_echo(tag: &str) -> TlsEcho {
    let dir = std::env::temp_dir().join(format!("wsn-proxy-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("c.key"), key.serialize_pem()).unwrap();
    let so = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_tls(
            so,
            cstr(dir.join("c.pem").to_str().unwrap()).as_ptr(),
            cstr(dir.join("c.key").to_str().unwrap()).as_ptr(),
        )
    };
    let rec = Recorder::server();
    rec.set_hook(echo);
    let server = TestServer::start(rec, so, None);
    unsafe { wsn_server_options_free(so) };
    TlsEcho {
        server,
        cert: dir.join("c.pem"),
    }
}

fn plain_echo() -> TestServer {
    echo_server()
}

fn options(proxy: Option<&str>, trust: Option<&PathBuf>) -> *mut wsn_client_options {
    let o = wsn_client_options_new();
    unsafe {
        if let Some(p) = proxy {
            assert_eq!(
                wsn_client_options_set_proxy(o, cstr(p).as_ptr()),
                wsn_status::WSN_OK,
                "{}",
                last_error()
            );
        }
        if let Some(t) = trust {
            wsn_client_options_add_trusted_cert_file(o, cstr(t.to_str().unwrap()).as_ptr());
        }
    }
    o
}

/// Connects, sends, expects the echo, closes cleanly.
fn echo_through(url: &str, o: *mut wsn_client_options) {
    let c = TestClient::connect(url, o);
    unsafe { wsn_client_options_free(o) };
    c.rec.wait_open();
    assert_eq!(c.send_text("through the proxy"), wsn_status::WSN_OK);
    c.rec
        .wait(WAIT, "the echo", |e| (msg_count(e) == 1).then_some(()));
    assert_eq!(c.rec.messages()[0].1, b"through the proxy");
    c.close(1000, "");
    match c.rec.wait_close() {
        Ev::Close { code, clean, .. } => assert_eq!((code, clean), (1000, true)),
        _ => unreachable!(),
    }
}

/// Connects and returns the CLOSE event of a connection that must fail.
fn failure(url: &str, o: *mut wsn_client_options) -> (wsn_status, u16, String) {
    let c = TestClient::connect(url, o);
    unsafe { wsn_client_options_free(o) };
    match c.rec.wait_close() {
        Ev::Close {
            code,
            status,
            error,
            http,
            ..
        } => {
            assert_eq!(code, 1006);
            (status, http, error.unwrap_or_default())
        }
        _ => unreachable!(),
    }
}

#[test]
fn an_http_connect_proxy_carries_ws_and_wss() {
    let proxy = tinyproxy("plain", "");
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let ws = plain_echo();
    echo_through(&ws.url(), options(Some(&url), None));
    let wss = tls_echo("plain");
    echo_through(
        &format!("wss://localhost:{}/", wss.server.port),
        options(Some(&url), Some(&wss.cert)),
    );
    let log = proxy.log();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", ws.port)),
        "{log}"
    );
    assert!(
        log.contains(&format!("CONNECT localhost:{}", wss.server.port)),
        "{log}"
    );
}

#[test]
fn an_http_proxy_with_basic_auth_needs_the_right_password_and_says_407_otherwise() {
    let proxy = tinyproxy("auth", "BasicAuth alice s3cret");
    let ws = plain_echo();
    let wss = tls_echo("auth");
    echo_through(
        &ws.url(),
        options(
            Some(&format!("http://alice:s3cret@127.0.0.1:{}", proxy.port)),
            None,
        ),
    );
    echo_through(
        &format!("wss://localhost:{}/", wss.server.port),
        options(
            Some(&format!("http://alice:s3cret@127.0.0.1:{}", proxy.port)),
            Some(&wss.cert),
        ),
    );
    let (st, http, e) = failure(
        &ws.url(),
        options(
            Some(&format!("http://alice:wrong@127.0.0.1:{}", proxy.port)),
            None,
        ),
    );
    // tinyproxy answers a wrong password with 401 (and a missing one with 407, below): the
    // status the proxy sent is reported as it is.
    assert_eq!(st, wsn_status::WSN_ERR_HANDSHAKE, "{e}");
    assert!(http == 407 || http == 401, "{http}: {e}");
    assert!(
        e.contains(&format!("the proxy 127.0.0.1:{}", proxy.port)),
        "{e}"
    );
    assert!(e.contains(&format!("HTTP {http}")), "{e}");
    assert!(e.contains("check the user and password"), "{e}");
    let (st, http, e) = failure(
        &ws.url(),
        options(Some(&format!("http://127.0.0.1:{}", proxy.port)), None),
    );
    assert_eq!((st, http), (wsn_status::WSN_ERR_HANDSHAKE, 407), "{e}");
    assert!(e.contains("it wants a user and password"), "{e}");
}

#[test]
fn a_proxy_that_forbids_the_port_gives_403_and_one_that_cannot_connect_gives_its_status() {
    let proxy = tinyproxy("forbid", "ConnectPort 443");
    let ws = plain_echo();
    let (st, http, e) = failure(
        &ws.url(),
        options(Some(&format!("http://127.0.0.1:{}", proxy.port)), None),
    );
    assert_eq!((st, http), (wsn_status::WSN_ERR_HANDSHAKE, 403), "{e}");
    assert!(e.contains("refused the tunnel") && e.contains("403"), "{e}");

    let open = tinyproxy("unreachable", "");
    let closed_port = free_port();
    let (st, http, e) = failure(
        &format!("ws://127.0.0.1:{closed_port}/"),
        options(Some(&format!("http://127.0.0.1:{}", open.port)), None),
    );
    assert_eq!(st, wsn_status::WSN_ERR_HANDSHAKE, "{e}");
    assert!(http >= 500, "{http}: {e}");
    assert!(e.contains("could not reach the server"), "{e}");

    // No proxy listening: the error names the proxy.
    let (st, _, e) = failure(
        &ws.url(),
        options(Some(&format!("http://127.0.0.1:{}", free_port())), None),
    );
    assert_eq!(st, wsn_status::WSN_ERR_CONNECT, "{e}");
    assert!(e.contains("cannot reach the proxy"), "{e}");
}

#[test]
fn the_environment_names_the_proxy_when_asked_and_no_proxy_bypasses_it() {
    let proxy = tinyproxy("env", "");
    let ws = plain_echo();
    let from_env = || {
        let o = wsn_client_options_new();
        unsafe { wsn_client_options_set_proxy_from_env(o, true) };
        o
    };
    // Only this test of this binary sets these variables.
    std::env::set_var("http_proxy", format!("http://127.0.0.1:{}", proxy.port));
    std::env::remove_var("no_proxy");
    std::env::remove_var("NO_PROXY");
    // Not asked: the environment is not read.
    echo_through(&ws.url(), wsn_client_options_new());
    assert_eq!(proxy.connects(), 0, "{}", proxy.log());
    echo_through(&ws.url(), from_env());
    assert_eq!(proxy.connects(), 1, "{}", proxy.log());
    // NO_PROXY by CIDR, by host name, by domain suffix: direct.
    for (var, value, url) in [
        ("NO_PROXY", "10.0.0.0/8, 127.0.0.0/8", ws.url()),
        (
            "no_proxy",
            "localhost",
            format!("ws://localhost:{}/", ws.port),
        ),
        (
            "NO_PROXY",
            ".example, .localhost,localhost",
            format!("ws://localhost:{}/", ws.port),
        ),
    ] {
        std::env::set_var(var, value);
        echo_through(&url, from_env());
        std::env::remove_var(var);
    }
    assert_eq!(proxy.connects(), 1, "{}", proxy.log());
    // HTTPS_PROXY (upper case) for wss://.
    let wss = tls_echo("env");
    std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port));
    let o = from_env();
    unsafe {
        wsn_client_options_add_trusted_cert_file(o, cstr(wss.cert.to_str().unwrap()).as_ptr())
    };
    echo_through(&format!("wss://localhost:{}/", wss.server.port), o);
    assert_eq!(proxy.connects(), 2, "{}", proxy.log());
    // A bad value fails the connect at once, naming the variable.
    std::env::set_var("http_proxy", "ftp://nowhere");
    let o = from_env();
    let mut conn = std::ptr::null_mut();
    let st = unsafe {
        wsn_connect(
            cstr(&ws.url()).as_ptr(),
            o,
            None,
            std::ptr::null_mut(),
            &mut conn,
        )
    };
    unsafe { wsn_client_options_free(o) };
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("http_proxy"), "{}", last_error());
    std::env::remove_var("http_proxy");
    std::env::remove_var("HTTPS_PROXY");
}

#[test]
fn a_socks5_proxy_carries_ws_and_wss_with_and_without_a_password() {
    let open = microsocks("open", None);
    let ws = plain_echo();
    let wss = tls_echo("socks");
    echo_through(
        &ws.url(),
        options(Some(&format!("socks5://127.0.0.1:{}", open.port)), None),
    );
    echo_through(
        &format!("wss://localhost:{}/", wss.server.port),
        options(
            Some(&format!("socks5h://127.0.0.1:{}", open.port)),
            Some(&wss.cert),
        ),
    );
    let locked = microsocks("auth", Some(("bob", "pa55")));
    echo_through(
        &format!("ws://localhost:{}/", ws.port),
        options(
            Some(&format!("socks5://bob:pa55@127.0.0.1:{}", locked.port)),
            None,
        ),
    );
    let (st, _, e) = failure(
        &ws.url(),
        options(
            Some(&format!("socks5://bob:wrong@127.0.0.1:{}", locked.port)),
            None,
        ),
    );
    assert_eq!(st, wsn_status::WSN_ERR_HANDSHAKE, "{e}");
    assert!(e.contains("refused the user name and password"), "{e}");
    let (st, _, e) = failure(
        &ws.url(),
        options(Some(&format!("socks5://127.0.0.1:{}", locked.port)), None),
    );
    assert_eq!(st, wsn_status::WSN_ERR_HANDSHAKE, "{e}");
    assert!(e.contains("wants a user and password"), "{e}");
    // The destination refuses: said as such.
    let (st, _, e) = failure(
        &format!("ws://127.0.0.1:{}/", free_port()),
        options(Some(&format!("socks5://127.0.0.1:{}", open.port)), None),
    );
    assert!(
        st == wsn_status::WSN_ERR_CONNECT || st == wsn_status::WSN_ERR_HANDSHAKE,
        "{st:?} {e}"
    );
    assert!(e.contains("could not connect to 127.0.0.1"), "{e}");
}

#[test]
fn proxy_options_refuse_bad_urls_and_headers_at_once() {
    let o = wsn_client_options_new();
    unsafe {
        assert_eq!(
            wsn_client_options_set_proxy(o, cstr("https://proxy:443").as_ptr()),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("not supported"), "{}", last_error());
        assert_eq!(
            wsn_client_options_set_proxy(o, std::ptr::null()),
            wsn_status::WSN_OK
        );
        assert_eq!(
            wsn_client_options_add_proxy_header(o, cstr("Bad Name").as_ptr(), cstr("v").as_ptr()),
            wsn_status::WSN_ERR_INVALID_ARGUMENT
        );
        wsn_client_options_free(o);
    }
}
