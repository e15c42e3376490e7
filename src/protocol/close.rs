//! The closing handshake (RFC 6455 7.1, 5.5.1), as decisions for the driver.
//!
//! tungstenite answers a Close the moment it reads it; here nothing is sent by itself. The
//! decoder reports the peer's Close, [`Closing::on_peer_close`] says to answer it, and the
//! driver answers when the replies the application queued before it are written (that is
//! what `connection/close_hold.rs` works around today).

/// A Close frame's content: code and reason, or `None` for an empty Close.
pub type CloseFrame = Option<(u16, String)>;

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The peer closed first: send this Close (its code echoed, RFC 6455 5.5.1) once the
    /// data queued before it is written, then it is `Finished`.
    Answer(Option<(u16, &'static str)>),
    /// Our Close is out: keep reading (and discarding data) until the peer's Close.
    AwaitPeer,
    /// Both Close frames have been exchanged. The server closes the TCP connection now; a
    /// client waits (with a timeout) for the server to close it (RFC 6455 7.1.1).
    Finished,
}

#[derive(Debug, Default, Clone)]
pub struct Closing {
    ours: Option<CloseFrame>,
    theirs: Option<CloseFrame>,
    we_started: bool,
}

impl Closing {
    pub fn new() -> Self {
        Self::default()
    }

    /// The decoder returned the peer's Close.
    pub fn on_peer_close(&mut self, frame: CloseFrame) -> Next {
        let echo = frame.as_ref().map(|(code, _)| (*code, ""));
        self.theirs = Some(frame);
        if self.ours.is_some() {
            Next::Finished
        } else {
            Next::Answer(echo)
        }
    }

    /// Our Close was queued (first, or as the answer).
    pub fn on_our_close(&mut self, code: Option<(u16, &str)>) -> Next {
        if self.ours.is_none() {
            self.we_started = self.theirs.is_none();
            self.ours = Some(code.map(|(c, r)| (c, r.to_owned())));
        }
        if self.theirs.is_some() {
            Next::Finished
        } else {
            Next::AwaitPeer
        }
    }

    pub fn peer_closed(&self) -> bool {
        self.theirs.is_some()
    }

    pub fn we_closed(&self) -> bool {
        self.ours.is_some()
    }

    pub fn is_finished(&self) -> bool {
        self.ours.is_some() && self.theirs.is_some()
    }

    /// Code and reason of the close event once finished: what the side that started the
    /// handshake sent; 1005 (no status) for an empty Close.
    pub fn outcome(&self) -> Option<(u16, String)> {
        if !self.is_finished() {
            return None;
        }
        let first = if self.we_started {
            &self.ours
        } else {
            &self.theirs
        };
        Some(first.clone().flatten().unwrap_or((1005, String::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_closes_first_and_is_answered_by_the_driver() {
        let mut c = Closing::new();
        assert_eq!(
            c.on_peer_close(Some((1001, "going away".into()))),
            Next::Answer(Some((1001, "")))
        );
        assert!(!c.is_finished());
        assert_eq!(c.outcome(), None);
        assert_eq!(c.on_our_close(Some((1001, ""))), Next::Finished);
        assert_eq!(c.outcome(), Some((1001, "going away".into())));
    }

    #[test]
    fn we_close_first() {
        let mut c = Closing::new();
        assert_eq!(c.on_our_close(Some((4000, "bye"))), Next::AwaitPeer);
        assert!(c.we_closed() && !c.peer_closed());
        assert_eq!(c.on_peer_close(Some((4000, String::new()))), Next::Finished);
        assert_eq!(c.outcome(), Some((4000, "bye".into())));
    }

    #[test]
    fn empty_close_is_answered_empty_and_reported_as_1005() {
        let mut c = Closing::new();
        assert_eq!(c.on_peer_close(None), Next::Answer(None));
        assert_eq!(c.on_our_close(None), Next::Finished);
        assert_eq!(c.outcome(), Some((1005, String::new())));
    }

    #[test]
    fn simultaneous_close() {
        let mut c = Closing::new();
        assert_eq!(c.on_our_close(Some((1000, ""))), Next::AwaitPeer);
        // a second close request changes nothing
        assert_eq!(c.on_our_close(Some((1001, ""))), Next::AwaitPeer);
        assert_eq!(c.on_peer_close(Some((1001, String::new()))), Next::Finished);
        assert_eq!(c.outcome(), Some((1000, String::new())));
    }
}
