//! wss:// through the C ABI: a wsnative TLS server, and clients that trust it or say exactly
//! why they do not (unknown issuer, name mismatch, expired).

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::PathBuf;
use wsnative::ffi::*;

struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, and leaf certificates it signs: "good" (localhost, 127.0.0.1), "other" (another
    /// name), "expired".
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("wsn-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "wsnative test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let leaf = |name: &str, names: Vec<String>, expired: bool| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            if expired {
                p.not_before = rcgen::date_time_ymd(2001, 1, 1);
                p.not_after = rcgen::date_time_ymd(2002, 1, 1);
            }
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        };
        leaf("good", vec!["localhost".into(), "127.0.0.1".into()], false);
        leaf("other", vec!["other.example".into()], false);
        leaf("expired", vec!["localhost".into()], true);
        Pki { dir }
    }
    fn path(&self, f: &str) -> String {
        self.dir.join(f).to_str().unwrap().to_owned()
    }
    fn server(&self, leaf: &str) -> TestServer {
        let so = wsn_server_options_new();
        let st = unsafe {
            wsn_server_options_set_tls(
                so,
                cstr(&self.path(&format!("{leaf}.pem"))).as_ptr(),
                cstr(&self.path(&format!("{leaf}.key"))).as_ptr(),
            )
        };
        assert_eq!(st, wsn_status::WSN_OK);
        let s = TestServer::start(Recorder::server(), so, None);
        unsafe { wsn_server_options_free(so) };
        s
    }
    fn client(&self, url: &str, trust_ca: bool) -> TestClient {
        let o = wsn_client_options_new();
        if trust_ca {
            unsafe { wsn_client_options_add_ca_file(o, cstr(&self.path("ca.pem")).as_ptr()) };
        }
        let c = TestClient::connect(url, o);
        unsafe { wsn_client_options_free(o) };
        c
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_failure(c: &TestClient) -> String {
    match c.rec.wait_close() {
        Ev::Close {
            code,
            status,
            error,
            ..
        } => {
            assert_eq!((code, status), (1006, wsn_status::WSN_ERR_TLS), "{error:?}");
            error.unwrap()
        }
        _ => unreachable!(),
    }
}

#[test]
fn wss_with_a_trusted_ca_works_both_ways() {
    let pki = Pki::new("ok");
    let server = pki.server("good");
    let c = pki.client(&format!("wss://localhost:{}/secure", server.port), true);
    c.rec.wait_open();
    assert_eq!(c.send_text("over TLS"), wsn_status::WSN_OK);
    server
        .rec
        .wait(WAIT, "message", |e| (msg_count(e) == 1).then_some(()));
    c.close(1000, "tls bye");
    match c.rec.wait_close() {
        Ev::Close {
            code,
            clean,
            reason,
            ..
        } => assert_eq!((code, clean, reason.as_str()), (1000, true, "tls bye")),
        _ => unreachable!(),
    }
}

#[test]
fn unknown_issuer_is_named() {
    let pki = Pki::new("issuer");
    let server = pki.server("good");
    let c = pki.client(&format!("wss://localhost:{}/", server.port), false); // bundled roots only
    let e = tls_failure(&c);
    assert!(e.contains("unknown issuer"), "{e}");
}

#[test]
fn name_mismatch_is_named() {
    let pki = Pki::new("name");
    let server = pki.server("other");
    let c = pki.client(&format!("wss://localhost:{}/", server.port), true);
    let e = tls_failure(&c);
    assert!(e.contains("not valid for the name 'localhost'"), "{e}");
}

#[test]
fn expired_certificate_is_named() {
    let pki = Pki::new("expired");
    let server = pki.server("expired");
    let c = pki.client(&format!("wss://localhost:{}/", server.port), true);
    let e = tls_failure(&c);
    assert!(e.contains("expired"), "{e}");
}

#[test]
fn bad_tls_files_fail_at_once() {
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_add_ca_file(o, cstr("/nonexistent/ca.pem").as_ptr()) };
    let mut conn = std::ptr::null_mut();
    let st = unsafe {
        wsn_connect(
            cstr("wss://localhost:1/").as_ptr(),
            o,
            None,
            std::ptr::null_mut(),
            &mut conn,
        )
    };
    unsafe { wsn_client_options_free(o) };
    assert_eq!(st, wsn_status::WSN_ERR_TLS);
    assert!(
        last_error().contains("/nonexistent/ca.pem"),
        "{}",
        last_error()
    );

    let so = wsn_server_options_new();
    unsafe {
        wsn_server_options_set_tls(
            so,
            cstr("/nonexistent/cert.pem").as_ptr(),
            cstr("/nonexistent/key.pem").as_ptr(),
        )
    };
    let mut server = std::ptr::null_mut();
    let st = unsafe {
        wsn_server_listen(
            cstr("127.0.0.1").as_ptr(),
            0,
            so,
            None,
            Some(record),
            std::ptr::null_mut(),
            &mut server,
        )
    };
    unsafe { wsn_server_options_free(so) };
    assert_eq!(st, wsn_status::WSN_ERR_TLS);
    assert!(server.is_null());
}

#[test]
fn system_roots_load_and_do_not_trust_a_private_ca() {
    let pki = Pki::new("system");
    let server = pki.server("good");
    let o = wsn_client_options_new();
    assert_eq!(
        unsafe { wsn_client_options_set_tls_roots(o, wsn_tls_roots::WSN_TLS_ROOTS_SYSTEM as u32) },
        wsn_status::WSN_OK
    );
    let c = TestClient::connect(&format!("wss://localhost:{}/", server.port), o);
    // With the private CA added, the same system-roots client trusts the server.
    unsafe { wsn_client_options_add_ca_file(o, cstr(&pki.path("ca.pem")).as_ptr()) };
    let trusted = TestClient::connect(&format!("wss://localhost:{}/", server.port), o);
    unsafe { wsn_client_options_free(o) };
    assert!(tls_failure(&c).contains("unknown issuer"));
    trusted.rec.wait_open();
}

/// A log record: level, target, message, connection id.
type LogRecord = (wsn_log_level, String, String, u64);

/// The log callback's records of a TLS failure, kept by `keep_tls_records`.
static TLS_RECORDS: std::sync::Mutex<Vec<LogRecord>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn keep_tls_records(
    _user: *mut std::ffi::c_void,
    level: wsn_log_level,
    target: *const std::ffi::c_char,
    message: *const std::ffi::c_char,
    conn: u64,
) {
    let s = |p| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
    TLS_RECORDS
        .lock()
        .unwrap()
        .push((level, s(target), s(message), conn));
}

#[test]
fn tls_failures_are_logged_on_both_sides() {
    let pki = Pki::new("log");
    let server = pki.server("good");
    let st = wsn_log_set_callback(Some(keep_tls_records), 3, std::ptr::null_mut());
    assert_eq!(st, wsn_status::WSN_OK);
    let c = pki.client(&format!("wss://localhost:{}/", server.port), false);
    let id = unsafe { wsn_conn_get_id(c.conn) };
    assert!(tls_failure(&c).contains("unknown issuer"));
    let find = |want: &dyn Fn(&LogRecord) -> bool| {
        let start = std::time::Instant::now();
        loop {
            if let Some(r) = TLS_RECORDS.lock().unwrap().iter().find(|r| want(r)) {
                return r.clone();
            }
            assert!(start.elapsed() < WAIT, "{:?}", TLS_RECORDS.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let client = find(&|r| r.1 == "wsnative::client" && r.3 == id);
    assert!(client.2.contains("unknown issuer"), "{client:?}");
    let server_side = find(&|r| r.1 == "wsnative::server" && r.2.contains("failed"));
    assert!(
        server_side.2.contains("handshake with 127.0.0.1:"),
        "{server_side:?}"
    );
    wsn_log_set_callback(None, 0, std::ptr::null_mut());
}
