//! Reading a request body within its limits: the bytes as sent (`413 body_too_large`, checked
//! on `Content-Length` first, then while streaming), within a read deadline (`408
//! body_timeout`, so a client trickling its upload cannot hold a connection — and graceful
//! shutdown — for ever), and gzip decoding into a buffer that never grows past the
//! decompressed limit (`413 decompressed_too_large`), so a gzip bomb costs at most that limit
//! in memory.

use std::io::Read;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use crate::error::IngestError;

/// How the body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No encoding.
    Identity,
    /// gzip.
    Gzip,
}

/// Checks `Content-Type` (JSON or `text/plain`, what `sendBeacon` sends) and
/// `Content-Encoding` (`gzip` or none). Errors: `415 unsupported_media_type`,
/// `415 unsupported_encoding`.
pub fn check_content(headers: &HeaderMap) -> Result<Encoding, IngestError> {
    if headers.get_all(http::header::CONTENT_TYPE).iter().count() > 1 {
        return Err(IngestError::unsupported_media_type(
            "<several Content-Type headers>",
        ));
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<not ASCII>"))
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && essence != "text/plain" {
        return Err(IngestError::unsupported_media_type(ct));
    }
    check_charset(ct)?;
    let mut encoding = Encoding::Identity;
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let v = value.to_str().unwrap_or("<not ASCII>").trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" if encoding == Encoding::Identity => encoding = Encoding::Gzip,
            _ => return Err(IngestError::unsupported_encoding(v)),
        }
    }
    Ok(encoding)
}

/// Refuses a `charset` parameter other than UTF-8 (or its subset US-ASCII): the bodies are
/// read as UTF-8, so UTF-16 or Latin-1 would be misread. Errors: `415
/// unsupported_media_type` naming the charset.
pub(crate) fn check_charset(content_type: &str) -> Result<(), IngestError> {
    for param in content_type.split(';').skip(1) {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("charset") {
            continue;
        }
        let value = value.trim().trim_matches('"');
        if !["utf-8", "utf8", "us-ascii"]
            .iter()
            .any(|ok| value.eq_ignore_ascii_case(ok))
        {
            return Err(IngestError::new(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "charset {:?} is not supported: send UTF-8",
                    tracepost_core::truncate_utf8(value, 100)
                ),
            ));
        }
    }
    Ok(())
}

/// How long a route waits for a whole request body by default: 10 s, from the first read
/// to the last byte (the `body_read_timeout` setting of each route's config overrides it).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// [`read_limited_within`] with the [`DEFAULT_BODY_READ_TIMEOUT`].
pub async fn read_limited<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, IngestError>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    read_limited_within(headers, body, limit, DEFAULT_BODY_READ_TIMEOUT).await
}

/// Reads `body` whole if it is at most `limit` bytes and arrives within `timeout` (counted
/// from this call to the last byte). A `Content-Length` over the limit is refused before
/// reading. Errors: `413 body_too_large`; `408 body_timeout` when the body is still
/// incomplete after `timeout` (the connection is then closed, not drained); `400
/// body_unreadable` when the connection fails mid-body.
pub async fn read_limited_within<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, IngestError>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    tokio::time::timeout(timeout, read_all(headers, body, limit))
        .await
        .unwrap_or_else(|_| Err(IngestError::body_timeout(timeout)))
}

async fn read_all<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, IngestError>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(IngestError::body_too_large(limit));
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            IngestError::new(
                http::StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("the body could not be read: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.remaining_len() > limit {
                return Err(IngestError::body_too_large(limit));
            }
            buf.extend_from_slice(&data_bytes(data));
        }
    }
    Ok(buf.freeze())
}

trait Remaining {
    fn remaining_len(&self) -> usize;
}

impl<T: bytes::Buf> Remaining for T {
    fn remaining_len(&self) -> usize {
        self.remaining()
    }
}

fn data_bytes<T: bytes::Buf>(mut data: T) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

/// Decodes `body` as sent with `encoding`, to at most `limit` bytes. Errors:
/// `413 decompressed_too_large`, `400 invalid_gzip`.
pub fn decode(body: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, IngestError> {
    match encoding {
        Encoding::Identity => Ok(body),
        Encoding::Gzip => {
            // Read at most limit + 1 bytes: the buffer never grows past that, however much
            // the stream claims or would inflate to.
            let decoder = flate2::read::MultiGzDecoder::new(&body[..]);
            let mut out = Vec::with_capacity((body.len() * 4).min(limit + 1));
            decoder
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    IngestError::new(
                        http::StatusCode::BAD_REQUEST,
                        "invalid_gzip",
                        format!("the body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() > limit {
                return Err(IngestError::decompressed_too_large(limit));
            }
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn gzip_bomb_is_refused_at_the_limit() {
        let bomb = gzip(&vec![b'a'; 50 << 20]);
        assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
        let e = decode(bomb, Encoding::Gzip, 1 << 20).unwrap_err();
        assert_eq!(e.code(), "decompressed_too_large");
        let ok = decode(gzip(b"{\"a\":1}"), Encoding::Gzip, 1 << 20).unwrap();
        assert_eq!(&ok[..], b"{\"a\":1}");
        let e = decode(Bytes::from_static(b"not gzip"), Encoding::Gzip, 100).unwrap_err();
        assert_eq!(e.code(), "invalid_gzip");
    }

    #[test]
    fn content_checks() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_content(&h).unwrap_err().code(),
            "unsupported_media_type"
        );
        h.insert("content-type", "text/plain;charset=UTF-8".parse().unwrap());
        assert_eq!(check_content(&h).unwrap(), Encoding::Identity);
        h.insert("content-encoding", "br".parse().unwrap());
        assert_eq!(
            check_content(&h).unwrap_err().code(),
            "unsupported_encoding"
        );
        h.insert("content-encoding", "gzip".parse().unwrap());
        assert_eq!(check_content(&h).unwrap(), Encoding::Gzip);
    }
}
