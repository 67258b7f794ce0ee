//! `route` structured metadata on every event that has a route: request events, window
//! metrics, and errors logged with `tracing::error!` inside a request (the tracing layer puts
//! the request's route in the `http.route` attribute).

mod receiver;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use receiver::{sample_event, Receiver};
use tracepost_core::scope::{self, RequestScope};
use tracepost_core::trace_context::TraceContext;
use tracepost_core::Tracepost;
use tracepost_loki::LokiSink;
use tracepost_tracing::TracepostTracingLayer;
use tracing_subscriber::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_event_with_a_route_has_route_metadata() {
    let rx = Receiver::start().await;
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink(LokiSink::new(rx.url()).unwrap())
        .build()
        .unwrap();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(TracepostTracingLayer::new(tp.handle())),
    );

    // Inside a request span, opened the way the HTTP layer opens it.
    let req = Arc::new(RequestScope::new(
        TraceContext::start(),
        Arc::from("req-1"),
        Arc::from("/users/{id}"),
        10,
    ));
    scope::set_pending(req);
    let span = tracing::info_span!(target: "tracepost::request", "request");
    scope::take_pending();
    span.in_scope(|| {
        tracing::error!(error = "connection reset", "loading user 7 failed");
        tracing::warn!("slow query in a request");
    });
    // Outside any request: no route to give.
    tracing::error!("background job failed");
    // Request error events (with a request snapshot).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for i in [0, 4, 8] {
        tp.handle().capture(sample_event(i, now));
    }
    drop(_guard);
    tp.shutdown(Duration::from_secs(5)).await;

    let accepted = rx.accepted();
    assert_eq!(accepted.len(), 6);
    let mut errors_with_route = 0;
    for (labels, entry) in &accepted {
        let line: serde_json::Value = serde_json::from_str(&entry.line).unwrap();
        let route = line["request"]["route"]
            .as_str()
            .or(line["attributes"]["http.route"].as_str());
        let meta = entry
            .metadata
            .iter()
            .find(|(k, _)| k == "route")
            .map(|(_, v)| v.as_str());
        assert_eq!(meta, route, "{labels} {}", entry.line);
        if labels.contains("kind=\"error\"") && route.is_some() {
            errors_with_route += 1;
        }
    }
    // The tracing error and warning inside the request carry its route.
    let inside: Vec<_> = accepted
        .iter()
        .filter(|(_, e)| e.line.contains("in a request") || e.line.contains("loading user"))
        .collect();
    assert_eq!(inside.len(), 2);
    for (_, e) in inside {
        assert!(e
            .metadata
            .contains(&("route".to_owned(), "/users/{id}".to_owned())));
    }
    assert_eq!(
        errors_with_route, 4,
        "the tracing error and the 3 request errors"
    );
}
