//! The tracing layer against the real pipeline.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracepost_core::scope::{self, RequestScope};
use tracepost_core::trace_context::TraceContext;
use tracepost_core::{Batch, Event, Kind, Level, Sink, SinkError, SinkOutcome, Tracepost};
use tracepost_tracing::TracepostTracingLayer;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.0.lock().extend(batch.iter().map(|e| (**e).clone()));
        Ok(SinkOutcome::default())
    }
}

#[tokio::test]
async fn events_become_tracepost_events_with_span_fields_and_request_context() {
    let sink = Collect::default();
    let tp = Tracepost::builder()
        .service("svc")
        .sink(sink.clone())
        .build()
        .unwrap();
    let _g = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(TracepostTracingLayer::new(tp.handle())),
    );

    tracing::debug!("below the capture level");
    let job = tracing::info_span!("job", job_id = 7, queue = "emails");
    job.in_scope(|| {
        tracing::info!(attempt = 2, queue = "override", "sending");
        tracing::error!(error = "smtp timeout", "send failed for user 42");
        tracing::error!(error = "smtp timeout", "send failed for user 43");
    });
    tracing::warn!(target: "tracepost::pipeline", "internal");

    // Inside a request span opened the way the HTTP layer opens it.
    let trace = TraceContext::start();
    let req = Arc::new(RequestScope::new(
        trace,
        Arc::from("req-1"),
        Arc::from("/users/{id}"),
        10,
    ));
    scope::set_pending(req.clone());
    let span = tracing::info_span!(target: "tracepost::request", "request");
    scope::take_pending();
    span.in_scope(|| {
        tracing::debug!(step = 1, "crumb only");
        tracing::info!("inside the request");
    });

    tp.shutdown(Duration::from_secs(5)).await;
    let events = sink.0.lock().clone();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "sending",
            "send failed for user 42",
            "send failed for user 43",
            "inside the request"
        ]
    );

    let sending = &events[0];
    assert_eq!((sending.kind, sending.level), (Kind::Log, Level::Info));
    assert_eq!(sending.attributes["job_id"], 7);
    assert_eq!(sending.attributes["attempt"], 2);
    assert_eq!(
        sending.attributes["queue"], "override",
        "the event's own field wins over the span's"
    );

    let (e1, e2) = (&events[1], &events[2]);
    assert_eq!((e1.kind, e1.level), (Kind::Error, Level::Error));
    assert_eq!(
        e1.error.as_ref().unwrap().message,
        "send failed for user 42: smtp timeout"
    );
    assert!(e1.fingerprint.is_some());
    assert_eq!(
        e1.fingerprint, e2.fingerprint,
        "numbers are normalised out of fingerprints"
    );

    let inside = &events[3];
    assert_eq!(
        inside.trace_id.as_deref(),
        Some(trace.trace_id_hex().as_str())
    );
    assert_eq!(inside.request_id.as_deref(), Some("req-1"));
    assert_eq!(inside.attributes["http.route"], "/users/{id}");
    let (crumbs, evicted) = req.take();
    let crumbs: Vec<&str> = crumbs.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(
        (crumbs, evicted),
        (vec!["crumb only step=1", "inside the request"], 0)
    );
}

/// A sink that logs from its send, as an HTTP client or database driver does.
#[derive(Clone, Default)]
struct Chatty(Arc<Mutex<Vec<Event>>>);

impl Sink for Chatty {
    fn name(&self) -> &str {
        "chatty"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        tracing::warn!(events = batch.len(), "chatty sink sending");
        tokio::task::yield_now().await;
        tracing::error!("chatty sink after a yield");
        self.0.lock().extend(batch.iter().map(|e| (**e).clone()));
        Ok(SinkOutcome::default())
    }
}

/// With the workers on the caller's runtime (for paused-clock tests), what a sink logs while
/// its send is polled is still never captured: no feedback loop at any level.
#[tokio::test]
async fn a_sink_logging_from_its_send_on_the_current_runtime_is_not_captured() {
    let sink = Chatty::default();
    let tp = Tracepost::builder()
        .worker_runtime(tracepost_core::pipeline::WorkerRuntime::Current)
        .sink_with(
            sink.clone(),
            tracepost_core::SinkOptions::default().batch(tracepost_core::BatchOptions::new(
                10,
                1 << 20,
                Duration::from_millis(10),
            )),
        )
        .build()
        .unwrap();
    let _g = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(TracepostTracingLayer::new(tp.handle()).min_level(Level::Trace)),
    );
    tracing::info!("one");
    tracing::trace!("two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tp.shutdown(Duration::from_secs(5)).await;
    let messages: Vec<String> = sink.0.lock().iter().map(|e| e.message.clone()).collect();
    assert_eq!(messages, ["one", "two"]);
}
