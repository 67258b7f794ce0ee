//! A panic nobody catches — a fire-and-forget `tokio::spawn`, a plain thread — is still an
//! `error` event with its site and backtrace; a panic in tracepost's own work (a sink) is not.
//! Its own test binary, its tests one at a time: unattached panics go to the pipeline of the
//! most recently applied layer, so no other test may apply one concurrently.

mod support;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use support::{get as http_get, serve, wait_for_event};
use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::{Batch, BatchOptions, Sink, SinkError, SinkOptions, SinkOutcome, Tracepost};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn fire_and_forget_task_and_thread_panics_are_unattached_error_events() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("test")
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(20),
            )),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/enqueue",
            get(|| async {
                tokio::spawn(async { panic!("background job exploded") });
                "enqueued"
            }),
        )
        .layer(tp.layer());
    let addr = serve(app).await;
    let (status, _, body) = http_get(addr, "/enqueue", &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"enqueued"[..]));
    let event = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["error"]["message"] == "background job exploded"
    })
    .await
    .expect("an unattached error event");
    assert_eq!(event["kind"], "error");
    assert_eq!(event["error"]["type"], "panic");
    assert!(event["error"]["location"]
        .as_str()
        .unwrap()
        .contains("tests/panic_unattached.rs"));
    assert!(event["error"]["backtrace"].as_str().unwrap().len() > 10);
    assert_eq!(event["attributes"]["panic.attached"], false);
    assert!(event.get("request_id").is_none(), "no request to attach to");
    assert_eq!(event["fingerprint"].as_str().unwrap().len(), 16);

    std::thread::Builder::new()
        .name("importer".into())
        .spawn(|| panic!("importer thread died"))
        .unwrap()
        .join()
        .unwrap_err();
    let event = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["error"]["message"] == "importer thread died"
    })
    .await
    .expect("a thread's panic too");
    assert_eq!(event["attributes"]["thread.name"], "importer");
    tp.shutdown(Duration::from_secs(5)).await;
}

/// A sink that panics on every batch, remembering the messages it was given.
#[derive(Clone, Default)]
struct Exploding(std::sync::Arc<parking_lot::Mutex<Vec<String>>>);

impl Sink for Exploding {
    fn name(&self) -> &str {
        "exploding"
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.0
            .lock()
            .extend(batch.iter().map(|e| e.message.clone()));
        panic!("sink exploded");
    }
}

#[tokio::test]
async fn a_panicking_sink_is_never_reported_through_the_pipeline() {
    let _one = ONE_AT_A_TIME.lock().await;
    let sink = Exploding::default();
    let tp = Tracepost::builder()
        .service("test")
        .sink_with(
            sink.clone(),
            SinkOptions::default()
                .batch(BatchOptions::new(100, 1 << 20, Duration::from_millis(10)))
                .retry(tracepost::RetryOptions::new(
                    3,
                    Duration::from_millis(20),
                    Duration::from_millis(20),
                )),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/enqueue",
            get(|| async {
                tokio::spawn(async { panic!("background job exploded") });
                "enqueued"
            }),
        )
        .layer(tp.layer());
    let addr = serve(app).await;
    http_get(addr, "/enqueue", &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = sink.0.lock().clone();
    assert!(
        seen.iter().any(|m| m.contains("background job exploded")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|m| m.contains("sink exploded")),
        "the sink's own panic must not become an event it is sent: {seen:?}"
    );
    tp.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn with_catch_panics_off_a_handler_panic_is_still_a_500_in_metrics_and_an_event_with_its_ids()
{
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("test")
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(20),
            )),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/crash",
            get(|| async {
                if true {
                    panic!("nobody catches this");
                }
                "unreachable"
            }),
        )
        .merge(tp.metrics_router())
        .layer(tp.layer().catch_panics(false));
    let addr = serve(app).await;
    assert!(
        support::try_get(addr, "/crash").await.is_none(),
        "without catching, the connection is cut"
    );
    let event = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["error"]["message"] == "nobody catches this"
    })
    .await
    .expect("reported by the hook");
    assert_eq!(event["attributes"]["http.route"], "/crash");
    assert_eq!(event["request_id"].as_str().unwrap().len(), 36);
    let (_, _, metrics) = http_get(addr, "/metrics", &[]).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(
        metrics.contains(
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",\
             http_response_status_code=\"500\",http_route=\"/crash\"} 1"
        ),
        "{metrics}"
    );
    tp.shutdown(Duration::from_secs(2)).await;
}
