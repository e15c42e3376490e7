//! TLS with rustls for both ends: the client's trusted roots, the server's certificate and
//! key, and errors that say what was wrong with a certificate.

use crate::error::{Error, ErrorKind, Result};
use crate::options::{ClientOptions, TlsRoots};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

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

/// The rustls configuration for `opts`; CA files are read now, so a bad path fails `connect`.
pub(crate) fn client_config(opts: &ClientOptions) -> Result<Arc<rustls::ClientConfig>> {
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
    for path in &opts.ca_files {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| {
                tls_error(format!(
                    "cannot use a certificate of {} as a CA: {e}",
                    path.display()
                ))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(tls_error(
            "no trusted certificate authorities: add a CA file or choose bundled or system roots"
                .into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Turns a failed TLS handshake into an error naming the reason.
pub(crate) fn handshake_error(host: &str, e: std::io::Error) -> Error {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return Error::from(e).context(format!("TLS handshake with {host} failed"));
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => {
                "the server's certificate is signed by an unknown issuer (no trusted CA)".to_owned()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for the name '{host}' (name mismatch)"
                )
            }
            C::Expired | C::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".to_owned()
            }
            C::Revoked => "the server's certificate was revoked".to_owned(),
            C::BadSignature => "the server's certificate has a bad signature".to_owned(),
            other => format!("the server's certificate was rejected: {other:?}"),
        },
        rustls::Error::AlertReceived(a) => format!("the server sent the TLS alert {a:?}"),
        other => other.to_string(),
    };
    tls_error(format!("TLS handshake with {host} failed: {why}"))
}

/// The TLS acceptor of a server: its certificate chain and private key (PEM files), read now
/// so that a bad file fails `listen`.
pub(crate) fn server_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let certs = load_certs(cert)?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| {
        tls_error(format!(
            "cannot read a private key from {}: {e}",
            key.display()
        ))
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_error(format!(
                "the certificate and key do not form a usable pair: {e}"
            ))
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
