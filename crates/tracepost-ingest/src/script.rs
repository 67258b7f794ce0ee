//! `tp.js`, the browser script, compiled into the crate (`js/tp.js`, readable source: no
//! build step, no Node on the user's machine) and served with an `ETag` and, when the client
//! accepts it, gzip at the best compression level (computed once).

use std::io::Write;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use sha2::{Digest, Sha256};

/// The script's source.
pub const TP_JS: &str = include_str!("../js/tp.js");

/// The opt-in web-vitals script's source (`{prefix}/tp-vitals.js`, loaded after `tp.js`):
/// LCP, INP, CLS, FCP and TTFB as `vital` events, sent with `tp.js`'s batches.
pub const TP_VITALS_JS: &str = include_str!("../js/tp-vitals.js");

/// The opt-in session-replay script's source (`{prefix}/tp-replay.js`, loaded after `tp.js`
/// when replay is enabled): records with rrweb's `record` and uploads segments to
/// `{prefix}/v1/replay` (see [`crate::replay`]).
pub const TP_REPLAY_JS: &str = include_str!("../js/tp-replay.js");

/// The script, gzipped once, and its `ETag`.
#[derive(Debug)]
pub struct Script {
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// Prepares [`TP_JS`].
    pub fn new() -> Self {
        Self::from_source(TP_JS)
    }

    /// Prepares [`TP_VITALS_JS`].
    pub fn vitals() -> Self {
        Self::from_source(TP_VITALS_JS)
    }

    /// Prepares [`TP_REPLAY_JS`].
    pub fn replay() -> Self {
        Self::from_source(TP_REPLAY_JS)
    }

    /// Prepares any script source (tests use it).
    pub fn from_source(source: &str) -> Self {
        let digest = Sha256::digest(source.as_bytes());
        let mut tag = String::from("\"");
        for b in &digest[..8] {
            tag.push_str(&format!("{b:02x}"));
        }
        tag.push('"');
        Script {
            plain: Bytes::copy_from_slice(source.as_bytes()),
            gzip: Bytes::from(gzip_best(source.as_bytes())),
            etag: HeaderValue::from_str(&tag).expect("hex is a valid header value"),
        }
    }

    /// The gzipped size in bytes (the script's budget is 3 KB gzipped).
    pub fn gzipped_len(&self) -> usize {
        self.gzip.len()
    }

    /// Answers a `GET`: `304` when `If-None-Match` matches, else `200` with the script.
    pub fn respond(&self, request: &HeaderMap) -> Response<Bytes> {
        let matches = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == self.etag.to_str().unwrap_or("")
            });
        let gzip = accepts_gzip(request);
        let mut r = if matches {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else if gzip {
            let mut r = Response::new(self.gzip.clone());
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            Response::new(self.plain.clone())
        };
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        r
    }
}

/// gzip at the best compression level.
pub fn gzip_best(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Whether `Accept-Encoding` lists gzip with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_gzip_and_not_modified() {
        let s = Script::from_source("console.log('tp');\n".repeat(50).as_str());
        let mut h = HeaderMap::new();
        let plain = s.respond(&h);
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        h.insert(header::ACCEPT_ENCODING, "br, gzip;q=0.8".parse().unwrap());
        let gz = s.respond(&h);
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(gz.body().len() < plain.body().len());
        let etag = gz.headers()[header::ETAG].clone();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(s.respond(&h).status(), 304);
        h.insert(header::ACCEPT_ENCODING, "gzip;q=0".parse().unwrap());
        h.remove(header::IF_NONE_MATCH);
        assert!(s
            .respond(&h)
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_none());
    }
}
