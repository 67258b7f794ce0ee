//! The JSON batch of `POST {prefix}/v1/batch`, the shape the copy-paste clients send:
//!
//! ```json
//! {"service": "billing", "environment": "prod",
//!  "logs": [{"timestamp": "2026-11-29T10:00:00.123Z", "level": "error",
//!            "message": "charge failed", "context": {"order_id": 42},
//!            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}]}
//! ```
//!
//! - `service` (required, 1–200 characters), `environment`, `release`, `host` (optional
//!   strings, ≤ 200 characters).
//! - `logs`: 1 to `max_events` (default 250) objects, each with `message` (required string,
//!   ≤ [`MAX_MESSAGE_BYTES`]), `timestamp` (RFC 3339 string, or a number of milliseconds
//!   since the Unix epoch; default: arrival), `level` (`trace`, `debug`, `info`, `warn` /
//!   `warning`, `error`, `fatal` / `critical`; default `info`), `context` (an object: becomes
//!   the event's attributes), `trace_id` (32 hex digits), `span_id` (16 hex digits).
//! - Any other member is refused, so a typo does not silently lose data.
//!
//! Every failure is a `400` naming the JSON pointer of the field: `/logs/3/level`.

use serde_json::{Map, Value};
use tracepost_core::{Event, Kind, Level, Timestamp};

use crate::error::IngestError;

/// The longest `message`, in bytes (longer ones are refused, not cut).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
const MAX_NAME: usize = 200;

/// A level name (case-insensitive) as a [`Level`]: `fatal`/`critical` map to `error`,
/// `warning` to `warn`.
pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" | "information" | "notice" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" | "err" | "fatal" | "critical" | "crit" | "alert" | "emergency" => Level::Error,
        _ => return None,
    })
}

fn short_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, IngestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_NAME => {
            Ok(Some(s.as_str()))
        }
        Some(_) => Err(IngestError::invalid_field(
            format!("/{key}"),
            format!("must be a string of 1 to {MAX_NAME} characters"),
        )),
    }
}

fn hex_id(v: Option<&Value>, digits: usize, ptr: &str) -> Result<Option<String>, IngestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if s.len() == digits
                && s.bytes().all(|b| b.is_ascii_hexdigit())
                && s.bytes().any(|b| b != b'0') =>
        {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(IngestError::invalid_field(
            ptr,
            format!("must be {digits} hex digits, not all zero"),
        )),
    }
}

fn timestamp(v: Option<&Value>, ptr: &str, now: Timestamp) -> Result<Timestamp, IngestError> {
    match v {
        None | Some(Value::Null) => Ok(now),
        Some(Value::String(s)) => humantime::parse_rfc3339_weak(s)
            .map(|t| {
                Timestamp::from_unix_nanos(
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64),
                )
            })
            .map_err(|e| IngestError::invalid_field(ptr, format!("not an RFC 3339 time: {e}"))),
        Some(Value::Number(n)) => match n.as_f64() {
            // Milliseconds since the epoch, up to the year 2500.
            Some(ms) if (0.0..=16_725_225_600_000.0).contains(&ms) => {
                Ok(Timestamp::from_unix_nanos((ms * 1_000_000.0) as u64))
            }
            _ => Err(IngestError::invalid_field(
                ptr,
                "must be milliseconds since the Unix epoch (0 to year 2500)",
            )),
        },
        Some(_) => Err(IngestError::invalid_field(
            ptr,
            "must be an RFC 3339 string or milliseconds since the Unix epoch",
        )),
    }
}

/// Parses and validates a batch body into events (`kind = log`, not yet through the
/// pipeline), each with `ingest.source = "batch"` and `common` as attributes. Errors: `400
/// malformed_json`, `400 missing_field` / `invalid_field` with the pointer of the field,
/// `400 too_many_events` over `max_events`.
pub fn parse(
    body: &[u8],
    max_events: usize,
    common: &Map<String, Value>,
) -> Result<Vec<Event>, IngestError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| IngestError::malformed_json(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(IngestError::invalid_field(
            "",
            "the body must be a JSON object",
        ));
    };
    for k in root.keys() {
        if !matches!(
            k.as_str(),
            "service" | "environment" | "release" | "host" | "logs"
        ) {
            return Err(IngestError::invalid_field(
                format!("/{}", pointer_escape(k)),
                "unknown member (expected service, environment, release, host, logs)",
            ));
        }
    }
    let service =
        short_str(&root, "service")?.ok_or_else(|| IngestError::missing_field("/service"))?;
    let resource = tracepost_core::Resource {
        service: service.to_owned(),
        environment: short_str(&root, "environment")?.map(str::to_owned),
        release: short_str(&root, "release")?.map(str::to_owned),
        host: short_str(&root, "host")?.map(str::to_owned),
    };
    let logs = match root.get("logs") {
        None => return Err(IngestError::missing_field("/logs")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(IngestError::invalid_field("/logs", "must not be empty"))
        }
        Some(Value::Array(a)) if a.len() > max_events => {
            return Err(IngestError::new(
                http::StatusCode::BAD_REQUEST,
                "too_many_events",
                format!(
                    "a batch holds at most {max_events} logs, this one {}",
                    a.len()
                ),
            )
            .with_field("/logs"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(IngestError::invalid_field("/logs", "must be an array")),
    };
    let now = Timestamp::now();
    let mut out = Vec::with_capacity(logs.len());
    for (i, log) in logs.iter().enumerate() {
        let p = |f: &str| format!("/logs/{i}/{f}");
        let Value::Object(log) = log else {
            return Err(IngestError::invalid_field(
                format!("/logs/{i}"),
                "must be an object",
            ));
        };
        for k in log.keys() {
            if !matches!(
                k.as_str(),
                "timestamp" | "level" | "message" | "context" | "trace_id" | "span_id"
            ) {
                return Err(IngestError::invalid_field(
                    p(&pointer_escape(k)),
                    "unknown member (expected timestamp, level, message, context, trace_id, span_id)",
                ));
            }
        }
        let message = match log.get("message") {
            None | Some(Value::Null) => return Err(IngestError::missing_field(p("message"))),
            Some(Value::String(s)) if s.len() <= MAX_MESSAGE_BYTES => s.clone(),
            Some(Value::String(_)) => {
                return Err(IngestError::invalid_field(
                    p("message"),
                    format!("must be at most {MAX_MESSAGE_BYTES} bytes"),
                ))
            }
            Some(_) => return Err(IngestError::invalid_field(p("message"), "must be a string")),
        };
        let level = match log.get("level") {
            None | Some(Value::Null) => Level::Info,
            Some(Value::String(s)) => parse_level(s).ok_or_else(|| {
                IngestError::invalid_field(
                    p("level"),
                    "must be one of trace, debug, info, warn, error, fatal",
                )
            })?,
            Some(_) => return Err(IngestError::invalid_field(p("level"), "must be a string")),
        };
        let claimed = timestamp(log.get("timestamp"), &p("timestamp"), now)?;
        let trace_id = hex_id(log.get("trace_id"), 32, &p("trace_id"))?;
        let span_id = hex_id(log.get("span_id"), 16, &p("span_id"))?;
        let mut e = Event::new(Kind::Log, level, message);
        e.resource = resource.clone();
        e.trace_id = trace_id;
        e.span_id = span_id;
        match log.get("context") {
            None | Some(Value::Null) => {}
            Some(Value::Object(c)) => e.attributes = c.clone(),
            Some(_) => {
                return Err(IngestError::invalid_field(
                    p("context"),
                    "must be an object",
                ))
            }
        }
        // Believed within the window around the receive time (else the receive time, the
        // sent value in `client.timestamp`).
        e.timestamp = crate::time::settle(
            claimed.unix_nanos(),
            now,
            log.get("timestamp").cloned().unwrap_or(Value::Null),
            &mut e.attributes,
        );
        e.id = tracepost_core::event::new_id(e.timestamp);
        for (k, v) in common {
            e.attributes.insert(k.clone(), v.clone());
        }
        e.attributes.insert("ingest.source".into(), "batch".into());
        out.push(e);
    }
    Ok(out)
}

fn pointer_escape(s: &str) -> String {
    tracepost_core::truncate_utf8(s, 100)
        .replace('~', "~0")
        .replace('/', "~1")
}
