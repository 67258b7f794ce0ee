//! How much one OTLP request may carry, counted **before** the decoder allocates.
//!
//! An empty `LogRecord` is 2 bytes of protobuf (about 3 of JSON), and gzip shrinks a run of
//! them ~500×: within the byte limits a request of a few kilobytes could otherwise become
//! millions of events (a measured 2.45 GB for 1,000,000). So:
//!
//! - protobuf: [`check_protobuf`] walks the wire format (keys, varints, lengths; no
//!   allocation) and stops at the first record or attribute value past the limit;
//! - JSON: the record and attribute lists deserialize through a counting visitor
//!   (`JsonBudget`) that fails at the first element past the limit;
//! - both: [`check_mapped`] bounds the attribute values the events will carry, where every
//!   record gets a copy of its resource's attributes.
//!
//! Over a limit the request is refused whole: `413 too_many_records` /
//! `413 too_many_attributes`, naming the limit and its setting.

use std::cell::Cell;

use http::StatusCode;
use prost::encoding::decode_varint;

use super::proto;
use crate::error::IngestError;

/// The default of `max_records` (most log records per OTLP request): above what real
/// exporters send — the OTel SDKs' batch processors export at most 512 records, the
/// Collector's batch processor sends 8,192 by default.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

/// The default of `max_attributes` (most attribute values per OTLP request, as mapped onto
/// events): 20 per record at [`DEFAULT_MAX_RECORDS`] records, 24 at the Collector's 8,192.
/// Every key-value and array element counts, at any depth; a resource's attributes count
/// once per record of it. Each decoded attribute costs ~435 bytes of memory (a tester's
/// 900,000 in one 2 MB gzipped request took ~390 MB), so this bounds a request to ~90 MB.
pub const DEFAULT_MAX_ATTRIBUTES: usize = 200_000;

/// The per-request limits of the OTLP route (from
/// [`LogIngestConfig`](super::LogIngestConfig)'s `max_records` and `max_attributes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpLimits {
    /// Most log records in one request.
    pub max_records: usize,
    /// Most attribute values in one request's events (see [`DEFAULT_MAX_ATTRIBUTES`]).
    pub max_attributes: usize,
}

impl Default for OtlpLimits {
    fn default() -> Self {
        OtlpLimits {
            max_records: DEFAULT_MAX_RECORDS,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
        }
    }
}

/// `413 too_many_records`.
pub fn too_many_records(limit: usize) -> IngestError {
    IngestError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_records",
        format!(
            "the request carries more than {limit} log records (max_records); send smaller batches"
        ),
    )
}

/// `413 too_many_attributes`.
pub fn too_many_attributes(limit: usize) -> IngestError {
    IngestError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_attributes",
        format!(
            "the request's records carry more than {limit} attribute values (max_attributes; \
             resource attributes count once per record); send smaller batches"
        ),
    )
}

/// Why a walk stopped.
enum Stop {
    Records,
    Attributes,
    /// Not valid protobuf: left for the decoder to report precisely.
    Malformed,
}

/// The deepest `AnyValue` nesting walked (prost's own recursion limit is 100).
const MAX_DEPTH: u32 = 100;

struct Walk {
    limits: OtlpLimits,
    records: usize,
    values: usize,
}

impl Walk {
    fn record(&mut self) -> Result<(), Stop> {
        self.records += 1;
        if self.records > self.limits.max_records {
            return Err(Stop::Records);
        }
        Ok(())
    }

    fn value(&mut self) -> Result<(), Stop> {
        self.values += 1;
        if self.values > self.limits.max_attributes {
            return Err(Stop::Attributes);
        }
        Ok(())
    }
}

/// Calls `f(tag, payload)` for each length-delimited field of `buf`, skipping the others.
fn fields(mut buf: &[u8], mut f: impl FnMut(u32, &[u8]) -> Result<(), Stop>) -> Result<(), Stop> {
    while !buf.is_empty() {
        let key = decode_varint(&mut buf).map_err(|_| Stop::Malformed)?;
        let tag = (key >> 3) as u32;
        match key & 7 {
            0 => {
                decode_varint(&mut buf).map_err(|_| Stop::Malformed)?;
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or(Stop::Malformed)?;
            }
            2 => {
                let len = decode_varint(&mut buf).map_err(|_| Stop::Malformed)?;
                let len = usize::try_from(len).map_err(|_| Stop::Malformed)?;
                let payload = buf.get(..len).ok_or(Stop::Malformed)?;
                buf = &buf[len..];
                f(tag, payload)?;
            }
            _ => return Err(Stop::Malformed),
        }
    }
    Ok(())
}

/// A `KeyValue`: counts itself and walks its value.
fn key_value(w: &mut Walk, buf: &[u8], depth: u32) -> Result<(), Stop> {
    w.value()?;
    fields(
        buf,
        |tag, p| if tag == 2 { any(w, p, depth) } else { Ok(()) },
    )
}

/// An `AnyValue`: array elements and key-value list entries count, recursively.
fn any(w: &mut Walk, buf: &[u8], depth: u32) -> Result<(), Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Malformed);
    }
    fields(buf, |tag, p| match tag {
        5 => fields(p, |t, v| {
            if t == 1 {
                w.value()?;
                any(w, v, depth + 1)
            } else {
                Ok(())
            }
        }),
        6 => fields(p, |t, kv| {
            if t == 1 {
                key_value(w, kv, depth + 1)
            } else {
                Ok(())
            }
        }),
        _ => Ok(()),
    })
}

/// Counts the records and attribute values of a protobuf `ExportLogsServiceRequest` without
/// decoding it, stopping at the first past a limit. Errors: `413 too_many_records`,
/// `413 too_many_attributes`. Malformed input passes (the decoder then reports it).
pub fn check_protobuf(body: &[u8], limits: OtlpLimits) -> Result<(), IngestError> {
    let mut w = Walk {
        limits,
        records: 0,
        values: 0,
    };
    let walked = fields(body, |tag, rl| {
        if tag != 1 {
            return Ok(());
        }
        fields(rl, |tag, p| match tag {
            // Resource.attributes
            1 => fields(p, |t, kv| {
                if t == 1 {
                    key_value(&mut w, kv, 0)
                } else {
                    Ok(())
                }
            }),
            // ScopeLogs: scope (attributes = 3) and log_records (2)
            2 => fields(p, |t, q| match t {
                1 => fields(q, |t, kv| {
                    if t == 3 {
                        key_value(&mut w, kv, 0)
                    } else {
                        Ok(())
                    }
                }),
                2 => {
                    w.record()?;
                    fields(q, |t, v| match t {
                        5 => any(&mut w, v, 0),
                        6 => key_value(&mut w, v, 0),
                        _ => Ok(()),
                    })
                }
                _ => Ok(()),
            }),
            _ => Ok(()),
        })
    });
    match walked {
        Ok(()) | Err(Stop::Malformed) => Ok(()),
        Err(Stop::Records) => Err(too_many_records(limits.max_records)),
        Err(Stop::Attributes) => Err(too_many_attributes(limits.max_attributes)),
    }
}

/// Attribute values of `AnyValue`s, counted as [`check_protobuf`] does.
fn deep(kvs: &[proto::KeyValue]) -> usize {
    kvs.iter()
        .map(|kv| 1 + kv.value.as_ref().map_or(0, inside))
        .sum()
}

/// The attribute values inside one `AnyValue` (array elements, key-value entries).
fn inside(v: &proto::AnyValue) -> usize {
    match &v.value {
        Some(proto::Value::ArrayValue(a)) => a.values.iter().map(|v| 1 + inside(v)).sum(),
        Some(proto::Value::KvlistValue(l)) => deep(&l.values),
        _ => 0,
    }
}

/// Bounds the attribute values the events of a decoded request will carry: each record's
/// own (and its body's), plus a copy of its resource's. Errors: `413 too_many_attributes`.
pub fn check_mapped(
    req: &proto::ExportLogsServiceRequest,
    limits: OtlpLimits,
) -> Result<(), IngestError> {
    let mut total = 0usize;
    for rl in &req.resource_logs {
        let per_record = rl.resource.as_ref().map_or(0, |r| deep(&r.attributes));
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let body = r.body.as_ref().map_or(0, inside);
                total = total
                    .saturating_add(per_record)
                    .saturating_add(deep(&r.attributes))
                    .saturating_add(body);
                if total > limits.max_attributes {
                    return Err(too_many_attributes(limits.max_attributes));
                }
            }
        }
    }
    Ok(())
}

thread_local! {
    /// The JSON decoder's remaining budget: (records, attribute values, which ran out).
    static BUDGET: Cell<Option<(usize, usize, Option<bool>)>> = const { Cell::new(None) };
}

/// The budget of one JSON decode on this thread: while it lives, the counting visitors
/// ([`json_records`], [`json_values`]) fail past the limits; [`JsonBudget::exceeded`] then
/// says which limit it was.
pub(crate) struct JsonBudget {
    limits: OtlpLimits,
}

impl JsonBudget {
    pub(crate) fn start(limits: OtlpLimits) -> Self {
        BUDGET.with(|b| b.set(Some((limits.max_records, limits.max_attributes, None))));
        JsonBudget { limits }
    }

    /// The error for the limit that stopped the decode, if one did.
    pub(crate) fn exceeded(&self) -> Option<IngestError> {
        match BUDGET.with(Cell::get) {
            Some((_, _, Some(true))) => Some(too_many_records(self.limits.max_records)),
            Some((_, _, Some(false))) => Some(too_many_attributes(self.limits.max_attributes)),
            _ => None,
        }
    }
}

impl Drop for JsonBudget {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(None));
    }
}

/// Takes one record (`true`) or attribute value from the budget; `false` when it ran out.
fn take(record: bool) -> bool {
    BUDGET.with(|b| match b.get() {
        None => true,
        Some((r, v, hit)) => {
            let left = if record { r } else { v };
            if left == 0 {
                b.set(Some((r, v, hit.or(Some(record)))));
                false
            } else if record {
                b.set(Some((r - 1, v, hit)));
                true
            } else {
                b.set(Some((r, v - 1, hit)));
                true
            }
        }
    })
}

struct Counted<T> {
    record: bool,
    marker: std::marker::PhantomData<T>,
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Counted<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // The size hint is the client's word: not trusted for the allocation.
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            if !take(self.record) {
                return Err(serde::de::Error::custom(if self.record {
                    "too many log records"
                } else {
                    "too many attribute values"
                }));
            }
            out.push(v);
        }
        Ok(out)
    }
}

/// `deserialize_with` for a list of log records: counted against `max_records`.
pub(crate) fn json_records<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    d.deserialize_seq(Counted {
        record: true,
        marker: std::marker::PhantomData,
    })
}

/// `deserialize_with` for a list of key-values or array elements: counted against
/// `max_attributes`.
pub(crate) fn json_values<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    d.deserialize_seq(Counted {
        record: false,
        marker: std::marker::PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use proto::{AnyValue, ArrayValue, KeyValue, KeyValueList, Value as V};

    fn int(i: i64) -> AnyValue {
        AnyValue {
            value: Some(V::IntValue(i)),
        }
    }

    fn array(n: i64) -> AnyValue {
        AnyValue {
            value: Some(V::ArrayValue(ArrayValue {
                values: (0..n).map(int).collect(),
            })),
        }
    }

    /// The wire walk, the JSON visitor and the count after decoding agree: 8 values here
    /// (`a`, `a.x`, its 2 elements, `b`; the body's 3 elements), 2 records.
    #[test]
    fn the_counts_agree_and_are_exact() {
        let record = proto::LogRecord {
            body: Some(array(3)),
            attributes: vec![
                KeyValue {
                    key: "a".into(),
                    value: Some(AnyValue {
                        value: Some(V::KvlistValue(KeyValueList {
                            values: vec![KeyValue {
                                key: "x".into(),
                                value: Some(array(2)),
                            }],
                        })),
                    }),
                },
                KeyValue {
                    key: "b".into(),
                    value: Some(int(1)),
                },
            ],
            ..Default::default()
        };
        let req = proto::ExportLogsServiceRequest {
            resource_logs: vec![proto::ResourceLogs {
                scope_logs: vec![proto::ScopeLogs {
                    log_records: vec![record, proto::LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = req.encode_to_vec();
        let json = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
            "body": {"arrayValue": {"values": [{"intValue": 0}, {"intValue": 1}, {"intValue": 2}]}},
            "attributes": [
                {"key": "a", "value": {"kvlistValue": {"values": [{"key": "x", "value":
                    {"arrayValue": {"values": [{"intValue": 0}, {"intValue": 1}]}}}]}}},
                {"key": "b", "value": {"intValue": 1}}
            ]}, {}]}]}]})
        .to_string();
        let limits = |max_records, max_attributes| OtlpLimits {
            max_records,
            max_attributes,
        };
        let code = |r: Result<(), IngestError>| r.err().map(|e| e.code().to_owned());
        let json_code = |l| code(super::super::otlp_json::decode(json.as_bytes(), l).map(|_| ()));
        for (l, want) in [
            (limits(2, 8), None),
            (limits(2, 7), Some("too_many_attributes")),
            (limits(1, 8), Some("too_many_records")),
        ] {
            assert_eq!(code(check_protobuf(&bytes, l)).as_deref(), want, "{l:?}");
            assert_eq!(json_code(l).as_deref(), want, "{l:?}");
            if want != Some("too_many_records") {
                assert_eq!(code(check_mapped(&req, l)).as_deref(), want, "{l:?}");
            }
        }
    }
}
