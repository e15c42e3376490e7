//! client-reach (issue 13): certificates for C. A client's own certificate (mutual TLS),
//! certificates trusted exactly (a file, PEM text, a SHA-256 fingerprint), the application's
//! certificate check, and a server's client-certificate verification.

use super::{str_arg, to_cstring, wsn_client_options, wsn_server_options, wsn_status};
use crate::error::{Error, Result};
use crate::options::{
    parse_fingerprint, CertCheck, CertCheckHook, CertCheckInfo, ClientAuth, ClientOptions,
    Identity, Pem, ServerOptions,
};
use std::ffi::{c_char, c_void};
use std::sync::Arc;
use wsnative_macros::ffi_fn;

unsafe fn client<'a>(o: *mut wsn_client_options) -> Result<&'a mut ClientOptions> {
    super::handle::try_mut(o)
}

unsafe fn server<'a>(o: *mut wsn_server_options) -> Result<&'a mut ServerOptions> {
    super::options::server(o)
}

/// The client's own certificate for mutual TLS: a PEM file with the certificate chain (its
/// own certificate first, then any intermediates) and a PEM file with its private key
/// (PKCS#8, PKCS#1 or SEC1). Presented when a server asks for one; both files are read at
/// connect time (an unreadable file, or a key that does not match, fails wsn_connect with
/// WSN_ERR_TLS). Replaces an earlier client certificate. Default: none.
/// Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_client_cert_files(
    options: *mut wsn_client_options,
    chain_pem_path: *const c_char,
    key_pem_path: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    let chain = str_arg(chain_pem_path, "certificate chain path")?;
    let key = str_arg(key_pem_path, "key path")?;
    o.client_cert = Some(Identity {
        chain: Pem::File(chain.into()),
        key: Pem::File(key.into()),
    });
    Ok(())
}

/// As wsn_client_options_set_client_cert_files, with the PEM text itself (for a key kept in a
/// secret store rather than a file). Both texts are copied; they are parsed at connect time.
/// Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_client_cert_pem(
    options: *mut wsn_client_options,
    chain_pem: *const c_char,
    key_pem: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    let chain = str_arg(chain_pem, "certificate chain PEM")?;
    let key = str_arg(key_pem, "key PEM")?;
    o.client_cert = Some(Identity {
        chain: Pem::Memory(chain.as_bytes().to_vec()),
        key: Pem::Memory(key.as_bytes().to_vec()),
    });
    Ok(())
}

/// Trusts the certificates of a PEM file exactly as they are, for development (a self-signed
/// server) and pinning: a server presenting one of them is accepted whoever issued it; its
/// name and dates are still checked (the name against subjectAltName, or the subject's CN
/// when it has none, as OpenSSL does). Added to the roots (wsn_client_options_set_tls_roots):
/// with WSN_TLS_ROOTS_NONE and no CA file, only these certificates are accepted (pinning).
/// Read at connect time (a bad file fails wsn_connect with WSN_ERR_TLS).
/// Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_add_trusted_cert_file(
    options: *mut wsn_client_options,
    pem_path: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    o.trusted_certs
        .push(Pem::File(str_arg(pem_path, "certificate path")?.into()));
    Ok(())
}

/// Trusts exactly the server certificate whose SHA-256 fingerprint (of its DER encoding) is
/// `sha256_hex`: 64 hex digits, with or without ':' between bytes, as
/// `openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints it. As
/// wsn_client_options_add_trusted_cert_file otherwise (name and dates still checked).
/// Errors: INVALID_ARGUMENT for NULL, invalid UTF-8, or not a SHA-256 fingerprint.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_add_trusted_fingerprint(
    options: *mut wsn_client_options,
    sha256_hex: *const c_char,
) -> wsn_status {
    let o = client(options)?;
    let fp = parse_fingerprint(str_arg(sha256_hex, "fingerprint")?)?;
    o.trusted_fingerprints.push(fp);
    Ok(())
}

/// The application's check of a server certificate, which has the last word. `host` is the
/// name connected to; `certs[i]` (`cert_lens[i]` bytes, DER) are the certificates the server
/// sent, its own first, `count` of them; `default_error` is NULL when the default validation
/// (roots, CA files, trusted certificates) accepted them, otherwise why it refused them, in
/// words. Return true to accept the server, false to refuse it (the connection then ends with
/// WSN_ERR_TLS naming the check). Everything passed is borrowed until the callback returns.
/// Runs on a wsnative callback thread after the TLS handshake and before the upgrade request
/// is sent, so no header or message of the application reaches a server it refuses (a client
/// certificate, if set, was already presented). It must not unwind into wsnative.
///
/// WARNING: returning true whatever `default_error` says turns certificate validation off:
/// anyone on the network path can then impersonate the server, read and change everything.
/// Do that for nothing but a test. Accept only what you checked: a pinned fingerprint, a
/// certificate of your own private CA; and prefer wsn_client_options_add_trusted_cert_file
/// or wsn_client_options_add_trusted_fingerprint, which keep the name and date checks.
pub type wsn_cert_check_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        host: *const c_char,
        certs: *const *const u8,
        cert_lens: *const usize,
        count: usize,
        default_error: *const c_char,
    ) -> bool,
>;

struct CCertCheck {
    callback: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const *const u8,
        *const usize,
        usize,
        *const c_char,
    ) -> bool,
    user_data: usize,
}

impl CertCheck for CCertCheck {
    fn check(&self, info: &CertCheckInfo<'_>) -> bool {
        let host = to_cstring(info.host);
        let ptrs: Vec<*const u8> = info.chain.iter().map(|c| c.as_ptr()).collect();
        let lens: Vec<usize> = info.chain.iter().map(|c| c.len()).collect();
        let err = info.default_error.map(to_cstring);
        unsafe {
            (self.callback)(
                self.user_data as *mut c_void,
                host.as_ptr(),
                ptrs.as_ptr(),
                lens.as_ptr(),
                ptrs.len(),
                err.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
            )
        }
    }
}

/// Sets the application's certificate check (see wsn_cert_check_cb and its warning); NULL
/// removes it (the default). `user_data` is passed to it and must stay valid while a
/// connection made with these options may still be connecting (until its OPEN or CLOSE).
/// Errors: INVALID_ARGUMENT for NULL options.
/// Thread: one thread at a time per options object.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_client_options_set_cert_check(
    options: *mut wsn_client_options,
    check: wsn_cert_check_cb,
    user_data: *mut c_void,
) -> wsn_status {
    let o = client(options)?;
    o.cert_check = check.map(|cb| {
        CertCheckHook(Arc::new(CCertCheck {
            callback: cb,
            user_data: user_data as usize,
        }))
    });
    Ok(())
}

/// Asks clients for a certificate (mutual TLS) and verifies it against the CA certificates of
/// the PEM file `ca_pem_path` (read at listen time: a bad file fails wsn_server_listen with
/// WSN_ERR_TLS). With `required` true, a client without a valid certificate is refused during
/// TLS (it sees an error naming the missing certificate); with false, a client may come
/// without one, and one it presents must still verify. The accept callback reads the verified
/// certificate's subject with wsn_request_get_peer_cert_subject. Needs
/// wsn_server_options_set_tls. Default: client certificates are not asked for. Calling it
/// again adds the file's CAs and sets `required` anew.
/// Errors: INVALID_ARGUMENT for NULL or invalid UTF-8.
/// Thread: one thread at a time per options object. Strings are copied; the caller keeps its own.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_server_options_set_client_auth(
    options: *mut wsn_server_options,
    ca_pem_path: *const c_char,
    required: bool,
) -> wsn_status {
    let o = server(options)?;
    let path = str_arg(ca_pem_path, "client CA path")?;
    let auth = o.client_auth.get_or_insert(ClientAuth {
        cas: Vec::new(),
        required,
    });
    auth.cas.push(Pem::File(path.into()));
    auth.required = required;
    Ok(())
}

/// Formats a SHA-256 fingerprint of the DER certificate `der` (`len` bytes) into `out`
/// (at least 96 bytes: 95 characters "AB:CD:..." and a NUL), the form
/// wsn_client_options_add_trusted_fingerprint takes; for a certificate check callback that
/// pins one. Errors: INVALID_ARGUMENT for NULL or `out_len` under 96.
/// Thread: any.
#[no_mangle]
#[ffi_fn]
pub unsafe extern "C" fn wsn_cert_fingerprint_sha256(
    der: *const u8,
    len: usize,
    out: *mut c_char,
    out_len: usize,
) -> wsn_status {
    if der.is_null() || out.is_null() {
        return Err(Error::invalid("der or out is NULL"));
    }
    if out_len < 96 {
        return Err(Error::invalid("out must hold at least 96 bytes"));
    }
    let der = std::slice::from_raw_parts(der, len);
    let text = crate::tls::fingerprint_text(&crate::tls::sha256(der));
    std::ptr::copy_nonoverlapping(text.as_ptr(), out as *mut u8, text.len());
    *out.add(text.len()) = 0;
    Ok(())
}
