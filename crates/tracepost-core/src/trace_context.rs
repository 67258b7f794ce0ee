//! W3C Trace Context (`traceparent`) parsing and generation.

/// A W3C trace context: the trace id, the caller's span id (if any), and our own span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id from `traceparent`, if the trace was continued.
    pub parent_span_id: Option<[u8; 8]>,
    /// The span id of this request.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Continues the trace in a `traceparent` header value, or starts a new one if it is
    /// absent or invalid (per the W3C spec, an invalid header is ignored).
    pub fn continue_or_start(traceparent: Option<&[u8]>) -> Self {
        Self::continue_or_start_with(traceparent, &mut rand::thread_rng())
    }

    /// As [`continue_or_start`](Self::continue_or_start), drawing from `rng` (the capture
    /// draws a request's ids from one thread-local generator handle).
    pub(crate) fn continue_or_start_with(
        traceparent: Option<&[u8]>,
        rng: &mut impl rand::Rng,
    ) -> Self {
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent, flags)) => TraceContext {
                trace_id,
                parent_span_id: Some(parent),
                span_id: random_nonzero(rng),
                flags,
            },
            None => TraceContext {
                trace_id: random_nonzero(rng),
                parent_span_id: None,
                span_id: random_nonzero(rng),
                flags: 1,
            },
        }
    }

    /// Starts a new trace (sampled).
    pub fn start() -> Self {
        Self::continue_or_start_with(None, &mut rand::thread_rng())
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// Our span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` value to propagate downstream (with our span id as the parent).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

/// A fresh W3C span id: 8 random bytes, not all zero. (Not through `random_nonzero`: a
/// second caller of its `[u8; 8]` instance changed how the request path's copy is inlined.)
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id.to_le_bytes();
        }
    }
}

fn random_nonzero<const N: usize>(rng: &mut impl rand::Rng) -> [u8; N] {
    loop {
        let mut bytes = [0u8; N];
        rng.fill(&mut bytes[..]);
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

/// Displays bytes as lowercase hex without allocating (for span fields and log lines).
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A stack buffer per 32 bytes: no allocation whatever the length.
        let mut buf = [0u8; 64];
        for chunk in self.0.chunks(32) {
            let out = &mut buf[..chunk.len() * 2];
            ::hex::encode_to_slice(chunk, out).map_err(|_| std::fmt::Error)?;
            f.write_str(std::str::from_utf8(out).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    // Two table lookups per byte. An id (≤ 16 bytes) is written into a stack buffer and copied
    // once into a string of the final size (`hex::encode` collects `char`s one by one, which
    // cost ~1,000 instructions per id on the request path; `String::push` per digit ~450 for
    // the two ids of an event).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let pair = |b: u8| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]];
    let mut buf = [0u8; 32];
    if bytes.len() <= 16 {
        for (out, &b) in buf.chunks_exact_mut(2).zip(bytes) {
            out.copy_from_slice(&pair(b));
        }
        // Hex digits only: always ASCII.
        return std::str::from_utf8(&buf[..bytes.len() * 2])
            .map(str::to_owned)
            .unwrap_or_default();
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        let [hi, lo] = pair(b);
        s.push(char::from(hi));
        s.push(char::from(lo));
    }
    s
}

fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    // version "-" trace-id "-" parent-id "-" flags; future versions may append fields.
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&v[0..2])?[0];
    if version == 0xff
        || (version == 0 && v.len() != 55)
        || (version > 0 && v.len() > 55 && v[55] != b'-')
    {
        return None;
    }
    let trace_id = unhex::<16>(&v[3..35])?;
    let parent = unhex::<8>(&v[36..52])?;
    let flags = unhex::<1>(&v[53..55])?[0];
    if trace_id.iter().all(|b| *b == 0) || parent.iter().all(|b| *b == 0) {
        return None;
    }
    Some((trace_id, parent, flags))
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    // The spec requires lowercase; the `hex` crate also accepts uppercase.
    if s.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    let mut out = [0u8; N];
    ::hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_traceparent() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::continue_or_start(Some(tp));
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent_span_id.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_ne!(ctx.span_id_hex(), "00f067aa0ba902b7");
        assert!(ctx
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn hex_display_matches_hex_at_any_length() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in [0, 1, 8, 16, 31, 32, 33, 64, 100, 256] {
            assert_eq!(Hex(&bytes[..len]).to_string(), hex(&bytes[..len]));
        }
        assert_eq!(Hex(&[0x0f, 0xa0]).to_string(), "0fa0");
    }

    #[test]
    fn rejects_invalid_traceparents() {
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"garbage",
        ] {
            let ctx = TraceContext::continue_or_start(Some(bad));
            assert!(
                ctx.parent_span_id.is_none(),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }
}
