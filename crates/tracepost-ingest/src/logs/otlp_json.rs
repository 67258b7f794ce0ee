//! The OTLP/JSON encoding of `ExportLogsServiceRequest` (OTLP spec, "JSON Protobuf
//! Encoding"): lowerCamelCase field names, `traceId`/`spanId` as hex (not base64), other
//! `bytes` as base64, enums as integers, 64-bit integers as decimal strings (numbers are
//! accepted too), unknown fields ignored. Decoded into the [`proto`] messages
//! so both encodings share one mapping.

use base64::Engine as _;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::bound::{json_records, json_values, JsonBudget, OtlpLimits};
use super::proto;
use crate::error::IngestError;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Request {
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    resource: Option<Resource>,
    scope_logs: Vec<ScopeLogs>,
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    #[serde(deserialize_with = "json_values")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "uint")]
    dropped_attributes_count: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    scope: Option<Scope>,
    #[serde(deserialize_with = "json_records")]
    log_records: Vec<LogRecord>,
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Scope {
    name: String,
    version: String,
    #[serde(deserialize_with = "json_values")]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LogRecord {
    #[serde(deserialize_with = "uint")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "uint")]
    observed_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    severity_number: i64,
    severity_text: String,
    body: Option<AnyValue>,
    #[serde(deserialize_with = "json_values")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "uint")]
    dropped_attributes_count: u64,
    #[serde(deserialize_with = "uint")]
    flags: u64,
    trace_id: String,
    span_id: String,
    event_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyValue {
    key: String,
    value: Option<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    #[serde(deserialize_with = "opt_int")]
    int_value: Option<i64>,
    #[serde(deserialize_with = "opt_double")]
    double_value: Option<f64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KvList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ArrayValue {
    #[serde(deserialize_with = "json_values")]
    values: Vec<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KvList {
    #[serde(deserialize_with = "json_values")]
    values: Vec<KeyValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
    S(String),
}

fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(0),
        Some(Num::U(n)) => Ok(n),
        Some(Num::S(s)) => s
            .parse()
            .map_err(|_| de::Error::custom(format!("{s:?} is not an unsigned 64-bit integer"))),
        Some(Num::I(_)) | Some(Num::F(_)) => {
            Err(de::Error::custom("expected an unsigned 64-bit integer"))
        }
    }
}

fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_int(d)?.unwrap_or(0))
}

fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(Num::I(n)) => Ok(Some(n)),
        Some(Num::U(n)) => i64::try_from(n)
            .map(Some)
            .map_err(|_| de::Error::custom("integer out of the 64-bit signed range")),
        Some(Num::S(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{s:?} is not a 64-bit integer"))),
        Some(Num::F(_)) => Err(de::Error::custom("expected an integer")),
    }
}

fn opt_double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(Num::F(n)) => Ok(Some(n)),
        Some(Num::U(n)) => Ok(Some(n as f64)),
        Some(Num::I(n)) => Ok(Some(n as f64)),
        // The proto3 JSON mapping spells the special values as strings.
        Some(Num::S(s)) => match s.as_str() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            _ => s
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("{s:?} is not a number"))),
        },
    }
}

/// Decodes an OTLP/JSON logs request. `Err` carries serde's message (with line and column).
/// `traceId`/`spanId` that are not hex stay as given bytes-less markers: the mapping rejects
/// those records one by one (partial success), so they are decoded to an odd-length vector.
///
/// The record and attribute lists are counted while they deserialize: past `limits` the
/// decode stops (`413 too_many_records` / `413 too_many_attributes`); other errors are
/// `400 malformed_json`.
pub fn decode(
    body: &[u8],
    limits: OtlpLimits,
) -> Result<proto::ExportLogsServiceRequest, IngestError> {
    let budget = JsonBudget::start(limits);
    let req: Request = serde_json::from_slice(body).map_err(|e| {
        budget
            .exceeded()
            .unwrap_or_else(|| IngestError::malformed_json(e.to_string()))
    })?;
    drop(budget);
    Ok(proto::ExportLogsServiceRequest {
        resource_logs: req.resource_logs.into_iter().map(resource_logs).collect(),
    })
}

fn resource_logs(r: ResourceLogs) -> proto::ResourceLogs {
    proto::ResourceLogs {
        resource: r.resource.map(|r| proto::Resource {
            attributes: r.attributes.into_iter().map(kv).collect(),
            dropped_attributes_count: r.dropped_attributes_count.min(u32::MAX as u64) as u32,
        }),
        scope_logs: r
            .scope_logs
            .into_iter()
            .map(|s| proto::ScopeLogs {
                scope: s.scope.map(|s| proto::InstrumentationScope {
                    name: s.name,
                    version: s.version,
                    attributes: s.attributes.into_iter().map(kv).collect(),
                    dropped_attributes_count: 0,
                }),
                log_records: s.log_records.into_iter().map(record).collect(),
                schema_url: s.schema_url,
            })
            .collect(),
        schema_url: r.schema_url,
    }
}

/// Hex ids (any case). An id that is not hex becomes one `0xFF` byte: a length no valid id
/// has, so the mapping rejects the record.
fn hex_id(s: &str) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    hex::decode(s).unwrap_or_else(|_| vec![0xFF])
}

fn record(r: LogRecord) -> proto::LogRecord {
    proto::LogRecord {
        time_unix_nano: r.time_unix_nano,
        observed_time_unix_nano: r.observed_time_unix_nano,
        severity_number: r.severity_number.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        severity_text: r.severity_text,
        body: r.body.map(any),
        attributes: r.attributes.into_iter().map(kv).collect(),
        dropped_attributes_count: r.dropped_attributes_count.min(u32::MAX as u64) as u32,
        flags: r.flags.min(u32::MAX as u64) as u32,
        trace_id: hex_id(&r.trace_id),
        span_id: hex_id(&r.span_id),
        event_name: r.event_name,
    }
}

fn kv(k: KeyValue) -> proto::KeyValue {
    proto::KeyValue {
        key: k.key,
        value: k.value.map(any),
    }
}

fn any(v: AnyValue) -> proto::AnyValue {
    use proto::Value as V;
    let value = if let Some(s) = v.string_value {
        Some(V::StringValue(s))
    } else if let Some(b) = v.bool_value {
        Some(V::BoolValue(b))
    } else if let Some(i) = v.int_value {
        Some(V::IntValue(i))
    } else if let Some(d) = v.double_value {
        Some(V::DoubleValue(d))
    } else if let Some(a) = v.array_value {
        Some(V::ArrayValue(proto::ArrayValue {
            values: a.values.into_iter().map(any).collect(),
        }))
    } else if let Some(l) = v.kvlist_value {
        Some(V::KvlistValue(proto::KeyValueList {
            values: l.values.into_iter().map(kv).collect(),
        }))
    } else {
        v.bytes_value.map(|b| {
            V::BytesValue(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .unwrap_or_else(|_| b.into_bytes()),
            )
        })
    };
    proto::AnyValue { value }
}
