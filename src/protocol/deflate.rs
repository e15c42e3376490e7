//! permessage-deflate (RFC 7692): negotiation for both roles and the per-message codec.
//!
//! The codec is zlib-rs through `flate2` (raw deflate, window bits 9-15).
//!
//! Window bits 8: zlib (and zlib-rs, and flate2's API) refuse a raw deflate window of 256
//! bytes. We still accept and answer `*_max_window_bits=8`, and compress with a 512-byte
//! window: zlib never emits a distance larger than the window minus 262 bytes
//! (`MAX_DIST`), 250 for 512, so the stream is valid for a 256-byte inflater. Node.js's
//! zlib does the same (its `createDeflateRaw` documents turning 8 into 9 for this reason),
//! so `ws` peers behave alike. Python `websockets` accepts 8 in the negotiation and passes
//! it to zlib, which raises at the first message with zlib >= 1.2.9 (checked: "Invalid
//! initialization option" with zlib 1.2.13). Declining 8 instead would leave Autobahn
//! 13.3/13.5 (which offer 8) without compression. The test
//! `window_bits_8_stream_inflates_with_python_zlib_wbits_8` checks our window-9 output
//! against Python's zlib inflating with a real 256-byte window (and that a 32 KiB-window
//! stream of the same data fails there). Inflating with a window larger than the peer's
//! is always valid, so our inflater uses at least 9 bits.
//!
//! Memory, measured by `protocol::bench::deflate_memory` (counting allocator, zlib-rs,
//! level 6, memLevel 8 as flate2 sets it). "Kept" is what a connection holds between
//! messages with context takeover; the hash tables (128 KiB) and pending buffer (64 KiB)
//! do not shrink with the window, so lowering the window saves little:
//!
//! | window bits | deflater kept | inflater kept | both | peak while compressing |
//! |---|---|---|---|---|
//! | 8, 9 | 245.3 KiB | 46.6 KiB | 291.9 KiB | 261.3 KiB |
//! | 10 | 247.3 KiB | 46.6 KiB | 293.9 KiB | 263.3 KiB |
//! | 11 | 251.3 KiB | 46.6 KiB | 297.9 KiB | 267.3 KiB |
//! | 12 | 259.3 KiB | 46.6 KiB | 305.9 KiB | 275.3 KiB |
//! | 13 | 275.3 KiB | 46.6 KiB | 321.9 KiB | 291.3 KiB |
//! | 14 | 307.3 KiB | 46.6 KiB | 353.9 KiB | 323.3 KiB |
//! | 15 | 371.3 KiB | 46.6 KiB | 417.9 KiB | 387.3 KiB |
//!
//! (zlib-rs allocates the inflate window at its full 32 KiB whatever the bits.) Without
//! context takeover a connection holds nothing between messages: the state is taken from a
//! small per-thread pool for one message and given back reset, so the cost is per I/O
//! thread (at most 2 deflaters and 2 inflaters: 418 KiB at 15 bits), not per connection.
//! Reset instead of keeping context costs ~6 us per message (256-byte JSON: 10.8 us against
//! 4.9 us with context; building a fresh state instead of pooling: 19 us).
//!
//! Default ([`DeflateConfig::default`]): off; when turned on, no context takeover on either
//! side, 15 window bits, threshold 64 bytes, level 6. Why is in the doc of `default`.

use super::{ProtocolError, Role};
use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The 4 bytes a sync flush ends with; stripped on send, added back on receive.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What this end offers (client) or accepts (server).
///
/// For a client, the `server_*` fields are requests to the server and the `client_*`
/// fields are what the client promises (it always announces `client_max_window_bits` so
/// that the server may lower it). For a server, `server_*` are its own limits and the
/// `client_*` fields what it asks of clients (a smaller client window only when the
/// client's offer allows it, as RFC 7692 requires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    pub enabled: bool,
    pub client_no_context_takeover: bool,
    pub server_no_context_takeover: bool,
    /// 8..=15.
    pub client_max_window_bits: u8,
    /// 8..=15.
    pub server_max_window_bits: u8,
    /// Messages smaller than this are sent uncompressed (a deflate block costs more than it
    /// saves on a few bytes, and the CPU is better spent elsewhere).
    pub threshold: usize,
    /// zlib level 0-9.
    pub level: u32,
}

impl Default for DeflateConfig {
    /// Off: compression costs CPU on both ends, and compressing secrets next to
    /// attacker-chosen text leaks them (CRIME/BREACH); an application that sends
    /// compressible data turns it on knowingly (and opts secrets out per message).
    ///
    /// When on: `server_no_context_takeover` and `client_no_context_takeover` both set.
    /// With context takeover a connection keeps ~418 KiB of zlib state at 15 bits (292 KiB
    /// even at 9) for its whole life, 21 times the 19.6 KiB of an idle wsnative connection:
    /// 1,000 mostly idle connections would hold 408 MiB. Without it they hold nothing and
    /// the states live in a per-thread pool (418 KiB per I/O thread). The price: ~6 us more
    /// per compressed message and a worse ratio on small messages that repeat earlier ones
    /// (each message is compressed alone). An application with few connections and chatty
    /// small messages turns context takeover on. 15 window bits because the window barely
    /// changes memory (see the module table) but helps the ratio; threshold 64 bytes
    /// because below that a deflate block costs about what it saves; level 6 is zlib's
    /// usual balance.
    fn default() -> Self {
        DeflateConfig {
            enabled: false,
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            client_max_window_bits: 15,
            server_max_window_bits: 15,
            threshold: 64,
            level: 6,
        }
    }
}

/// The agreed parameters of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// Window the server compresses with (8..=15).
    pub server_max_window_bits: u8,
    /// Window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// (no_context_takeover, window bits) of the side that compresses what `role` sends.
    fn sender(&self, role: Role) -> (bool, u8) {
        match role {
            Role::Client => (self.client_no_context_takeover, self.client_max_window_bits),
            Role::Server => (self.server_no_context_takeover, self.server_max_window_bits),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Header parsing

type Params<'a> = Vec<(&'a str, Option<&'a str>)>;

/// Splits `Sec-WebSocket-Extensions` values into extensions: (name, [(param, value)]).
/// Values may be quoted (RFC 6455 9.1); the quotes are removed.
fn parse_extensions<'a>(values: &[&'a str]) -> Result<Vec<(&'a str, Params<'a>)>, String> {
    let mut out = Vec::new();
    for v in values {
        for ext in v.split(',') {
            let ext = ext.trim();
            if ext.is_empty() {
                continue;
            }
            let mut parts = ext.split(';');
            let name = parts.next().unwrap_or("").trim();
            if name.is_empty() {
                return Err(format!("extension without a name in {ext:?}"));
            }
            let mut params = Vec::new();
            for p in parts {
                let p = p.trim();
                if p.is_empty() {
                    continue;
                }
                let (k, v) = match p.split_once('=') {
                    Some((k, v)) => {
                        let v = v.trim();
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(v);
                        (k.trim(), Some(v))
                    }
                    None => (p, None),
                };
                params.push((k, v));
            }
            out.push((name, params));
        }
    }
    Ok(out)
}

/// A window bits value: 1*DIGIT in 8..=15 (no sign, no leading zero).
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// The permessage-deflate parameters of one offer or response, checked for unknown names,
/// duplicates and bad values.
#[derive(Default, Debug)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Some(None): present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_params(params: &Params<'_>) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut seen = [false; 4];
    for &(k, v) in params {
        let i = match k {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(format!("unknown parameter {k:?}")),
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("duplicate parameter {k}"));
        }
        match i {
            0 | 1 => {
                if v.is_some() {
                    return Err(format!("{k} takes no value"));
                }
                if i == 0 {
                    p.server_no_context_takeover = true;
                } else {
                    p.client_no_context_takeover = true;
                }
            }
            2 => match v.and_then(window_bits) {
                Some(b) => p.server_max_window_bits = Some(b),
                None => {
                    return Err(format!(
                        "server_max_window_bits needs a value 8-15, got {v:?}"
                    ))
                }
            },
            _ => match v {
                None => p.client_max_window_bits = Some(None),
                Some(s) => match window_bits(s) {
                    Some(b) => p.client_max_window_bits = Some(Some(b)),
                    None => return Err(format!("client_max_window_bits must be 8-15, got {s:?}")),
                },
            },
        }
    }
    Ok(p)
}

fn check_cfg(cfg: &DeflateConfig) {
    debug_assert!((8..=15).contains(&cfg.client_max_window_bits));
    debug_assert!((8..=15).contains(&cfg.server_max_window_bits));
}

// ---------------------------------------------------------------------------------------
// Client side

/// The client's `Sec-WebSocket-Extensions` offer.
pub fn offer_header(cfg: &DeflateConfig) -> String {
    check_cfg(cfg);
    let mut s = String::from(EXTENSION_NAME);
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.server_max_window_bits < 15 {
        s.push_str(&format!(
            "; server_max_window_bits={}",
            cfg.server_max_window_bits
        ));
    }
    if cfg.client_max_window_bits < 15 {
        s.push_str(&format!(
            "; client_max_window_bits={}",
            cfg.client_max_window_bits
        ));
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Checks the server's `Sec-WebSocket-Extensions` (all values of the header, in order)
/// against what `offer_header(cfg)` offered. `Ok(None)`: no extension, no compression.
/// Any error fails the handshake (RFC 6455 4.1: the client must fail the connection).
pub fn accept_response(
    cfg: &DeflateConfig,
    values: &[&str],
) -> Result<Option<DeflateParams>, String> {
    let exts = parse_extensions(values)?;
    if exts.is_empty() {
        return Ok(None);
    }
    if !cfg.enabled {
        return Err(format!(
            "the server chose extension {:?}, which was not offered",
            exts[0].0
        ));
    }
    if exts.len() > 1 {
        return Err(format!(
            "the server chose {} extensions; only permessage-deflate was offered",
            exts.len()
        ));
    }
    let (name, params) = &exts[0];
    if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
        return Err(format!(
            "the server chose extension {name:?}, which was not offered"
        ));
    }
    let p = parse_params(params).map_err(|e| format!("permessage-deflate response: {e}"))?;
    if cfg.server_no_context_takeover && !p.server_no_context_takeover {
        return Err(
            "permessage-deflate response lacks the requested server_no_context_takeover".into(),
        );
    }
    let server_bits = match p.server_max_window_bits {
        Some(b) if b > cfg.server_max_window_bits => {
            return Err(format!(
                "permessage-deflate response: server_max_window_bits={b} is above the {} requested",
                cfg.server_max_window_bits
            ))
        }
        Some(b) => b,
        None if cfg.server_max_window_bits < 15 => {
            return Err(
                "permessage-deflate response lacks the requested server_max_window_bits".into(),
            )
        }
        None => 15,
    };
    let client_bits = match p.client_max_window_bits {
        // We always offer client_max_window_bits (with a value when below 15).
        Some(None) => {
            return Err("permessage-deflate response: client_max_window_bits needs a value".into())
        }
        Some(Some(b)) if b > cfg.client_max_window_bits => {
            return Err(format!(
                "permessage-deflate response: client_max_window_bits={b} is above the {} offered",
                cfg.client_max_window_bits
            ))
        }
        Some(Some(b)) => b,
        None => cfg.client_max_window_bits,
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover || cfg.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }))
}

// ---------------------------------------------------------------------------------------
// Server side

/// Walks the client's offers (all `Sec-WebSocket-Extensions` values, in order) and accepts
/// the first acceptable permessage-deflate offer: returns the agreed parameters and the
/// response header value. Invalid offers are declined, not errors (RFC 7692 5).
pub fn negotiate(cfg: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
    check_cfg(cfg);
    if !cfg.enabled {
        return None;
    }
    let exts = parse_extensions(offers).ok()?;
    for (name, params) in &exts {
        if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
            continue;
        }
        let Ok(p) = parse_params(params) else {
            continue;
        };
        let server_no_ctx = p.server_no_context_takeover || cfg.server_no_context_takeover;
        // Binding both ways: the client announced it, or we require it.
        let client_no_ctx = p.client_no_context_takeover || cfg.client_no_context_takeover;
        let server_bits = p
            .server_max_window_bits
            .unwrap_or(15)
            .min(cfg.server_max_window_bits);
        // We may lower the client's window only if it offered client_max_window_bits; a
        // value it gave is its own upper bound. Without the parameter, its window is 15.
        let client_bits = match p.client_max_window_bits {
            None => 15,
            Some(v) => v.unwrap_or(15).min(cfg.client_max_window_bits),
        };
        let mut resp = String::from(EXTENSION_NAME);
        if server_no_ctx {
            resp.push_str("; server_no_context_takeover");
        }
        if client_no_ctx {
            resp.push_str("; client_no_context_takeover");
        }
        if p.server_max_window_bits.is_some() || server_bits < 15 {
            resp.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if matches!(p.client_max_window_bits, Some(Some(_)))
            || (p.client_max_window_bits.is_some() && client_bits < 15)
        {
            resp.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        let params = DeflateParams {
            server_no_context_takeover: server_no_ctx,
            client_no_context_takeover: client_no_ctx,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        return Some((params, resp));
    }
    None
}

// ---------------------------------------------------------------------------------------
// Codec

/// zlib states kept per thread for connections without context takeover: building one per
/// message costs ~16 us (allocating and clearing ~370 KiB); reusing one costs a reset.
/// Memory is then per I/O thread (at most `POOL_MAX` of each kind), not per connection.
const POOL_MAX: usize = 2;

type CompressPool = RefCell<Vec<(u32, u8, Box<Compress>)>>;
type DecompressPool = RefCell<Vec<(u8, Box<Decompress>)>>;

thread_local! {
    static COMPRESSORS: CompressPool = const { RefCell::new(Vec::new()) };
    static DECOMPRESSORS: DecompressPool = const { RefCell::new(Vec::new()) };
}

fn take_compress(level: u32, bits: u8) -> Box<Compress> {
    let pooled = COMPRESSORS.try_with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().position(|e| e.0 == level && e.1 == bits)?;
        Some(p.swap_remove(i).2)
    });
    pooled.ok().flatten().unwrap_or_else(|| {
        Box::new(Compress::new_with_window_bits(
            Compression::new(level),
            false,
            bits,
        ))
    })
}

fn give_compress(level: u32, bits: u8, mut c: Box<Compress>) {
    c.reset();
    let _ = COMPRESSORS.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push((level, bits, c));
        }
    });
}

fn take_decompress(bits: u8) -> Box<Decompress> {
    let pooled = DECOMPRESSORS.try_with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().position(|e| e.0 == bits)?;
        Some(p.swap_remove(i).1)
    });
    pooled
        .ok()
        .flatten()
        .unwrap_or_else(|| Box::new(Decompress::new_with_window_bits(false, bits)))
}

fn give_decompress(bits: u8, mut d: Box<Decompress>) {
    d.reset(false);
    let _ = DECOMPRESSORS.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push((bits, d));
        }
    });
}

/// Frees this thread's pooled zlib states.
pub fn clear_thread_pool() {
    let _ = COMPRESSORS.try_with(|p| *p.borrow_mut() = Vec::new());
    let _ = DECOMPRESSORS.try_with(|p| *p.borrow_mut() = Vec::new());
}

/// zlib window bits for a negotiated value (8 compresses with 9: see the module doc).
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Compresses the messages this end sends.
pub struct Deflater {
    level: u32,
    bits: u8,
    no_context_takeover: bool,
    /// None while no message is being compressed and no context is kept.
    inner: Option<Box<Compress>>,
}

impl Deflater {
    pub fn new(params: &DeflateParams, role: Role, level: u32) -> Self {
        let (no_ctx, bits) = params.sender(role);
        Deflater {
            level: level.min(9),
            bits: zlib_bits(bits),
            no_context_takeover: no_ctx,
            inner: None,
        }
    }

    /// Appends the compressed form of a whole message to `out`, without the final
    /// `00 00 ff ff` (RFC 7692 7.2.1).
    pub fn compress(&mut self, mut data: &[u8], out: &mut BytesMut) {
        if data.is_empty() {
            // An empty stored block's header: with the trailer the receiver adds, a valid
            // empty block (RFC 7692 7.2.3.6). zlib would emit nothing after a flush.
            out.extend_from_slice(&[0x00]);
            return;
        }
        let (level, bits) = (self.level, self.bits);
        let c = self.inner.get_or_insert_with(|| take_compress(level, bits));
        let start = out.len();
        // Incompressible data grows by ~5 bytes per 16 KiB stored block, plus the flush.
        out.reserve(data.len() + data.len() / 4096 + 16);
        loop {
            if out.capacity() - out.len() < 16 {
                out.reserve(out.len() - start + 64);
            }
            let spare = out.spare_capacity_mut();
            let room = spare.len();
            let (in0, out0) = (c.total_in(), c.total_out());
            c.compress_uninit(data, spare, FlushCompress::Sync)
                .expect("deflate cannot fail on valid state");
            let produced = (c.total_out() - out0) as usize;
            data = &data[(c.total_in() - in0) as usize..];
            // SAFETY: zlib initialised `produced` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            // A sync flush is complete when it returns with output space left.
            if data.is_empty() && produced < room {
                break;
            }
        }
        assert!(
            out[start..].ends_with(&TRAILER),
            "a sync flush ends with 00 00 ff ff"
        );
        out.truncate(out.len() - TRAILER.len());
        if self.no_context_takeover {
            // Nothing kept by the connection while idle; the state goes back to the pool.
            give_compress(level, bits, self.inner.take().unwrap());
        }
    }

    /// Whether this connection holds zlib state now (never while idle without context
    /// takeover).
    pub fn is_allocated(&self) -> bool {
        self.inner.is_some()
    }
}

/// Why inflating stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The output would pass the limit.
    TooBig,
    /// Not a valid deflate stream.
    Invalid(String),
}

impl InflateError {
    pub(crate) fn into_protocol(self, limit: usize) -> ProtocolError {
        match self {
            InflateError::TooBig => ProtocolError::too_big(
                "message too big",
                format!("compressed message inflates past the limit of {limit} bytes"),
            ),
            InflateError::Invalid(e) => ProtocolError::invalid_data(
                "invalid compressed data",
                format!("inflating the message failed: {e}"),
            ),
        }
    }
}

/// Inflates the messages the peer sends.
pub struct Inflater {
    bits: u8,
    no_context_takeover: bool,
    inner: Option<Box<Decompress>>,
    /// The peer ended a deflate stream (BFINAL) inside this message.
    ended: bool,
}

impl Inflater {
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        let peer = match role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let (no_ctx, bits) = params.sender(peer);
        Inflater {
            bits: zlib_bits(bits),
            no_context_takeover: no_ctx,
            inner: None,
            ended: false,
        }
    }

    /// Inflates `input` (the next piece of a compressed message) onto `out`, never letting
    /// `out` hold more than `limit + 1` bytes: past `limit` it stops with `TooBig`.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        let bits = self.bits;
        let d = self.inner.get_or_insert_with(|| take_decompress(bits));
        let mut input = input;
        loop {
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if self.ended {
                // After a final block only the sync-flush trailer may follow; ignore it.
                return Ok(());
            }
            let room_left = limit + 1 - out.len();
            if out.capacity() == out.len() {
                let want = (input.len() * 4).max(out.len()).clamp(1024, 1 << 20);
                out.reserve(want.min(room_left));
            }
            let spare = out.spare_capacity_mut();
            let n = spare.len().min(room_left);
            let (in0, out0) = (d.total_in(), d.total_out());
            let r = d.decompress_uninit(input, &mut spare[..n], FlushDecompress::Sync);
            let produced = (d.total_out() - out0) as usize;
            // SAFETY: zlib initialised `produced` bytes of the spare capacity. Kept also when
            // it then failed: the decoder checks what came before the corrupt data first, as
            // it would have had the bytes come in smaller reads.
            unsafe { out.set_len(out.len() + produced) };
            let st = r.map_err(|e| InflateError::Invalid(e.to_string()))?;
            input = &input[(d.total_in() - in0) as usize..];
            if st == Status::StreamEnd {
                self.ended = true;
            }
            if input.is_empty() && produced < n {
                return Ok(());
            }
            if produced == 0 && d.total_in() == in0 {
                // Output room was given: zlib either progresses or has nothing to do.
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(InflateError::Invalid("inflate made no progress".into()))
                };
            }
        }
    }

    /// The message's last compressed byte was given: inflates the stripped trailer, checks
    /// the limit, and drops or resets the state as the parameters say.
    pub fn finish(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), InflateError> {
        let r = self.inflate(&TRAILER, out, limit);
        if r.is_err() || self.no_context_takeover || self.ended {
            if let Some(d) = self.inner.take() {
                if r.is_ok() {
                    give_decompress(self.bits, d);
                }
            }
        }
        self.ended = false;
        r.and_then(|_| {
            if out.len() > limit {
                Err(InflateError::TooBig)
            } else {
                Ok(())
            }
        })
    }

    /// Forgets a message abandoned half way (the connection is failing anyway).
    pub fn abort(&mut self) {
        self.inner = None;
        self.ended = false;
    }

    pub fn is_allocated(&self) -> bool {
        self.inner.is_some()
    }
}
