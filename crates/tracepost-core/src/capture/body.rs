//! Bodies kept for snapshots: the chunks as they stream (clones, no copy), up to a cap, and
//! their conversion into a [`CapturedBody`] — decoded when the body is compressed, so that
//! redaction sees the keys.

use std::io::Read;

use bytes::Bytes;

use crate::event::CapturedBody;

/// Bytes of one body kept for a snapshot: clones of the chunks (no copy), up to a cap.
#[derive(Debug, Default)]
pub struct BodyCapture {
    chunks: Vec<Bytes>,
    kept: usize,
    total: u64,
}

impl BodyCapture {
    /// Counts `data` and keeps the part of it that fits under `limit` bytes in all.
    pub fn push(&mut self, data: &Bytes, limit: usize) {
        self.total += data.len() as u64;
        if self.kept < limit {
            let take = data.len().min(limit - self.kept);
            self.chunks.push(data.slice(..take));
            self.kept += take;
        }
    }

    /// Bytes seen in total (kept or not).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The body as a snapshot keeps it, or `None` when it was empty.
    ///
    /// A body sent with `Content-Encoding` `gzip`, `deflate` or `br` (or a list of them) is
    /// decoded first: the decoder reads the kept chunks and stops after `limit` decoded bytes,
    /// so a decompression bomb costs at most `limit` bytes of output (plus the decoder's own
    /// window: 32 KiB for gzip/deflate, at most 16 MiB for brotli). A body in an encoding that
    /// cannot be decoded is kept as the marker `[N bytes, content-encoding: X, not kept]`,
    /// never as raw bytes. Text is kept as text (the pipeline's redact stage redacts it by
    /// content type before any sink sees it); other bytes are kept as base64.
    pub fn to_captured(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        limit: usize,
    ) -> Option<CapturedBody> {
        if self.total == 0 {
            return None;
        }
        let mut truncated = self.total > self.kept as u64;
        let encoding = content_encoding
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        let bytes = match encoding {
            None => self.concat(),
            Some(encoding) => match decode(&self.chunks, encoding, limit) {
                Ok((decoded, more)) => {
                    truncated |= more;
                    decoded
                }
                Err(why) => {
                    return Some(CapturedBody {
                        text: format!(
                            "[{} bytes, content-encoding: {encoding}, {why}]",
                            self.total
                        ),
                        encoding: "utf8".into(),
                        truncated,
                        content_type: content_type.map(str::to_owned),
                    });
                }
            },
        };
        let (text, text_encoding) = text_or_base64(bytes, truncated);
        Some(CapturedBody {
            text,
            encoding: text_encoding.to_owned(),
            truncated,
            content_type: content_type.map(str::to_owned),
        })
    }

    fn concat(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.kept);
        for c in &self.chunks {
            bytes.extend_from_slice(c);
        }
        bytes
    }
}

/// Text when `bytes` are UTF-8 (a cut that split the last character is forgiven),
/// base64 otherwise.
fn text_or_base64(bytes: Vec<u8>, truncated: bool) -> (String, &'static str) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, "utf8"),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            if truncated && bytes.len() - valid < 4 {
                (
                    String::from_utf8_lossy(&bytes[..valid]).into_owned(),
                    "utf8",
                )
            } else {
                (base64(&bytes), "base64")
            }
        }
    }
}

/// The kept chunks as one reader, without copying them together.
struct Chunks<'a> {
    chunks: &'a [Bytes],
    at: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some((first, rest)) = self.chunks.split_first() {
            if self.at < first.len() {
                let n = buf.len().min(first.len() - self.at);
                buf[..n].copy_from_slice(&first[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            self.chunks = rest;
            self.at = 0;
        }
        Ok(0)
    }
}

/// Decodes `chunks` sent with `Content-Encoding: encoding` (codings applied in the order
/// listed, so undone in reverse), keeping at most `limit` bytes. Returns the decoded bytes and
/// whether more would have followed, or why it could not decode (for the marker).
fn decode(chunks: &[Bytes], encoding: &str, limit: usize) -> Result<(Vec<u8>, bool), String> {
    let mut reader: Box<dyn Read + '_> = Box::new(Chunks { chunks, at: 0 });
    for coding in encoding.split(',').map(str::trim).rev() {
        reader = match coding.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            "deflate" => {
                // HTTP's `deflate` is the zlib format; some servers send raw deflate.
                let mut peek = [0u8; 2];
                let zlib = chunks_prefix(chunks, &mut peek) == 2
                    && peek[0] & 0x0f == 8
                    && (u16::from(peek[0]) << 8 | u16::from(peek[1])) % 31 == 0;
                if zlib {
                    Box::new(flate2::read::ZlibDecoder::new(reader))
                } else {
                    Box::new(flate2::read::DeflateDecoder::new(reader))
                }
            }
            "br" => Box::new(brotli_decompressor::Decompressor::new(reader, 4096)),
            "identity" | "" => reader,
            _ => return Err("not kept".to_owned()),
        };
    }
    let mut out = Vec::with_capacity(limit.min(16 * 1024));
    let mut bounded = reader.take(limit as u64 + 1);
    match bounded.read_to_end(&mut out) {
        Ok(_) => {}
        // A body cut at the capture cap ends mid-stream: keep what decoded before the cut.
        Err(_) if !out.is_empty() => {}
        Err(e) => return Err(format!("not decodable: {e}, not kept")),
    }
    let more = out.len() > limit;
    out.truncate(limit);
    Ok((out, more))
}

/// Copies the first bytes of `chunks` into `buf`; returns how many there were.
fn chunks_prefix(chunks: &[Bytes], buf: &mut [u8]) -> usize {
    let mut reader = Chunks { chunks, at: 0 };
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn capture(bytes: &[u8], chunk: usize, limit: usize) -> BodyCapture {
        let mut c = BodyCapture::default();
        for part in bytes.chunks(chunk) {
            c.push(&Bytes::copy_from_slice(part), limit);
        }
        c
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn gzip_deflate_and_raw_deflate_bodies_are_decoded() {
        // Decoded to text here; the pipeline's redact stage masks it (tests/compressed_bodies.rs).
        let json = br#"{"password":"hunter2","note":"gift"}"#;
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
        zlib.write_all(json).unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        raw.write_all(json).unwrap();
        for (encoding, body) in [
            ("gzip", gzip(json)),
            ("deflate", zlib.finish().unwrap()),
            ("deflate", raw.finish().unwrap()),
        ] {
            let c = capture(&body, 7, 64 * 1024)
                .to_captured(Some("application/json"), Some(encoding), 64 * 1024)
                .unwrap();
            let kept: serde_json::Value = serde_json::from_str(&c.text).unwrap();
            assert_eq!(
                kept,
                serde_json::json!({"password": "hunter2", "note": "gift"}),
                "{encoding}"
            );
            assert!(!c.truncated);
        }
    }

    #[test]
    fn a_decompression_bomb_yields_at_most_the_cap() {
        let bomb = gzip(&vec![0u8; 100 << 20]);
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
        let limit = 64 * 1024;
        let c = capture(&bomb, 16 * 1024, limit);
        let start = std::time::Instant::now();
        let kept = c.to_captured(None, Some("gzip"), limit).unwrap();
        assert!(kept.truncated);
        assert_eq!(kept.text.len(), limit, "NULs are text: exactly the cap");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn unknown_and_broken_encodings_keep_a_marker_never_raw_bytes() {
        let body = b"\x28\xb5\x2f\xfd not really zstd";
        let c = capture(body, 100, 1024);
        let kept = c.to_captured(None, Some("zstd"), 1024).unwrap();
        assert_eq!(kept.text, "[20 bytes, content-encoding: zstd, not kept]");
        assert_eq!(body.len(), 20);
        let kept = c.to_captured(None, Some("gzip"), 1024).unwrap();
        assert!(
            kept.text
                .starts_with("[20 bytes, content-encoding: gzip, not decodable"),
            "{}",
            kept.text
        );
    }

    #[test]
    fn a_body_cut_at_the_cap_keeps_what_decoded_before_the_cut() {
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let gz = gzip(text.as_bytes());
        let c = capture(&gz, 1000, gz.len() / 2);
        let kept = c
            .to_captured(Some("text/plain"), Some("gzip"), 64 * 1024)
            .unwrap();
        assert!(kept.truncated);
        assert!(!kept.text.is_empty() && text.starts_with(&kept.text));
    }
}
