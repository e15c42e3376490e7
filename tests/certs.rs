//! client-reach (issue 13): certificates through the C ABI. Mutual TLS (a server that requires
//! client certificates, the accept hook seeing the verified subject), the application's
//! certificate check (pinning a fingerprint), certificates trusted exactly (a file, a
//! fingerprint), a quick `openssl req -x509` certificate given as the CA file, and errors that
//! say how to fix them. Certificates are made by rcgen in the test, and one by the openssl
//! command line.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::sync::Mutex;
use wsnative::ffi::*;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("wsn-certs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, f: &str) -> String {
        self.0.join(f).to_str().unwrap().to_owned()
    }
    fn write(&self, f: &str, data: &str) -> String {
        std::fs::write(self.0.join(f), data).unwrap();
        self.path(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA (name `ca`) and a function to issue leaves signed by it.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }
    /// (certificate PEM, key PEM) for `names`, with subject CN `cn`.
    fn leaf(&self, cn: &str, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "wsnative tests");
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A self-signed leaf for `names` (not a CA): (certificate PEM, key PEM, DER).
fn self_signed(names: &[&str]) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

fn tls_server(
    cert: &str,
    key: &str,
    client_ca: Option<(&str, bool)>,
    accept: wsn_accept_cb,
) -> TestServer {
    let so = wsn_server_options_new();
    unsafe {
        assert_eq!(
            wsn_server_options_set_tls(so, cstr(cert).as_ptr(), cstr(key).as_ptr()),
            wsn_status::WSN_OK
        );
        if let Some((ca, required)) = client_ca {
            assert_eq!(
                wsn_server_options_set_client_auth(so, cstr(ca).as_ptr(), required),
                wsn_status::WSN_OK
            );
        }
    }
    let s = TestServer::start(Recorder::server(), so, accept);
    unsafe { wsn_server_options_free(so) };
    s
}

/// The error of a connection that failed with WSN_ERR_TLS.
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

fn opens(c: &TestClient) {
    c.rec.wait_open();
    assert_eq!(c.send_text("hello"), wsn_status::WSN_OK);
    c.close(1000, "");
    match c.rec.wait_close() {
        Ev::Close { code, clean, .. } => assert_eq!((code, clean), (1000, true)),
        _ => unreachable!(),
    }
}

/// Subjects the accept hook saw ("" for none).
static SUBJECTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn record_subject(_: *mut c_void, req: *mut wsn_request) {
    let s = wsn_request_get_peer_cert_subject(req);
    let s = if s.is_null() {
        String::new()
    } else {
        CStr::from_ptr(s).to_string_lossy().into_owned()
    };
    SUBJECTS.lock().unwrap().push(s);
}

#[test]
fn mtls_a_server_requiring_client_certificates_refuses_a_client_without_one_and_its_hook_sees_the_subject(
) {
    let d = Dir::new("mtls");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("some other CA");
    let (sc, sk) = server_ca.leaf("localhost", &["localhost"]);
    let (cc, ck) = client_ca.leaf("alice", &["alice.example"]);
    let (oc, ok) = other_ca.leaf("mallory", &["mallory.example"]);
    d.write("server-ca.pem", &server_ca.cert.pem());
    d.write("client-ca.pem", &client_ca.cert.pem());
    let server = tls_server(
        &d.write("s.pem", &sc),
        &d.write("s.key", &sk),
        Some((&d.path("client-ca.pem"), true)),
        Some(record_subject),
    );
    let url = format!("wss://localhost:{}/", server.port);
    let base = || {
        let o = wsn_client_options_new();
        unsafe { wsn_client_options_add_ca_file(o, cstr(&d.path("server-ca.pem")).as_ptr()) };
        o
    };

    // Without a certificate: refused, and the error says what to do.
    let o = base();
    let c = TestClient::connect(&url, o);
    let e = tls_failure(&c);
    assert!(e.contains("requires a client certificate"), "{e}");

    // With one from files: open, and the accept hook saw its subject.
    unsafe {
        wsn_client_options_set_client_cert_files(
            o,
            cstr(&d.write("c.pem", &cc)).as_ptr(),
            cstr(&d.write("c.key", &ck)).as_ptr(),
        )
    };
    let c = TestClient::connect(&url, o);
    opens(&c);
    unsafe { wsn_client_options_free(o) };
    let subjects = SUBJECTS.lock().unwrap().clone();
    assert!(
        subjects.iter().any(|s| s.contains("CN=alice")),
        "{subjects:?}"
    );

    // The same from memory.
    let o = base();
    unsafe { wsn_client_options_set_client_cert_pem(o, cstr(&cc).as_ptr(), cstr(&ck).as_ptr()) };
    opens(&TestClient::connect(&url, o));
    unsafe { wsn_client_options_free(o) };

    // A certificate from a CA the server does not trust: refused, in words.
    let o = base();
    unsafe { wsn_client_options_set_client_cert_pem(o, cstr(&oc).as_ptr(), cstr(&ok).as_ptr()) };
    let c = TestClient::connect(&url, o);
    unsafe { wsn_client_options_free(o) };
    let e = tls_failure(&c);
    assert!(e.contains("refused our client certificate"), "{e}");

    // A key that does not belong to the certificate fails at once.
    let o = base();
    unsafe { wsn_client_options_set_client_cert_pem(o, cstr(&cc).as_ptr(), cstr(&ok).as_ptr()) };
    let mut conn = std::ptr::null_mut();
    let st = unsafe {
        wsn_connect(
            cstr(&url).as_ptr(),
            o,
            None,
            std::ptr::null_mut(),
            &mut conn,
        )
    };
    unsafe { wsn_client_options_free(o) };
    // rustls checks the pair when it can (a key of another type, or a mismatch it detects);
    // otherwise the server refuses the handshake signature: either way it never opens.
    if st == wsn_status::WSN_OK {
        unsafe { wsn_conn_free(conn) };
    } else {
        assert_eq!(st, wsn_status::WSN_ERR_TLS, "{}", last_error());
    }
}

#[test]
fn mtls_an_optional_client_certificate_lets_clients_without_one_in() {
    let d = Dir::new("mtls-opt");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let (sc, sk) = server_ca.leaf("localhost", &["localhost"]);
    d.write("server-ca.pem", &server_ca.cert.pem());
    let server = tls_server(
        &d.write("s.pem", &sc),
        &d.write("s.key", &sk),
        Some((&d.write("client-ca.pem", &client_ca.cert.pem()), false)),
        None,
    );
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_add_ca_file(o, cstr(&d.path("server-ca.pem")).as_ptr()) };
    opens(&TestClient::connect(
        &format!("wss://localhost:{}/", server.port),
        o,
    ));
    unsafe { wsn_client_options_free(o) };
}

/// The fingerprint a pinning check accepts (user_data points to it), and what it saw.
struct Pin {
    want: String,
    seen: Mutex<Vec<(String, usize, Option<String>)>>,
}

unsafe extern "C" fn pin_check(
    user: *mut c_void,
    host: *const c_char,
    certs: *const *const u8,
    lens: *const usize,
    count: usize,
    default_error: *const c_char,
) -> bool {
    let pin = &*(user as *const Pin);
    let mut fp = [0 as c_char; 96];
    assert_eq!(
        wsn_cert_fingerprint_sha256(*certs, *lens, fp.as_mut_ptr(), fp.len()),
        wsn_status::WSN_OK
    );
    let fp = CStr::from_ptr(fp.as_ptr()).to_str().unwrap().to_owned();
    let err = (!default_error.is_null())
        .then(|| CStr::from_ptr(default_error).to_string_lossy().into_owned());
    pin.seen.lock().unwrap().push((
        CStr::from_ptr(host).to_string_lossy().into_owned(),
        count,
        err,
    ));
    fp == pin.want
}

fn fingerprint(der: &[u8]) -> String {
    let mut fp = [0 as c_char; 96];
    assert_eq!(
        unsafe { wsn_cert_fingerprint_sha256(der.as_ptr(), der.len(), fp.as_mut_ptr(), 96) },
        wsn_status::WSN_OK
    );
    unsafe { CStr::from_ptr(fp.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_certificate_check_that_pins_a_fingerprint_accepts_the_right_server_and_refuses_another() {
    let d = Dir::new("pin");
    let (pc, pk, pder) = self_signed(&["localhost"]);
    let (oc, ok, _) = self_signed(&["localhost"]);
    let pinned = tls_server(&d.write("p.pem", &pc), &d.write("p.key", &pk), None, None);
    let other = tls_server(&d.write("o.pem", &oc), &d.write("o.key", &ok), None, None);
    let pin = Box::new(Pin {
        want: fingerprint(&pder),
        seen: Mutex::new(Vec::new()),
    });
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_cert_check(o, Some(pin_check), &*pin as *const Pin as *mut c_void)
    };
    opens(&TestClient::connect(
        &format!("wss://localhost:{}/", pinned.port),
        o,
    ));
    let c = TestClient::connect(&format!("wss://localhost:{}/", other.port), o);
    unsafe { wsn_client_options_free(o) };
    let e = tls_failure(&c);
    assert!(e.contains("application's certificate check refused"), "{e}");
    assert!(e.contains("unknown issuer"), "{e}");
    // The check saw the host, the chain, and the default verdict (self-signed: unknown issuer).
    let seen = pin.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (host, count, err) in &seen {
        assert_eq!((host.as_str(), *count), ("localhost", 1));
        assert!(
            err.as_deref().unwrap_or("").contains("unknown issuer"),
            "{err:?}"
        );
    }
}

#[test]
fn a_certificate_check_sees_an_accepted_default_verdict_as_null() {
    let d = Dir::new("check-ok");
    let ca = Ca::new("CA");
    let (sc, sk) = ca.leaf("localhost", &["localhost"]);
    let server = tls_server(&d.write("s.pem", &sc), &d.write("s.key", &sk), None, None);
    let der = rustls_pki_der(&sc);
    let pin = Box::new(Pin {
        want: fingerprint(&der),
        seen: Mutex::new(Vec::new()),
    });
    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_add_ca_file(o, cstr(&d.write("ca.pem", &ca.cert.pem())).as_ptr());
        wsn_client_options_set_cert_check(o, Some(pin_check), &*pin as *const Pin as *mut c_void);
    }
    opens(&TestClient::connect(
        &format!("wss://localhost:{}/", server.port),
        o,
    ));
    unsafe { wsn_client_options_free(o) };
    assert_eq!(pin.seen.lock().unwrap()[0].2, None);
}

/// The DER of the first certificate of PEM text.
fn rustls_pki_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut v = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            v |= table(*c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((v >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn a_certificate_trusted_exactly_by_file_or_fingerprint_is_accepted_and_pins_with_no_roots() {
    let d = Dir::new("exact");
    let (pc, pk, pder) = self_signed(&["localhost"]);
    let (oc, ok, _) = self_signed(&["localhost"]);
    let trusted = tls_server(&d.write("p.pem", &pc), &d.write("p.key", &pk), None, None);
    let other = tls_server(&d.write("o.pem", &oc), &d.write("o.key", &ok), None, None);
    for by_file in [true, false] {
        let o = wsn_client_options_new();
        unsafe {
            wsn_client_options_set_tls_roots(o, wsn_tls_roots::WSN_TLS_ROOTS_NONE as u32);
            if by_file {
                wsn_client_options_add_trusted_cert_file(o, cstr(&d.path("p.pem")).as_ptr());
            } else {
                assert_eq!(
                    wsn_client_options_add_trusted_fingerprint(
                        o,
                        cstr(&fingerprint(&pder)).as_ptr()
                    ),
                    wsn_status::WSN_OK
                );
            }
        }
        opens(&TestClient::connect(
            &format!("wss://localhost:{}/", trusted.port),
            o,
        ));
        // Another certificate (same name) is refused: that is the pin.
        let c = TestClient::connect(&format!("wss://localhost:{}/", other.port), o);
        let e = tls_failure(&c);
        assert!(
            e.contains("unknown issuer") && e.contains("SHA-256 fingerprint is"),
            "{e}"
        );
        // The name is still checked.
        let c = TestClient::connect(&format!("wss://127.0.0.1:{}/", trusted.port), o);
        let e = tls_failure(&c);
        assert!(e.contains("not valid for the name '127.0.0.1'"), "{e}");
        assert!(e.contains("it is valid for: localhost"), "{e}");
        unsafe { wsn_client_options_free(o) };
    }
    let o = wsn_client_options_new();
    let st = unsafe { wsn_client_options_add_trusted_fingerprint(o, cstr("12:34").as_ptr()) };
    unsafe { wsn_client_options_free(o) };
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("64 hex digits"), "{}", last_error());
}

/// `openssl req -x509 ...` as a new user would run it: the certificate is CA:TRUE.
fn openssl_quick_cert(d: &Dir, name: &str, extra: &[&str]) -> (String, String) {
    let (c, k) = (
        d.path(&format!("{name}.pem")),
        d.path(&format!("{name}.key")),
    );
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &k,
        "-out",
        &c,
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
    ];
    args.extend_from_slice(extra);
    let out = std::process::Command::new("openssl")
        .args(&args)
        .output()
        .expect("the openssl command line (Debian package openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &c])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"));
    (c, k)
}

#[test]
fn a_quick_openssl_self_signed_certificate_given_as_the_ca_file_is_accepted_as_python_does() {
    let d = Dir::new("openssl");
    // The quickest form (CN only) and the one with a subjectAltName.
    for (name, extra) in [
        ("cn-only", vec![]),
        ("san", vec!["-addext", "subjectAltName=DNS:localhost"]),
    ] {
        let (cert, key) = openssl_quick_cert(&d, name, &extra);
        let server = tls_server(&cert, &key, None, None);
        let o = wsn_client_options_new();
        unsafe { wsn_client_options_add_ca_file(o, cstr(&cert).as_ptr()) };
        opens(&TestClient::connect(
            &format!("wss://localhost:{}/", server.port),
            o,
        ));
        // Not as the CA file: refused, saying what it is and what to do.
        let c = TestClient::connect(
            &format!("wss://localhost:{}/", server.port),
            wsn_client_options_new(),
        );
        let e = tls_failure(&c);
        assert!(
            e.contains("unknown issuer") || e.contains("CA certificate (CA:TRUE)"),
            "{e}"
        );
        assert!(!e.contains("Other(OtherError"), "{e}");
        unsafe { wsn_client_options_free(o) };
    }
}

#[test]
fn a_ca_certificate_presented_by_a_server_names_the_problem_and_the_fix() {
    let d = Dir::new("ca-leaf");
    // A CA-flagged certificate signed by a trusted CA: webpki's CaUsedAsEndEntity, in words.
    let ca = Ca::new("root");
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let server = tls_server(
        &d.write("s.pem", &cert.pem()),
        &d.write("s.key", &key.serialize_pem()),
        None,
        None,
    );
    let o = wsn_client_options_new();
    unsafe { wsn_client_options_add_ca_file(o, cstr(&d.write("ca.pem", &ca.cert.pem())).as_ptr()) };
    let c = TestClient::connect(&format!("wss://localhost:{}/", server.port), o);
    unsafe { wsn_client_options_free(o) };
    let e = tls_failure(&c);
    assert!(
        e.contains("presents a CA certificate (CA:TRUE) as its own"),
        "{e}"
    );
}

#[test]
fn client_auth_without_tls_and_bad_client_certificate_files_fail_at_once() {
    let so = wsn_server_options_new();
    unsafe { wsn_server_options_set_client_auth(so, cstr("/nonexistent/ca.pem").as_ptr(), true) };
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
    assert_eq!(st, wsn_status::WSN_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("need TLS"), "{}", last_error());

    let o = wsn_client_options_new();
    unsafe {
        wsn_client_options_set_client_cert_files(
            o,
            cstr("/nonexistent/c.pem").as_ptr(),
            cstr("/nonexistent/c.key").as_ptr(),
        )
    };
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
        last_error().contains("/nonexistent/c.pem"),
        "{}",
        last_error()
    );
}
