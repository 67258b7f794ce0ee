//! Property tests of the log decoders: the OTLP protobuf and JSON decoders (and the mapping
//! onto events) and the batch parser never panic, and every reject is a 4xx with a code.
//! Inputs: random bytes, mutated valid requests, and random JSON shaped like the real thing.
//!
//! Bounded in CI by proptest's default (256 cases per property). The 1M-input run:
//! `PROPTEST_CASES=250000 cargo test --release -p tracepost-ingest --test logs_proptest`
//! (4 properties × 250,000 cases; see the book's "Send logs from any language").

use proptest::prelude::*;
use prost::Message;
use serde_json::{json, Map, Value};
use tracepost_ingest::logs::{batch, decode_otlp, otlp, proto};

fn check_otlp(body: &[u8], protobuf: bool) {
    match decode_otlp(body, protobuf) {
        Ok(req) => {
            let m = otlp::to_events(&req, &Map::new());
            assert!(m.rejected >= 0);
        }
        Err(e) => assert!(e.status().is_client_error(), "{e:?}"),
    }
}

fn check_batch(body: &[u8]) {
    if let Err(e) = batch::parse(body, 250, &Map::new()) {
        assert!(e.status().is_client_error(), "{e:?}");
        assert!(!e.code().is_empty());
    }
}

fn valid_proto() -> Vec<u8> {
    use proto::*;
    let s = |v: &str| AnyValue {
        value: Some(Value::StringValue(v.into())),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(s("svc")),
                }],
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    time_unix_nano: 1,
                    severity_number: 9,
                    body: Some(s("hello")),
                    trace_id: vec![7; 16],
                    span_id: vec![7; 8],
                    attributes: vec![KeyValue {
                        key: "k".into(),
                        value: Some(AnyValue {
                            value: Some(Value::ArrayValue(ArrayValue {
                                values: vec![s("a"), s("b")],
                            })),
                        }),
                    }],
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

/// JSON values biased toward the shapes the decoders look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9 ._:-]{0,40}".prop_map(Value::String),
        Just(json!("4bf92f3577b34da6a3ce929d0e0e4736")),
        Just(json!("2026-11-29T10:00:00Z")),
        Just(json!("18446744073709551616")),
    ];
    let keys = prop_oneof![
        Just("service"),
        Just("logs"),
        Just("message"),
        Just("level"),
        Just("timestamp"),
        Just("context"),
        Just("trace_id"),
        Just("span_id"),
        Just("resourceLogs"),
        Just("scopeLogs"),
        Just("logRecords"),
        Just("body"),
        Just("stringValue"),
        Just("intValue"),
        Just("doubleValue"),
        Just("kvlistValue"),
        Just("arrayValue"),
        Just("values"),
        Just("key"),
        Just("value"),
        Just("attributes"),
        Just("traceId"),
        Just("spanId"),
        Just("timeUnixNano"),
        Just("severityNumber"),
        Just("bytesValue"),
        Just("resource"),
        Just("scope"),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kvs| {
                Value::Object(kvs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #[test]
    fn otlp_protobuf_never_panics(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        random in prop::collection::vec(any::<u8>(), 0..256),
        use_random in any::<bool>(),
    ) {
        let mut body = if use_random { random } else { valid_proto() };
        if !body.is_empty() {
            for (i, b) in mutations {
                let i = i.index(body.len());
                body[i] = b;
            }
        }
        check_otlp(&body, true);
    }

    #[test]
    fn otlp_json_never_panics(v in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let wrapped = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [v.clone()]}]}]});
        check_otlp(wrapped.to_string().as_bytes(), false);
        check_otlp(v.to_string().as_bytes(), false);
        check_otlp(&raw, false);
    }

    #[test]
    fn batch_never_panics(v in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let wrapped = json!({"service": "s", "logs": [v.clone()]});
        check_batch(wrapped.to_string().as_bytes());
        check_batch(v.to_string().as_bytes());
        check_batch(&raw);
    }

    #[test]
    fn batch_valid_logs_are_accepted(
        msgs in prop::collection::vec("\\PC{0,50}", 1..20),
        level in prop_oneof![Just("debug"), Just("INFO"), Just("warning"), Just("fatal")],
    ) {
        let logs: Vec<Value> = msgs.iter().map(|m| json!({"message": m, "level": level, "context": {"m": m}})).collect();
        let body = json!({"service": "s", "logs": logs}).to_string();
        let events = batch::parse(body.as_bytes(), 250, &Map::new()).unwrap();
        prop_assert_eq!(events.len(), msgs.len());
        for (e, m) in events.iter().zip(&msgs) {
            prop_assert_eq!(&e.message, m);
        }
    }
}
