//! What a connection learned while it opened: the peer's address, the subprotocol and the
//! extensions, each set once and kept with a C copy, so getters hand out borrowed strings.

use super::Conn;
use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Set once by the handshake; read by anyone.
#[derive(Default)]
pub(super) struct Facts {
    peer_addr: OnceLock<(SocketAddr, CString)>,
    subprotocol: OnceLock<CString>,
    extensions: OnceLock<CString>,
}

impl Conn {
    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.facts.peer_addr.get().map(|p| p.0)
    }

    /// The peer's address as text ("" before connected), NUL-terminated for C.
    pub fn peer_addr_cstr(&self) -> &CStr {
        self.facts
            .peer_addr
            .get()
            .map(|p| p.1.as_c_str())
            .unwrap_or(c"")
    }

    pub(crate) fn set_peer_addr(&self, addr: SocketAddr) {
        let text = CString::new(addr.to_string()).unwrap_or_default();
        let _ = self.facts.peer_addr.set((addr, text));
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
