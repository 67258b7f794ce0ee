//! The facade's `replay` feature: `Builder::replay` files segments under
//! `{data_dir}/objects` and `tp.ingest_router()` serves `tp-replay.js` and `POST
//! /v1/replay` next to the other browser routes; without a data dir the router names the
//! missing setting.

use std::net::SocketAddr;
use std::time::Duration;

// ANCHOR: imports
use tracepost::ingest::{IngestConfig, ReplayConfig};
use tracepost::prelude::*;
use tracepost::Tracepost;
// ANCHOR_END: imports

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_router_serves_replay_into_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    // ANCHOR: setup
    let tp = Tracepost::builder()
        .service("shop")
        .data_dir(data.path()) // segments go to {data_dir}/objects/replays/…
        .browser(IngestConfig::new().key("pk_live_1"))
        .replay(ReplayConfig::new())
        .build()
        .unwrap();
    // tp.js, /v1/events, and now tp-replay.js and /v1/replay.
    let app: axum::Router = tp.ingest_router().unwrap();
    // ANCHOR_END: setup
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    let script = client
        .get(format!("http://{addr}/tracepost/tp-replay.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("tp.replay = api"));
    let r = client
        .post(format!(
            "http://{addr}/tracepost/v1/replay?key=pk_live_1&session=s1&segment=0&session_start=1764450000000"
        ))
        .header("content-type", "text/plain")
        .body(r#"[{"type":4,"data":{"href":"https://shop.example/","width":800,"height":600},"timestamp":1764450000100}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let stored = data
        .path()
        .join("objects/replays/2025/11/29/s1/000000.json.gz");
    assert!(stored.exists(), "{}", stored.display());
    // The events route is still there.
    let r = client
        .post(format!("http://{addr}/tracepost/v1/events?key=pk_live_1"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn replay_without_a_data_dir_names_the_setting() {
    let tp = Tracepost::builder()
        .browser(IngestConfig::new().key("pk_live_1"))
        .replay(ReplayConfig::new())
        .build()
        .unwrap();
    let err = tp.ingest_router::<()>().unwrap_err();
    assert_eq!(err.field, "replay");
    assert!(err.reason.contains("data_dir"), "{}", err.reason);
    tp.shutdown(Duration::from_secs(1)).await;
}
