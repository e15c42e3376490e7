//! Decoder, encoder and deflate together: RFC 6455 / 7692 rules, chunking at every byte
//! boundary, limits, round trips for both roles.

use super::bench::{live, peak_during};
use super::deflate::{self, DeflateConfig, DeflateParams, Deflater, InflateError, Inflater};
use super::*;
use bytes::{BufMut, Bytes, BytesMut};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A raw frame; the payload is masked when `mask` is set.
fn raw(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        v.push(m | n as u8);
    } else if n <= 0xffff {
        v.push(m | 126);
        v.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        v.push(m | 127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let mut p = payload.to_vec();
    if let Some(k) = mask {
        v.extend_from_slice(&k);
        apply_mask(&mut p, k, 0);
    }
    v.extend_from_slice(&p);
    v
}

/// A frame from a client (masked).
fn cf(first: u8, payload: &[u8]) -> Vec<u8> {
    raw(first, Some(MASK), payload)
}

fn server_dec() -> Decoder {
    Decoder::new(&DecoderConfig::new(Role::Server, 1 << 20))
}

fn client_dec() -> Decoder {
    Decoder::new(&DecoderConfig::new(Role::Client, 1 << 20))
}

type Out = Vec<Result<Incoming, ProtocolError>>;

/// Feeds `wire` in pieces of the given sizes (cycled), collecting everything until the end
/// or the first error.
fn feed(dec: &mut Decoder, wire: &[u8], sizes: &[usize]) -> Out {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < wire.len() {
        let n = sizes[i % sizes.len()].max(1).min(wire.len() - at);
        i += 1;
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
        if !decode_all(dec, &mut buf, &mut out) {
            return out;
        }
    }
    out
}

/// Decodes everything `buf` holds into `out`; false after an error (pushed last).
fn decode_all(dec: &mut Decoder, buf: &mut BytesMut, out: &mut Out) -> bool {
    loop {
        match dec.decode(buf) {
            Ok(Some(x)) => out.push(Ok(x)),
            Ok(None) => return true,
            Err(e) => {
                out.push(Err(e));
                return false;
            }
        }
    }
}

fn msg(text: bool, data: &[u8]) -> Result<Incoming, ProtocolError> {
    Ok(Incoming::Message {
        text,
        data: Bytes::copy_from_slice(data),
    })
}

fn err_code(out: &Out) -> Option<u16> {
    out.iter().find_map(|r| r.as_ref().err().map(|e| e.code))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------
// Decoder: RFC 6455 rules

#[test]
fn decodes_text_and_binary_both_roles() {
    let mut d = server_dec();
    let mut w = cf(0x81, b"hello");
    w.extend(cf(0x82, &[0, 1, 2, 255]));
    assert_eq!(
        feed(&mut d, &w, &[1000]),
        vec![msg(true, b"hello"), msg(false, &[0, 1, 2, 255])]
    );
    let mut d = client_dec();
    let w = raw(0x81, None, b"hi");
    assert_eq!(feed(&mut d, &w, &[1000]), vec![msg(true, b"hi")]);
}

#[test]
fn masking_must_follow_the_role() {
    assert_eq!(
        err_code(&feed(&mut server_dec(), &raw(0x81, None, b"x"), &[10])),
        Some(1002)
    );
    assert_eq!(
        err_code(&feed(&mut client_dec(), &cf(0x81, b"x"), &[10])),
        Some(1002)
    );
    // control frames too
    assert_eq!(
        err_code(&feed(&mut server_dec(), &raw(0x89, None, b""), &[10])),
        Some(1002)
    );
}

#[test]
fn rsv_bits_and_opcodes() {
    for first in [0xc1u8, 0xa1, 0x91, 0xc9, 0x83, 0x84, 0x87, 0x8b, 0x8f] {
        let out = feed(&mut server_dec(), &cf(first, b"x"), &[100]);
        assert_eq!(err_code(&out), Some(1002), "first byte {first:02x}");
    }
    // With deflate: RSV1 fine on a first data frame, not on control or continuation frames.
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let cfg = DecoderConfig {
        deflate: Some(p),
        ..DecoderConfig::new(Role::Server, 1 << 20)
    };
    let ok = cf(0xc1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        feed(&mut Decoder::new(&cfg), &ok, &[100]),
        vec![msg(true, b"Hello")]
    );
    assert_eq!(
        err_code(&feed(&mut Decoder::new(&cfg), &cf(0xc9, b""), &[100])),
        Some(1002)
    );
    let mut w = cf(0x41, &[0xf2, 0x48]);
    w.extend(cf(0xc0, &[0xcd, 0xc9, 0xc9, 0x07, 0x00]));
    assert_eq!(
        err_code(&feed(&mut Decoder::new(&cfg), &w, &[100])),
        Some(1002)
    );
}

#[test]
fn control_frame_rules() {
    let p125 = [b'p'; 125];
    assert_eq!(
        feed(&mut server_dec(), &cf(0x89, &p125), &[7]),
        vec![Ok(Incoming::Ping(Bytes::copy_from_slice(&p125)))]
    );
    assert_eq!(
        err_code(&feed(&mut server_dec(), &cf(0x89, &[0; 126]), &[300])),
        Some(1002)
    );
    assert_eq!(
        err_code(&feed(&mut server_dec(), &cf(0x09, b""), &[300])),
        Some(1002)
    );
    assert_eq!(
        err_code(&feed(&mut server_dec(), &cf(0x0a, b""), &[300])),
        Some(1002)
    );
    assert_eq!(
        feed(&mut server_dec(), &cf(0x8a, b"pong"), &[1]),
        vec![Ok(Incoming::Pong(Bytes::from_static(b"pong")))]
    );
}

#[test]
fn fragmentation_rules() {
    // continuation with nothing to continue
    assert_eq!(
        err_code(&feed(&mut server_dec(), &cf(0x80, b"x"), &[100])),
        Some(1002)
    );
    // a new data message inside a fragmented one
    let mut w = cf(0x01, b"a");
    w.extend(cf(0x81, b"b"));
    assert_eq!(err_code(&feed(&mut server_dec(), &w, &[100])), Some(1002));
    let mut w = cf(0x02, b"a");
    w.extend(cf(0x82, b"b"));
    assert_eq!(err_code(&feed(&mut server_dec(), &w, &[100])), Some(1002));
}

/// Autobahn 5.x: control frames between fragments, empty fragments.
fn fragmented_with_controls() -> (Vec<u8>, Out) {
    let mut w = cf(0x01, b"Hello, ");
    w.extend(cf(0x89, b"ping!"));
    w.extend(cf(0x00, b""));
    w.extend(cf(0x8a, b""));
    w.extend(cf(0x00, "wör".as_bytes()));
    w.extend(cf(0x80, b"ld"));
    w.extend(cf(0x82, &[]));
    w.extend(cf(0x02, &[1; 300]));
    w.extend(cf(0x89, b""));
    w.extend(cf(0x80, &[2; 70000]));
    w.extend(cf(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
    let mut big = vec![1u8; 300];
    big.extend(vec![2u8; 70000]);
    let want = vec![
        Ok(Incoming::Ping(Bytes::from_static(b"ping!"))),
        Ok(Incoming::Pong(Bytes::new())),
        msg(true, "Hello, wörld".as_bytes()),
        msg(false, b""),
        Ok(Incoming::Ping(Bytes::new())),
        msg(false, &big),
        Ok(Incoming::Close(Some((1000, "bye".into())))),
    ];
    (w, want)
}

#[test]
fn control_frames_inside_fragmented_messages() {
    let (w, want) = fragmented_with_controls();
    assert_eq!(feed(&mut server_dec(), &w, &[usize::MAX]), want);
}

#[test]
fn every_split_point_gives_the_same_result() {
    let (w, want) = fragmented_with_controls();
    // two pieces, split at every byte (the big fragment is skipped over in steps)
    let mut cut = 0;
    while cut <= w.len() {
        let out = feed(&mut server_dec(), &w, &[cut.max(1), usize::MAX]);
        assert_eq!(out, want, "split at {cut}");
        cut += if (400..w.len() - 300).contains(&cut) {
            997
        } else {
            1
        };
    }
    // byte by byte
    assert_eq!(feed(&mut server_dec(), &w, &[1]), want);
    // random chunk sizes
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..200 {
        let sizes: Vec<usize> = (0..16)
            .map(|_| {
                let max = if rng.next() % 2 == 0 { 9 } else { 5000 };
                1 + rng.below(max)
            })
            .collect();
        assert_eq!(feed(&mut server_dec(), &w, &sizes), want, "sizes {sizes:?}");
    }
}

#[test]
fn header_announcing_huge_length_fails_at_once_without_allocating() {
    let mut d = server_dec();
    let mut buf = BytesMut::from(&[0x82u8, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]); // 2^62
    let before = live();
    let (r, peak) = peak_during(|| d.decode(&mut buf));
    assert_eq!(r.unwrap_err().code, 1009);
    assert!(peak < 1024, "allocated {peak} bytes");
    assert!(live() - before < 1024);
    // after the error everything is ignored
    buf.extend_from_slice(&cf(0x81, b"x"));
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn frame_and_message_limits_from_the_header() {
    let cfg = DecoderConfig {
        max_frame_size: 100,
        ..DecoderConfig::new(Role::Server, 150)
    };
    // a frame over the frame limit fails from its header alone
    let w = cf(0x82, &[0; 101]);
    let mut d = Decoder::new(&cfg);
    let mut buf = BytesMut::from(&w[..6]);
    assert_eq!(d.decode(&mut buf).unwrap_err().code, 1009);
    // fragments crossing the message limit: fails at the header of the crossing fragment
    let mut w = cf(0x02, &[0; 100]);
    let first = w.len();
    w.extend(cf(0x80, &[0; 51]));
    let mut d = Decoder::new(&cfg);
    let mut buf = BytesMut::from(&w[..first + 6]);
    assert_eq!(d.decode(&mut buf).unwrap_err().code, 1009);
    // exactly at the limits: fine
    let mut w = cf(0x02, &[0; 100]);
    w.extend(cf(0x80, &[0; 50]));
    assert_eq!(
        feed(&mut Decoder::new(&cfg), &w, &[33]),
        vec![msg(false, &[0; 150])]
    );
}

#[test]
fn close_frames() {
    let close = |p: &[u8]| feed(&mut server_dec(), &cf(0x88, p), &[3]);
    assert_eq!(close(b""), vec![Ok(Incoming::Close(None))]);
    assert_eq!(
        close(&[0x03, 0xe8]),
        vec![Ok(Incoming::Close(Some((1000, String::new()))))]
    );
    assert_eq!(err_code(&close(&[0x03])), Some(1002));
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        assert_eq!(
            close(&code.to_be_bytes()),
            vec![Ok(Incoming::Close(Some((code, String::new()))))],
            "{code}"
        );
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert_eq!(err_code(&close(&code.to_be_bytes())), Some(1002), "{code}");
    }
    let mut p = vec![0x03, 0xe8];
    p.extend_from_slice(b"ok\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80");
    assert_eq!(err_code(&close(&p)), Some(1007));
    let mut p = vec![0x0f, 0xa0];
    p.extend_from_slice("κόσμε".as_bytes());
    assert_eq!(
        close(&p),
        vec![Ok(Incoming::Close(Some((4000, "κόσμε".into()))))]
    );
}

#[test]
fn nothing_after_the_peers_close() {
    let mut w = cf(0x88, &[0x03, 0xe8]);
    w.extend(cf(0x81, b"late"));
    w.extend([0xff, 0xff]); // garbage too
    let mut d = server_dec();
    assert_eq!(
        feed(&mut d, &w, &[1]),
        vec![Ok(Incoming::Close(Some((1000, String::new()))))]
    );
    assert!(d.close_received());
    assert_eq!(reply_for(&Some((1001, "x".into()))), Some((1001, "")));
    assert_eq!(close_reply(&None), None);
}

fn reply_for(c: &Option<(u16, String)>) -> Option<(u16, &'static str)> {
    close_reply(c)
}

// ---------------------------------------------------------------------------------------
// UTF-8: fail fast (Autobahn 6.x)

/// Feeds the frame one byte at a time; returns the number of bytes fed when the error came.
fn bytes_fed_at_error(dec: &mut Decoder, wire: &[u8]) -> Option<usize> {
    let mut buf = BytesMut::new();
    for (i, b) in wire.iter().enumerate() {
        buf.put_u8(*b);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(e.code, 1007, "{e}");
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_byte() {
    // Autobahn 6.4.1/6.4.3: κόσμε then F4 90 80 80 (above U+10FFFF) then "edited"
    let payload =
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64";
    let w = cf(0x81, payload);
    let header = w.len() - payload.len();
    // F4 is a valid lead byte; 90 after it is not: the error comes with byte 12 of the payload.
    assert_eq!(bytes_fed_at_error(&mut server_dec(), &w), Some(header + 13));
    // 6.4.2: the same split into fragments
    let mut w = cf(0x01, &payload[..12]);
    let h2 = w.len();
    w.extend(cf(0x00, &payload[12..15]));
    w.extend(cf(0x80, &payload[15..]));
    assert_eq!(bytes_fed_at_error(&mut server_dec(), &w), Some(h2 + 6 + 1));
    // 6.x samples: the error comes no later than the first bad byte
    let cases: &[(&[u8], usize)] = &[
        (
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64",
            12,
        ), // surrogate
        (b"\xc0\xaf", 0),
        (b"\xe0\x80\xaf", 1),
        (b"abc\xff", 3),
        (b"\xf8\x88\x80\x80\x80", 0),
        (b"\xed\xbf\xbf", 1),
        (b"\xef\xbf\xbe\xc1\xbf", 3), // U+FFFE is valid, C1 is not
    ];
    for (p, bad) in cases {
        let w = cf(0x81, p);
        let header = w.len() - p.len();
        assert_eq!(
            bytes_fed_at_error(&mut server_dec(), &w),
            Some(header + bad + 1),
            "{p:x?}"
        );
        // and with a client decoder receiving it unmasked, in the fast path (whole frame)
        assert_eq!(
            err_code(&feed(&mut client_dec(), &raw(0x81, None, p), &[1000])),
            Some(1007)
        );
    }
    // incomplete sequence at the end of the message
    assert_eq!(
        err_code(&feed(&mut server_dec(), &cf(0x81, b"ok\xe2\x82"), &[1])),
        Some(1007)
    );
    let mut w = cf(0x01, b"ok\xe2");
    w.extend(cf(0x80, b"\x82"));
    assert_eq!(err_code(&feed(&mut server_dec(), &w, &[2])), Some(1007));
    // a sequence split across fragments is fine
    let mut w = cf(0x01, b"\xe2");
    w.extend(cf(0x89, b""));
    w.extend(cf(0x00, b"\x82"));
    w.extend(cf(0x80, b"\xac"));
    assert_eq!(
        feed(&mut server_dec(), &w, &[1])[1],
        msg(true, "€".as_bytes())
    );
}

#[test]
fn error_detail_says_where() {
    let out = feed(&mut server_dec(), &cf(0x81, b"abc\xff"), &[100]);
    let e = out[0].as_ref().unwrap_err();
    assert!(
        e.detail.contains("byte 3") && e.detail.contains("frame 1"),
        "{}",
        e.detail
    );
}

// ---------------------------------------------------------------------------------------
// Direct reads

#[test]
fn large_payload_is_read_directly_into_the_message_buffer() {
    let payload: Vec<u8> = (0..(1u32 << 20) + 3).map(|i| (i % 251) as u8).collect();
    let w = cf(0x82, &payload);
    let mut d = Decoder::new(&DecoderConfig::new(Role::Server, 2 << 20));
    assert_eq!(d.read_hint(), ReadHint::Idle);
    let mut buf = BytesMut::from(&w[..5000]); // header and the start of the payload
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
    let header = 14;
    let mut at = 5000;
    let ReadHint::Direct { remaining } = d.read_hint() else {
        panic!("{:?}", d.read_hint())
    };
    assert_eq!(remaining, w.len() - at);
    let ptr = d.direct_buf().get_ref().as_ptr();
    let mut rng = Rng(42);
    let mut result = None;
    while at < w.len() {
        let ReadHint::Direct { remaining } = d.read_hint() else {
            // the tail may come through the small buffer
            let mut buf = BytesMut::from(&w[at..]);
            result = d.decode(&mut buf).unwrap();
            break;
        };
        let n = (1 + rng.below(300_000)).min(remaining);
        let mut db = d.direct_buf();
        assert_eq!(db.remaining_mut(), remaining);
        db.put_slice(&w[at..at + n]);
        at += n;
        if let Some(m) = d.direct_filled(n).unwrap() {
            result = Some(m);
        }
    }
    let Some(Incoming::Message { text: false, data }) = result else {
        panic!()
    };
    assert_eq!(data.len(), w.len() - header);
    assert_eq!(&data[..], &payload[..]);
    // the buffer reserved from the header was the final one: no reallocation
    assert_eq!(data.as_ptr(), ptr);
    assert_eq!(d.read_hint(), ReadHint::Idle);
}

/// Reads `wire` the way the connection task does: into a small read buffer between frames,
/// straight into the message's buffer (offered its spare room past the frame's end) inside a
/// large payload; each read takes at most what `chunk` says is available.
fn feed_like_the_driver(dec: &mut Decoder, wire: &[u8], rng: &mut Rng) -> Out {
    let mut rbuf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let available = (1 + rng.below(200_000)).min(wire.len() - at);
        match dec.read_hint() {
            ReadHint::Direct { .. } => {
                let (dst, remaining) = dec.direct_target();
                let spare = dst.capacity() - dst.len();
                assert!(spare > remaining, "room past the frame's end");
                let n = available.min(remaining + (spare - remaining).min(4096));
                dst.extend_from_slice(&wire[at..at + n]);
                at += n;
                match dec.direct_overflow(n, &mut rbuf) {
                    Ok(Some(x)) => out.push(Ok(x)),
                    Ok(None) => {}
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
            _ => {
                let n = available.min(4096);
                rbuf.extend_from_slice(&wire[at..at + n]);
                at += n;
            }
        }
        if !decode_all(dec, &mut rbuf, &mut out) {
            return out;
        }
    }
    out
}

#[test]
fn direct_reads_past_the_frame_end_hand_the_rest_to_the_read_buffer() {
    // A fragmented message whose first frame is large, a Ping between its frames, a large
    // text message, small ones: everything sent at once, so reads run past frame ends.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let text = "é".repeat(40_000);
    let mut wire = Vec::new();
    wire.extend(cf(0x02, &big)); // binary, not final
    wire.extend(cf(0x89, b"ping"));
    wire.extend(cf(0x80, b"tail")); // continuation, final
    wire.extend(cf(0x81, text.as_bytes()));
    wire.extend(cf(0x82, b"small"));
    wire.extend(cf(0x82, &big[..70_000]));
    wire.extend(cf(0x81, b"last"));
    let want = feed(&mut server_dec(), &wire, &[wire.len()]);
    assert_eq!(want.len(), 6, "{want:?}");
    let mut joined = big.clone();
    joined.extend_from_slice(b"tail");
    assert_eq!(want[1], msg(false, &joined));
    for seed in 1..40 {
        let mut rng = Rng(seed);
        let got = feed_like_the_driver(&mut server_dec(), &wire, &mut rng);
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn direct_reads_check_utf8_as_they_come() {
    let mut p = vec![b'a'; 100_000];
    p[70_000] = 0xff;
    let w = cf(0x81, &p);
    let mut d = server_dec();
    let mut buf = BytesMut::from(&w[..14]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert!(matches!(d.read_hint(), ReadHint::Direct { .. }));
    d.direct_buf().put_slice(&w[14..14 + 60_000]);
    assert_eq!(d.direct_filled(60_000), Ok(None));
    d.direct_buf().put_slice(&w[14 + 60_000..14 + 70_001]);
    assert_eq!(d.direct_filled(10_001).unwrap_err().code, 1007);
}

#[test]
fn read_hints() {
    let mut d = server_dec();
    let w = cf(0x01, b"abc");
    let mut buf = BytesMut::from(&w[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(d.read_hint(), ReadHint::Buffered); // a fragmented message is open
    let w = cf(0x80, &[b'x'; 1000]);
    let mut buf = BytesMut::from(&w[..10]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(d.read_hint(), ReadHint::Buffered); // small remainder: not worth a direct read
}

#[test]
fn whole_frames_split_off_when_large_copied_when_small() {
    let big = vec![7u8; decoder::SPLIT_MIN];
    let mut w = raw(0x82, None, &big);
    let second = w.len();
    w.extend(raw(0x81, None, b"second"));
    let mut buf = BytesMut::from(&w[..]);
    let base = buf.as_ptr() as usize;
    let mut d = client_dec();
    let Some(Incoming::Message { data, .. }) = d.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(data.as_ptr() as usize, base + 4); // a view into the read buffer
    let Some(Incoming::Message { data, .. }) = d.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(&data[..], b"second");
    // a copy: it does not keep the read buffer alive
    let in_buf = (base..base + w.len()).contains(&(data.as_ptr() as usize));
    assert!(!in_buf, "small message at {} of the buffer", second);
}

// ---------------------------------------------------------------------------------------
// Encoder

fn drain(wb: &mut WriteBuf) -> Vec<u8> {
    let mut v = Vec::new();
    while !wb.is_empty() {
        let mut sl = [std::io::IoSlice::new(&[]); 3]; // small on purpose: several rounds
        let n = wb.io_slices(&mut sl);
        let mut total = 0;
        for s in &sl[..n] {
            v.extend_from_slice(s);
            total += s.len();
        }
        wb.advance(total);
    }
    v
}

/// Drains in awkward partial writes (as a socket would accept them).
fn drain_partial(wb: &mut WriteBuf, rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    while !wb.is_empty() {
        let mut sl = [std::io::IoSlice::new(&[]); 4];
        let n = wb.io_slices(&mut sl);
        let avail: usize = sl[..n].iter().map(|s| s.len()).sum();
        let take = 1 + rng.below(avail);
        let mut left = take;
        for s in &sl[..n] {
            let k = left.min(s.len());
            v.extend_from_slice(&s[..k]);
            left -= k;
        }
        wb.advance(take);
    }
    v
}

#[test]
fn server_frames_are_unmasked_client_frames_masked() {
    let mut wb = WriteBuf::new();
    let mut e = Encoder::new(&EncoderConfig::new(Role::Server));
    e.message(&mut wb, true, Bytes::from_static(b"hi"), true)
        .unwrap();
    assert_eq!(drain(&mut wb), vec![0x81, 2, b'h', b'i']);
    let mut e = Encoder::new(&EncoderConfig::new(Role::Client));
    e.message(&mut wb, false, Bytes::from_static(b"hi"), true)
        .unwrap();
    let w = drain(&mut wb);
    assert_eq!(&w[..2], &[0x82, 0x82]);
    let (h, n) = FrameHeader::parse(&w).unwrap().unwrap();
    let mut p = w[n..].to_vec();
    apply_mask(&mut p, h.mask.unwrap(), 0);
    assert_eq!(p, b"hi");
    // fresh masks
    let masks: std::collections::HashSet<[u8; 4]> = (0..64)
        .map(|_| {
            e.ping(&mut wb, b"").unwrap();
            let w = drain(&mut wb);
            FrameHeader::parse(&w).unwrap().unwrap().0.mask.unwrap()
        })
        .collect();
    assert!(masks.len() > 60);
}

#[test]
fn large_payloads_go_by_reference_small_ones_are_batched() {
    let mut wb = WriteBuf::new();
    let mut e = Encoder::new(&EncoderConfig::new(Role::Server));
    let big = Bytes::from(vec![5u8; 100_000]);
    e.message(&mut wb, false, Bytes::from_static(b"a"), false)
        .unwrap();
    e.message(&mut wb, false, Bytes::from_static(b"b"), false)
        .unwrap();
    e.message(&mut wb, false, big.clone(), false).unwrap();
    e.pong(&mut wb, b"p").unwrap();
    let mut sl = [std::io::IoSlice::new(&[]); 8];
    let n = wb.io_slices(&mut sl);
    assert_eq!(n, 3); // [a, b, big's header] [big] [pong]
    assert_eq!(sl[0].len(), 3 + 3 + 10);
    assert_eq!(sl[1].as_ptr(), big.as_ptr()); // not copied
    assert_eq!(wb.len(), 16 + 100_000 + 3);
}

#[test]
fn client_masks_unique_payload_in_place_and_copies_shared_ones() {
    let mut wb = WriteBuf::new();
    let mut e = Encoder::new(&EncoderConfig::new(Role::Client));
    let unique = Bytes::from(vec![1u8; 10_000]);
    let ptr = unique.as_ptr();
    e.message(&mut wb, false, unique, false).unwrap();
    {
        let mut sl = [std::io::IoSlice::new(&[]); 8];
        assert_eq!(wb.io_slices(&mut sl), 2);
        assert_eq!(sl[1].as_ptr(), ptr);
    }
    drain(&mut wb);
    let shared = Bytes::from(vec![1u8; 10_000]);
    let keep = shared.clone();
    e.message(&mut wb, false, shared, false).unwrap();
    {
        let mut sl = [std::io::IoSlice::new(&[]); 8];
        wb.io_slices(&mut sl);
        assert_ne!(sl[1].as_ptr(), keep.as_ptr());
    }
    assert!(
        keep.iter().all(|&b| b == 1),
        "the caller's bytes must not be masked"
    );
    let w = drain(&mut wb);
    assert_eq!(
        feed(&mut server_dec(), &w, &[4096]),
        vec![msg(false, &keep)]
    );
}

#[test]
fn close_and_control_limits_on_send() {
    let mut wb = WriteBuf::new();
    let mut e = Encoder::new(&EncoderConfig::new(Role::Server));
    assert_eq!(
        e.ping(&mut wb, &[0; 126]),
        Err(SendError::ControlTooLong(126))
    );
    assert_eq!(
        e.close(&mut wb, Some((1005, ""))),
        Err(SendError::InvalidCloseCode(1005))
    );
    assert_eq!(
        e.close(&mut wb, Some((1000, &"x".repeat(124)))),
        Err(SendError::ControlTooLong(126))
    );
    e.close(&mut wb, Some((1000, "bye"))).unwrap();
    assert!(e.close_sent());
    assert_eq!(
        e.message(&mut wb, true, Bytes::from_static(b"x"), false),
        Err(SendError::Closed)
    );
    assert_eq!(e.pong(&mut wb, b""), Err(SendError::Closed));
    assert_eq!(e.close(&mut wb, None), Err(SendError::Closed));
    assert_eq!(drain(&mut wb), vec![0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
    let mut e = Encoder::new(&EncoderConfig::new(Role::Server));
    e.close(&mut wb, None).unwrap();
    assert_eq!(drain(&mut wb), vec![0x88, 0]);
}

#[test]
fn write_buf_releases_memory_when_idle() {
    let mut wb = WriteBuf::new();
    let mut e = Encoder::new(&EncoderConfig::new(Role::Server));
    for _ in 0..100 {
        e.message(&mut wb, false, Bytes::from(vec![0u8; 1000]), false)
            .unwrap();
    }
    drain(&mut wb);
    let base = live();
    wb.release();
    assert!(live() <= base);
    let empty = WriteBuf::new();
    assert_eq!(empty.len(), 0);
}

// ---------------------------------------------------------------------------------------
// Round trips

fn sizes() -> Vec<usize> {
    vec![
        0, 1, 2, 63, 64, 65, 125, 126, 127, 2047, 2048, 2049, 65535, 65536, 65537, 300_000,
    ]
}

fn payload(n: usize, text: bool, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    if text {
        let words = ["alpha ", "béta ", "γάμμα ", "δ ", "😀 ", "{\"k\":1} "];
        let mut s = String::new();
        while s.len() < n {
            s.push_str(words[rng.below(words.len())]);
        }
        while s.len() > n {
            s.pop();
        }
        s.into_bytes()
    } else {
        (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    rng.next() as u8
                } else {
                    (i / 13) as u8
                }
            })
            .collect()
    }
}

fn round_trip(role: Role, deflate: Option<DeflateParams>, seed: u64) {
    let ecfg = EncoderConfig {
        role,
        deflate,
        level: 6,
        threshold: 64,
    };
    let peer = if role == Role::Client {
        Role::Server
    } else {
        Role::Client
    };
    let dcfg = DecoderConfig {
        deflate,
        ..DecoderConfig::new(peer, 1 << 20)
    };
    let mut e = Encoder::new(&ecfg);
    let mut d = Decoder::new(&dcfg);
    let mut wb = WriteBuf::new();
    let mut want = Vec::new();
    let mut wire = Vec::new();
    let mut rng = Rng(seed);
    for (i, n) in sizes().into_iter().enumerate() {
        for text in [true, false] {
            for compress in [true, false] {
                let p = payload(n, text, seed + i as u64);
                e.message(&mut wb, text, Bytes::from(p.clone()), compress)
                    .unwrap();
                want.push(msg(text, &p));
                if i % 3 == 0 {
                    e.ping(&mut wb, b"ping").unwrap();
                    want.push(Ok(Incoming::Ping(Bytes::from_static(b"ping"))));
                }
                if rng.next() % 3 == 0 {
                    wire.extend(drain_partial(&mut wb, &mut rng));
                }
            }
        }
    }
    e.close(&mut wb, Some((1000, "done"))).unwrap();
    want.push(Ok(Incoming::Close(Some((1000, "done".into())))));
    wire.extend(drain_partial(&mut wb, &mut rng));
    let chunking: Vec<usize> = (0..8).map(|_| 1 + rng.below(70_000)).collect();
    let out = feed(&mut d, &wire, &chunking);
    assert_eq!(out.len(), want.len(), "{role:?} {deflate:?}");
    for (k, (a, b)) in out.iter().zip(&want).enumerate() {
        assert!(
            a == b,
            "{role:?} {deflate:?} item {k}: {:?}",
            a.as_ref().map_err(|e| e.to_string())
        );
    }
}

#[test]
fn round_trip_without_deflate() {
    round_trip(Role::Client, None, 1);
    round_trip(Role::Server, None, 2);
}

#[test]
fn round_trip_with_deflate_all_window_bits_and_takeover_modes() {
    for bits in 8..=15u8 {
        for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = DeflateParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: bits,
                client_max_window_bits: 23 - bits, // different on each side
            };
            round_trip(Role::Client, Some(p), bits as u64 * 10 + 3);
            round_trip(Role::Server, Some(p), bits as u64 * 10 + 4);
        }
    }
}

#[test]
fn compression_flags_threshold_and_rsv1() {
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut e = Encoder::new(&EncoderConfig {
        role: Role::Server,
        deflate: Some(p),
        level: 6,
        threshold: 64,
    });
    let mut wb = WriteBuf::new();
    let long = Bytes::from(vec![b'a'; 1000]);
    e.message(&mut wb, true, Bytes::from(vec![b'a'; 63]), true)
        .unwrap();
    assert_eq!(
        drain(&mut wb)[0],
        0x81,
        "under the threshold: not compressed"
    );
    e.message(&mut wb, true, long.clone(), false).unwrap();
    assert_eq!(drain(&mut wb)[0], 0x81, "opted out: not compressed");
    e.message(&mut wb, true, long.clone(), true).unwrap();
    let w = drain(&mut wb);
    assert_eq!(w[0], 0xc1);
    assert!(w.len() < 30);
    // context takeover: the same message again is much smaller
    e.message(&mut wb, true, Bytes::from(payload(2000, true, 9)), true)
        .unwrap();
    let first = drain(&mut wb).len();
    e.message(&mut wb, true, Bytes::from(payload(2000, true, 9)), true)
        .unwrap();
    let second = drain(&mut wb).len();
    assert!(second * 5 < first, "{second} vs {first}");
    // without it, the same size
    let p2 = DeflateParams {
        server_no_context_takeover: true,
        ..p
    };
    let mut e = Encoder::new(&EncoderConfig {
        role: Role::Server,
        deflate: Some(p2),
        level: 6,
        threshold: 64,
    });
    e.message(&mut wb, true, Bytes::from(payload(2000, true, 9)), true)
        .unwrap();
    let a = drain(&mut wb);
    e.message(&mut wb, true, Bytes::from(payload(2000, true, 9)), true)
        .unwrap();
    assert_eq!(a, drain(&mut wb));
}

// ---------------------------------------------------------------------------------------
// Deflate: RFC 7692 vectors, bombs, bad data

fn pmd(snct: bool, cnct: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

fn pmd_client_dec(p: DeflateParams, limit: usize) -> Decoder {
    Decoder::new(&DecoderConfig {
        deflate: Some(p),
        ..DecoderConfig::new(Role::Client, limit)
    })
}

#[test]
fn rfc7692_examples() {
    let hello = |w: &[u8]| feed(&mut pmd_client_dec(pmd(false, false), 1000), w, &[1]);
    // 7.2.3.1 a message compressed
    assert_eq!(
        hello(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        vec![msg(true, b"Hello")]
    );
    // 7.2.3.1 fragmented
    assert_eq!(
        hello(&[0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]),
        vec![msg(true, b"Hello")]
    );
    // 7.2.3.2 sharing the sliding window
    let mut w = vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    w.extend([0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(hello(&w), vec![msg(true, b"Hello"), msg(true, b"Hello")]);
    // 7.2.3.3 a stored block
    assert_eq!(
        hello(&[0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]),
        vec![msg(true, b"Hello")]
    );
    // 7.2.3.4 BFINAL set, then another message
    let mut w = vec![0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    w.extend([0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(hello(&w), vec![msg(true, b"Hello"), msg(true, b"Hello")]);
    // 7.2.3.5 two deflate blocks in one message
    assert_eq!(
        hello(&[
            0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
            0x00
        ]),
        vec![msg(true, b"Hello")]
    );
    // 7.2.3.6 an empty message
    assert_eq!(hello(&[0xc1, 0x01, 0x00]), vec![msg(true, b"")]);
    // and our deflater produces the RFC's bytes
    let mut d = Deflater::new(&pmd(false, false), Role::Server, 6);
    let mut out = BytesMut::new();
    d.compress(b"Hello", &mut out);
    assert_eq!(&out[..], &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    out.clear();
    d.compress(b"Hello", &mut out);
    assert_eq!(&out[..], &[0xf2, 0x00, 0x11, 0x00, 0x00]);
    out.clear();
    d.compress(b"", &mut out);
    assert_eq!(&out[..], &[0x00]);
}

#[test]
fn compression_bomb_fails_with_1009_without_inflating_past_the_limit() {
    let limit = 1 << 20;
    let mut d = Deflater::new(&pmd(false, false), Role::Server, 9);
    let mut z = BytesMut::new();
    d.compress(&vec![0u8; 10 << 20], &mut z);
    assert!(z.len() < 20_000, "{}", z.len());
    let w = raw(0xc2, None, &z);
    for chunk in [w.len(), 1000, 7] {
        let mut dec = pmd_client_dec(pmd(false, false), limit);
        let (out, peak) = peak_during(|| feed(&mut dec, &w, &[chunk]));
        assert_eq!(err_code(&out), Some(1009), "chunk {chunk}");
        // at most limit + 1 bytes are inflated; the buffer's capacity may round up
        assert!(
            (peak as usize) < 2 * limit + (256 << 10),
            "peak {peak} for a limit of {limit}"
        );
    }
    // the Inflater itself: output stops at limit + 1
    let mut i = Inflater::new(&pmd(false, false), Role::Client);
    let mut out = BytesMut::new();
    assert_eq!(i.inflate(&z, &mut out, limit), Err(InflateError::TooBig));
    assert_eq!(out.len(), limit + 1);
    // a message right at the limit passes
    let mut z = BytesMut::new();
    Deflater::new(&pmd(true, true), Role::Server, 6).compress(&vec![0u8; limit], &mut z);
    let w = raw(0xc2, None, &z);
    assert_eq!(
        feed(&mut pmd_client_dec(pmd(false, false), limit), &w, &[999]),
        vec![msg(false, &vec![0u8; limit])]
    );
}

#[test]
fn invalid_compressed_data_and_invalid_utf8_inside() {
    let out = feed(
        &mut pmd_client_dec(pmd(false, false), 1000),
        &raw(0xc1, None, &[0xff, 0xff, 0xff]),
        &[100],
    );
    assert_eq!(err_code(&out), Some(1007));
    let mut z = BytesMut::new();
    let mut text = vec![b'a'; 5000];
    text[4000] = 0xc0;
    Deflater::new(&pmd(false, false), Role::Server, 6).compress(&text, &mut z);
    let out = feed(
        &mut pmd_client_dec(pmd(false, false), 1 << 20),
        &raw(0xc1, None, &z),
        &[3],
    );
    let e = out[0].as_ref().unwrap_err();
    assert_eq!(e.code, 1007);
    assert!(e.detail.contains("byte 4000"), "{}", e.detail);
}

#[test]
fn inflater_is_freed_between_messages_without_context_takeover() {
    let mut i = Inflater::new(&pmd(true, false), Role::Client);
    let mut out = BytesMut::new();
    i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
        .unwrap();
    assert!(i.is_allocated());
    i.finish(&mut out, 100).unwrap();
    assert!(!i.is_allocated());
    assert_eq!(&out[..], b"Hello");
    let mut i = Inflater::new(&pmd(false, true), Role::Client);
    i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
        .unwrap();
    i.finish(&mut out, 100).unwrap();
    assert!(i.is_allocated(), "the server keeps its context: so must we");
}

/// zlib with a 512-byte window never emits distances over 250, so what we send for
/// `max_window_bits=8` inflates with a real 256-byte window. Checked with Python's zlib
/// (skipped when python3 is missing).
#[test]
fn window_bits_8_stream_inflates_with_python_zlib_wbits_8() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 8,
        client_max_window_bits: 8,
    };
    let mut d = Deflater::new(&p, Role::Server, 9);
    // repeats at every distance up to 600 bytes
    let mut rng = Rng(77);
    let mut data = Vec::new();
    for _ in 0..3000 {
        let dist = 1 + rng.below(600);
        if data.len() > dist + 20 && rng.next() % 2 == 0 {
            let s = data.len() - dist;
            let piece: Vec<u8> = data[s..(s + 3 + rng.below(15)).min(data.len())].to_vec();
            data.extend(piece);
        } else {
            data.push(b'a' + rng.below(20) as u8);
        }
    }
    // two messages with context takeover, each ending with the trailer put back
    let mut stream = Vec::new();
    for m in [&data[..data.len() / 2], &data[data.len() / 2..]] {
        let mut z = BytesMut::new();
        d.compress(m, &mut z);
        stream.extend_from_slice(&z);
        stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
    }
    // Small output steps, so that back-references come from zlib's 256-byte window and
    // not from the output buffer of the same call (where zlib does not check distances).
    let script = "import sys,zlib
d=zlib.decompressobj(wbits=-8)
buf=sys.stdin.buffer.read()
out=bytearray()
while True:
    o=d.decompress(buf, 16)
    out+=o
    buf=d.unconsumed_tail
    if not buf and not o: break
sys.stdout.buffer.write(out)";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("python3 not found: skipped");
        return;
    };
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Python's zlib (wbits=-8) rejected our window-8 stream"
    );
    assert_eq!(out.stdout, data);
    // Control: the same data compressed with a 32 KiB window does not inflate with 256
    // bytes, so the data above does exercise distances past 256.
    let mut d15 = Deflater::new(
        &DeflateParams {
            server_max_window_bits: 15,
            ..p
        },
        Role::Server,
        9,
    );
    let mut z = BytesMut::new();
    d15.compress(&data, &mut z);
    z.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&z).unwrap();
    assert!(
        !child.wait_with_output().unwrap().status.success(),
        "control case should fail"
    );
}

/// Python's zlib (raw deflate, sync flush, trailer stripped) inflates with ours.
#[test]
fn python_zlib_stream_inflates_with_ours() {
    use std::process::Command;
    let script = "import sys,zlib
c=zlib.compressobj(6, zlib.DEFLATED, -15)
for m in [b'Hello', b'Hello', b'{\"a\":1,\"b\":[1,2,3]}'*50]:
    z=c.compress(m)+c.flush(zlib.Z_SYNC_FLUSH)
    assert z.endswith(b'\\x00\\x00\\xff\\xff')
    sys.stdout.buffer.write(len(z[:-4]).to_bytes(4,'big')+z[:-4])";
    let Ok(out) = Command::new("python3").args(["-c", script]).output() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wire = Vec::new();
    let mut s = &out.stdout[..];
    while !s.is_empty() {
        let n = u32::from_be_bytes(s[..4].try_into().unwrap()) as usize;
        wire.extend(raw(0xc1, None, &s[4..4 + n]));
        s = &s[4 + n..];
    }
    assert_eq!(
        &wire[..9],
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    let got = feed(&mut pmd_client_dec(pmd(false, false), 1 << 20), &wire, &[5]);
    assert_eq!(
        got,
        vec![
            msg(true, b"Hello"),
            msg(true, b"Hello"),
            msg(true, &b"{\"a\":1,\"b\":[1,2,3]}".repeat(50))
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Deflate negotiation

/// Enabled, with context takeover (the negotiation tests start from plain offers).
fn on() -> DeflateConfig {
    DeflateConfig {
        enabled: true,
        client_no_context_takeover: false,
        server_no_context_takeover: false,
        ..DeflateConfig::default()
    }
}

#[test]
fn default_config() {
    let d = DeflateConfig::default();
    assert!(!d.enabled);
    let cfg = DeflateConfig { enabled: true, ..d };
    assert_eq!(
        deflate::offer_header(&cfg),
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits"
    );
    // a browser's offer, answered by a server with the defaults
    let (p, r) = deflate::negotiate(&cfg, &["permessage-deflate; client_max_window_bits"]).unwrap();
    assert_eq!(
        r,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(p, pmd(true, true));
}

#[test]
fn client_offer() {
    assert_eq!(
        deflate::offer_header(&on()),
        "permessage-deflate; client_max_window_bits"
    );
    let cfg = DeflateConfig {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        client_max_window_bits: 10,
        server_max_window_bits: 8,
        ..on()
    };
    assert_eq!(
        deflate::offer_header(&cfg),
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=10"
    );
}

#[test]
fn client_accepts_valid_responses() {
    let acc = |cfg: &DeflateConfig, v: &[&str]| deflate::accept_response(cfg, v);
    assert_eq!(acc(&on(), &[]), Ok(None));
    assert_eq!(
        acc(&on(), &["permessage-deflate"]),
        Ok(Some(pmd(false, false)))
    );
    assert_eq!(
        acc(
            &on(),
            &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"]
        ),
        Ok(Some(pmd(true, true)))
    );
    let p = acc(
        &on(),
        &["permessage-deflate; server_max_window_bits=10; client_max_window_bits=\"9\""],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (p.server_max_window_bits, p.client_max_window_bits),
        (10, 9)
    );
    // what we asked for and got
    let cfg = DeflateConfig {
        server_no_context_takeover: true,
        server_max_window_bits: 9,
        client_max_window_bits: 12,
        ..on()
    };
    let p = acc(
        &cfg,
        &["permessage-deflate;server_no_context_takeover;server_max_window_bits=8"],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (
            p.server_no_context_takeover,
            p.server_max_window_bits,
            p.client_max_window_bits
        ),
        (true, 8, 12)
    );
    // our own client_no_context_takeover holds even if the server does not repeat it
    let cfg = DeflateConfig {
        client_no_context_takeover: true,
        ..on()
    };
    assert!(
        acc(&cfg, &["permessage-deflate"])
            .unwrap()
            .unwrap()
            .client_no_context_takeover
    );
}

#[test]
fn client_rejects_invalid_responses() {
    let bad = |cfg: &DeflateConfig, v: &[&str]| {
        let r = deflate::accept_response(cfg, v);
        assert!(r.is_err(), "{v:?} accepted: {r:?}");
    };
    bad(&on(), &["permessage-deflate; foo"]);
    bad(
        &on(),
        &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
    );
    bad(&on(), &["permessage-deflate; server_no_context_takeover=1"]);
    bad(&on(), &["permessage-deflate; server_max_window_bits"]);
    bad(&on(), &["permessage-deflate; server_max_window_bits=7"]);
    bad(&on(), &["permessage-deflate; server_max_window_bits=16"]);
    bad(&on(), &["permessage-deflate; server_max_window_bits=010"]);
    bad(&on(), &["permessage-deflate; client_max_window_bits"]);
    bad(&on(), &["permessage-deflate; client_max_window_bits=abc"]);
    bad(&on(), &["permessage-deflate, permessage-deflate"]);
    bad(&on(), &["permessage-deflate", "permessage-deflate"]);
    bad(&on(), &["x-webkit-deflate-frame"]);
    bad(&DeflateConfig::default(), &["permessage-deflate"]); // not offered at all
    let asked = DeflateConfig {
        server_no_context_takeover: true,
        ..on()
    };
    bad(&asked, &["permessage-deflate"]);
    let asked = DeflateConfig {
        server_max_window_bits: 10,
        ..on()
    };
    bad(&asked, &["permessage-deflate"]);
    bad(&asked, &["permessage-deflate; server_max_window_bits=11"]);
    let offered = DeflateConfig {
        client_max_window_bits: 10,
        ..on()
    };
    bad(&offered, &["permessage-deflate; client_max_window_bits=11"]);
}

#[test]
fn server_negotiation() {
    let neg = |cfg: &DeflateConfig, o: &[&str]| deflate::negotiate(cfg, o);
    assert_eq!(
        neg(&DeflateConfig::default(), &["permessage-deflate"]),
        None
    );
    assert_eq!(neg(&on(), &[]), None);
    assert_eq!(neg(&on(), &["x-foo"]), None);
    assert_eq!(
        neg(&on(), &["permessage-deflate"]),
        Some((pmd(false, false), "permessage-deflate".into()))
    );
    // browsers
    assert_eq!(
        neg(&on(), &["permessage-deflate; client_max_window_bits"]),
        Some((pmd(false, false), "permessage-deflate".into()))
    );
    // Autobahn 13.x offers
    let (p, r) = neg(
        &on(),
        &["permessage-deflate; client_no_context_takeover; client_max_window_bits"],
    )
    .unwrap();
    assert_eq!(
        (p, r.as_str()),
        (
            pmd(false, true),
            "permessage-deflate; client_no_context_takeover"
        )
    );
    let (p, r) = neg(&on(), &["permessage-deflate; server_max_window_bits=8"]).unwrap();
    assert_eq!(p.server_max_window_bits, 8);
    assert_eq!(r, "permessage-deflate; server_max_window_bits=8");
    let (p, r) = neg(
        &on(),
        &["permessage-deflate; server_no_context_takeover; server_max_window_bits=15"],
    )
    .unwrap();
    assert_eq!(
        (p.server_no_context_takeover, p.server_max_window_bits),
        (true, 15)
    );
    assert_eq!(
        r,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15"
    );
    // invalid offers are declined and the next one taken
    for bad in [
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_no_context_takeover=yes",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ] {
        let (p, r) = neg(
            &on(),
            &[bad, "permessage-deflate; server_max_window_bits=12"],
        )
        .unwrap_or_else(|| panic!("{bad}"));
        assert_eq!(p.server_max_window_bits, 12, "{bad}");
        assert_eq!(r, "permessage-deflate; server_max_window_bits=12");
        assert_eq!(neg(&on(), &[bad]), None);
    }
    // one header value with several offers
    let (p, _) = neg(
        &on(),
        &["permessage-deflate; bogus, permessage-deflate; client_no_context_takeover"],
    )
    .unwrap();
    assert!(p.client_no_context_takeover);
    // the server's own limits
    let cfg = DeflateConfig {
        server_max_window_bits: 10,
        client_max_window_bits: 9,
        server_no_context_takeover: true,
        ..on()
    };
    let (p, r) = neg(&cfg, &["permessage-deflate; client_max_window_bits"]).unwrap();
    assert_eq!(r, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9");
    assert_eq!(
        (p.server_max_window_bits, p.client_max_window_bits),
        (10, 9)
    );
    // a client that did not offer client_max_window_bits cannot be limited
    let (p, r) = neg(&cfg, &["permessage-deflate"]).unwrap();
    assert_eq!(p.client_max_window_bits, 15);
    assert!(!r.contains("client_max_window_bits"));
    // a value the client offered bounds what we answer
    let (p, r) = neg(
        &on(),
        &["permessage-deflate; client_max_window_bits=11; server_max_window_bits=14"],
    )
    .unwrap();
    assert_eq!(
        (p.client_max_window_bits, p.server_max_window_bits),
        (11, 14)
    );
    assert_eq!(
        r,
        "permessage-deflate; server_max_window_bits=14; client_max_window_bits=11"
    );
    // and the response is accepted by our client that made the offer
    let ccfg = DeflateConfig {
        client_max_window_bits: 11,
        server_max_window_bits: 14,
        ..on()
    };
    assert_eq!(deflate::accept_response(&ccfg, &[&r]), Ok(Some(p)));
}

#[test]
fn negotiation_round_trips_between_our_client_and_server() {
    for cnct in [false, true] {
        for snct in [false, true] {
            for cbits in [8u8, 9, 12, 15] {
                for sbits in [8u8, 11, 15] {
                    let c = DeflateConfig {
                        client_no_context_takeover: cnct,
                        server_no_context_takeover: snct,
                        client_max_window_bits: cbits,
                        server_max_window_bits: sbits,
                        ..on()
                    };
                    let offer = deflate::offer_header(&c);
                    for s in [
                        on(),
                        DeflateConfig {
                            server_max_window_bits: 10,
                            client_max_window_bits: 9,
                            ..on()
                        },
                    ] {
                        let (sp, resp) = deflate::negotiate(&s, &[&offer]).unwrap();
                        let cp = deflate::accept_response(&c, &[&resp]).unwrap().unwrap();
                        assert_eq!(sp, cp, "offer {offer:?} response {resp:?}");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Robustness and idle memory

/// Random bytes, random valid-looking headers with random payloads, random chunking, both
/// roles, with and without deflate: the decoder returns items or an error, never panics
/// or loops.
#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for round in 0..3000 {
        let mut w = Vec::new();
        for _ in 0..1 + rng.below(6) {
            if rng.next() % 4 == 0 {
                w.extend((0..rng.below(40)).map(|_| rng.next() as u8));
            } else {
                let first = (rng.next() as u8 & 0xcf) | if rng.next() % 2 == 0 { 0x80 } else { 0 };
                let len = rng.below(300);
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let mask = if rng.next() % 2 == 0 {
                    Some(MASK)
                } else {
                    None
                };
                w.extend(raw(first, mask, &payload));
            }
        }
        for role in [Role::Server, Role::Client] {
            let deflate = (round % 2 == 0).then(|| pmd(round % 4 == 0, false));
            let mut d = Decoder::new(&DecoderConfig {
                deflate,
                ..DecoderConfig::new(role, 4096)
            });
            let sizes: Vec<usize> = (0..4).map(|_| 1 + rng.below(50)).collect();
            let _ = feed(&mut d, &w, &sizes);
        }
    }
}

/// Every 1- and 2-byte input, fed byte by byte: same verdict and error offset as std.
#[test]
fn utf8_exhaustive_two_bytes() {
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let s = [a, b];
            let mut v = Utf8Validator::new();
            let r = v
                .feed(&s[..1])
                .and_then(|_| v.feed(&s[1..]))
                .and_then(|_| v.finish());
            match std::str::from_utf8(&s) {
                Ok(_) => assert!(r.is_ok(), "{s:x?}"),
                Err(e) => assert_eq!(r, Err(e.valid_up_to() as u64), "{s:x?}"),
            }
        }
    }
}

/// Between messages a decoder and an encoder hold no heap memory (no deflate): no
/// per-connection buffer while idle.
#[test]
fn idle_codec_holds_no_heap() {
    let mut d = server_dec();
    let mut e = Encoder::new(&EncoderConfig::new(Role::Server));
    let mut wb = WriteBuf::new();
    let mut w = cf(0x01, &[b'a'; 5000]);
    w.extend(cf(0x80, &[b'b'; 30000]));
    let base = live();
    {
        let out = feed(&mut d, &w, &[4096]);
        assert_eq!(out.len(), 1);
        for r in out {
            if let Ok(Incoming::Message { data, .. }) = r {
                e.message(&mut wb, true, data, false).unwrap();
            }
        }
        let mut sink = Vec::new();
        while !wb.is_empty() {
            let n = {
                let mut sl = [std::io::IoSlice::new(&[]); 4];
                let k = wb.io_slices(&mut sl);
                sl[..k]
                    .iter()
                    .map(|s| {
                        sink.extend_from_slice(s);
                        s.len()
                    })
                    .sum()
            };
            wb.advance(n);
        }
        wb.release();
    }
    assert_eq!(d.read_hint(), ReadHint::Idle);
    assert_eq!(live() - base, 0, "heap held by an idle decoder/encoder");
    println!(
        "inline sizes: Decoder {} B, Encoder {} B, WriteBuf {} B",
        std::mem::size_of::<Decoder>(),
        std::mem::size_of::<Encoder>(),
        std::mem::size_of::<WriteBuf>()
    );
}

/// Found by the `frames` fuzz target (fuzz/): a compressed text message whose deflate data
/// first inflates to invalid UTF-8 and then turns corrupt. Read whole, the decoder reported
/// the corrupt data ("invalid compressed data"); read byte by byte, the invalid UTF-8 that
/// comes first. Errors are now reported in stream order whatever the reads: the bytes
/// inflated before the corrupt data are checked first.
#[test]
fn inflated_text_is_checked_before_a_later_deflate_error_in_any_split() {
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let cfg = DecoderConfig {
        deflate: Some(p),
        ..DecoderConfig::new(Role::Server, 1 << 20)
    };
    // A stored block of two bytes that are not UTF-8, then a block of the reserved type 3.
    let deflated = [0x00, 0x02, 0x00, 0xfd, 0xff, 0xff, 0xfe, 0x06];
    let wire = cf(0xc1, &deflated);
    for sizes in [&[usize::MAX][..], &[1], &[3, 5], &[7]] {
        let out = feed(&mut Decoder::new(&cfg), &wire, sizes);
        match out.last() {
            Some(Err(e)) => assert_eq!(
                (e.code, e.reason),
                (1007, "invalid UTF-8"),
                "reads of {sizes:?}: {e}"
            ),
            other => panic!("reads of {sizes:?}: {other:?}"),
        }
    }
}
