//! TLS with rustls for both ends: the client's trusted roots, the server's certificate and
//! key, and errors that say what was wrong with a certificate.

use crate::error::{Error, ErrorKind, Result};
use crate::options::{ClientOptions, Pem, ServerOptions, TlsRoots};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, Mutex};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(message: String) -> Error {
    Error::new(ErrorKind::Tls, message)
}

/// Reads every certificate of a PEM file.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            tls_error(format!(
                "cannot read certificate file {}: {e}",
                path.display()
            ))
        })?
        .collect();
    let certs = certs.map_err(|e| {
        tls_error(format!(
            "cannot parse certificate file {}: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "certificate file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Every certificate of PEM data (a file or memory).
fn load_pem_certs(pem: &Pem) -> Result<Vec<CertificateDer<'static>>> {
    match pem {
        Pem::File(path) => load_certs(path),
        Pem::Memory(bytes) => {
            let certs: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(bytes).collect();
            let certs = certs
                .map_err(|e| tls_error(format!("cannot parse the PEM certificates given: {e}")))?;
            if certs.is_empty() {
                return Err(tls_error(
                    "the PEM data given holds no certificate (no '-----BEGIN CERTIFICATE-----')"
                        .into(),
                ));
            }
            Ok(certs)
        }
    }
}

/// The private key of PEM data (a file or memory).
fn load_pem_key(pem: &Pem) -> Result<PrivateKeyDer<'static>> {
    match pem {
        Pem::File(path) => PrivateKeyDer::from_pem_file(path).map_err(|e| {
            tls_error(format!(
                "cannot read a private key from {}: {e}",
                path.display()
            ))
        }),
        Pem::Memory(bytes) => PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
            tls_error(format!(
                "cannot read a private key from the PEM data given: {e}"
            ))
        }),
    }
}

/// SHA-256 of `der`.
pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A fingerprint as OpenSSL prints it (AB:CD:...).
pub fn fingerprint_text(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The subject of a DER certificate as text ("CN=client one, O=Example"), when it parses.
pub(crate) fn subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

/// The names a DER certificate is valid for (subjectAltName DNS and IP entries; the subject's
/// CN when it has none), for errors.
fn cert_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
        return names;
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(format!("{s} (subject CN, no subjectAltName)"));
        }
    }
    names
}

/// Checks a certificate trusted exactly (its issuer is not checked): its dates, and that it
/// is valid for `name` (subjectAltName; the subject's CN when it has no subjectAltName, as
/// OpenSSL and Python's `ssl` do).
fn check_exact(
    der: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> std::result::Result<(), rustls::Error> {
    use rustls::CertificateError as C;
    let bad = |e: C| rustls::Error::InvalidCertificate(e);
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| bad(C::BadEncoding))?;
    let now_s = now.as_secs() as i64;
    if now_s < cert.validity().not_before.timestamp() {
        return Err(bad(C::NotValidYet));
    }
    if now_s > cert.validity().not_after.timestamp() {
        return Err(bad(C::Expired));
    }
    let ee = webpki::EndEntityCert::try_from(der).map_err(|_| bad(C::BadEncoding))?;
    if ee.verify_is_valid_for_subject_name(name).is_ok() {
        return Ok(());
    }
    let has_san = matches!(cert.subject_alternative_name(), Ok(Some(_)));
    if !has_san {
        let host = match name {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => String::new(),
        };
        let cn_matches = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(|cn| cn.eq_ignore_ascii_case(&host));
        if cn_matches {
            return Ok(());
        }
    }
    Err(bad(C::NotValidForName))
}

/// The chain a server presented (DER, its own first) and the default verdict on it.
pub(crate) type Seen = (Vec<Vec<u8>>, std::result::Result<(), rustls::Error>);

/// The client's certificate verifier: the default validation (webpki against the trusted
/// roots), certificates trusted exactly (CA files' own certificates, trusted certificates,
/// fingerprints), and with an application check, the verdict kept for it (the handshake then
/// goes on and the check decides before the upgrade request is sent).
#[derive(Debug)]
pub(crate) struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    exact: Vec<CertificateDer<'static>>,
    fingerprints: Vec<[u8; 32]>,
    defer: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The chain the server presented, and the default verdict on it.
    seen: Mutex<Option<Seen>>,
}

impl Verifier {
    fn default_verdict(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<(), rustls::Error> {
        let webpki = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        };
        if webpki.is_ok() {
            return webpki;
        }
        let trusted_exactly = self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref())
            || self.fingerprints.contains(&sha256(end_entity));
        if trusted_exactly {
            return check_exact(end_entity, server_name, now);
        }
        webpki
    }

    /// The chain the server presented (DER, its own first) and the default verdict on it.
    pub(crate) fn seen(&self) -> Option<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.default_verdict(end_entity, intermediates, server_name, ocsp_response, now);
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((chain, verdict.clone()));
        if self.defer {
            return Ok(ServerCertVerified::assertion());
        }
        verdict.map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client's TLS configuration and its verifier (which remembers what the server presented).
#[derive(Clone)]
pub(crate) struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) verifier: Arc<Verifier>,
}

/// The rustls configuration for `opts`; CA files, trusted certificates and the client
/// certificate are read now, so a bad path fails `connect`.
pub(crate) fn client_config(opts: &ClientOptions) -> Result<ClientTls> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    match opts.tls_roots {
        TlsRoots::Bundled => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(tls_error(
                    "no certificate authorities found in the system store".into(),
                ));
            }
        }
        TlsRoots::None => {}
    }
    // A certificate of a CA file is also trusted exactly: a self-signed server certificate
    // given as the CA file (`openssl req -x509`, which marks it CA:TRUE) is accepted, as
    // OpenSSL and Python's `ssl` accept it.
    let mut exact = Vec::new();
    for path in &opts.ca_files {
        for cert in load_certs(path)? {
            exact.push(cert.clone());
            roots.add(cert).map_err(|e| {
                tls_error(format!(
                    "cannot use a certificate of {} as a CA: {e}",
                    path.display()
                ))
            })?;
        }
    }
    for pem in &opts.trusted_certs {
        exact.extend(load_pem_certs(pem)?);
    }
    if roots.is_empty() && exact.is_empty() && opts.trusted_fingerprints.is_empty() {
        return Err(tls_error(
            "no trusted certificate authorities: add a CA file, trust a certificate, or choose bundled or system roots"
                .into(),
        ));
    }
    let inner = if roots.is_empty() {
        None
    } else {
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| tls_error(e.to_string()))?,
        )
    };
    let verifier = Arc::new(Verifier {
        inner,
        exact,
        fingerprints: opts.trusted_fingerprints.clone(),
        defer: opts.cert_check.is_some(),
        provider: provider.clone(),
        seen: Mutex::new(None),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let config = match &opts.client_cert {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = load_pem_certs(&id.chain)?;
            let key = load_pem_key(&id.key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_error(format!(
                    "the client certificate and key do not form a usable pair: {e}"
                ))
            })?
        }
    };
    Ok(ClientTls {
        config: Arc::new(config),
        verifier,
    })
}

/// Why a certificate was refused, in words that say how to fix it. `host` is the name
/// connected to; `chain` what the server presented (DER, its own first), when known.
pub(crate) fn certificate_words(
    c: &rustls::CertificateError,
    host: &str,
    chain: Option<&[Vec<u8>]>,
) -> String {
    use rustls::CertificateError as C;
    let leaf = chain.and_then(|c| c.first());
    let fp = leaf
        .map(|l| {
            format!(
                " (its SHA-256 fingerprint is {})",
                fingerprint_text(&sha256(l))
            )
        })
        .unwrap_or_default();
    let names = leaf
        .map(|l| cert_names(l))
        .filter(|n| !n.is_empty())
        .map(|n| format!(" (it is valid for: {})", n.join(", ")))
        .unwrap_or_default();
    let dates = leaf.and_then(|l| {
        let (_, cert) = x509_parser::parse_x509_certificate(l).ok()?;
        Some((
            cert.validity().not_before.to_string(),
            cert.validity().not_after.to_string(),
        ))
    });
    let ca_as_leaf = matches!(c, C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity"));
    match c {
        C::UnknownIssuer => format!(
            "the server's certificate is signed by an unknown issuer (no trusted CA){fp}: add the CA that signed it (a CA file), or, for a self-signed certificate, trust that exact certificate (its file, or its fingerprint)"
        ),
        _ if ca_as_leaf => format!(
            "the server presents a CA certificate (CA:TRUE) as its own{fp}, and it is not trusted: give that certificate itself as a CA file or trusted certificate (as for a quick 'openssl req -x509' certificate), or issue the server a certificate signed by the CA"
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the server's certificate is not valid for the name '{host}' (name mismatch){names}: connect with a name it is valid for, or reissue it with '{host}' in its subjectAltName"
        ),
        C::Expired | C::ExpiredContext { .. } => format!(
            "the server's certificate has expired{}: renew it on the server (or check this machine's clock)",
            dates.map(|d| format!(" (valid until {})", d.1)).unwrap_or_default()
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => format!(
            "the server's certificate is not valid yet{}: check the clocks of this machine and the server",
            dates.map(|d| format!(" (valid from {})", d.0)).unwrap_or_default()
        ),
        C::Revoked => "the server's certificate was revoked: the server needs a new one".to_owned(),
        C::BadSignature => {
            "the server's certificate has a bad signature (corrupted, or not issued by the CA it names)".to_owned()
        }
        C::BadEncoding => "the server's certificate cannot be parsed (bad encoding)".to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the server's certificate is not for TLS servers (extended key usage): issue one with serverAuth".to_owned()
        }
        other => format!("the server's certificate was rejected: {other:?}"),
    }
}

/// Words for a TLS error of this side (client), with what to do about it.
fn tls_words(tls: &rustls::Error, host: &str, chain: Option<&[Vec<u8>]>) -> String {
    use rustls::AlertDescription as A;
    match tls {
        rustls::Error::InvalidCertificate(c) => certificate_words(c, host, chain),
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            "the server requires a client certificate (mutual TLS): set one in the client options".to_owned()
        }
        rustls::Error::AlertReceived(a @ (A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::DecryptError | A::AccessDenied)) => format!(
            "the server refused our client certificate (TLS alert {a:?}): it must be issued by a CA the server trusts, for client authentication, and not expired"
        ),
        rustls::Error::AlertReceived(A::CertificateExpired) => {
            "the server refused our client certificate: it has expired".to_owned()
        }
        rustls::Error::AlertReceived(a) => format!("the server sent the TLS alert {a:?}"),
        other => other.to_string(),
    }
}

/// The rustls error inside an I/O error, if any.
pub(crate) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Turns a failed TLS handshake into an error naming the reason.
pub(crate) fn handshake_error(host: &str, e: std::io::Error, verifier: Option<&Verifier>) -> Error {
    let Some(tls) = rustls_error(&e) else {
        return Error::from(e).context(format!("TLS handshake with {host} failed"));
    };
    let seen = verifier.and_then(|v| v.seen());
    let why = tls_words(tls, host, seen.as_ref().map(|s| s.0.as_slice()));
    tls_error(format!("TLS handshake with {host} failed: {why}"))
}

/// The default verdict in words, for the application's check (`None`: it accepted).
pub(crate) fn verdict_words(
    verdict: &std::result::Result<(), rustls::Error>,
    host: &str,
    chain: &[Vec<u8>],
) -> Option<String> {
    verdict
        .as_ref()
        .err()
        .map(|e| tls_words(e, host, Some(chain)))
}

/// The TLS acceptor of a server: its certificate chain and private key (PEM files), read now
/// so that a bad file fails `listen`; with client authentication, the CAs client certificates
/// must chain to.
pub(crate) fn server_acceptor(
    cert: &Path,
    key: &Path,
    opts: &ServerOptions,
) -> Result<tokio_rustls::TlsAcceptor> {
    let certs = load_certs(cert)?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| {
        tls_error(format!(
            "cannot read a private key from {}: {e}",
            key.display()
        ))
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = match &opts.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let mut roots = rustls::RootCertStore::empty();
            for pem in &auth.cas {
                for c in load_pem_certs(pem)? {
                    roots.add(c).map_err(|e| {
                        tls_error(format!("cannot use a client CA certificate: {e}"))
                    })?;
                }
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let v = if auth.required {
                v
            } else {
                v.allow_unauthenticated()
            };
            let v = v
                .build()
                .map_err(|e| tls_error(format!("cannot verify client certificates: {e}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        tls_error(format!(
            "the certificate and key do not form a usable pair: {e}"
        ))
    })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
