//! The frame and message layer: the decoder (headers, masking, fragments, interleaved
//! control frames, UTF-8 checked as bytes arrive, size limits, permessage-deflate) and the
//! encoder it must agree with.
//!
//! Byte 0 picks the mode.
//! - Decode: the rest configures a decoder (role, limits, compression) and is fed to it as a
//!   peer's bytes, once whole and once in reads of fuzzed sizes (using the direct reads the
//!   decoder asks for): both must give the same messages and the same error. Every message
//!   stays within the limit, text is valid UTF-8, control payloads fit 125 bytes, a Close
//!   carries a code that may be sent, nothing follows a Close or an error.
//! - Round trip: the rest is a list of messages, pings, pongs and a close, encoded by one
//!   side (with or without compression) and decoded by the other: exactly what was sent
//!   must come out, in order.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::io::IoSlice;
use wsnative::fuzzing::*;

#[derive(Debug, PartialEq)]
enum Ev {
    Msg(bool, Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<(u16, String)>),
    Err(u16, &'static str),
}

fn check(ev: &Incoming, max: usize) {
    match ev {
        Incoming::Message { text, data } => {
            assert!(
                data.len() <= max,
                "message of {} bytes over the limit {max}",
                data.len()
            );
            if *text {
                assert!(std::str::from_utf8(data).is_ok(), "invalid UTF-8 delivered");
            }
        }
        Incoming::Ping(p) | Incoming::Pong(p) => assert!(p.len() <= 125),
        Incoming::Close(c) => {
            if let Some((code, reason)) = c {
                assert!(close_code_allowed(*code), "close code {code} delivered");
                assert!(reason.len() <= 123);
            }
        }
    }
}

fn to_ev(i: Incoming) -> Ev {
    match i {
        Incoming::Message { text, data } => Ev::Msg(text, data),
        Incoming::Ping(p) => Ev::Ping(p),
        Incoming::Pong(p) => Ev::Pong(p),
        Incoming::Close(c) => Ev::Close(c),
    }
}

/// Feeds `input` in reads of `chunks` bytes (cycled); `direct`: honour ReadHint::Direct.
fn run(cfg: &DecoderConfig, input: &[u8], chunks: &[usize], direct: bool) -> Vec<Ev> {
    let mut d = Decoder::new(cfg);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let (mut at, mut ci) = (0usize, 0usize);
    let mut ended = false;
    loop {
        loop {
            match d.decode(&mut buf) {
                Ok(Some(i)) => {
                    assert!(!ended, "an item after the peer's Close or an error");
                    check(&i, cfg.max_message_size);
                    if matches!(i, Incoming::Close(_)) {
                        ended = true;
                        assert!(d.close_received());
                    }
                    out.push(to_ev(i));
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!ended);
                    assert!(matches!(e.code, 1002 | 1007 | 1009), "{e}");
                    out.push(Ev::Err(e.code, e.reason));
                    // Everything after an error is ignored.
                    let mut rest = BytesMut::from(&input[at..]);
                    assert_eq!(d.decode(&mut rest), Ok(None));
                    return out;
                }
            }
        }
        if at == input.len() {
            return out;
        }
        let n = chunks[ci % chunks.len()].clamp(1, input.len() - at);
        ci += 1;
        if direct {
            if let ReadHint::Direct { remaining } = d.read_hint() {
                assert!(buf.is_empty(), "a direct read with bytes still buffered");
                let k = n.min(remaining);
                d.direct_buf().put_slice(&input[at..at + k]);
                at += k;
                match d.direct_filled(k) {
                    Ok(Some(i)) => {
                        check(&i, cfg.max_message_size);
                        out.push(to_ev(i));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        out.push(Ev::Err(e.code, e.reason));
                        return out;
                    }
                }
                continue;
            }
        }
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
    }
}

fn params(u: &mut Unstructured) -> AResult<DeflateParams> {
    Ok(DeflateParams {
        server_no_context_takeover: u.arbitrary()?,
        client_no_context_takeover: u.arbitrary()?,
        server_max_window_bits: u.int_in_range(8..=15)?,
        client_max_window_bits: u.int_in_range(8..=15)?,
    })
}

fn decode_mode(u: &mut Unstructured) -> AResult<()> {
    let role = if u.arbitrary()? {
        Role::Server
    } else {
        Role::Client
    };
    let max = *u.choose(&[0usize, 1, 125, 1000, 16 << 10, 70_000, 1 << 20])?;
    let mut cfg = DecoderConfig::new(role, max);
    if u.arbitrary()? {
        cfg.max_frame_size = u.int_in_range(0..=max)?;
    }
    if u.arbitrary()? {
        cfg.deflate = Some(params(u)?);
    }
    let nchunks = u.int_in_range(1..=8)?;
    let mut chunks = Vec::new();
    for _ in 0..nchunks {
        chunks.push(u.int_in_range(1..=300usize)?);
    }
    let input = u.bytes(u.len())?;
    let whole = run(&cfg, input, &[usize::MAX], false);
    let split = run(&cfg, input, &chunks, true);
    assert_eq!(
        whole, split,
        "the result depends on how the bytes were read"
    );
    if chunks != [1] {
        let bytes = run(&cfg, input, &[1], false);
        assert_eq!(whole, bytes, "the result differs when read byte by byte");
    }
    Ok(())
}

fn drain(w: &mut WriteBuf, out: &mut Vec<u8>) {
    while !w.is_empty() {
        let mut s = [IoSlice::new(&[]); 16];
        let n = w.io_slices(&mut s);
        let mut len = 0;
        for sl in &s[..n] {
            out.extend_from_slice(sl);
            len += sl.len();
        }
        w.advance(len);
    }
}

fn roundtrip_mode(u: &mut Unstructured) -> AResult<()> {
    let sender = if u.arbitrary()? {
        Role::Server
    } else {
        Role::Client
    };
    let receiver = if sender == Role::Server {
        Role::Client
    } else {
        Role::Server
    };
    let deflate = if u.arbitrary()? {
        Some(params(u)?)
    } else {
        None
    };
    let mut ec = EncoderConfig::new(sender);
    ec.deflate = deflate;
    ec.level = u.int_in_range(0..=9)?;
    ec.threshold = *u.choose(&[0usize, 1, 64, 1000])?;
    let mut enc = Encoder::new(&ec);
    let mut w = WriteBuf::new();
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut closed = false;
    // Bounded (at most 64 items, about 256 KiB): each execution stays in milliseconds.
    while !u.is_empty() && expected.len() < 64 && wire.len() + w.len() < 256 << 10 {
        let kind: u8 = u.int_in_range(0..=5)?;
        let len = u.int_in_range(0..=200usize)?;
        let repeat = u.int_in_range(1..=40usize)?;
        let mut payload: Vec<u8> = u.bytes(len.min(u.len()))?.to_vec();
        if kind == 0 && !payload.is_empty() {
            // Compressible: the same bytes again and again.
            payload = payload.repeat(repeat);
        }
        let r = match kind {
            0 | 1 => {
                let text = u.arbitrary()?;
                if text {
                    payload = String::from_utf8_lossy(&payload).into_owned().into_bytes();
                }
                let data = Bytes::from(payload.clone());
                let r = enc.message(&mut w, text, data.clone(), u.arbitrary()?);
                if r.is_ok() {
                    expected.push(Ev::Msg(text, data));
                }
                r
            }
            2 => {
                let r = enc.ping(&mut w, &payload);
                if r.is_ok() {
                    expected.push(Ev::Ping(Bytes::from(payload)));
                }
                r
            }
            3 => {
                let r = enc.pong(&mut w, &payload);
                if r.is_ok() {
                    expected.push(Ev::Pong(Bytes::from(payload)));
                }
                r
            }
            _ => {
                let close = if kind == 4 {
                    let reason = String::from_utf8_lossy(&payload).into_owned();
                    Some((u.arbitrary::<u16>()?, reason))
                } else {
                    None
                };
                let r = enc.close(&mut w, close.as_ref().map(|(c, r)| (*c, r.as_str())));
                if r.is_ok() {
                    expected.push(Ev::Close(close));
                    closed = true;
                }
                r
            }
        };
        match r {
            Ok(()) => assert!(!closed || matches!(expected.last(), Some(Ev::Close(_)))),
            Err(SendError::Closed) => assert!(closed),
            Err(SendError::ControlTooLong(n)) => assert!(n > 125),
            Err(SendError::InvalidCloseCode(c)) => assert!(!close_code_allowed(c)),
        }
        if u.arbitrary()? {
            drain(&mut w, &mut wire);
        }
    }
    drain(&mut w, &mut wire);
    let mut dc = DecoderConfig::new(receiver, 1 << 20);
    dc.deflate = deflate;
    let got = run(&dc, &wire, &[usize::MAX], false);
    assert_eq!(got, expected, "what was sent did not come back");
    let got = run(&dc, &wire, &[7, 1, 300, 64], true);
    assert_eq!(
        got, expected,
        "what was sent did not come back (in small reads)"
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = if mode & 1 == 0 {
        decode_mode(&mut u)
    } else {
        roundtrip_mode(&mut u)
    };
});
