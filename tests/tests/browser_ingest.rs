//! The browser ingest through the facade (`tp.ingest_router()`, feature `browser`) into the
//! NDJSON sink, next to the app's own routes under the tower layer: browser events arrive
//! redacted and enriched, and the backend's 500 carries the browser's session id.

mod support;

use std::time::Duration;

use axum::routing::get;
use serde_json::{json, Value};
use support::{read_events, send, serve};
use tracepost::ingest::IngestConfig;
use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::{BatchOptions, SinkOptions, Tracepost};

const PLANTED: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_events_and_backend_requests_share_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("shop")
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(20),
            )),
        )
        .browser(
            IngestConfig::new()
                .key("pk_test")
                .token_secret("a secret of at least thirty-two bytes!")
                .require_token(true),
        )
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/fail",
            get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "inventory down") }),
        )
        .layer(tp.layer())
        .merge(tp.ingest_router().unwrap());
    let addr = serve(app).await;
    let origin = format!("http://{addr}");

    // The page is rendered with a token for its own host.
    let token = tp.browser_token().unwrap().token;
    let (status, headers, script) = support::get(addr, "/tracepost/tp.js", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(&script[..], tracepost::ingest::script::TP_JS.as_bytes());

    // The page calls its backend with the session header tp.js adds.
    let (status, _, _) = support::get(addr, "/fail", &[("x-tracepost-session", "sess-42")]).await;
    assert_eq!(status, 500);

    let batch = json!({
        "batch_id": "b-1", "sent_at": 1_732_900_000_000u64, "session_id": "sess-42",
        "page": {"url": format!("{origin}/checkout?access_token={PLANTED}")},
        "events": [
            {"type": "error", "ts": 1_732_900_000_000u64, "name": "Error", "message": "HTTP 500 from /fail",
             "stack": "Error: HTTP 500 from /fail\n    at pay (http://shop/app.js:3:9)", "mechanism": "captureException",
             "extra": {"password": "hunter2-planted"}},
            {"type": "track", "ts": 1_732_900_000_001u64, "name": "checkout", "props": {"note": PLANTED}}
        ]
    })
    .to_string();
    let path = format!("/tracepost/v1/events?key=pk_test&token={token}");
    let headers = [
        ("content-type", "text/plain;charset=UTF-8"),
        ("origin", origin.as_str()),
    ];
    let res = send(addr, "POST", &path, &headers, batch.as_bytes()).await;
    assert_eq!(res.status(), 202);
    // Without the token (mandatory here): refused.
    let res = send(
        addr,
        "POST",
        "/tracepost/v1/events?key=pk_test",
        &headers,
        batch.as_bytes(),
    )
    .await;
    assert_eq!(res.status(), 401);

    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let in_session: Vec<&Value> = events
        .iter()
        .filter(|e| e["session_id"] == "sess-42")
        .collect();
    assert_eq!(in_session.len(), 3, "{events:#?}");
    let backend = in_session
        .iter()
        .find(|e| e["request"]["route"] == "/fail")
        .expect("the backend's 500 with the browser session");
    assert_eq!(backend["kind"], "error");
    let browser_error = in_session
        .iter()
        .find(|e| e["error"]["type"] == "Error")
        .unwrap();
    assert_eq!(browser_error["service"], "shop");
    assert!(browser_error["fingerprint"].is_string());
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(PLANTED), "{all}");
    assert!(!all.contains("hunter2-planted"), "{all}");
}
