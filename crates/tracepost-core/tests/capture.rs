//! The framework-neutral capture API, driven the way an adapter drives it (no `http` types):
//! a head of strings and bytes in, metrics and events out.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tracepost_core::capture::{
    BodyEnd, CaptureConfig, Failure, PanicDetail, RequestCapture, RequestHead, Route,
};
use tracepost_core::sinks::JsonlFile;
use tracepost_core::{BatchOptions, SinkOptions, Tracepost};

fn pipeline(dir: &std::path::Path) -> Tracepost {
    Tracepost::builder()
        .service("neutral")
        .sink_with(
            JsonlFile::new(dir),
            SinkOptions::default().batch(BatchOptions::new(10, 1 << 20, Duration::from_millis(5))),
        )
        .build()
        .unwrap()
}

fn events(dir: &std::path::Path) -> Vec<Value> {
    JsonlFile::files(dir)
        .unwrap()
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[tokio::test]
async fn an_adapter_drives_a_request_from_head_to_event_without_http_types() {
    let dir = tempfile::tempdir().unwrap();
    let tp = pipeline(dir.path());
    let config = Arc::new(CaptureConfig::new(tp.handle()));

    // A 503 with bodies: kept, headers and bodies redacted.
    let head = RequestHead::new("POST", "/orders/9?token=abc&page=2")
        .version("HTTP/1.1")
        .header("content-type", "application/json")
        .header("authorization", "Bearer s3cret")
        .header("x-request-id", "req-1")
        .client_address(Some("10.0.0.7".parse().unwrap()));
    let (request, _span) = RequestCapture::start(&config, head, Route::Matched("/orders/{id}"));
    assert_eq!(request.request_id(), "req-1");
    assert!(request.request_id_received());
    assert_eq!(request.trace_info().trace_id().len(), 32);
    request.request_chunk(&Bytes::from_static(br#"{"card_number":"4111","qty":2}"#));
    let mut response = request.respond(503, None);
    assert!(response.keeps_details(), "failures keep their snapshot");
    response.set_headers(vec![(
        Bytes::from_static(b"content-type"),
        Bytes::from_static(b"text/plain"),
    )]);
    response.response_chunk(&Bytes::from_static(b"busy"));
    response.finish(BodyEnd::Complete);

    // A handler panic, answered 500 by the adapter.
    let (request, _) = RequestCapture::start(
        &config,
        RequestHead::new("GET", "/boom").header("x-request-id", "req-2"),
        Route::Unknown,
    );
    let panic = PanicDetail {
        message: "boom".into(),
        backtrace: None,
        location: Some("src/boom.rs:1:1".into()),
    };
    request
        .respond(500, Some(Failure::Panic(panic)))
        .finish(BodyEnd::Complete);

    // A request dropped before any response: the client went away.
    let (request, _) = RequestCapture::start(
        &config,
        RequestHead::new("GET", "/slow"),
        Route::Matched("/slow"),
    );
    drop(request);

    // A success: measured, not kept (default policy).
    let (request, _) =
        RequestCapture::start(&config, RequestHead::new("GET", "/"), Route::Unmatched);
    let mut response = request.respond(200, None);
    response.set_body_len(Some(2));
    response.response_chunk(&Bytes::from_static(b"ok"));
    drop(response); // sent whole: complete, not aborted

    let metrics = tp.handle().render_metrics();
    tp.shutdown(Duration::from_secs(5)).await;
    let events = events(dir.path());
    let by_id = |id: &str| events.iter().find(|e| e["request_id"] == id).unwrap();

    let e = by_id("req-1");
    assert_eq!(e["kind"], "error");
    assert_eq!(e["attributes"]["error.type"], "503");
    let req = &e["request"];
    assert_eq!(req["route"], "/orders/{id}");
    assert_eq!(req["path"], "/orders/9");
    assert_eq!(req["query"], "token=[REDACTED]&page=2");
    assert_eq!(req["client_address"], "10.0.0.7");
    assert_eq!(req["http_version"], "HTTP/1.1");
    assert_eq!(req["request_headers"][1][1], "[REDACTED]");
    let body: Value = serde_json::from_str(req["request_body"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(body["card_number"], "[REDACTED]");
    assert_eq!(req["response_body"]["text"], "busy");

    let e = by_id("req-2");
    assert_eq!(e["error"]["type"], "panic");
    assert_eq!(e["error"]["location"], "src/boom.rs:1:1");
    assert_eq!(e["attributes"]["route_unknown"], true);
    assert_eq!(e["request"]["route"], "_unmatched");

    assert!(metrics.contains(
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"499\",http_route=\"/slow\"} 1"
    ), "{metrics}");
    assert!(metrics.contains(
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"_unmatched\"} 1"
    ));
    assert!(
        metrics.contains("http_server_active_requests{http_request_method=\"GET\"} 0"),
        "every request ended"
    );
    let kept = events
        .iter()
        .filter(|e| e["kind"] != "metric_window")
        .count();
    assert_eq!(
        kept, 2,
        "the abort and the success are not kept: {events:?}"
    );
}
