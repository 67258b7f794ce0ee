//! The server-to-server log routes over real HTTP (axum on a loopback port, reqwest as the
//! sender): the JSON batch, OTLP/HTTP in protobuf and JSON (gzip too), partial success, API
//! keys, HMAC signing (stale, wrong, prefix-only), limits, rate limits with `Retry-After`,
//! and planted secrets that must reach no sink.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::{json, Value};
use tracepost_core::testing::MemorySink;
use tracepost_core::{Event, Kind, Level, Tracepost};
use tracepost_ingest::logs::{keys, proto, StaticKeys};
use tracepost_ingest::{LogIngest, LogIngestConfig};

const KEY: &str = "tpk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SIGNED_KEY: &str = "tpk_ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

struct Server {
    base: String,
    tp: Option<Tracepost>,
    sink: MemorySink,
    client: reqwest::Client,
}

impl Server {
    async fn start(config: LogIngestConfig) -> Server {
        let sink = MemorySink::new("memory");
        let tp = Tracepost::builder()
            .service("host-app")
            .sink(sink.clone())
            .build()
            .unwrap();
        let store = StaticKeys::new([("shop", KEY)], false);
        let signed = StaticKeys::new([("billing", SIGNED_KEY)], true);
        let store = Both(store, signed);
        let logs = LogIngest::new(tp.handle(), config, Arc::new(store)).unwrap();
        let app: axum::Router = tracepost_ingest::logs_router(logs);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Server {
            base: format!("http://{addr}/tracepost"),
            tp: Some(tp),
            sink,
            client: reqwest::Client::new(),
        }
    }

    fn batch(&self, key: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/batch", self.base))
            .header("content-type", "application/json")
            .header("x-tracepost-key", key)
    }

    fn otlp(&self, content_type: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/logs", self.base))
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {KEY}"))
    }

    async fn stored(&mut self) -> Vec<Event> {
        if let Some(tp) = self.tp.take() {
            tp.shutdown(Duration::from_secs(5)).await;
        }
        self.sink.stored()
    }
}

/// Two static stores as one (the test's two projects).
struct Both(StaticKeys, StaticKeys);

impl keys::KeyStore for Both {
    fn by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> keys::BoxFuture<'a, Result<Vec<keys::KeyRecord>, String>> {
        Box::pin(async move {
            let mut a = self.0.by_prefix(prefix).await?;
            a.extend(self.1.by_prefix(prefix).await?);
            Ok(a)
        })
    }
    fn touch(&self, _: Vec<(i64, SystemTime)>) -> keys::BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A record time an hour ago, with nanoseconds (client times are believed within 7 days of
/// the receive time: fixed dates would age out of the window).
static RECENT_NS: std::sync::LazyLock<u64> =
    std::sync::LazyLock::new(|| (now_s() - 3600) * 1_000_000_000 + 123_456_789);

/// [`RECENT_NS`] in milliseconds, and as RFC 3339 with milliseconds.
fn recent_ms() -> u64 {
    *RECENT_NS / 1_000_000
}

fn recent_rfc3339() -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(recent_ms())).to_string()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn batch_is_captured_with_project_and_key() {
    let mut s = Server::start(LogIngestConfig::new()).await;
    let body = json!({"service": "billing", "environment": "prod", "logs": [
        {"timestamp": recent_rfc3339(), "level": "error", "message": "charge failed",
         "context": {"order_id": 42}, "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"},
        {"timestamp": recent_ms() / 1000 * 1000, "level": "warning", "message": "slow"},
        {"message": "default level"}
    ]});
    let r = s.batch(KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"accepted": 3}));
    let events = s.stored().await;
    assert_eq!(events.len(), 3);
    let e = events
        .iter()
        .find(|e| e.message == "charge failed")
        .unwrap();
    assert_eq!(e.kind, Kind::Log);
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.resource.service, "billing");
    assert_eq!(e.resource.environment.as_deref(), Some("prod"));
    assert_eq!(
        e.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(e.attributes["order_id"], 42);
    assert_eq!(e.attributes["ingest.project"], "shop");
    assert_eq!(e.attributes["ingest.key"], &KEY[..12]);
    assert_eq!(e.attributes["ingest.source"], "batch");
    assert_eq!(e.timestamp.unix_nanos(), recent_ms() * 1_000_000);
    let slow = events.iter().find(|e| e.message == "slow").unwrap();
    assert_eq!(slow.level, Level::Warn);
    assert_eq!(
        slow.timestamp.unix_nanos(),
        recent_ms() / 1000 * 1_000_000_000
    );
    let d = events
        .iter()
        .find(|e| e.message == "default level")
        .unwrap();
    assert_eq!(d.level, Level::Info);
}

#[tokio::test]
async fn batch_errors_name_index_and_field() {
    let s = Server::start(LogIngestConfig::new().max_batch_events(3)).await;
    let cases = [
        (
            json!({"logs": [{"message": "x"}]}),
            "missing_field",
            "/service",
        ),
        (json!({"service": "a"}), "missing_field", "/logs"),
        (
            json!({"service": "a", "logs": []}),
            "invalid_field",
            "/logs",
        ),
        (
            json!({"service": "a", "logs": [{"message": "ok"}, {"message": "x", "level": "loud"}]}),
            "invalid_field",
            "/logs/1/level",
        ),
        (
            json!({"service": "a", "logs": [{"message": "ok"}, {"message": "ok"}, {"level": "info"}]}),
            "missing_field",
            "/logs/2/message",
        ),
        (
            json!({"service": "a", "logs": [{"message": "x", "timestamp": "yesterday"}]}),
            "invalid_field",
            "/logs/0/timestamp",
        ),
        (
            json!({"service": "a", "logs": [{"message": "x", "context": [1]}]}),
            "invalid_field",
            "/logs/0/context",
        ),
        (
            json!({"service": "a", "logs": [{"message": "x", "msg": "typo"}]}),
            "invalid_field",
            "/logs/0/msg",
        ),
        (
            json!({"service": "a", "logs": [{"message": "x", "trace_id": "xyz"}]}),
            "invalid_field",
            "/logs/0/trace_id",
        ),
        (
            json!({"service": "a", "logs": [{"message": "1"}, {"message": "2"}, {"message": "3"}, {"message": "4"}]}),
            "too_many_events",
            "/logs",
        ),
    ];
    for (body, code, field) in cases {
        let (status, err) = error_of(s.batch(KEY).json(&body).send().await.unwrap()).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert_eq!(err["error"]["code"], code, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{body} → {err}");
    }
    let (status, err) = error_of(s.batch(KEY).body("{not json").send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
}

#[tokio::test]
async fn keys_and_limits() {
    let s = Server::start(LogIngestConfig::new().max_batch_bytes(1024)).await;
    let ok = json!({"service": "a", "logs": [{"message": "x"}]});
    let r = s
        .client
        .post(format!("{}/v1/batch", s.base))
        .header("content-type", "application/json")
        .json(&ok)
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("missing_key"))
    );
    let wrong = format!("tpk_{}", "ab".repeat(32));
    let (status, err) = error_of(s.batch(&wrong).json(&ok).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("invalid_key"))
    );
    // Same prefix, other secret.
    let forged = format!("{}{}", &KEY[..12], "0".repeat(56));
    let (status, _) = error_of(s.batch(&forged).json(&ok).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let (status, err) = error_of(s.batch("pk_browser").json(&ok).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("invalid_key"))
    );
    let big = json!({"service": "a", "logs": [{"message": "x".repeat(2000)}]});
    let (status, err) = error_of(s.batch(KEY).json(&big).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    // A gzip body within the limit that inflates past it.
    let bomb = serde_json::to_vec(&big).unwrap();
    let r = s
        .batch(KEY)
        .header("content-encoding", "gzip")
        .body(gzip(&bomb))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("decompressed_too_large"))
    );
    let r = s
        .batch(KEY)
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

fn signed(s: &Server, key: &str, hash_of: &str, ts: u64, body: &[u8]) -> reqwest::RequestBuilder {
    s.batch(key)
        .header("x-tracepost-timestamp", ts.to_string())
        .header(
            "x-tracepost-signature",
            keys::sign(&keys::hash(hash_of), ts, body),
        )
        .body(body.to_vec())
}

#[tokio::test]
async fn hmac_signing() {
    let mut s = Server::start(LogIngestConfig::new()).await;
    let body =
        serde_json::to_vec(&json!({"service": "a", "logs": [{"message": "signed"}]})).unwrap();
    // The signed key's requests must carry a signature.
    let (status, err) =
        error_of(s.batch(SIGNED_KEY).body(body.clone()).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );
    // Prefix only + signature: accepted; so is the whole key + signature.
    let r = signed(&s, &SIGNED_KEY[..12], SIGNED_KEY, now_s(), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = signed(&s, SIGNED_KEY, SIGNED_KEY, now_s() - 200, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Stale (6 minutes), either way.
    for ts in [now_s() - 360, now_s() + 360] {
        let (status, err) = error_of(
            signed(&s, &SIGNED_KEY[..12], SIGNED_KEY, ts, &body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (401, Some("stale")),
            "{err}"
        );
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("stale"));
    }
    // Signed with another key's hash, or over another body.
    let (status, err) = error_of(
        signed(&s, &SIGNED_KEY[..12], KEY, now_s(), &body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let ts = now_s();
    let r = s
        .batch(&SIGNED_KEY[..12])
        .header("x-tracepost-timestamp", ts.to_string())
        .header(
            "x-tracepost-signature",
            keys::sign(&keys::hash(SIGNED_KEY), ts, b"{}"),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A gzip body is signed as sent.
    let gz = gzip(&body);
    let r = signed(&s, &SIGNED_KEY[..12], SIGNED_KEY, now_s(), &gz)
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // An unsigned key may sign; a prefix alone without signature is refused.
    let (status, _) = error_of(s.batch(&KEY[..12]).body(body.clone()).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let events = s.stored().await;
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.attributes["ingest.project"] == "billing"));
}

#[tokio::test]
async fn require_signature_by_config() {
    let s = Server::start(LogIngestConfig::new().require_signature(true)).await;
    let body = serde_json::to_vec(&json!({"service": "a", "logs": [{"message": "x"}]})).unwrap();
    let (status, err) = error_of(s.batch(KEY).body(body.clone()).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );
    let r = signed(&s, KEY, KEY, now_s(), &body).send().await.unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn flood_gets_429_with_retry_after() {
    let s = Server::start(LogIngestConfig::new().per_key_limit(1, 3)).await;
    let ok = json!({"service": "a", "logs": [{"message": "x"}]});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = s.batch(KEY).json(&ok).send().await.unwrap();
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let (_, err) = error_of(r).await;
            assert_eq!(err["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..3], &[202, 202, 202]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs));
}

fn otlp_request() -> proto::ExportLogsServiceRequest {
    use proto::*;
    let s = |v: &str| AnyValue {
        value: Some(Value::StringValue(v.into())),
    };
    let kv = |k: &str, v: AnyValue| KeyValue {
        key: k.into(),
        value: Some(v),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("deployment.environment.name", s("staging")),
                    kv("service.version", s("1.4.2")),
                    kv("k8s.pod.name", s("checkout-7d9")),
                ],
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.payments".into(),
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: *RECENT_NS,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(s("payment declined")),
                        attributes: vec![
                            kv(
                                "http.status_code",
                                AnyValue {
                                    value: Some(Value::IntValue(402)),
                                },
                            ),
                            kv("password", s("hunter2-planted")),
                        ],
                        trace_id: (1..=16).collect(),
                        span_id: (1..=8).collect(),
                        ..Default::default()
                    },
                    LogRecord {
                        severity_number: 0,
                        severity_text: "warning".into(),
                        body: Some(AnyValue {
                            value: Some(Value::KvlistValue(KeyValueList {
                                values: vec![kv("event", s("retry"))],
                            })),
                        }),
                        ..Default::default()
                    },
                    // A trace id of the wrong length: rejected alone.
                    LogRecord {
                        body: Some(s("bad ids")),
                        trace_id: vec![1, 2, 3],
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn check_otlp_events(events: &[Event]) {
    assert_eq!(events.len(), 2, "{events:?}");
    let e = events
        .iter()
        .find(|e| e.message == "payment declined")
        .unwrap();
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.kind, Kind::Log);
    assert_eq!(e.resource.service, "checkout");
    assert_eq!(e.resource.environment.as_deref(), Some("staging"));
    assert_eq!(e.resource.release.as_deref(), Some("1.4.2"));
    assert_eq!(
        e.trace_id.as_deref(),
        Some("0102030405060708090a0b0c0d0e0f10")
    );
    assert_eq!(e.span_id.as_deref(), Some("0102030405060708"));
    assert_eq!(e.timestamp.unix_nanos(), *RECENT_NS);
    assert_eq!(e.attributes["http.status_code"], 402);
    assert_eq!(e.attributes["k8s.pod.name"], "checkout-7d9");
    assert_eq!(e.attributes["otel.scope.name"], "app.payments");
    assert_eq!(e.attributes["log.severity_number"], 17);
    assert_eq!(e.attributes["ingest.source"], "otlp");
    assert_eq!(e.attributes["ingest.project"], "shop");
    assert_ne!(e.attributes["password"], "hunter2-planted");
    let w = events.iter().find(|e| e.level == Level::Warn).unwrap();
    assert_eq!(w.attributes["log.body"], json!({"event": "retry"}));
}

#[tokio::test]
async fn otlp_protobuf_gzip_with_partial_success() {
    let mut s = Server::start(LogIngestConfig::new()).await;
    let body = gzip(&otlp_request().encode_to_vec());
    let r = s
        .otlp("application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let resp = proto::ExportLogsServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let p = resp.partial_success.unwrap();
    assert_eq!(p.rejected_log_records, 1);
    assert!(p.error_message.contains("traceId"), "{}", p.error_message);
    check_otlp_events(&s.stored().await);
}

#[tokio::test]
async fn otlp_json_per_spec() {
    let mut s = Server::start(LogIngestConfig::new()).await;
    // Hex ids, integer enums, 64-bit integers as strings (and as numbers), unknown fields.
    let body = json!({"resourceLogs": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "deployment.environment.name", "value": {"stringValue": "staging"}},
        {"key": "service.version", "value": {"stringValue": "1.4.2"}},
        {"key": "k8s.pod.name", "value": {"stringValue": "checkout-7d9"}}]},
    "scopeLogs": [{"scope": {"name": "app.payments"}, "logRecords": [
        {"timeUnixNano": RECENT_NS.to_string(), "severityNumber": 17, "severityText": "ERROR",
         "body": {"stringValue": "payment declined"},
         "attributes": [{"key": "http.status_code", "value": {"intValue": "402"}},
                        {"key": "password", "value": {"stringValue": "hunter2-planted"}}],
         "traceId": "0102030405060708090A0B0C0D0E0F10", "spanId": "0102030405060708",
         "someFutureField": true},
        {"observedTimeUnixNano": *RECENT_NS, "severityText": "warning",
         "body": {"kvlistValue": {"values": [{"key": "event", "value": {"stringValue": "retry"}}]}}},
        {"body": {"stringValue": "bad ids"}, "traceId": "AQIDBAUGBwgJCgsMDQ4PEA=="}
    ]}]}]});
    let r = s.otlp("application/json").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["partialSuccess"]["rejectedLogRecords"], "1", "{resp}");
    check_otlp_events(&s.stored().await);
}

#[tokio::test]
async fn otlp_rejects_are_4xx_and_not_retryable() {
    let s = Server::start(LogIngestConfig::new()).await;
    let r = s
        .otlp("application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("malformed_protobuf"))
    );
    let r = s
        .otlp("application/json")
        .body("[1,2")
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let r = s
        .otlp("application/json")
        .body(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-5"}]}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s.otlp("text/csv").body("a,b").send().await.unwrap();
    assert_eq!(r.status(), 415);
    // An empty request is a valid export of nothing.
    let r = s.otlp("application/json").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn planted_secrets_reach_no_sink() {
    let mut s = Server::start(LogIngestConfig::new()).await;
    let planted = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let body = json!({"service": "a", "logs": [
        {"message": format!("login with token={planted}"),
         "context": {"password": "hunter2-planted", "nested": {"api_key": planted},
                     "note": format!("Authorization: Bearer {planted}")}}
    ]});
    assert_eq!(s.batch(KEY).json(&body).send().await.unwrap().status(), 202);
    let otlp = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": format!("call failed, token={planted}")},
         "attributes": [{"key": "db.password", "value": {"stringValue": "hunter2-planted"}},
                        {"key": "headers", "value": {"kvlistValue": {"values": [
                            {"key": "authorization", "value": {"stringValue": format!("Bearer {planted}")}}]}}}]}
    ]}]}]});
    assert_eq!(
        s.otlp("application/json")
            .json(&otlp)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let events = s.stored().await;
    assert_eq!(events.len(), 2);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(planted), "{all}");
    assert!(!all.contains("hunter2-planted"), "{all}");
    assert!(!all.contains(KEY), "{all}");
}

/// A protobuf length-delimited field `field` holding `payload`.
fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2];
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// Peak resident memory of this process in KiB (Linux: `VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The tester's finding (issue 13, B1): 1,000,000 empty records are 2 MB of protobuf and
/// under 2 KB gzipped; decoded they took 2.45 GB. Refused whole, before the decoder
/// allocates, in both encodings; the peak memory of the process stays flat.
#[tokio::test]
async fn otlp_records_per_request_are_bounded() {
    // The tester's unit reproduction: 200,000 empty records (400 KB).
    let body = ld(1, &ld(2, &[0x12u8, 0x00].repeat(200_000)));
    let err = tracepost_ingest::logs::decode_otlp(&body, true).unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (413, "too_many_records")
    );

    let mut s = Server::start(LogIngestConfig::new()).await;
    let before = peak_rss_kib();
    let million = gzip(&ld(1, &ld(2, &[0x12u8, 0x00].repeat(1_000_000))));
    assert!(million.len() < 4_000, "{} bytes gzipped", million.len());
    let r = s
        .otlp("application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(million)
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["code"], "too_many_records", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("10000") && message.contains("max_records"),
        "{message}"
    );

    let mut json = String::from(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":["#);
    json.push_str(&["{}"; 1_000_000].join(","));
    json.push_str("]}]}]}");
    let r = s
        .otlp("application/json")
        .header("content-encoding", "gzip")
        .body(gzip(json.as_bytes()))
        .send()
        .await
        .unwrap();
    drop(json);
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_many_records")),
        "{err}"
    );
    let grown_mib = (peak_rss_kib() - before) / 1024;
    eprintln!("peak RSS grew by {grown_mib} MiB for 1,000,000-record requests");
    // The bodies themselves are 2 and 4 MB decompressed; the decode of them was 2.45 GB.
    assert!(grown_mib < 200, "peak RSS grew by {grown_mib} MiB");
    assert!(
        s.stored().await.is_empty(),
        "nothing of a refused request is captured"
    );
}

/// `max_records` is exact: that many records pass, one more is refused (both encodings).
#[tokio::test]
async fn otlp_max_records_is_exact() {
    let mut s = Server::start(LogIngestConfig::new().max_records(3)).await;
    let rec = |n: usize| ld(1, &ld(2, &[0x12u8, 0x00].repeat(n)));
    let r = s
        .otlp("application/x-protobuf")
        .body(rec(3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .otlp("application/x-protobuf")
        .body(rec(4))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_many_records"))
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 3"),
        "{err}"
    );
    let json = |n: usize| {
        json!({"resourceLogs": [{"scopeLogs": [{"logRecords": vec![json!({}); n]}]}]}).to_string()
    };
    let r = s
        .otlp("application/json")
        .body(json(3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .otlp("application/json")
        .body(json(4))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_many_records"))
    );
    assert_eq!(s.stored().await.len(), 6);
}

/// The same kind for attributes: a record's own, nested array / key-value list values, and
/// a resource's attributes, which every record of it gets a copy of.
#[tokio::test]
async fn otlp_attribute_values_are_bounded() {
    let s = Server::start(LogIngestConfig::new().max_attributes(1_000)).await;
    let send = |body: Vec<u8>| {
        s.otlp("application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(gzip(&body))
            .send()
    };
    let empty_kv = ld(6, &[]); // LogRecord.attributes (6): an empty KeyValue
                               // One record with 1,000,000 empty attributes (2 MB; a few KB gzipped).
    let record = empty_kv.repeat(1_000_000);
    let (status, err) = error_of(send(ld(1, &ld(2, &ld(2, &record)))).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_many_attributes")),
        "{err}"
    );
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_attributes"));
    // A body whose array holds 1,000,000 empty values: AnyValue.array_value (5) of
    // ArrayValue.values (1).
    let array = ld(5, &ld(1, &[]).repeat(1_000_000));
    let (status, _) = error_of(send(ld(1, &ld(2, &ld(2, &ld(5, &array))))).await.unwrap()).await;
    assert_eq!(status, 413);
    // 100 resource attributes × 20 records = 2,000 values on events: each count under the
    // limit, the product over it.
    let resource = ld(1, &ld(1, &[]).repeat(100));
    let scope = ld(2, &[0x12u8, 0x00].repeat(20));
    let (status, err) = error_of(
        send(ld(1, &[resource.clone(), scope].concat()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_many_attributes"))
    );
    // … and 5 records of it pass.
    let scope = ld(2, &[0x12u8, 0x00].repeat(5));
    let r = send(ld(1, &[resource, scope].concat())).await.unwrap();
    assert_eq!(r.status(), 200);
    // JSON: the counting visitor stops a long attribute list.
    let attrs: Vec<Value> = (0..1_001)
        .map(|i| json!({"key": format!("k{i}")}))
        .collect();
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": attrs}]}]}]});
    let r = s
        .otlp("application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(r).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_many_attributes")),
        "{err}"
    );
}

/// Issue 13, S1: a record's attributes cannot pose as another project or key.
#[tokio::test]
async fn otlp_record_attributes_cannot_spoof_the_sender() {
    use serde_json::Map;
    use tracepost_ingest::logs::{decode_otlp, otlp};
    let body = json!({"resourceLogs": [{
    "resource": {"attributes": [{"key": "ingest.project", "value": {"stringValue": "r"}}]},
    "scopeLogs": [{"logRecords": [{
    "body": {"stringValue": "hello"},
    "attributes": [
        {"key": "ingest.project", "value": {"stringValue": "someone-else"}},
        {"key": "ingest.key", "value": {"stringValue": "tpk_00000000"}},
        {"key": "ingest.source", "value": {"stringValue": "batch"}}
    ]}]}]}]});
    let req = decode_otlp(body.to_string().as_bytes(), false).expect("valid OTLP JSON");
    let mut common = Map::new();
    common.insert("ingest.project".into(), Value::from("real-project"));
    common.insert("ingest.key".into(), Value::from("tpk_1a2b3c4d"));
    let mapped = otlp::to_events(&req, &common);
    let a = &mapped.events[0].attributes;
    assert_eq!(a["ingest.project"], "real-project");
    assert_eq!(a["ingest.key"], "tpk_1a2b3c4d");

    // Through the route, and the batch route's attributes likewise.
    let mut s = Server::start(LogIngestConfig::new()).await;
    let r = s
        .otlp("application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .batch(KEY)
        .body(
            json!({"service": "a", "logs": [{"message": "m", "context": {
                "ingest.project": "someone-else", "ingest.key": "tpk_00000000",
                "ingest.source": "otlp"}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let events = s.stored().await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.attributes["ingest.project"], "shop", "{:?}", e.attributes);
        assert_eq!(e.attributes["ingest.key"], &KEY[..12]);
    }
    let sources: Vec<_> = events
        .iter()
        .map(|e| e.attributes["ingest.source"].clone())
        .collect();
    assert!(sources.contains(&json!("otlp")) && sources.contains(&json!("batch")));
}

/// All-zero trace and span ids are OTLP's "no id": dropped, the record kept.
#[test]
fn otlp_all_zero_ids_are_dropped() {
    use tracepost_ingest::logs::{decode_otlp, otlp};
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "body": {"stringValue": "hello"},
        "traceId": "0".repeat(32), "spanId": "0".repeat(16)}]}]}]});
    let req = decode_otlp(body.to_string().as_bytes(), false).unwrap();
    let m = otlp::to_events(&req, &serde_json::Map::new());
    assert_eq!((m.events.len(), m.rejected), (1, 0));
    assert_eq!(
        (&m.events[0].trace_id, &m.events[0].span_id),
        (&None, &None)
    );
}

/// A body in another charset would be misread as UTF-8: `415` naming the charset, on both
/// routes; UTF-8 spelled any way passes.
#[tokio::test]
async fn other_charsets_are_refused() {
    let s = Server::start(LogIngestConfig::new()).await;
    let otlp = json!({"resourceLogs": []}).to_string();
    let batch = json!({"service": "a", "logs": [{"message": "m"}]}).to_string();
    let batch_as = |ct: &str| {
        s.client
            .post(format!("{}/v1/batch", s.base))
            .header("content-type", ct)
            .header("x-tracepost-key", KEY)
            .body(batch.clone())
            .send()
    };
    for ct in [
        "application/json; charset=utf-16",
        "application/json;charset=\"ISO-8859-1\"",
    ] {
        let r = s.otlp(ct).body(otlp.clone()).send().await.unwrap();
        let (status, err) = error_of(r).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (415, Some("unsupported_media_type"))
        );
        let cs = ct.rsplit('=').next().unwrap().trim_matches('"');
        assert!(
            err["error"]["message"].as_str().unwrap().contains(cs),
            "{err}"
        );
        let r = batch_as(ct).await.unwrap();
        let (status, err) = error_of(r).await;
        assert_eq!(status, 415, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(cs),
            "{err}"
        );
    }
    for ct in [
        "application/json; charset=UTF-8",
        "application/json; charset=\"utf8\"",
    ] {
        let r = s.otlp(ct).body(otlp.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{ct}");
        let r = batch_as(ct).await.unwrap();
        assert_eq!(r.status(), 202, "{ct}");
    }
}

/// A tester's finding: 198,250 logs got `202` while a full SQLite queue dropped 79 % of
/// them. With no room in a sink's queue, both log routes refuse the batch whole with a
/// retryable `503 overloaded` (`Retry-After: 1`), and nothing answered `202` is dropped for
/// a full queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_retryable_503_on_both_routes() {
    use tracepost_core::{BatchOptions, DropReason, RetryOptions, SinkOptions};
    let slow = MemorySink::new("slow");
    slow.unavailable(true);
    let tp = Tracepost::builder()
        .service("host-app")
        .sink_with(
            slow,
            SinkOptions::default()
                .queue_capacity(16)
                .max_in_flight(1)
                .batch(BatchOptions::new(8, 1 << 20, Duration::from_millis(1)))
                .retry(RetryOptions::new(
                    10_000,
                    Duration::from_millis(20),
                    Duration::from_millis(50),
                )),
        )
        .build()
        .unwrap();
    let keys = StaticKeys::new([("shop", KEY)], false);
    let logs = LogIngest::new(tp.handle(), LogIngestConfig::new(), Arc::new(keys)).unwrap();
    let app: axum::Router = tracepost_ingest::logs_router(logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    let logs: Vec<Value> = (0..8)
        .map(|i| json!({"timestamp": recent_rfc3339(), "level": "info", "message": format!("line {i}")}))
        .collect();
    let batch = json!({"service": "billing", "logs": logs}).to_string();
    let otlp = json!({"resourceLogs": [{"scopeLogs": [{"logRecords":
        (0..8).map(|i| json!({"body": {"stringValue": format!("otlp {i}")}})).collect::<Vec<_>>()}]}]})
    .to_string();
    for (path, body) in [("batch", batch), ("logs", otlp)] {
        let mut refused = None;
        for _ in 0..20 {
            let r = client
                .post(format!("http://{addr}/tracepost/v1/{path}"))
                .header("content-type", "application/json")
                .header("x-tracepost-key", KEY)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                200 | 202 => continue,
                503 => {
                    refused = Some(r);
                    break;
                }
                other => panic!("{path}: {other}: {}", r.text().await.unwrap()),
            }
        }
        let r = refused.unwrap_or_else(|| panic!("{path}: no 503 within 20 batches"));
        assert_eq!(r.headers()["retry-after"], "1", "{path}");
        let (status, body) = error_of(r).await;
        assert_eq!(status, 503);
        assert_eq!(body["error"]["code"], "overloaded", "{path}: {body}");
    }
    for (name, c) in tp.handle().sink_counts() {
        assert_eq!(c.dropped(DropReason::QueueFull), 0, "{name}: {c:?}");
    }
}
