//! Writing an event into one log line (JSON or logfmt), within the line-size limit.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};
use tracepost_core::{Breadcrumb, ErrorDetail, Event, MetricWindow, RequestSnapshot, SpanDetail};
use uuid::Uuid;

use crate::config::LineFormat;
use crate::labels::truncate_utf8;

/// The key of the marker added to a shortened line.
pub const TRUNCATED_KEY: &str = "tracepost_truncated";

/// The event minus the fields that are stream labels (service, environment, level, kind) and
/// the entry's own timestamp. Field names follow the event schema.
#[derive(Serialize)]
struct JsonLine<'a> {
    id: &'a Uuid,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    attributes: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a RequestSnapshot>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    breadcrumbs: &'a [Breadcrumb],
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<&'a MetricWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<&'a SpanDetail>,
}

impl<'a> JsonLine<'a> {
    fn of(e: &'a Event) -> Self {
        JsonLine {
            id: &e.id,
            message: &e.message,
            release: e.resource.release.as_deref(),
            host: e.resource.host.as_deref(),
            trace_id: e.trace_id.as_deref(),
            span_id: e.span_id.as_deref(),
            request_id: e.request_id.as_deref(),
            session_id: e.session_id.as_deref(),
            user_id: e.user_id.as_deref(),
            fingerprint: e.fingerprint.as_deref(),
            attributes: &e.attributes,
            error: e.error.as_ref(),
            request: e.request.as_ref(),
            breadcrumbs: &e.breadcrumbs,
            metric: e.metric.as_ref(),
            span: e.span.as_ref(),
        }
    }
}

/// Writes `event` as a line of at most `max` bytes. Returns the line and whether it had to be
/// shortened.
pub fn render(event: &Event, format: LineFormat, max: usize) -> (String, bool) {
    match format {
        LineFormat::Json => {
            let line = serde_json::to_string(&JsonLine::of(event)).unwrap_or_default();
            if line.len() <= max {
                return (line, false);
            }
            let value = serde_json::to_value(JsonLine::of(event)).unwrap_or_default();
            (shrink_json(value, line.len(), max), true)
        }
        LineFormat::Logfmt => {
            let mut fields = Vec::with_capacity(16);
            logfmt_fields(event, &mut |k, v| fields.push((k, v)));
            let line = write_logfmt(&fields);
            if line.len() <= max {
                return (line, false);
            }
            (shrink_logfmt(fields, line.len(), max), true)
        }
    }
}

fn marker(original: usize, max: usize) -> String {
    format!("line of {original} bytes shortened to the {max}-byte limit")
}

/// Shortens a JSON line: repeatedly cuts the largest string or array, marking each cut, and
/// adds `"tracepost_truncated"`. Falls back to id + shortened message.
fn shrink_json(mut value: Value, original: usize, max: usize) -> String {
    if let Value::Object(map) = &mut value {
        map.insert(TRUNCATED_KEY.into(), Value::String(marker(original, max)));
    }
    for _ in 0..64 {
        let line = serde_json::to_string(&value).unwrap_or_default();
        if line.len() <= max {
            return line;
        }
        let excess = line.len() - max;
        if !cut_largest(&mut value, excess) {
            break;
        }
    }
    // Last resort (e.g. a huge number of tiny attributes): id and the message's head.
    let mut fallback = Map::new();
    if let Some(id) = value.get("id") {
        fallback.insert("id".into(), id.clone());
    }
    let message = value.get("message").and_then(Value::as_str).unwrap_or("");
    let keep = max.saturating_sub(256) / 2; // escaping can double the size
    fallback.insert(
        "message".into(),
        Value::String(format!(
            "{}…[truncated]",
            truncate_utf8(message, keep.min(message.len()))
        )),
    );
    fallback.insert(TRUNCATED_KEY.into(), Value::String(marker(original, max)));
    serde_json::to_string(&fallback).unwrap_or_default()
}

/// Finds the largest string (> 64 bytes) or array (> 1 element) and cuts it. False if none.
fn cut_largest(value: &mut Value, excess: usize) -> bool {
    /// Returns the node's approximate serialised size; records the largest candidate.
    fn walk(
        v: &Value,
        path: &mut Vec<PathStep>,
        best: &mut Option<(usize, Vec<PathStep>)>,
    ) -> usize {
        let size = match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(a) => {
                let mut n = 2;
                for (i, x) in a.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    n += walk(x, path, best) + 1;
                    path.pop();
                }
                n
            }
            Value::Object(o) => {
                let mut n = 2;
                for (k, x) in o {
                    if k == TRUNCATED_KEY {
                        continue;
                    }
                    path.push(PathStep::Key(k.clone()));
                    n += k.len() + 4 + walk(x, path, best);
                    path.pop();
                }
                n
            }
        };
        let candidate = match v {
            Value::String(s) => s.len() > 64,
            Value::Array(a) => a.len() > 1,
            _ => false,
        };
        if candidate && best.as_ref().is_none_or(|(b, _)| size > *b) {
            *best = Some((size, path.clone()));
        }
        size
    }
    let mut best = None;
    let _ = walk(value, &mut Vec::new(), &mut best);
    let Some((size, path)) = best else {
        return false;
    };
    let mut target = value;
    for step in &path {
        target = match (step, target) {
            (PathStep::Index(i), Value::Array(a)) => &mut a[*i],
            (PathStep::Key(k), Value::Object(o)) => match o.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match target {
        Value::String(s) => {
            let len = s.len();
            let mut keep = len.saturating_sub(excess + 48);
            if keep >= len / 2 && excess > len / 4 {
                keep = len / 2;
            }
            let cut = truncate_utf8(s, keep).len();
            *s = format!("{}…[{} bytes truncated]", &s[..cut], len - cut);
            true
        }
        Value::Array(a) => {
            // Keep the share of elements that fits, at most half.
            let share = size.saturating_sub(excess + 64) as f64 / size.max(1) as f64;
            let keep = ((a.len() as f64 * share) as usize).min(a.len() / 2);
            let dropped = a.len() - keep;
            a.truncate(keep);
            a.push(Value::String(format!("…[{dropped} more truncated]")));
            true
        }
        _ => false,
    }
}

#[derive(Clone)]
enum PathStep {
    Index(usize),
    Key(String),
}

/// The logfmt fields of an event, named as `| json` would flatten the JSON line.
fn logfmt_fields<'a>(e: &'a Event, out: &mut dyn FnMut(Cow<'a, str>, Cow<'a, str>)) {
    fn opt<'a>(
        out: &mut dyn FnMut(Cow<'a, str>, Cow<'a, str>),
        k: &'static str,
        v: &'a Option<String>,
    ) {
        if let Some(v) = v {
            out(Cow::Borrowed(k), Cow::Borrowed(v));
        }
    }
    let b = Cow::Borrowed;
    out(b("message"), b(&e.message));
    out(b("id"), Cow::Owned(e.id.to_string()));
    opt(out, "release", &e.resource.release);
    opt(out, "host", &e.resource.host);
    opt(out, "trace_id", &e.trace_id);
    opt(out, "span_id", &e.span_id);
    opt(out, "request_id", &e.request_id);
    opt(out, "session_id", &e.session_id);
    opt(out, "user_id", &e.user_id);
    opt(out, "fingerprint", &e.fingerprint);
    if let Some(err) = &e.error {
        out(b("error_type"), b(&err.error_type));
        out(b("error_message"), b(&err.message));
        opt(out, "error_location", &err.location);
        opt(out, "error_backtrace", &err.backtrace);
    }
    if let Some(r) = &e.request {
        out(b("request_method"), b(&r.method));
        out(b("request_route"), b(&r.route));
        out(b("request_path"), b(&r.path));
        opt(out, "request_query", &r.query);
        out(b("request_status"), Cow::Owned(r.status.to_string()));
        out(
            b("request_duration_ms"),
            Cow::Owned(r.duration_ms.to_string()),
        );
        out(
            b("request_request_bytes"),
            Cow::Owned(r.request_bytes.to_string()),
        );
        out(
            b("request_response_bytes"),
            Cow::Owned(r.response_bytes.to_string()),
        );
        opt(out, "request_client_address", &r.client_address);
        opt(out, "request_http_version", &r.http_version);
    }
    if let Some(m) = &e.metric {
        out(b("metric_start"), Cow::Owned(m.start.to_string()));
        out(b("metric_seconds"), Cow::Owned(m.seconds.to_string()));
        out(b("metric_method"), b(&m.method));
        out(b("metric_route"), b(&m.route));
        out(b("metric_count"), Cow::Owned(m.count.to_string()));
        out(b("metric_errors"), Cow::Owned(m.errors.to_string()));
        out(b("metric_p50_ms"), Cow::Owned(m.p50_ms.to_string()));
        out(b("metric_p95_ms"), Cow::Owned(m.p95_ms.to_string()));
        out(b("metric_p99_ms"), Cow::Owned(m.p99_ms.to_string()));
        out(b("metric_max_ms"), Cow::Owned(m.max_ms.to_string()));
        out(b("metric_bytes_in"), Cow::Owned(m.bytes_in.to_string()));
        out(b("metric_bytes_out"), Cow::Owned(m.bytes_out.to_string()));
    }
    if let Some(span) = &e.span {
        out(b("span_name"), b(&span.name));
        if let Some(parent) = &span.parent_span_id {
            out(b("span_parent_span_id"), b(parent));
        }
        out(
            b("span_duration_ms"),
            Cow::Owned(span.duration_ms.to_string()),
        );
        out(b("span_status"), b(span.status.as_str()));
    }
    for (k, v) in &e.attributes {
        let mut key = String::with_capacity(11 + k.len());
        key.push_str("attributes_");
        key.extend(k.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        }));
        let value = match v {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            other => Cow::Owned(other.to_string()),
        };
        out(Cow::Owned(key), value);
    }
}

fn write_logfmt(fields: &[(Cow<'_, str>, Cow<'_, str>)]) -> String {
    let mut line = String::with_capacity(
        fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(k);
        line.push('=');
        let needs_quotes = v.is_empty()
            || v.chars()
                .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
        if !needs_quotes {
            line.push_str(v);
            continue;
        }
        line.push('"');
        for c in v.chars() {
            match c {
                '"' => line.push_str("\\\""),
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                '\t' => line.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(line, "\\u{:04x}", c as u32);
                }
                c => line.push(c),
            }
        }
        line.push('"');
    }
    line
}

fn shrink_logfmt(
    mut fields: Vec<(Cow<'_, str>, Cow<'_, str>)>,
    original: usize,
    max: usize,
) -> String {
    fields.push((
        Cow::Borrowed(TRUNCATED_KEY),
        Cow::Owned(marker(original, max)),
    ));
    let marker_index = fields.len() - 1;
    for _ in 0..64 {
        let line = write_logfmt(&fields);
        if line.len() <= max {
            return line;
        }
        let excess = line.len() - max;
        let Some((i, _)) = fields
            .iter()
            .enumerate()
            .filter(|(i, (_, v))| *i != marker_index && v.len() > 64)
            .max_by_key(|(_, (_, v))| v.len())
        else {
            break;
        };
        let v = &fields[i].1;
        let len = v.len();
        let mut keep = len.saturating_sub(excess + 48);
        if keep >= len / 2 && excess > len / 4 {
            keep = len / 2;
        }
        let head = truncate_utf8(v, keep);
        let cut = format!("{head}…[{} bytes truncated]", len - head.len());
        fields[i].1 = Cow::Owned(cut);
    }
    // Last resort: drop fields from the end (attributes first) until it fits.
    let marker = fields.pop();
    while fields.len() > 2 {
        fields.pop();
        let mut attempt = fields.clone();
        attempt.extend(marker.clone());
        let line = write_logfmt(&attempt);
        if line.len() <= max {
            return line;
        }
    }
    let mut line = write_logfmt(&fields);
    line.truncate(truncate_utf8(&line, max.saturating_sub(40)).len());
    line.push_str(" tracepost_truncated=true");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracepost_core::{Kind, Level};

    fn big_event() -> Event {
        let mut e = Event::new(Kind::Error, Level::Error, "x".repeat(300_000));
        e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        e.error = Some(ErrorDetail {
            error_type: "panic".into(),
            message: "boom".into(),
            backtrace: Some("frame\n".repeat(20_000)),
            location: None,
        });
        e
    }

    fn span_event() -> Event {
        let mut e = Event::new(Kind::Span, Level::Info, "charge_card");
        e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        e.span_id = Some("00f067aa0ba902b7".into());
        e.attributes.insert("order".into(), 42.into());
        e.span = Some(SpanDetail {
            name: "charge_card".into(),
            parent_span_id: Some("b7ad6b7169203331".into()),
            duration_ms: 12.5,
            status: tracepost_core::SpanStatus::Error,
        });
        e
    }

    #[test]
    fn span_json_line_has_ids_parent_duration_and_status() {
        let (line, cut) = render(&span_event(), LineFormat::Json, 1 << 18);
        assert!(!cut);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "charge_card");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["span_id"], "00f067aa0ba902b7");
        assert_eq!(v["attributes"]["order"], 42);
        assert_eq!(
            v["span"],
            serde_json::json!({
                "name": "charge_card",
                "parent_span_id": "b7ad6b7169203331",
                "duration_ms": 12.5,
                "status": "error"
            })
        );
        assert!(v.get("kind").is_none(), "kind is a label: {line}");
    }

    #[test]
    fn span_logfmt_line_flattens_the_span() {
        let (line, _) = render(&span_event(), LineFormat::Logfmt, 1 << 18);
        for field in [
            "span_name=charge_card",
            "span_parent_span_id=b7ad6b7169203331",
            "span_duration_ms=12.5",
            "span_status=error",
            "span_id=00f067aa0ba902b7",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }

    #[test]
    fn json_line_omits_label_fields() {
        let mut e = Event::new(Kind::Log, Level::Info, "hello \"world\"");
        e.resource.service = "svc".into();
        e.user_id = Some("u-1".into());
        let (line, cut) = render(&e, LineFormat::Json, 1 << 18);
        assert!(!cut);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "hello \"world\"");
        assert_eq!(v["user_id"], "u-1");
        assert_eq!(v["id"], e.id.to_string());
        for label in ["service", "level", "kind", "environment", "timestamp"] {
            assert!(v.get(label).is_none(), "{label} in {line}");
        }
    }

    #[test]
    fn long_json_lines_are_shortened_visibly_and_stay_json() {
        let e = big_event();
        for max in [1024, 4096, 256 * 1024] {
            let (line, cut) = render(&e, LineFormat::Json, max);
            assert!(cut);
            assert!(line.len() <= max, "{} > {max}", line.len());
            let v: Value = serde_json::from_str(&line).expect("still JSON");
            assert!(v[TRUNCATED_KEY].as_str().unwrap().contains("shortened"));
            assert_eq!(v["id"], e.id.to_string());
            if max == 256 * 1024 {
                // The small fields survive; the big ones carry a marker.
                assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
                assert!(v["message"].as_str().unwrap().contains("bytes truncated]"));
            }
        }
    }

    #[test]
    fn many_tiny_attributes_fall_back_to_id_and_message() {
        let mut e = Event::new(Kind::Log, Level::Info, "many attributes");
        for i in 0..5000 {
            e.attributes.insert(format!("k{i}"), Value::from(i));
        }
        let (line, cut) = render(&e, LineFormat::Json, 2048);
        assert!(cut && line.len() <= 2048);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("many attributes"));
        assert!(v.get(TRUNCATED_KEY).is_some());
    }

    #[test]
    fn logfmt_quotes_escapes_and_shortens() {
        let mut e = Event::new(Kind::Error, Level::Error, "it broke: \"x\"\nnext");
        e.request = Some(RequestSnapshot {
            method: "GET".into(),
            route: "/users/{id}".into(),
            path: "/users/7".into(),
            status: 500,
            duration_ms: 12.5,
            ..Default::default()
        });
        e.attributes.insert("db.rows".into(), Value::from(3));
        let (line, cut) = render(&e, LineFormat::Logfmt, 1 << 18);
        assert!(!cut);
        assert!(
            line.starts_with(r#"message="it broke: \"x\"\nnext" id="#),
            "{line}"
        );
        assert!(line.contains(" request_route=/users/{id} request_path=/users/7 "));
        assert!(line.contains(" request_status=500 request_duration_ms=12.5 "));
        assert!(line.ends_with(" attributes_db_rows=3"), "{line}");

        let (line, cut) = render(&big_event(), LineFormat::Logfmt, 4096);
        assert!(cut && line.len() <= 4096, "{}", line.len());
        assert!(line.contains("tracepost_truncated="));
        assert!(line.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    /// The field paths the book's LogQL uses exist in both formats.
    #[test]
    fn fields_the_book_queries_exist() {
        let mut req = Event::new(Kind::Request, Level::Info, "GET /users/{id}");
        req.request = Some(RequestSnapshot {
            method: "GET".into(),
            route: "/users/{id}".into(),
            status: 200,
            duration_ms: 812.5,
            ..Default::default()
        });
        let mut window = Event::new(Kind::MetricWindow, Level::Info, "window");
        window.metric = Some(MetricWindow {
            start: tracepost_core::Timestamp::from_unix_nanos(0),
            seconds: 60,
            method: "GET".into(),
            route: "/users/{id}".into(),
            count: 10,
            errors: 1,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.5,
            max_ms: 4.0,
            bytes_in: 0,
            bytes_out: 0,
        });
        let mut err = Event::new(Kind::Error, Level::Error, "boom");
        err.error = Some(ErrorDetail {
            error_type: "panic".into(),
            message: "boom".into(),
            ..Default::default()
        });
        let json = |e: &Event| -> Value {
            serde_json::from_str(&render(e, LineFormat::Json, 1 << 18).0).unwrap()
        };
        assert_eq!(json(&req)["request"]["duration_ms"], 812.5);
        assert_eq!(json(&req)["request"]["route"], "/users/{id}");
        assert_eq!(json(&window)["metric"]["p99_ms"], 3.5);
        assert_eq!(json(&err)["error"]["type"], "panic");
        let logfmt = |e: &Event| render(e, LineFormat::Logfmt, 1 << 18).0;
        assert!(logfmt(&req).contains(" request_duration_ms=812.5 "));
        assert!(logfmt(&window).contains(" metric_p99_ms=3.5 "));
        assert!(logfmt(&err).contains(" error_type=panic "));
    }

    /// Whatever the shape, a shortened line fits, parses, and says it was shortened.
    #[test]
    fn shortened_lines_always_fit() {
        let mut shapes = Vec::new();
        let mut crumbs = Event::new(Kind::Error, Level::Error, "many breadcrumbs");
        crumbs.breadcrumbs = (0..5_000)
            .map(|i| Breadcrumb {
                timestamp: tracepost_core::Timestamp::from_unix_nanos(i),
                level: Level::Info,
                target: "app::db".into(),
                message: format!("query {i} done"),
            })
            .collect();
        shapes.push(crumbs);
        // Characters that grow when escaped: quotes double, control characters become \u00XX.
        shapes.push(Event::new(
            Kind::Log,
            Level::Info,
            "\"\u{1}".repeat(100_000),
        ));
        shapes.push(Event::new(Kind::Log, Level::Info, "é€😀".repeat(40_000)));
        let mut nested = Event::new(Kind::Log, Level::Info, "nested");
        nested.attributes.insert(
            "rows".into(),
            Value::Array(
                (0..50_000)
                    .map(|i| serde_json::json!({"id": i, "v": [i, i]}))
                    .collect(),
            ),
        );
        shapes.push(nested);
        shapes.push(big_event());
        for e in &shapes {
            for max in [1024, 10_000, 100_000, 256 * 1024] {
                for format in [LineFormat::Json, LineFormat::Logfmt] {
                    let (line, cut) = render(e, format, max);
                    assert!(line.len() <= max, "{format:?} {max}: {}", line.len());
                    // (logfmt leaves breadcrumbs out, so that shape may fit uncut)
                    assert!(cut || format == LineFormat::Logfmt, "{format:?} {max}");
                    assert_eq!(line.contains(TRUNCATED_KEY), cut, "{format:?} {max}");
                    if format == LineFormat::Json {
                        let v: Value = serde_json::from_str(&line).expect("valid JSON");
                        assert_eq!(v["id"], e.id.to_string());
                    }
                }
            }
        }
    }
}
