//! Panics wherever a request's work runs, and responses that do not end normally: a task the
//! handler spawns, a streamed body that panics, a client that goes away mid-body. Real axum
//! server on 127.0.0.1, real hyper client.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use support::{get as http_get, send, serve, wait_for_event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::tower::{RouteSnapshot, SnapshotPolicy};
use tracepost::{BatchOptions, SinkOptions, Tracepost};
use tracing_subscriber::prelude::*;

fn pipeline(dir: &std::path::Path) -> (Tracepost, tracing::subscriber::DefaultGuard) {
    let tp = Tracepost::builder()
        .service("test")
        .sink_with(
            JsonlFile::new(dir),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(20),
            )),
        )
        .build()
        .unwrap();
    let guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(tp.tracing_layer()));
    (tp, guard)
}

/// The value of the first `/metrics` sample starting with `prefix`, if any.
async fn metric(addr: std::net::SocketAddr, prefix: &str) -> Option<f64> {
    let (_, _, body) = http_get(addr, "/metrics", &[]).await;
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
}

fn count(route: &str, status: u16) -> String {
    format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"GET\",\
         http_response_status_code=\"{status}\",http_route=\"{route}\"}}"
    )
}

#[tokio::test]
async fn a_panic_in_a_task_spawned_with_tracepost_spawn_is_an_error_event_with_the_request_context()
{
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!("charging the card");
                let joined = tracepost::spawn(async {
                    tracing::warn!("payment provider slow");
                    panic!("charge failed for order 42");
                })
                .await;
                assert!(
                    joined.unwrap_err().is_panic(),
                    "the JoinHandle still sees it"
                );
                (http::StatusCode::ACCEPTED, "queued")
            }),
        )
        .layer(tp.layer());
    let addr = serve(app).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, headers, _) = http_get(
        addr,
        "/orders/42",
        &[("traceparent", parent), ("x-request-id", "req-spawn-1")],
    )
    .await;
    assert_eq!(status, 202, "the handler handled the JoinError itself");
    assert_eq!(headers["x-request-id"], "req-spawn-1");
    let event = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["error"]["message"] == "charge failed for order 42"
    })
    .await
    .expect("an error event for the task's panic");
    assert_eq!(event["kind"], "error");
    assert_eq!(event["error"]["type"], "panic");
    assert!(
        event["error"]["location"]
            .as_str()
            .unwrap()
            .contains("tests/capture_panics.rs"),
        "the panic site, not the handler's unwrap: {event}"
    );
    assert!(event["error"]["backtrace"]
        .as_str()
        .unwrap()
        .contains("capture_panics"));
    assert_eq!(event["request_id"], "req-spawn-1");
    assert_eq!(event["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(event["attributes"]["http.route"], "/orders/{id}");
    assert_eq!(event["attributes"]["panic.attached"], true);
    let crumbs: Vec<&str> = event["breadcrumbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["message"].as_str().unwrap())
        .collect();
    assert_eq!(crumbs, ["charging the card", "payment provider slow"]);
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panic_while_the_body_streams_cuts_the_response_and_is_recorded_as_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let app = Router::new()
        .route(
            "/report",
            get(|| async {
                tracing::info!("rendering the report");
                // The second row comes later, once the head and first row are on the wire.
                let rows = futures_util::stream::iter(0..3).then(|i| async move {
                    if i == 1 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        panic!("renderer crashed on row {i}");
                    }
                    Ok::<_, Infallible>(Bytes::from_static(b"row 0\n"))
                });
                Body::from_stream(rows)
            }),
        )
        .merge(tp.metrics_router())
        .layer(tp.layer());
    let addr = serve(app).await;
    let res = send(addr, "GET", "/report", &[], b"").await;
    assert_eq!(res.status(), 200, "the head was sent before the panic");
    assert!(
        res.into_body().collect().await.is_err(),
        "the client sees a cut response, not a clean end"
    );
    let event = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["kind"] == "error" && e["request"]["route"] == "/report"
    })
    .await
    .expect("an error event for the body's panic");
    assert_eq!(event["error"]["type"], "panic");
    assert_eq!(event["error"]["message"], "renderer crashed on row 1");
    assert!(event["error"]["location"]
        .as_str()
        .unwrap()
        .contains("tests/capture_panics.rs"));
    assert_eq!(event["attributes"]["error.type"], "panic");
    let req = &event["request"];
    assert_eq!(req["status"], 500, "{req}");
    assert_eq!(req["response_bytes"], 6);
    assert_eq!(event["breadcrumbs"][0]["message"], "rendering the report");
    assert_eq!(metric(addr, &count("/report", 500)).await, Some(1.0));
    assert_eq!(
        metric(addr, &count("/report", 200)).await,
        None,
        "not counted as a 200"
    );
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_body_that_returns_an_error_mid_stream_is_a_failure_too() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let app = Router::new()
        .route(
            "/export",
            get(|| async {
                let rows = futures_util::stream::iter(0..3).then(|i| async move {
                    if i == 1 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(std::io::Error::other("disk read failed"))
                    } else {
                        Ok(Bytes::from_static(b"row\n"))
                    }
                });
                Body::from_stream(rows)
            }),
        )
        .merge(tp.metrics_router())
        .layer(tp.layer());
    let addr = serve(app).await;
    let res = send(addr, "GET", "/export", &[], b"").await;
    assert!(res.into_body().collect().await.is_err());
    let event = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["request"]["route"] == "/export"
    })
    .await
    .unwrap();
    assert_eq!(event["error"]["type"], "body_error");
    assert!(event["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disk read failed"));
    assert_eq!(event["attributes"]["error.type"], "body_error");
    assert_eq!(metric(addr, &count("/export", 500)).await, Some(1.0));
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_recorded_as_aborted_not_as_a_200() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, _g) = pipeline(dir.path());
    let app = Router::new()
        .route(
            "/download",
            get(|| async {
                let chunks = futures_util::stream::iter(0..1000).then(|i| async move {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok::<_, Infallible>(Bytes::from(vec![b'x'; 1024]))
                });
                Body::from_stream(chunks)
            }),
        )
        .route("/small", get(|| async { "done" }))
        .route(
            "/think",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "thought"
            }),
        )
        .merge(tp.metrics_router())
        .layer(
            tp.layer().snapshot_policy(
                SnapshotPolicy::default()
                    .route("/download", RouteSnapshot::Always)
                    .route("/small", RouteSnapshot::Always),
            ),
        );
    let addr = serve(app).await;
    // A raw client: send the request, read the first bytes of the body, hang up.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /download HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = socket.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(socket);

    let event = wait_for_event(dir.path(), Duration::from_secs(5), |e| {
        e["request"]["route"] == "/download"
    })
    .await
    .expect("the aborted request is kept (its route says Always)");
    assert_eq!(
        event["kind"], "request",
        "the client's choice, not a server error"
    );
    assert_eq!(event["attributes"]["error.type"], "aborted");
    assert_eq!(event["request"]["status"], 499);
    assert!(event["request"]["response_bytes"].as_u64().unwrap() < 1000 * 1024);
    assert!(event["message"]
        .as_str()
        .unwrap()
        .contains("aborted by the client"));
    assert_eq!(metric(addr, &count("/download", 499)).await, Some(1.0));
    assert_eq!(metric(addr, &count("/download", 200)).await, None);

    // A client that hangs up before the response head: also aborted, once hyper notices.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /think HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(socket);
    let mut before_head = None;
    for _ in 0..100 {
        before_head = metric(addr, &count("/think", 499)).await;
        if before_head.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        before_head,
        Some(1.0),
        "recorded when the handler is dropped"
    );

    // A response sent whole is complete, whether or not the server polled its end.
    assert_eq!(http_get(addr, "/small", &[]).await.2, "done");
    let small = wait_for_event(dir.path(), Duration::from_secs(3), |e| {
        e["request"]["route"] == "/small"
    })
    .await
    .unwrap();
    assert_eq!(small["request"]["status"], 200);
    assert!(small["attributes"].get("error.type").is_none(), "{small}");
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn spawned_work_outside_any_request_runs_plainly() {
    // `tracepost::spawn` outside a request: no context to carry, the task runs as is.
    let out = tracepost::spawn(async { 6 * 7 }).await.unwrap();
    assert_eq!(out, 42);
}
