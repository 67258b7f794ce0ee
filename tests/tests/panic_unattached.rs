//! A panic nobody catches — a fire-and-forget `tokio::spawn`, a plain thread — is still an
//! `error` event with its site and backtrace. Its own test binary: unattached panics go to the
//! pipeline of the most recently applied layer, so no other test may build one concurrently.

mod support;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use support::{get as http_get, serve, wait_for_event};
use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::{BatchOptions, SinkOptions, Tracepost};

#[tokio::test]
async fn fire_and_forget_task_and_thread_panics_are_unattached_error_events() {
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
