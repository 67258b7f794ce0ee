//! The ingest routes over real HTTP (axum on a loopback port, reqwest as the browser): every
//! error code with its exact body, the accepted path into the pipeline, duplicates, tokens,
//! CORS, the script, and planted secrets that must reach no sink.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tracepost_core::testing::MemorySink;
use tracepost_core::{Kind, Tracepost};
use tracepost_ingest::{Ingest, IngestConfig};

const KEY: &str = "pk_test_1";
const SECRET: &str = "0123456789abcdef0123456789abcdef-now";
const OLD_SECRET: &str = "0123456789abcdef0123456789abcdef-old";
const ORIGIN: &str = "https://shop.example";

struct Server {
    base: String,
    tp: Option<Tracepost>,
    sink: MemorySink,
    ingest: Ingest,
    client: reqwest::Client,
}

impl Server {
    async fn start(config: IngestConfig) -> Server {
        Self::start_with(config, |b| b).await
    }

    async fn start_with(
        config: IngestConfig,
        f: impl FnOnce(tracepost_core::Builder) -> tracepost_core::Builder,
    ) -> Server {
        let sink = MemorySink::new("memory");
        let tp = f(Tracepost::builder().service("shop").sink(sink.clone()))
            .build()
            .unwrap();
        let ingest = Ingest::new(tp.handle(), config).unwrap();
        // The token route behind the host's own authentication (here: a session header).
        let app: axum::Router = tracepost_ingest::router(ingest.clone()).merge(
            tracepost_ingest::token_router(ingest.clone(), |head: &http::request::Parts| {
                head.headers.get("x-host-session").is_some()
            }),
        );
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
            ingest,
            client: reqwest::Client::new(),
        }
    }

    fn post(&self, query: &str) -> reqwest::RequestBuilder {
        self.post_from(query, ORIGIN)
    }

    /// A POST as a page of `origin` sends it (reqwest appends headers: one Origin only).
    fn post_from(&self, query: &str, origin: &str) -> reqwest::RequestBuilder {
        self.post_typed(query, origin, "text/plain;charset=UTF-8")
    }

    fn post_typed(&self, query: &str, origin: &str, content_type: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/events{query}", self.base))
            .header("content-type", content_type)
            .header("origin", origin)
    }

    async fn stored(&mut self) -> Vec<tracepost_core::Event> {
        if let Some(tp) = self.tp.take() {
            tp.shutdown(Duration::from_secs(5)).await;
        }
        self.sink.stored()
    }
}

fn config() -> IngestConfig {
    IngestConfig::new()
        .key(KEY)
        .allowed_origin(ORIGIN)
        .token_secret(SECRET)
        .token_secret(OLD_SECRET)
}

fn batch(id: &str) -> Value {
    json!({
        "batch_id": id, "sent_at": 1_732_900_000_000u64, "session_id": "sess-1",
        "visitor_id": "vis-1",
        "page": {"url": "https://shop.example/cart", "title": "Cart"},
        "screen": "1920x1080", "language": "en-US", "utm": {"source": "newsletter"},
        "events": [
            {"type": "pageview", "ts": 1_732_900_000_000u64, "url": "https://shop.example/cart", "nav": "load"},
            {"type": "track", "ts": 1_732_900_000_100u64, "name": "signup", "props": {"plan": "pro"}},
            {"type": "error", "ts": 1_732_900_000_200u64, "name": "TypeError", "message": "x is undefined",
             "stack": "TypeError: x is undefined\n    at checkout (https://shop.example/app.js:10:5)\n    at https://shop.example/app.js:20:1",
             "handled": false, "mechanism": "onerror"},
            {"type": "vital", "ts": 1_732_900_000_300u64, "name": "LCP", "value": 1234.5, "rating": "good"}
        ]
    })
}

async fn answer(r: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn error(status: u16, code: &str, message: &str, field: Option<&str>) -> Value {
    let mut e = json!({"status": status, "code": code, "message": message});
    if let Some(f) = field {
        e["field"] = f.into();
    }
    json!({ "error": e })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_batch_reaches_the_sink_through_the_pipeline() {
    let mut s = Server::start(config()).await;
    let (status, headers, body) = answer(
        s.post(&format!("?key={KEY}"))
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
            .body(batch("b-1").to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (202, json!({"accepted": 4})));
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    // The same batch again: accepted once.
    let (status, _, body) = answer(
        s.post(&format!("?key={KEY}"))
            .body(batch("b-1").to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"accepted": 0, "duplicate": true}))
    );
    let events = s.stored().await;
    assert_eq!(events.len(), 4, "{events:#?}");
    for e in &events {
        // Enriched by the pipeline, correlated with the session.
        assert_eq!(e.resource.service, "shop");
        assert_eq!(e.session_id.as_deref(), Some("sess-1"));
        assert_eq!(e.attributes["visitor.id"], "vis-1");
        assert_eq!(e.attributes["user_agent.name"], "Chrome");
        assert_eq!(e.attributes["os.name"], "Linux");
        assert_eq!(e.attributes["utm.source"], "newsletter");
    }
    let pv = events
        .iter()
        .find(|e| e.attributes.get("analytics.event") == Some(&json!("pageview")))
        .unwrap();
    assert_eq!(pv.kind, Kind::Analytics);
    assert_eq!(pv.message, "pageview /cart");
    let err = events.iter().find(|e| e.kind == Kind::Error).unwrap();
    let detail = err.error.as_ref().unwrap();
    assert_eq!(detail.error_type, "TypeError");
    assert_eq!(
        detail.location.as_deref(),
        Some("https://shop.example/app.js:10:5")
    );
    assert!(detail.backtrace.as_ref().unwrap().contains("0: checkout"));
    assert_eq!(
        err.attributes["exception.frames"][0]["function"],
        "checkout"
    );
    // The fingerprint stage ran, on the function names.
    assert_eq!(err.fingerprint.as_ref().unwrap().len(), 16);
    let vital = events.iter().find(|e| e.kind == Kind::Metric).unwrap();
    assert_eq!(vital.attributes["metric.value"], 1234.5);
    // Timestamps are shifted by the browser's clock skew (sent_at was in 2024).
    let now = tracepost_core::Timestamp::now().unix_nanos();
    assert!(pv.timestamp.unix_nanos() > now - 60_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_has_its_exact_body() {
    let s = Server::start(config().max_body_bytes(16384)).await;
    let ok = batch("b-2").to_string();
    let cases: Vec<(reqwest::RequestBuilder, u16, Value)> = vec![
        (
            s.post("").body(ok.clone()),
            401,
            error(401, "missing_key", "a public key is required (data-key, ?key= or x-tracepost-key)", None),
        ),
        (
            s.post("?key=pk_nope").body(ok.clone()),
            401,
            error(401, "invalid_key", "the public key is not known to this server", None),
        ),
        (
            s.post_from(&format!("?key={KEY}"), "https://evil.example").body(ok.clone()),
            403,
            error(403, "origin_not_allowed", "origin \"https://evil.example\" is not in the allow-list", None),
        ),
        (
            s.post(&format!("?key={KEY}&token=abc.def")).body(ok.clone()),
            401,
            error(401, "invalid_token", "the upload token is malformed", None),
        ),
        (
            s.post_typed(&format!("?key={KEY}"), ORIGIN, "application/xml").body(ok.clone()),
            415,
            error(415, "unsupported_media_type", "Content-Type \"application/xml\" is not accepted: send application/json or text/plain", None),
        ),
        (
            s.post(&format!("?key={KEY}")).header("content-encoding", "br").body(ok.clone()),
            415,
            error(415, "unsupported_encoding", "Content-Encoding \"br\" is not accepted: send gzip or identity", None),
        ),
        (
            s.post(&format!("?key={KEY}")).body("x".repeat(20000)),
            413,
            error(413, "body_too_large", "the body is larger than 16384 bytes", None),
        ),
        (
            s.post(&format!("?key={KEY}")).body("{\"events\": [1,"),
            400,
            error(400, "malformed_json", "the body is not JSON: EOF while parsing a value at line 1 column 14", None),
        ),
        (
            s.post(&format!("?key={KEY}")).body(ok.replace("\"signup\"", "42")),
            400,
            error(400, "invalid_field", "must be a string", Some("/events/1/name")),
        ),
        (
            s.post(&format!("?key={KEY}")).body(ok.replace("\"session_id\":\"sess-1\",", "")),
            400,
            error(400, "missing_field", "is required", Some("/session_id")),
        ),
    ];
    for (i, (req, status, body)) in cases.into_iter().enumerate() {
        let (got_status, _, got_body) = answer(req.send().await.unwrap()).await;
        assert_eq!((got_status, &got_body), (status, &body), "case {i}");
    }
    // A gzip bomb: ~10 KiB on the wire, 10 MiB inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 10 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 16384, "{}", bomb.len());
    let (status, _, body) = answer(
        s.post(&format!("?key={KEY}"))
            .header("content-encoding", "gzip")
            .body(bomb)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            413,
            error(
                413,
                "decompressed_too_large",
                "the body decompresses to more than 1048576 bytes",
                None
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_mandatory_expired_rotated_and_minted() {
    let s = Server::start(config().require_token(true)).await;
    let ok = batch("b-3").to_string();
    let (status, _, body) = answer(
        s.post(&format!("?key={KEY}"))
            .body(ok.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            error(
                401,
                "missing_token",
                "an upload token is required (data-token, ?token= or x-tracepost-token)",
                None
            )
        )
    );
    // Minted by the route for this origin, sent as a header.
    let minted: Value = s
        .client
        .get(format!("{}/v1/token?key={KEY}", s.base))
        .header("x-host-session", "signed-in")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    assert!(minted["expires_at"].as_str().unwrap().ends_with('Z'));
    let (status, _, _) = answer(
        s.post(&format!("?key={KEY}"))
            .header("x-tracepost-token", &token)
            .body(ok.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    // Two Origin headers: refused, whatever the first says.
    let (status, _, body) = answer(
        s.post(&format!("?key={KEY}"))
            .header("x-tracepost-token", &token)
            .header("origin", "https://evil.example")
            .body(batch("two-origins").to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            403,
            error(
                403,
                "origin_not_allowed",
                "the request has several Origin headers",
                None
            )
        )
    );
    // A token signed with the previous secret still passes during the rotation.
    let old = tracepost_ingest::TokenSigner::new(
        "default",
        vec![OLD_SECRET.into()],
        Duration::from_secs(60),
    )
    .mint(ORIGIN)
    .unwrap();
    let (status, _, _) = answer(
        s.post(&format!("?key={KEY}&token={}", old.token))
            .body(batch("b-4").to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    // Expired: minted two minutes ago with a one-minute life.
    let expired =
        tracepost_ingest::TokenSigner::new("default", vec![SECRET.into()], Duration::from_secs(60))
            .mint_at(
                ORIGIN,
                std::time::SystemTime::now() - Duration::from_secs(120),
            )
            .unwrap();
    let (status, _, body) = answer(
        s.post(&format!("?key={KEY}&token={}", expired.token))
            .body(ok.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            error(
                401,
                "expired_token",
                "the upload token has expired: fetch a fresh one",
                None
            )
        )
    );
    // Tampered: one character of the signature changed.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (status, _, body) = answer(
        s.post(&format!("?key={KEY}&token={tampered}"))
            .body(ok.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            error(
                401,
                "invalid_token",
                "the upload token's signature does not match",
                None
            )
        )
    );
    // The same token from another (allowed) origin: refused.
    let s2 = Server::start(
        config()
            .allowed_origin("https://other.example")
            .require_token(true),
    )
    .await;
    let other = s2.ingest.browser_token_for(ORIGIN).unwrap();
    let (status, _, body) = answer(
        s2.post_from(
            &format!("?key={KEY}&token={}", other.token),
            "https://other.example",
        )
        .body(ok)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            error(
                401,
                "invalid_token",
                "the upload token was minted for another origin",
                None
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_client_and_key_with_retry_after() {
    let s = Server::start(config().per_client_limit(1, 3)).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..5 {
        // A spoofed X-Forwarded-For changes nothing: the peer is not a trusted proxy.
        let r = s
            .post(&format!("?key={KEY}"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .body(batch(&format!("rl-{i}")).to_string())
            .send()
            .await
            .unwrap();
        let a = answer(r).await;
        statuses.push(a.0);
        last = Some(a);
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);
    let (_, headers, body) = last.unwrap();
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["access-control-expose-headers"], "retry-after");
    assert_eq!(
        body,
        error(
            429,
            "rate_limited",
            "too many requests for this client address; retry after 1 s",
            None
        )
    );
    // One key for the whole bucket; spoofed addresses did not grow the key space.
    assert_eq!(s.ingest.tracked_clients(), 1);

    let s = Server::start(config().per_key_limit(1, 2)).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = s
            .post(&format!("?key={KEY}"))
            .body(batch(&format!("k-{i}")).to_string())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_script_and_same_host_pages() {
    let s = Server::start(config()).await;
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/events", s.base))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-tracepost-token"));
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/events", s.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let r = s
        .client
        .get(format!("{}/tp.js", s.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let etag = r.headers()["etag"].clone();
    let r = s
        .client
        .get(format!("{}/tp.js", s.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // A page served by the routes' own host needs no allow-list entry.
    let host = s
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/tracepost");
    let r = s
        .post_from(&format!("?key={KEY}"), &format!("http://{host}"))
        .body(batch("same").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_reach_no_sink() {
    let mut s = Server::start(config()).await;
    let planted = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let body = json!({
        "batch_id": "sec", "sent_at": 1, "session_id": "s",
        "page": {"url": format!("https://shop.example/cb?access_token={planted}")},
        "events": [
            {"type": "track", "ts": 1, "name": "checkout", "props": {"password": "hunter2-planted", "note": format!("key {planted}")}},
            {"type": "pageview", "ts": 1, "url": format!("https://shop.example/cb?token={planted}")},
            {"type": "error", "ts": 1, "message": format!("failed with token={planted}"),
             "stack": format!("Error: x\n    at f (https://shop.example/app.js?token={planted}:1:2)"),
             "extra": {"api_key": planted}},
            {"type": "identify", "ts": 1, "user_id": "u1", "traits": {"secret": "hunter2-planted"}}
        ]
    });
    let r = s
        .post(&format!("?key={KEY}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let events = s.stored().await;
    assert_eq!(events.len(), 4);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(planted), "{all}");
    assert!(!all.contains("hunter2-planted"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_per_analytics_event_comes_from_the_core() {
    let mut s = Server::start_with(config().per_client_limit(1000, 1000), |b| {
        b.sample_analytics("pageview", 0.0)
    })
    .await;
    let r = s
        .post(&format!("?key={KEY}"))
        .body(batch("smp").to_string())
        .send()
        .await
        .unwrap();
    // Accepted at the door; the pipeline's sample stage drops the page view.
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"accepted": 4}));
    let events = s.stored().await;
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.attributes.get("analytics.event") != Some(&json!("pageview"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookieless_batches_get_a_daily_visitor_hash() {
    let mut s = Server::start(config()).await;
    let mut b = batch("ck-1");
    b.as_object_mut().unwrap().remove("visitor_id");
    for id in ["ck-1", "ck-2"] {
        b["batch_id"] = id.into();
        let r = s
            .post(&format!("?key={KEY}"))
            .header("user-agent", "UA/1")
            .body(b.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let events = s.stored().await;
    let ids: std::collections::HashSet<_> = events
        .iter()
        .map(|e| e.attributes["visitor.id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids.iter().next().unwrap().starts_with("c_"));
    assert!(events
        .iter()
        .all(|e| e.attributes["visitor.cookieless"] == true));
}

/// A tester's finding: the routes answered `202` while a full sink queue dropped the events
/// (SQLite kept 21 % of a load). With no room in a queue, the batch is refused whole with a
/// retryable `503 overloaded` (`Retry-After: 1`) instead, so the client keeps it: every event
/// of every `202` is stored once the sink catches up, and none is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_retryable_503_not_a_silent_drop() {
    use tracepost_core::{BatchOptions, RetryOptions, SinkOptions};
    let mut server = Server::start_with(config(), |b| {
        let slow = MemorySink::new("slow");
        slow.unavailable(true);
        b.sink_with(
            slow,
            SinkOptions::default()
                .queue_capacity(8)
                .max_in_flight(1)
                .batch(BatchOptions::new(4, 1 << 20, Duration::from_millis(1)))
                .retry(RetryOptions::new(
                    10_000,
                    Duration::from_millis(20),
                    Duration::from_millis(50),
                )),
        )
    })
    .await;
    let mut accepted = 0u64;
    let mut refused = None;
    for i in 0..40 {
        let r = server
            .post(&format!("?key={KEY}"))
            .body(batch(&format!("full-{i}")).to_string())
            .send()
            .await
            .unwrap();
        let (status, headers, body) = answer(r).await;
        match status {
            202 => accepted += body["accepted"].as_u64().unwrap(),
            503 => {
                refused = Some((headers, body));
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (headers, body) = refused.expect("a full queue answers 503 within 40 batches");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"slow\""),
        "{body}"
    );
    assert_eq!(headers["retry-after"], "1");
    assert!(accepted > 0);
    // The slow sink never recovers here: what matters is that nothing answered 202 was
    // dropped for a full queue — by it or by the healthy memory sink, which stored it all.
    let counts = server.tp.as_ref().unwrap().handle().sink_counts();
    for (name, c) in &counts {
        assert_eq!(
            c.dropped(tracepost_core::DropReason::QueueFull),
            0,
            "{name}: {c:?}"
        );
    }
    let stored = server.stored().await;
    assert_eq!(stored.len() as u64, accepted);
}
