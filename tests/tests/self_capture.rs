//! tracepost never captures itself, at any level: with the `tracing` layer at TRACE as the
//! global subscriber, and `log` records bridged into `tracing` (so that drivers logging with
//! `log`, like tokio-postgres, are seen too), every sink — console, NDJSON, Loki over HTTP,
//! Postgres — receives exactly the application's events, and an idle application delivers
//! nothing more. Before, each push's HTTP-client logs became events that caused the next push.
//!
//! One test per binary: the subscriber is process-wide, as in an application.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use tracepost::prelude::*;
use tracepost::sinks::{Console, JsonlFile};
use tracepost::{BatchOptions, Level, SinkOptions, Tracepost};
use tracepost_loki::{LokiConfig, LokiSink, PushEncoding};
use tracing_subscriber::prelude::*;

fn fast() -> SinkOptions {
    SinkOptions::default()
        .batch(BatchOptions::new(100, 1 << 20, Duration::from_millis(50)))
        .min_level(Level::Trace)
}

/// Loki's push endpoint, counting pushes. It stands for a remote server, so it runs on its own
/// thread and runtime with no subscriber: what its sockets log (`mio` registers each accepted
/// connection at TRACE) is not the application's.
async fn loki_stand_in() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let pushes = Arc::new(AtomicUsize::new(0));
    let counter = pushes.clone();
    let app = Router::new().route(
        "/loki/api/v1/push",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _quiet = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.await.unwrap(), pushes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_app_sends_nothing_after_its_last_event_with_every_sink_at_trace() {
    let (addr, pushes) = loki_stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let loki = LokiSink::with_config(
        LokiConfig::new(format!("http://{addr}")).encoding(PushEncoding::Json { gzip: false }),
    )
    .unwrap();
    let mut builder = Tracepost::builder()
        .service("idle")
        .sink_with(Console::default(), fast())
        .sink_with(JsonlFile::new(dir.path()), fast())
        .sink_with(loki, fast());
    let pg = support::pg::create_db("self_capture").await;
    if let Some(url) = &pg {
        let sink = tracepost_postgres::PostgresSink::connect(url)
            .await
            .unwrap();
        builder = builder.sink_with(sink, fast());
    }
    let tp = builder.build().unwrap();
    tracing_subscriber::registry()
        .with(
            tp.tracing_layer()
                .min_level(Level::Trace)
                .breadcrumb_level(Level::Trace),
        )
        .init();
    tracing_log::LogTracer::init().unwrap();

    const REAL: u64 = 30;
    for i in 0..REAL / 3 {
        tracing::info!(i, "real event");
        tracing::debug!(i, "real debug event");
        tracing::trace!(i, "real trace event");
    }
    let handle = tp.handle();
    let sinks = handle.sink_counts().len();
    assert_eq!(sinks, if pg.is_some() { 4 } else { 3 });

    // Everything the app logged is delivered...
    let start = Instant::now();
    while handle.sink_counts().iter().any(|(_, c)| c.sent < REAL) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not delivered: {:?}",
            handle.sink_counts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...then the app idles. Whatever the sinks' clients and drivers log while delivering
    // must not come back as events.
    let settled_pushes = pushes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, counts) in handle.sink_counts() {
        assert_eq!(
            (counts.queued, counts.sent),
            (REAL, REAL),
            "sink {name} got events the app did not log"
        );
    }
    assert_eq!(
        pushes.load(Ordering::SeqCst),
        settled_pushes,
        "Loki received pushes while the app was idle"
    );
    if let Some(url) = &pg {
        assert_eq!(
            support::pg::count_events(url).await,
            (REAL as i64, REAL as i64)
        );
    }
    let lines: usize = JsonlFile::files(dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(lines as u64, REAL);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);
}
