//! A direct JSON writer for [`Event`]: the same bytes as `serde_json::to_writer(&mut out, event)`
//! (the schema of the book's "Event schema" page, field for field), written without serde's
//! per-byte string escaping. Strings are checked for characters that need escaping in one
//! vectorisable pass and copied whole when there are none — the common case for ids, headers,
//! routes and bodies. Values whose encoding is not hot or not simple (attributes, numbers,
//! metric windows) are written by `serde_json` itself, so they cannot drift.

use serde::Serialize;

use super::{Breadcrumb, CapturedBody, ErrorDetail, Event, RequestSnapshot, Timestamp};

/// Appends `event` as one JSON object (no newline) to `out`; byte-identical to
/// `serde_json::to_writer`.
///
/// # Errors
/// Only what `serde_json` reports for an attribute value it cannot write (none for
/// `serde_json::Value`s in practice).
pub fn write_event(out: &mut Vec<u8>, e: &Event) -> serde_json::Result<()> {
    out.reserve(256 + e.message.len() + e.request.as_ref().map_or(0, |r| r.approx_size()));
    out.extend_from_slice(b"{\"schema\":");
    serde(out, &e.schema)?;
    out.extend_from_slice(b",\"id\":\"");
    let mut id = uuid::Uuid::encode_buffer();
    out.extend_from_slice(e.id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":");
    timestamp(out, e.timestamp);
    out.extend_from_slice(b",\"kind\":");
    serde(out, &e.kind)?;
    out.extend_from_slice(b",\"level\":");
    serde(out, &e.level)?;
    field_str(out, "message", &e.message);
    field_str(out, "service", &e.resource.service);
    opt_str(out, "environment", &e.resource.environment);
    opt_str(out, "release", &e.resource.release);
    opt_str(out, "host", &e.resource.host);
    opt_str(out, "trace_id", &e.trace_id);
    opt_str(out, "span_id", &e.span_id);
    opt_str(out, "request_id", &e.request_id);
    opt_str(out, "session_id", &e.session_id);
    opt_str(out, "user_id", &e.user_id);
    opt_str(out, "fingerprint", &e.fingerprint);
    if !e.attributes.is_empty() {
        out.extend_from_slice(b",\"attributes\":");
        serde(out, &e.attributes)?;
    }
    if let Some(err) = &e.error {
        out.extend_from_slice(b",\"error\":");
        error(out, err);
    }
    if let Some(r) = &e.request {
        out.extend_from_slice(b",\"request\":");
        request(out, r)?;
    }
    if !e.breadcrumbs.is_empty() {
        out.extend_from_slice(b",\"breadcrumbs\":[");
        for (i, b) in e.breadcrumbs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            breadcrumb(out, b)?;
        }
        out.push(b']');
    }
    if let Some(m) = &e.metric {
        out.extend_from_slice(b",\"metric\":");
        serde(out, m)?;
    }
    if let Some(span) = &e.span {
        out.extend_from_slice(b",\"span\":");
        serde(out, span)?;
    }
    out.push(b'}');
    Ok(())
}

fn error(out: &mut Vec<u8>, e: &ErrorDetail) {
    out.extend_from_slice(b"{\"type\":");
    string(out, &e.error_type);
    field_str(out, "message", &e.message);
    opt_str(out, "backtrace", &e.backtrace);
    opt_str(out, "location", &e.location);
    out.push(b'}');
}

fn request(out: &mut Vec<u8>, r: &RequestSnapshot) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"method\":");
    string(out, &r.method);
    field_str(out, "route", &r.route);
    field_str(out, "path", &r.path);
    opt_str(out, "query", &r.query);
    out.extend_from_slice(b",\"status\":");
    serde(out, &r.status)?;
    out.extend_from_slice(b",\"duration_ms\":");
    serde(out, &r.duration_ms)?;
    headers(out, "request_headers", &r.request_headers);
    headers(out, "response_headers", &r.response_headers);
    if let Some(b) = &r.request_body {
        out.extend_from_slice(b",\"request_body\":");
        body(out, b);
    }
    if let Some(b) = &r.response_body {
        out.extend_from_slice(b",\"response_body\":");
        body(out, b);
    }
    out.extend_from_slice(b",\"request_bytes\":");
    serde(out, &r.request_bytes)?;
    out.extend_from_slice(b",\"response_bytes\":");
    serde(out, &r.response_bytes)?;
    opt_str(out, "client_address", &r.client_address);
    opt_str(out, "http_version", &r.http_version);
    out.push(b'}');
    Ok(())
}

fn headers(out: &mut Vec<u8>, name: &str, headers: &[(String, String)]) {
    if headers.is_empty() {
        return;
    }
    key(out, name);
    out.push(b'[');
    for (i, (k, v)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        string(out, k);
        out.push(b',');
        string(out, v);
        out.push(b']');
    }
    out.push(b']');
}

fn body(out: &mut Vec<u8>, b: &CapturedBody) {
    out.extend_from_slice(b"{\"text\":");
    string(out, &b.text);
    field_str(out, "encoding", &b.encoding);
    out.extend_from_slice(if b.truncated {
        b",\"truncated\":true"
    } else {
        b",\"truncated\":false"
    });
    opt_str(out, "content_type", &b.content_type);
    out.push(b'}');
}

fn breadcrumb(out: &mut Vec<u8>, b: &Breadcrumb) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"timestamp\":");
    timestamp(out, b.timestamp);
    out.extend_from_slice(b",\"level\":");
    serde(out, &b.level)?;
    field_str(out, "target", &b.target);
    field_str(out, "message", &b.message);
    out.push(b'}');
    Ok(())
}

/// A timestamp as its `Display` (RFC 3339, ns) writes it, quoted: ASCII digits and
/// punctuation only, so nothing to escape.
fn timestamp(out: &mut Vec<u8>, t: Timestamp) {
    use std::io::Write as _;
    out.push(b'"');
    // Writing to a `Vec` cannot fail.
    // Straight to humantime's formatter, as `Timestamp`'s `Display` does, minus one
    // formatting layer.
    let _ = write!(out, "{}", humantime::format_rfc3339_nanos(t.system_time()));
    out.push(b'"');
}

fn serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, v)
}

/// `,"name":` (names are plain ASCII identifiers: no escaping needed).
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn field_str(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    string(out, value);
}

fn opt_str(out: &mut Vec<u8>, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        field_str(out, name, v);
    }
}

/// A JSON string with `serde_json`'s escapes: `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`, other
/// control characters as `\u00xx` (lowercase hex); everything else, non-ASCII included, as is.
///
/// Copied as it is scanned, eight bytes per step (each clean word is one fixed-size store,
/// not a `memcpy` call per run of clean bytes), then byte by byte through [`ESCAPE`] within a
/// word that holds an escape, and for the last few bytes.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|chunk| <[u8; 8]>::try_from(chunk).ok())
        {
            if !word_needs_escape(u64::from_ne_bytes(word)) {
                out.extend_from_slice(&word);
                i += 8;
                continue;
            }
        }
        // A word with an escape in it, or the last bytes: one by one, to the word's end.
        let end = bytes.len().min(i + 8);
        for &b in &bytes[i..end] {
            match ESCAPE[usize::from(b)] {
                0 => out.push(b),
                short => escape(out, b, short),
            }
        }
        i = end;
    }
    out.push(b'"');
}

/// For each byte, `0` when JSON keeps it as is, else the letter of its escape (`u` for
/// `\u00xx`), as `serde_json` escapes.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes the escape of `b`, whose [`ESCAPE`] letter is `short`.
#[cold]
fn escape(out: &mut Vec<u8>, b: u8, short: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if short == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', short]);
    }
}

/// Whether some byte of the word `w` needs a JSON escape (a control character, `"` or `\\`):
/// SWAR, a byte is below 0x20, or equal to `"` or `\\`, exactly when the borrow tricks below
/// set its high bit.
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Some byte of `w` is below `n` (`n` ≤ 128).
    const fn has_less(w: u64, n: u8) -> bool {
        w.wrapping_sub(ONES * n as u64) & !w & HIGH != 0
    }
    /// Some byte of `w` is zero.
    const fn has_zero(w: u64) -> bool {
        has_less(w, 1)
    }
    has_less(w, 0x20)
        || has_zero(w ^ (ONES * u64::from(b'"')))
        || has_zero(w ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{Kind, Level, MetricWindow};

    fn same(e: &Event) {
        let mut ours = Vec::new();
        write_event(&mut ours, e).unwrap();
        let theirs = serde_json::to_vec(e).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    /// Every byte value that needs an escape, quotes, backslashes, DEL and non-ASCII text.
    fn awkward() -> String {
        let mut s: String = (0u8..0x20).map(char::from).collect();
        s.push_str("\"quoted\" back\\slash / \u{7f} é 日本 🎉 </script>");
        s
    }

    #[test]
    fn a_minimal_event_is_written_as_serde_json_writes_it() {
        same(&Event::new(Kind::Log, Level::Info, "hello"));
        same(&Event::new(Kind::Log, Level::Info, ""));
    }

    #[test]
    fn a_full_event_with_awkward_strings_is_written_as_serde_json_writes_it() {
        let w = awkward();
        let mut e = Event::new(Kind::Error, Level::Error, w.clone())
            .with_timestamp(Timestamp::from_unix_nanos(1_764_000_000_123_456_789));
        e.resource.service = w.clone();
        e.resource.environment = Some("prod".into());
        e.resource.release = Some(w.clone());
        e.resource.host = Some("h".into());
        e.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        e.span_id = Some("b7ad6b7169203331".into());
        e.request_id = Some(w.clone());
        e.session_id = Some("s".into());
        e.user_id = Some(w.clone());
        e.fingerprint = Some("f".into());
        e.attributes
            .insert(w.clone(), json!({"n": [1, 2.5, null, true], "s": w}));
        e.attributes.insert("x".into(), json!(1e300));
        e.error = Some(ErrorDetail {
            error_type: w.clone(),
            message: "boom".into(),
            backtrace: Some(w.clone()),
            location: None,
        });
        e.request = Some(RequestSnapshot {
            method: "POST".into(),
            route: "/users/{id}".into(),
            path: "/users/7".into(),
            query: Some(w.clone()),
            status: 503,
            duration_ms: 0.045,
            request_headers: vec![("host".into(), "x".into()), (w.clone(), w.clone())],
            response_headers: vec![("content-type".into(), "application/json".into())],
            request_body: Some(CapturedBody {
                text: w.clone(),
                encoding: "utf8".into(),
                truncated: true,
                content_type: None,
            }),
            response_body: Some(CapturedBody {
                text: "{\"id\":7}".into(),
                encoding: "utf8".into(),
                truncated: false,
                content_type: Some("application/json".into()),
            }),
            request_bytes: 12,
            response_bytes: u64::MAX,
            client_address: Some("127.0.0.1".into()),
            http_version: Some("HTTP/1.1".into()),
        });
        e.breadcrumbs = vec![
            Breadcrumb {
                timestamp: Timestamp::from_unix_nanos(0),
                level: Level::Debug,
                target: "app".into(),
                message: w.clone(),
            },
            Breadcrumb {
                timestamp: Timestamp::from_unix_nanos(1),
                level: Level::Warn,
                target: w.clone(),
                message: "k=v".into(),
            },
        ];
        e.metric = Some(MetricWindow {
            start: Timestamp::from_unix_nanos(60_000_000_000),
            seconds: 60,
            method: "GET".into(),
            route: w.clone(),
            count: 3,
            errors: 1,
            p50_ms: 1.5,
            p95_ms: f64::NAN,
            p99_ms: f64::INFINITY,
            max_ms: 1e-7,
            bytes_in: 0,
            bytes_out: 9,
        });
        e.span = Some(crate::event::SpanDetail {
            name: w.clone(),
            parent_span_id: Some("00f067aa0ba902b7".into()),
            duration_ms: 12.5,
            status: crate::event::SpanStatus::Error,
        });
        same(&e);
    }

    #[test]
    fn odd_floats_and_empty_collections_are_written_as_serde_json_writes_them() {
        for d in [0.0, -0.0, 1e-7, 1e21, 123.456, f64::NAN, f64::NEG_INFINITY] {
            let mut e = Event::new(Kind::Request, Level::Warn, "m");
            e.request = Some(RequestSnapshot {
                duration_ms: d,
                ..Default::default()
            });
            same(&e);
        }
    }

    #[test]
    fn every_single_character_string_is_escaped_as_serde_json_escapes_it() {
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let s = format!("a{c}b{c}");
            let mut ours = Vec::new();
            string(&mut ours, &s);
            assert_eq!(ours, serde_json::to_vec(&s).unwrap(), "{c:?}");
        }
    }

    /// The eight-bytes-at-a-time search finds an escape at every position of a word and of
    /// the tail after the last whole word, with non-ASCII bytes (high bit set) around it.
    #[test]
    fn strings_with_an_escape_at_every_position_are_written_as_serde_json_writes_them() {
        for len in 0..40 {
            for at in 0..len {
                for c in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                    for filler in ['a', 'é', ' ', '\u{7f}'] {
                        let s: String =
                            (0..len).map(|i| if i == at { c } else { filler }).collect();
                        let mut ours = Vec::new();
                        string(&mut ours, &s);
                        assert_eq!(ours, serde_json::to_vec(&s).unwrap(), "{s:?}");
                    }
                }
            }
        }
    }
}
