//! OTLP log records → tracepost [`Event`]s (`kind = log`).
//!
//! | OTLP                                   | event                                        |
//! |----------------------------------------|----------------------------------------------|
//! | `severityNumber` 1–4 / 5–8 / 9–12 / 13–16 / 17–24 | `level` trace / debug / info / warn / error (17–24 also `log.severity_number`) |
//! | `severityNumber` 0 (unspecified)       | `severityText` read as a level name, else `info` |
//! | `body` (string)                        | `message` (other bodies: JSON text in `message`, value in `log.body`) |
//! | `timeUnixNano` (else `observedTimeUnixNano`, else now; outside 7 days before to 5 min after the receive time: now, and the sent value in `client.timestamp`) | `timestamp` |
//! | `traceId` / `spanId` (16 / 8 bytes)    | `trace_id` / `span_id` (lowercase hex); all zeros (invalid in OTLP) dropped; other lengths reject the record |
//! | resource `service.name`                | `resource.service` (default `unknown_service`) |
//! | resource `deployment.environment.name` (or `deployment.environment`) | `resource.environment` |
//! | resource `service.version`             | `resource.release`                           |
//! | resource `host.name`                   | `resource.host`                              |
//! | other resource attributes, record attributes | `attributes` under their own names (record wins over resource; the server's `ingest.*` win over both) |
//! | scope name / version                   | `otel.scope.name` / `otel.scope.version`     |
//! | `severityText`, `eventName`            | `log.severity_text`, `event.name`            |
//!
//! Every event also gets `ingest.source = "otlp"` and the sender's `ingest.project` /
//! `ingest.key` (see the book's "Send logs from any language").

use serde_json::{Map, Number, Value};
use tracepost_core::{Event, Kind, Level, Timestamp};

use super::proto::{self, AnyValue, KeyValue};

/// The events of a request, and how many records were rejected (with the first reason).
#[derive(Debug, Default)]
pub struct Mapped {
    /// The accepted records as events (not yet through the pipeline).
    pub events: Vec<Event>,
    /// How many records were rejected.
    pub rejected: i64,
    /// Why the first one was.
    pub error_message: String,
}

/// The level of an OTel `SeverityNumber` (and `SeverityText` when the number is 0).
pub fn level(number: i32, text: &str) -> Level {
    match number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17.. => Level::Error,
        _ => super::batch::parse_level(text).unwrap_or(Level::Info),
    }
}

/// An `AnyValue` as JSON: arrays and key-value lists nest, bytes become base64 (as OTLP/JSON
/// spells them), non-finite doubles become their string names.
pub fn to_json(v: &AnyValue) -> Value {
    use base64::Engine as _;
    use proto::Value as V;
    match &v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::String(s.clone()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::Number((*i).into()),
        Some(V::DoubleValue(d)) => {
            Number::from_f64(*d).map_or_else(|| Value::String(d.to_string()), Value::Number)
        }
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(to_json).collect()),
        Some(V::KvlistValue(l)) => Value::Object(to_map(&l.values)),
        Some(V::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

fn to_map(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, to_json),
            )
        })
        .collect()
}

fn str_attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    kvs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(proto::Value::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Maps a decoded request. Records with a `traceId` that is not 16 bytes or a `spanId` that
/// is not 8 (when present) are rejected and counted, as OTLP's partial success asks.
pub fn to_events(req: &proto::ExportLogsServiceRequest, common: &Map<String, Value>) -> Mapped {
    let mut out = Mapped::default();
    let now = Timestamp::now();
    for rl in &req.resource_logs {
        let empty = Vec::new();
        let rattrs = rl.resource.as_ref().map_or(&empty, |r| &r.attributes);
        let mut resource = tracepost_core::Resource {
            service: str_attr(rattrs, "service.name")
                .unwrap_or("unknown_service")
                .to_owned(),
            ..Default::default()
        };
        resource.environment = str_attr(rattrs, "deployment.environment.name")
            .or_else(|| str_attr(rattrs, "deployment.environment"))
            .map(str::to_owned);
        resource.release = str_attr(rattrs, "service.version").map(str::to_owned);
        resource.host = str_attr(rattrs, "host.name").map(str::to_owned);
        let mut base = to_map(rattrs);
        for k in ["service.name", "service.version", "host.name"] {
            base.remove(k);
        }
        for (k, v) in common {
            base.insert(k.clone(), v.clone());
        }
        for sl in &rl.scope_logs {
            let mut scoped = base.clone();
            if let Some(scope) = &sl.scope {
                if !scope.name.is_empty() {
                    scoped.insert("otel.scope.name".into(), scope.name.clone().into());
                }
                if !scope.version.is_empty() {
                    scoped.insert("otel.scope.version".into(), scope.version.clone().into());
                }
            }
            for r in &sl.log_records {
                match record(r, &resource, &scoped, common, now) {
                    Ok(e) => out.events.push(e),
                    Err(why) => {
                        if out.rejected == 0 {
                            out.error_message = why;
                        }
                        out.rejected += 1;
                    }
                }
            }
        }
    }
    out
}

fn record(
    r: &proto::LogRecord,
    resource: &tracepost_core::Resource,
    scoped: &Map<String, Value>,
    common: &Map<String, Value>,
    now: Timestamp,
) -> Result<Event, String> {
    // All zeros is OTLP's "no id" (the spec calls it invalid): dropped, the record kept.
    let zero = |id: &[u8]| id.iter().all(|b| *b == 0);
    let trace_id = match r.trace_id.len() {
        0 => None,
        16 if zero(&r.trace_id) => None,
        16 => Some(hex::encode(&r.trace_id)),
        n => return Err(format!("traceId must be 16 bytes (32 hex digits), got {n}")),
    };
    let span_id = match r.span_id.len() {
        0 => None,
        8 if zero(&r.span_id) => None,
        8 => Some(hex::encode(&r.span_id)),
        n => return Err(format!("spanId must be 8 bytes (16 hex digits), got {n}")),
    };
    let lvl = level(r.severity_number, &r.severity_text);
    let (message, body_attr) = match r.body.as_ref().map(|b| (b, &b.value)) {
        Some((_, Some(proto::Value::StringValue(s)))) => (s.clone(), None),
        Some((b, Some(_))) => {
            let v = to_json(b);
            (v.to_string(), Some(v))
        }
        _ => (String::new(), None),
    };
    let mut e = Event::new(Kind::Log, lvl, message);
    let nanos = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    e.resource = resource.clone();
    e.trace_id = trace_id;
    e.span_id = span_id;
    e.attributes = scoped.clone();
    for kv in &r.attributes {
        // The server's attributes (which project and key sent it) are not the client's to set.
        if common.contains_key(&kv.key) {
            continue;
        }
        e.attributes.insert(
            kv.key.clone(),
            kv.value.as_ref().map_or(Value::Null, to_json),
        );
    }
    // Believed within the window around the receive time; else the receive time, and the
    // record's time kept in `client.timestamp` (a 64-bit number: a string, as OTLP/JSON).
    e.timestamp = if nanos != 0 {
        crate::time::settle(nanos, now, nanos.to_string().into(), &mut e.attributes)
    } else {
        now
    };
    e.id = tracepost_core::event::new_id(e.timestamp);
    if let Some(v) = body_attr {
        e.attributes.insert("log.body".into(), v);
    }
    if !r.severity_text.is_empty() {
        e.attributes
            .insert("log.severity_text".into(), r.severity_text.clone().into());
    }
    if r.severity_number >= 17 {
        e.attributes
            .insert("log.severity_number".into(), r.severity_number.into());
    }
    if !r.event_name.is_empty() {
        e.attributes
            .insert("event.name".into(), r.event_name.clone().into());
    }
    e.attributes.insert("ingest.source".into(), "otlp".into());
    Ok(e)
}
