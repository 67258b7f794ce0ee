//! The HTTP layer, the tracing layer and the pipeline together, on a real socket.

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;
use support::{get as http_get, read_events, send, serve, wait_for_event};
use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::tower::{RouteSnapshot, SnapshotPolicy};
use tracepost::{BatchOptions, SinkOptions, Tracepost};
use tracing_subscriber::prelude::*;

fn fast() -> SinkOptions {
    SinkOptions::default().batch(BatchOptions::new(100, 1 << 20, Duration::from_millis(20)))
}

/// Makes `tp`'s tracing layer this thread's default subscriber. These tests run on
/// current-thread runtimes, so everything a test's server does happens on its thread. Every
/// test installs one: `tracing` caches callsite interest process-wide, and a test thread
/// without a subscriber could otherwise switch a callsite off for the others.
fn subscribe(tp: &Tracepost) -> tracing::subscriber::DefaultGuard {
    tracing::subscriber::set_default(tracing_subscriber::registry().with(tp.tracing_layer()))
}

/// The quickstart's router with tracepost, writing NDJSON to `dir`, and its subscriber.
/// A pipeline writing NDJSON to `dir`, with its tracing layer as this thread's subscriber.
fn pipeline(dir: &std::path::Path) -> (Tracepost, tracing::subscriber::DefaultGuard) {
    let tp = Tracepost::builder()
        .service("test")
        .sink_with(JsonlFile::new(dir), fast())
        .build()
        .unwrap();
    let guard = subscribe(&tp);
    (tp, guard)
}

fn quickstart(dir: &std::path::Path) -> (Tracepost, Router, tracing::subscriber::DefaultGuard) {
    let (tp, guard) = pipeline(dir);
    let app = quickstart::app()
        .merge(tp.metrics_router())
        .layer(tp.layer());
    (tp, app, guard)
}

#[tokio::test]
async fn a_panic_becomes_a_500_and_an_error_event_with_backtrace_snapshot_and_breadcrumbs() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, app, _g) = quickstart(dir.path());
    let addr = serve(app).await;

    let (status, headers, body) = http_get(
        addr,
        "/panic?token=abc&page=2",
        &[
            ("authorization", "Bearer s3cret"),
            ("cookie", "sid=1"),
            ("x-request-id", "req-123"),
        ],
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(&body[..], b"Internal Server Error");
    assert_eq!(headers["x-request-id"], "req-123");

    let event = wait_for_event(dir.path(), Duration::from_secs(2), |e| {
        e["kind"] == "error" && e["error"]["type"] == "panic"
    })
    .await
    .expect("an error event within 2 s");
    assert_eq!(
        event["error"]["message"],
        "cart must be loaded before checkout"
    );
    assert!(event["error"]["backtrace"]
        .as_str()
        .unwrap()
        .contains("quickstart::panic"));
    assert!(event["error"]["location"]
        .as_str()
        .unwrap()
        .contains("quickstart/src/lib.rs"));
    assert_eq!(event["request_id"], "req-123");
    assert_eq!(event["service"], "test");
    assert_eq!(event["fingerprint"].as_str().unwrap().len(), 16);
    let req = &event["request"];
    assert_eq!(
        (
            req["method"].as_str(),
            req["route"].as_str(),
            req["status"].as_u64()
        ),
        (Some("GET"), Some("/panic"), Some(500))
    );
    assert_eq!(req["query"], "token=[REDACTED]&page=2");
    let header = |name: &str| {
        req["request_headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_owned())
    };
    assert_eq!(header("authorization").as_deref(), Some("[REDACTED]"));
    assert_eq!(header("cookie").as_deref(), Some("[REDACTED]"));
    let crumbs = event["breadcrumbs"].as_array().unwrap();
    assert_eq!(crumbs.len(), 1);
    assert_eq!(crumbs[0]["message"], "about to look up the cart");
    assert_eq!(crumbs[0]["level"], "info");
    assert!(!serde_json::to_string(&event).unwrap().contains("s3cret"));
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_5xx_keeps_redacted_bodies_and_the_same_bug_gets_one_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, app, _g) = quickstart(dir.path());
    let addr = serve(app).await;
    let order = br#"{"items":[1,2],"card_number":"4111111111111111","note":"gift"}"#;
    for _ in 0..2 {
        let res = send(
            addr,
            "POST",
            "/checkout",
            &[("content-type", "application/json")],
            order,
        )
        .await;
        assert_eq!(res.status(), 502);
        res.into_body().collect().await.unwrap();
    }
    tp.shutdown(Duration::from_secs(5)).await;
    let errors: Vec<Value> = read_events(dir.path())
        .into_iter()
        .filter(|e| e["kind"] == "error" && e["request"]["route"] == "/checkout")
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["fingerprint"], errors[1]["fingerprint"]);
    let req = &errors[0]["request"];
    let body: Value = serde_json::from_str(
        req["request_body"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{req}")),
    )
    .unwrap();
    assert_eq!(body["card_number"], "[REDACTED]");
    assert_eq!(body["note"], "gift");
    assert_eq!(req["request_bytes"], order.len());
    assert_eq!(
        req["response_body"]["text"],
        r#"{"error":"payment provider unavailable"}"#
    );
    let crumbs: Vec<&str> = errors[0]["breadcrumbs"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", errors[0]))
        .iter()
        .map(|b| b["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        crumbs,
        ["checking out items=2", "payment provider answered 503"]
    );
}

#[tokio::test]
async fn traceparent_is_continued_and_request_ids_generated() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, app, _g) = quickstart(dir.path());
    let addr = serve(app).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, headers, _) = http_get(addr, "/fail", &[("traceparent", parent)]).await;
    assert_eq!(status, 500);
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 36, "a generated UUID");
    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let http_error = events
        .iter()
        .find(|e| e["error"]["type"] == "http_500")
        .unwrap();
    assert_eq!(http_error["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(http_error["request_id"], request_id.as_str());
    // The ERROR log inside the request is an error event of its own, in the same trace.
    let log_error = events
        .iter()
        .find(|e| e["message"] == "inventory lookup failed")
        .unwrap();
    assert_eq!(log_error["kind"], "error");
    assert_eq!(log_error["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(log_error["attributes"]["error"], "connection refused");
}

#[tokio::test]
async fn successes_are_not_kept_unless_slow_sampled_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let policy = SnapshotPolicy::default()
        .slow_threshold(Some(Duration::from_millis(100)))
        .route("/users/{id}", RouteSnapshot::Always)
        .route("/fail", RouteSnapshot::Never);
    let app = quickstart::app().layer(tp.layer().snapshot_policy(policy));
    let addr = serve(app).await;
    assert_eq!(http_get(addr, "/", &[]).await.0, 200);
    assert_eq!(http_get(addr, "/users/7", &[]).await.0, 200);
    assert_eq!(http_get(addr, "/slow?ms=150", &[]).await.0, 200);
    assert_eq!(http_get(addr, "/fail", &[]).await.0, 500);
    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let routes: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["request"]["route"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(routes.contains(&("request", "/users/{id}")), "{routes:?}");
    assert!(routes.contains(&("request", "/slow")), "{routes:?}");
    assert!(
        !routes.iter().any(|(_, r)| *r == "/"),
        "plain successes are not kept: {routes:?}"
    );
    let fail = events
        .iter()
        .find(|e| e["request"]["route"] == "/fail")
        .unwrap();
    assert_eq!(fail["kind"], "error", "a failure is always reported");
    assert!(
        fail["request"].get("request_headers").is_none(),
        "but `Never` keeps no snapshot details"
    );
    let slow = events
        .iter()
        .find(|e| e["request"]["route"] == "/slow")
        .unwrap();
    assert_eq!(slow["level"], "warn");
    assert!(slow["request"]["duration_ms"].as_f64().unwrap() >= 150.0);
    assert_eq!(
        events
            .iter()
            .find(|e| e["request"]["route"] == "/users/{id}")
            .unwrap()["request"]["response_body"]["text"],
        r#"{"id":7,"name":"user 7"}"#
    );
}

/// The byte chunk `i` of the streaming test is filled with (not valid UTF-8 on its own).
fn byte(i: usize) -> u8 {
    0x80 | (i % 127) as u8
}

#[tokio::test]
async fn a_10_mb_streaming_response_passes_through_byte_identical_while_it_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    // The second half of the body is only produced after the client has received the first
    // byte: a layer that buffered the response would deadlock here.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(rx)));
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 160; // 10 MiB
    let app = Router::new()
        .route(
            "/stream",
            get(move || {
                let rx = rx.clone();
                async move {
                    let rx = rx.lock().await.take().unwrap();
                    let stream = futures_util::stream::iter(0..CHUNKS).then(move |i| {
                        let mut rx = rx.clone();
                        async move {
                            if i == 1 {
                                rx.wait_for(|go| *go).await.unwrap();
                            }
                            Ok::<_, std::io::Error>(Bytes::from(vec![byte(i); CHUNK]))
                        }
                    });
                    Body::from_stream(stream)
                }
            }),
        )
        .layer(
            tp.layer()
                .snapshot_policy(SnapshotPolicy::default().route("/stream", RouteSnapshot::Always)),
        );
    let addr = serve(app).await;
    let res = send(addr, "GET", "/stream", &[], b"").await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut received = 0usize;
    let mut mismatches = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(frame) = tokio::time::timeout_at(deadline.into(), body.frame())
        .await
        .expect("streaming stalled")
    {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            if received == 0 {
                tx.send(true).unwrap();
            }
            for (j, b) in data.iter().enumerate() {
                mismatches += usize::from(*b != byte((received + j) / CHUNK));
            }
            received += data.len();
        }
    }
    assert_eq!(received, CHUNK * CHUNKS);
    assert_eq!(mismatches, 0, "the body must pass through byte-identical");
    tp.shutdown(Duration::from_secs(5)).await;
    let event = read_events(dir.path())
        .into_iter()
        .find(|e| e["request"]["route"] == "/stream")
        .unwrap();
    assert_eq!(event["request"]["response_bytes"], CHUNK * CHUNKS);
    let kept = &event["request"]["response_body"];
    assert_eq!(kept["truncated"], true);
    assert_eq!(kept["encoding"], "base64");
    assert!(
        kept["text"].as_str().unwrap().len() <= 64 * 1024 * 4 / 3 + 4,
        "capture is capped at 64 KiB"
    );
}

#[tokio::test]
async fn a_sink_that_always_fails_never_affects_requests_and_every_drop_is_counted() {
    // A real failing sink: the NDJSON sink pointed below a regular file cannot create its
    // directory, so every write fails with an I/O error (temporary, retried, then dropped).
    let file = tempfile::NamedTempFile::new().unwrap();
    let broken = JsonlFile::new(file.path().join("cannot-exist"));
    let tp = Tracepost::builder()
        .sink_with(
            broken,
            SinkOptions::default()
                .queue_capacity(20)
                .batch(BatchOptions::new(5, 1 << 20, Duration::from_millis(1)))
                .max_in_flight(1)
                .retry(tracepost::RetryOptions::new(
                    2,
                    Duration::from_millis(200),
                    Duration::from_millis(200),
                )),
        )
        .build()
        .unwrap();
    let _g = subscribe(&tp);
    let app = quickstart::app()
        .merge(tp.metrics_router())
        .merge(tp.health_router())
        .layer(tp.layer());
    let addr = serve(app).await;
    let start = Instant::now();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..10 {
                    let (status, _, body) = http_get(addr, "/fail", &[]).await;
                    assert_eq!(
                        (status.as_u16(), &body[..]),
                        (500, &b"inventory unavailable\n"[..])
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "requests must not wait on the sink: {elapsed:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, _, metrics) = http_get(addr, "/metrics", &[]).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let value = |needle: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let queued = value("tracepost_events_queued_total{sink=\"jsonl\"}");
    let full = value("tracepost_events_dropped_total{sink=\"jsonl\",reason=\"queue_full\"}");
    let exhausted =
        value("tracepost_events_dropped_total{sink=\"jsonl\",reason=\"retries_exhausted\"}");
    assert_eq!(value("tracepost_events_sent_total{sink=\"jsonl\"}"), 0.0);
    // Each /fail request yields three events (an INFO log, an ERROR log and the 5xx), and
    // every one was either queued or counted as dropped.
    assert_eq!(queued + full, 600.0);
    assert!(
        full > 0.0 && exhausted > 0.0,
        "queued {queued}, full {full}, exhausted {exhausted}"
    );
    let (status, _, health) = http_get(addr, "/health", &[]).await;
    let health: Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "down");
    assert_eq!(health["sinks"][0]["name"], "jsonl");
    assert!(
        health["sinks"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("Not a directory"),
        "{health}"
    );
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let c = &report.sinks[0].1;
    assert_eq!(
        c.queued,
        c.dropped_total() - c.dropped(tracepost::DropReason::QueueFull),
        "every accepted event ended as a counted drop"
    );
}

#[tokio::test]
async fn route_labels_are_templates_never_raw_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, app, _g) = quickstart(dir.path());
    let addr = serve(app).await;
    for i in 0..30 {
        http_get(addr, &format!("/users/{i}?secret=x{i}"), &[]).await;
        http_get(addr, &format!("/no/such/page/{i}"), &[]).await;
    }
    http_get(addr, "/", &[("host", "evil.example")]).await;
    let res = send(addr, "PROPFIND", "/", &[], b"").await;
    res.into_body().collect().await.unwrap();
    let (_, headers, metrics) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let routes: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.split("http_route=\"").nth(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(
        routes.into_iter().collect::<Vec<_>>(),
        ["/", "/users/{id}", "_unmatched"]
    );
    assert!(!metrics.contains("secret") && !metrics.contains("evil.example"));
    assert!(metrics.contains(
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/users/{id}\"} 29"
    ));
    assert!(metrics.contains("http_request_method=\"_OTHER\""));
    support::check_with_promtool(&metrics);
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn metric_windows_summarise_each_route() {
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .sink_with(JsonlFile::new(dir.path()), fast())
        .metric_window(Duration::from_secs(1))
        .build()
        .unwrap();
    let _g = subscribe(&tp);
    let addr = serve(quickstart::app().layer(tp.layer())).await;
    for i in 1..=10 {
        http_get(addr, &format!("/users/{i}"), &[]).await;
    }
    http_get(addr, "/fail", &[]).await;
    tp.shutdown(Duration::from_secs(5)).await;
    let windows: Vec<Value> = read_events(dir.path())
        .into_iter()
        .filter(|e| e["kind"] == "metric_window")
        .collect();
    let users: u64 = windows
        .iter()
        .filter(|w| w["metric"]["route"] == "/users/{id}")
        .map(|w| w["metric"]["count"].as_u64().unwrap())
        .sum();
    let fail_errors: u64 = windows
        .iter()
        .filter(|w| w["metric"]["route"] == "/fail")
        .map(|w| w["metric"]["errors"].as_u64().unwrap())
        .sum();
    assert_eq!((users, fail_errors), (10, 1));
    let w = windows
        .iter()
        .find(|w| w["metric"]["route"] == "/users/{id}")
        .unwrap();
    assert!(w["metric"]["p99_ms"].as_f64().unwrap() >= w["metric"]["p50_ms"].as_f64().unwrap());
    assert!(w["metric"]["bytes_out"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn breadcrumbs_are_bounded_and_tracepost_never_captures_its_own_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let app = Router::new()
        .route(
            "/noisy",
            get(|| async {
                for i in 0..250 {
                    tracing::debug!(i, "step");
                }
                tracing::warn!(target: "tracepost::pipeline", "internal diagnostics");
                (http::StatusCode::SERVICE_UNAVAILABLE, "busy")
            }),
        )
        .layer(tp.layer().max_breadcrumbs(100));
    let addr = serve(app).await;
    assert_eq!(http_get(addr, "/noisy", &[]).await.0, 503);
    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let err = events.iter().find(|e| e["kind"] == "error").unwrap();
    let crumbs = err["breadcrumbs"].as_array().unwrap();
    assert_eq!(crumbs.len(), 100);
    assert_eq!(
        crumbs[0]["message"], "step i=150",
        "the oldest are evicted first"
    );
    assert_eq!(err["attributes"]["breadcrumbs_evicted"], 150);
    assert!(!events
        .iter()
        .any(|e| e["message"] == "internal diagnostics"));
    assert!(
        !events.iter().any(|e| e["kind"] == "log"),
        "DEBUG is below the default capture level"
    );
}

#[tokio::test]
async fn with_request_spans_logs_of_spawned_work_are_breadcrumbs_too() {
    use tracing::Instrument;
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let app = Router::new()
        .route(
            "/spawns",
            get(|| async {
                tracing::info!("in the handler");
                tokio::spawn(async { tracing::warn!("in a spawned task") }.in_current_span())
                    .await
                    .unwrap();
                (http::StatusCode::INTERNAL_SERVER_ERROR, "failed")
            }),
        )
        .layer(tp.layer().request_span(true));
    let addr = serve(app).await;
    assert_eq!(http_get(addr, "/spawns", &[]).await.0, 500);
    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let err = events
        .iter()
        .find(|e| e["error"]["type"] == "http_500")
        .unwrap();
    let crumbs: Vec<&str> = err["breadcrumbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["message"].as_str().unwrap())
        .collect();
    assert_eq!(crumbs, ["in the handler", "in a spawned task"]);
    let spawned = events
        .iter()
        .find(|e| e["message"] == "in a spawned task")
        .unwrap();
    assert_eq!(
        spawned["trace_id"], err["trace_id"],
        "the spawned task's log is in the request's trace"
    );
}

#[tokio::test]
async fn metrics_scrapes_and_health_checks_are_not_captured_even_when_health_answers_503() {
    // One sink that cannot write (so `/health` answers 503) and one that can, recording every
    // request (`sample_rate(1.0)`): tracepost's own routes must leave no event and no metric.
    let file = tempfile::NamedTempFile::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .sink_named_with(
            "broken",
            JsonlFile::new(file.path().join("cannot-exist")),
            SinkOptions::default()
                .batch(BatchOptions::new(1, 1 << 20, Duration::from_millis(1)))
                .retry(tracepost::RetryOptions::new(
                    0,
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                )),
        )
        .sink_named_with("kept", JsonlFile::new(dir.path()), fast())
        .build()
        .unwrap();
    let _g = subscribe(&tp);
    let app = quickstart::app()
        .merge(tp.metrics_router())
        .merge(tp.health_router())
        .layer(
            tp.layer()
                .snapshot_policy(SnapshotPolicy::default().sample_rate(1.0)),
        );
    let addr = serve(app).await;
    http_get(addr, "/users/7", &[]).await;
    let start = Instant::now();
    let status = loop {
        let (status, _, _) = http_get(addr, "/health", &[]).await;
        if status == 503 || start.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "the broken sink is reported down");
    for _ in 0..3 {
        http_get(addr, "/metrics", &[]).await;
    }
    let (_, headers, metrics) = http_get(addr, "/metrics", &[]).await;
    assert!(
        !headers.contains_key("x-request-id"),
        "own routes pass through untouched"
    );
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(metrics.contains("http_route=\"/users/{id}\""), "{metrics}");
    assert!(
        !metrics.contains("http_route=\"/health\"") && !metrics.contains("http_route=\"/metrics\""),
        "{metrics}"
    );
    assert!(!metrics.contains("http_response_status_code=\"503\""));
    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let paths: Vec<&str> = events
        .iter()
        .filter_map(|e| e["request"]["path"].as_str())
        .collect();
    assert_eq!(paths, ["/users/7"], "only the app's request is an event");
}
