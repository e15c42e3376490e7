//! The closing handshake: our Close after everything queued, the peer's Close answered after
//! the callbacks before it, and the close event that says how it ended.

use super::*;

impl Driver {
    pub(super) fn queue_close(&mut self, frame: Option<(u16, String)>) {
        if self.ours.is_some() {
            return;
        }
        let before = self.wbuf.len();
        let r = self.encoder.close(
            &mut self.wbuf,
            frame.as_ref().map(|(c, r)| (*c, r.as_str())),
        );
        if r.is_err() {
            // A code the application may not send was checked in `close`; a peer's code
            // that may not be echoed (checked by the decoder) cannot get here either.
            let _ = self.encoder.close(&mut self.wbuf, Some((1000, "")));
        }
        self.encoded += (self.wbuf.len() - before) as u64;
        self.ours_end = self.encoded;
        self.we_started = self.theirs.is_none();
        self.ours = Some(Box::new(frame));
        self.conn.close_gate("the connection is closing");
        self.conn.set_state(State::Closing);
        self.conn.set_unwritten(self.wbuf.len(), 0);
        self.ping_at = None;
        self.pong_due = None;
    }
}

/// The close event when the stream ended after the peer's Close (or without one).
pub(super) fn read_end(theirs: &CloseFrame, ours: &CloseFrame, we_started: bool) -> CloseInfo {
    match (theirs.as_deref(), ours.as_deref()) {
        (Some(_), Some(Some((code, reason)))) if we_started => CloseInfo {
            code: *code,
            reason: reason.clone(),
            was_clean: true,
            error: None,
        },
        (Some(Some((code, reason))), _) => CloseInfo {
            code: *code,
            reason: reason.clone(),
            was_clean: true,
            error: None,
        },
        (Some(None), _) => CloseInfo {
            code: 1005,
            reason: String::new(),
            was_clean: true,
            error: None,
        },
        (None, _) => CloseInfo {
            code: 1006,
            reason: String::new(),
            was_clean: false,
            error: Some(Error::new(
                ErrorKind::Io,
                "connection closed by peer without a Close frame",
            )),
        },
    }
}

pub(super) fn unclean(error: Error) -> CloseInfo {
    CloseInfo {
        code: 1006,
        reason: String::new(),
        was_clean: false,
        error: Some(error),
    }
}

pub(super) fn failed(f: Failure) -> CloseInfo {
    CloseInfo {
        code: f.0,
        reason: f.1.to_owned(),
        was_clean: false,
        error: Some(f.2),
    }
}

pub(super) fn protocol_failure(e: ProtocolError) -> Failure {
    let what = match e.code {
        1007 => "the peer sent a text message that is not valid UTF-8",
        1009 => "the peer sent a message over the size limit",
        _ => "the peer broke the WebSocket protocol",
    };
    (
        e.code,
        e.reason,
        Error::new(ErrorKind::Protocol, format!("{what}: {}", e.detail)),
    )
}
