//! Streaming UTF-8 validation for text messages whose bytes arrive in pieces (frames,
//! reads, inflate output). It fails as soon as the bytes seen so far cannot start valid
//! UTF-8 (Autobahn 6.4.x), not at the end of the frame or message.
//!
//! simdutf8's `basic` API validates the common (valid) case at SIMD speed; only on failure
//! does its `compat` API (same error positions as std) tell an invalid sequence from one
//! that is merely cut at the end of the chunk.

/// Validator state: up to 3 bytes of a sequence cut at the end of the last chunk.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
    /// Bytes fed so far: the message offset of the next byte.
    pos: u64,
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Validates the next bytes of the message. On error, returns the message offset where
    /// the invalid sequence starts.
    #[inline]
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), u64> {
        if self.pending_len > 0 {
            let seq_start = self.pos - self.pending_len as u64;
            while (self.pending_len as usize) < 4 && !data.is_empty() {
                self.pending[self.pending_len as usize] = data[0];
                self.pending_len += 1;
                data = &data[1..];
                self.pos += 1;
                match simdutf8::compat::from_utf8(&self.pending[..self.pending_len as usize]) {
                    Ok(_) => {
                        self.pending_len = 0;
                        break;
                    }
                    Err(e) if e.error_len().is_some() => return Err(seq_start),
                    Err(_) => {} // still a valid prefix
                }
            }
            if self.pending_len > 0 {
                return Ok(()); // data ran out inside the sequence
            }
        }
        if simdutf8::basic::from_utf8(data).is_ok() {
            self.pos += data.len() as u64;
            return Ok(());
        }
        let e = simdutf8::compat::from_utf8(data).unwrap_err();
        let valid = e.valid_up_to();
        if e.error_len().is_some() {
            return Err(self.pos + valid as u64);
        }
        let tail = &data[valid..]; // a valid prefix of a sequence, 1-3 bytes
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len() as u8;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// End of the message: an incomplete sequence is an error (its start offset).
    pub fn finish(&mut self) -> Result<(), u64> {
        let r = if self.pending_len > 0 {
            Err(self.pos - self.pending_len as u64)
        } else {
            Ok(())
        };
        self.reset();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_chunked(data: &[u8], chunk: usize) -> Result<(), u64> {
        let mut v = Utf8Validator::new();
        for c in data.chunks(chunk.max(1)) {
            v.feed(c)?;
        }
        v.finish()
    }

    #[test]
    fn agrees_with_std_at_every_chunk_size() {
        let samples: Vec<Vec<u8>> = vec![
            "Hello-µ@ßöäüàá-UTF-8!!".into(),
            "κόσμε".into(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited".to_vec(),
            b"\xf4\x90\x80\x80".to_vec(),
            b"\xf0\x9f\x98\x80\xf0\x9f\x98".to_vec(),
            b"\xc0\xaf".to_vec(),
            b"\xe0\x80\xaf".to_vec(),
            b"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf".to_vec(),
            b"\xff".to_vec(),
            b"ab\xe2\x82".to_vec(),
            "😀 a 日本語 b".into(),
        ];
        for s in &samples {
            let std_ok = std::str::from_utf8(s).is_ok();
            for chunk in 1..=s.len().max(1) {
                let r = check_chunked(s, chunk);
                assert_eq!(r.is_ok(), std_ok, "{s:x?} chunk {chunk}: {r:?}");
                if let (Err(at), Err(e)) = (r, std::str::from_utf8(s)) {
                    assert_eq!(at, e.valid_up_to() as u64, "{s:x?} chunk {chunk}");
                }
            }
        }
    }

    /// Fed one byte at a time, the error comes with the first byte that makes the input
    /// invalid (Autobahn 6.4.3/6.4.4 fail fast).
    #[test]
    fn fails_at_the_first_bad_byte() {
        // (input, index of the byte at which the error must be reported)
        let cases: &[(&[u8], usize)] = &[
            (
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
                12,
            ), // F4 90
            (b"ab\xffcd", 2),
            (b"ab\xe0\x80", 3),
            (b"\xed\xa0\x80", 1), // surrogate
            (b"\xf8\x88\x80\x80\x80", 0),
            (b"abc\x80", 3),
        ];
        for (input, bad) in cases {
            let mut v = Utf8Validator::new();
            for (i, b) in input.iter().enumerate() {
                let r = v.feed(std::slice::from_ref(b));
                if i < *bad {
                    assert!(r.is_ok(), "{input:x?}: early error at {i}");
                } else {
                    assert!(r.is_err(), "{input:x?}: no error at {i}");
                    break;
                }
            }
        }
    }

    #[test]
    fn incomplete_at_end_fails_on_finish() {
        let mut v = Utf8Validator::new();
        v.feed(b"ok\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(2));
        // finish resets: the next message starts clean
        v.feed(b"\xe2\x82\xac").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }
}
