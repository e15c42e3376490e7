//! What a connection learned while it opened: the peer's address, the subprotocol and the
//! extensions, each set once and kept with a C copy, so getters hand out borrowed strings.

use super::Conn;
use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Set once by the handshake; read by anyone.
/// What is rarely read or only on clients is made (or boxed) when first needed: every byte
/// here is paid by each idle connection.
#[derive(Default)]
pub(super) struct Facts {
    peer_addr: OnceLock<SocketAddr>,
    /// The address as text, made on the first call of `peer_addr_cstr`.
    peer_addr_text: OnceLock<CString>,
    subprotocol: OnceLock<CString>,
    extensions: OnceLock<CString>,
    /// client-reach (issue 13): the server's answer to the upgrade (101, or a refusal).
    response: OnceLock<Box<HandshakeResponse>>,
}

impl Conn {
    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.facts.peer_addr.get().copied()
    }

    /// The peer's address as text ("" before connected), NUL-terminated for C.
    pub fn peer_addr_cstr(&self) -> &CStr {
        match self.facts.peer_addr.get() {
            Some(addr) => self
                .facts
                .peer_addr_text
                .get_or_init(|| CString::new(addr.to_string()).unwrap_or_default()),
            None => c"",
        }
    }

    pub(crate) fn set_peer_addr(&self, addr: SocketAddr) {
        let _ = self.facts.peer_addr.set(addr);
    }

    /// The negotiated subprotocol ("" when none), NUL-terminated for C.
    pub fn subprotocol(&self) -> &CStr {
        self.facts
            .subprotocol
            .get()
            .map(|s| s.as_c_str())
            .unwrap_or(c"")
    }

    pub(crate) fn set_subprotocol(&self, p: Option<String>) {
        if let Some(p) = p {
            let _ = self
                .facts
                .subprotocol
                .set(CString::new(p).unwrap_or_default());
        }
    }

    /// The negotiated extensions, as the Sec-WebSocket-Extensions header said them ("" when
    /// none, for example no permessage-deflate), NUL-terminated for C.
    pub fn extensions(&self) -> &CStr {
        self.facts
            .extensions
            .get()
            .map(|s| s.as_c_str())
            .unwrap_or(c"")
    }

    pub(crate) fn set_extensions(&self, e: String) {
        let _ = self
            .facts
            .extensions
            .set(CString::new(e).unwrap_or_default());
    }
}

// --- client-reach (issue 13): the handshake response ---

/// The server's answer to a client's upgrade request: the 101 of an open connection, or the
/// refusal of a failed one. NUL-terminated for C.
#[derive(Debug)]
pub struct HandshakeResponse {
    /// The HTTP status (101 when accepted).
    pub status: u16,
    /// Every header in order, names as sent.
    pub headers: Vec<(CString, CString)>,
}

impl HandshakeResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&CStr> {
        self.headers
            .iter()
            .find(|(n, _)| n.to_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_c_str())
    }
}

impl Conn {
    /// A client's handshake response, once the server answered (set before the OPEN event,
    /// or before the CLOSE event of a refused upgrade; never on server connections).
    pub fn handshake_response(&self) -> Option<&HandshakeResponse> {
        self.facts.response.get().map(|b| &**b)
    }

    pub(crate) fn set_handshake_response(&self, status: u16, headers: &[(String, String)]) {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let _ = self.facts.response.set(Box::new(HandshakeResponse {
            status,
            headers: headers.iter().map(|(n, v)| (c(n), c(v))).collect(),
        }));
    }
}
