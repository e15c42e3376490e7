//! Close-frame handling: the peer's Close as the decoder reads it (any payload, masked or
//! not, alone or after data), the answer the closing handshake gives (the code echoed), the
//! outcome reported, and the checks of an application's close code and reason.
//!
//! Checked against a model written from RFC 6455 (5.5.1, 7.1.5, 7.4): a Close payload is
//! accepted exactly when it is empty, or a code that may be sent followed by at most 123
//! bytes of valid UTF-8; the answer echoes the code; the outcome is what the side that
//! started sent (1005 for an empty Close); the application's checks agree with what the
//! encoder can send.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use wsnative::fuzzing::*;

fn frame(op: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![(fin as u8) << 7 | op];
    let m = if mask.is_some() { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// The model: what the decoder must make of a Close payload.
fn model(p: &[u8]) -> Result<Option<(u16, String)>, u16> {
    match p.len() {
        0 => Ok(None),
        1 => Err(1002),
        n if n > 125 => Err(1002),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            if !close_code_allowed(code) {
                return Err(1002);
            }
            match std::str::from_utf8(&p[2..]) {
                Ok(r) => Ok(Some((code, r.to_owned()))),
                Err(_) => Err(1007),
            }
        }
    }
}

fn one(u: &mut Unstructured) -> AResult<()> {
    let server = u.arbitrary::<bool>()?;
    let role = if server { Role::Server } else { Role::Client };
    // What the peer sends: masked when it is a client.
    let mask = if server {
        Some(u.arbitrary::<[u8; 4]>()?)
    } else {
        None
    };
    let before_data: bool = u.arbitrary()?;
    let fin: bool = u.arbitrary()?;
    let len = u.int_in_range(0..=130usize)?;
    let payload = u.bytes(len.min(u.len()))?.to_vec();
    let mut wire = Vec::new();
    if before_data {
        wire.extend(frame(0x2, true, b"data", mask));
    }
    wire.extend(frame(0x8, fin, &payload, mask));
    // Anything after the Close is ignored.
    wire.extend(frame(0x1, true, b"after", mask));
    let mut d = Decoder::new(&DecoderConfig::new(role, 1 << 16));
    let mut buf = BytesMut::from(&wire[..]);
    let mut got = Vec::new();
    let result = loop {
        match d.decode(&mut buf) {
            Ok(Some(Incoming::Close(c))) => {
                assert!(d.close_received());
                let mut rest = BytesMut::from(&wire[..]);
                assert_eq!(
                    d.decode(&mut rest),
                    Ok(None),
                    "bytes after a Close were read"
                );
                break Ok(c);
            }
            Ok(Some(i)) => got.push(i),
            Ok(None) => panic!("a whole Close frame was not decoded"),
            Err(e) => break Err(e.code),
        }
    };
    assert_eq!(got.len(), before_data as usize);
    let expect = if !fin || payload.len() > 125 {
        Err(1002)
    } else {
        model(&payload)
    };
    assert_eq!(result, expect, "Close payload {payload:02x?}");
    let Ok(theirs) = result else {
        return Ok(());
    };
    // The closing handshake: maybe we closed first, maybe not.
    let mut c = Closing::new();
    let ours: Option<(u16, String)> = if u.arbitrary()? {
        let code: u16 = u.arbitrary()?;
        let n = u.int_in_range(0..=130usize)?.min(u.len());
        Some((code, String::from_utf8_lossy(u.bytes(n)?).into_owned()))
    } else {
        None
    };
    let we_first: bool = u.arbitrary()?;
    if we_first {
        let ok = ours
            .as_ref()
            .is_none_or(|(code, reason)| wsnative::check_close(*code, reason).is_ok());
        // What the application may ask for, the encoder can send, and the reverse.
        let mut enc = Encoder::new(&EncoderConfig::new(role));
        let sent = enc.close(
            &mut WriteBuf::new(),
            ours.as_ref().map(|(c, r)| (*c, r.as_str())),
        );
        assert_eq!(
            ok,
            sent.is_ok(),
            "check_close and the encoder disagree on {ours:?}"
        );
        if !ok {
            return Ok(());
        }
        let o = ours.as_ref().map(|(c, r)| (*c, r.as_str()));
        assert_eq!(c.on_our_close(o), Next::AwaitPeer);
        assert!(c.we_closed() && !c.is_finished() && c.outcome().is_none());
        assert_eq!(c.on_peer_close(theirs.clone()), Next::Finished);
        let want = ours.clone().unwrap_or((1005, String::new()));
        assert_eq!(c.outcome(), Some(want));
    } else {
        let next = c.on_peer_close(theirs.clone());
        let echo = close_reply(&theirs);
        assert_eq!(next, Next::Answer(echo));
        assert!(c.peer_closed() && !c.is_finished());
        // The echo can always be sent.
        let mut enc = Encoder::new(&EncoderConfig::new(role));
        enc.close(&mut WriteBuf::new(), echo)
            .expect("the echoed Close can be sent");
        assert_eq!(c.on_our_close(echo), Next::Finished);
        // A second close request changes nothing.
        assert_eq!(c.on_our_close(Some((1000, "again"))), Next::Finished);
        assert_eq!(c.outcome(), Some(theirs.unwrap_or((1005, String::new()))));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = one(&mut u);
});
