//! Fault injection: an HTTP sink (the Loki sink, against a server we control) answers 503,
//! then 429 with `Retry-After`, then hangs. The other sink keeps its normal throughput, and
//! the retries follow the server's instructions.

mod support;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use tracepost::sinks::JsonlFile;
use tracepost::{BatchOptions, Event, Kind, Level, RetryOptions, SinkOptions, Tracepost};
use tracepost_loki::{LokiConfig, LokiSink};

const OK: u8 = 0;
const UNAVAILABLE: u8 = 1;
const LIMITED: u8 = 2;
const HANG: u8 = 3;

/// A push endpoint whose answer is switched by the test; it records when each push arrived
/// and what it answered.
#[derive(Clone, Default)]
struct Server {
    mode: Arc<AtomicU8>,
    pushes: Arc<Mutex<Vec<(Instant, u8)>>>,
}

async fn push(axum::extract::State(s): axum::extract::State<Server>) -> axum::response::Response {
    let mode = s.mode.load(Ordering::SeqCst);
    s.pushes.lock().push((Instant::now(), mode));
    match mode {
        OK => StatusCode::NO_CONTENT.into_response(),
        UNAVAILABLE => (StatusCode::SERVICE_UNAVAILABLE, "ingester unavailable").into_response(),
        LIMITED => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "2")],
            "rate limited",
        )
            .into_response(),
        _ => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_http_sink_slows_no_other_sink_and_obeys_retry_after() {
    let server = Server::default();
    let app = Router::new()
        .route("/loki/api/v1/push", post(push))
        .with_state(server.clone());
    let addr = support::serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let loki = LokiSink::with_config(
        LokiConfig::new(format!("http://{addr}")).timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let tp = Tracepost::builder()
        .sink_with(
            loki,
            SinkOptions::default()
                .batch(BatchOptions::new(200, 1 << 20, Duration::from_millis(50)))
                .retry(RetryOptions::new(
                    100,
                    Duration::from_millis(50),
                    Duration::from_millis(500),
                ))
                .max_in_flight(1),
        )
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(
                200,
                1 << 20,
                Duration::from_millis(50),
            )),
        )
        .build()
        .unwrap();
    let handle = tp.handle();
    let jsonl_sent = || {
        handle
            .sink_counts()
            .iter()
            .find(|(n, _)| n == "jsonl")
            .unwrap()
            .1
            .sent
    };

    // Five phases of 3 s at 1 000 events/s: healthy, 503, 429 + Retry-After, hanging, healthy.
    let mut rows = Vec::new();
    for (name, mode) in [
        ("healthy", OK),
        ("503", UNAVAILABLE),
        ("429", LIMITED),
        ("hang", HANG),
        ("recovered", OK),
    ] {
        server.mode.store(mode, Ordering::SeqCst);
        let before = jsonl_sent();
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            for _ in 0..10 {
                handle.capture(Event::new(Kind::Log, Level::Info, format!("{name} {sent}")));
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await; // the last linger
        let delivered = jsonl_sent() - before;
        rows.push((name, sent, delivered));
    }
    // The Loki sink's own counters join the pipeline's in /metrics, and the whole stays valid.
    let metrics = handle.render_metrics();
    assert!(
        metrics.contains("tracepost_loki_"),
        "the sink's metrics are exported"
    );
    support::check_with_promtool(&metrics);
    let report = tp.shutdown(Duration::from_secs(10)).await;

    for (name, sent, delivered) in &rows {
        println!("phase {name:<9} captured {sent:>5}  jsonl delivered {delivered:>5}");
        assert!(
            *delivered as f64 >= *sent as f64 * 0.95,
            "the JSONL sink kept its pace during {name}"
        );
    }
    // Retries followed the server: after each 429 with Retry-After: 2, nothing came before 2 s.
    let pushes = server.pushes.lock().clone();
    let mut limited = 0;
    for pair in pushes.windows(2) {
        if pair[0].1 == LIMITED {
            limited += 1;
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap >= Duration::from_millis(1990),
                "retried {gap:?} after a 429 asking for 2 s"
            );
        }
    }
    assert!(limited >= 1, "the 429 phase was exercised");
    // The hang timed out and was retried (several pushes while hanging, each after a timeout).
    let hanging: Vec<Instant> = pushes.iter().filter(|p| p.1 == HANG).map(|p| p.0).collect();
    assert!(
        hanging.len() >= 2,
        "hanging pushes were retried: {}",
        hanging.len()
    );
    for w in hanging.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(490),
            "a retry came before the 500 ms timeout"
        );
    }
    let loki = &report.sinks.iter().find(|(n, _)| n == "loki").unwrap().1;
    println!(
        "loki sink: queued {} sent {} retried {} dropped {:?}; pushes answered 503: {}, 429: {}, hung: {}",
        loki.queued,
        loki.sent,
        loki.retried,
        loki.dropped,
        pushes.iter().filter(|p| p.1 == UNAVAILABLE).count(),
        limited,
        hanging.len()
    );
    assert!(loki.retried > 0);
    assert_eq!(
        loki.queued,
        loki.sent + loki.dropped_total(),
        "every event delivered or counted"
    );
}
