//! The axum router over the query API (feature `http`).
#![cfg(feature = "http")]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use tracepost_core::Sink;
use tracepost_postgres::PostgresSink;

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn router_serves_the_query_api() {
    let Some(db) = TestDb::new("http").await else {
        return;
    };
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let mut events = every_kind();
    for i in 0..5 {
        events.push(error("fp-http", &format!("boom {i}")));
    }
    sink.send(arcs(events.clone())).await.unwrap();
    let app = tracepost_postgres::http::router(sink.store().clone());

    let (status, body) = get(&app, "/events?kind=error,log&limit=4").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"].as_array().unwrap().len(), 4);
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = get(
        &app,
        &format!("/events?kind=error,log&limit=4&cursor={cursor}"),
    )
    .await;
    assert_eq!(next["events"].as_array().unwrap().len(), 3); // 7 errors and logs in all
    assert!(next["next_cursor"].is_null());

    let (_, body) = get(&app, "/events?attrs=%7B%22k%22%3A%22alert%22%7D").await;
    let found = body["events"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["kind"], "alert");

    let id = events[0].id;
    let (status, body) = get(&app, &format!("/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], id.to_string());
    let (status, _) = get(&app, "/events/018f0000-0000-7000-8000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = get(&app, "/histogram?bucket_secs=3600&service=web").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );

    let (_, body) = get(&app, "/issues?limit=1").await;
    assert_eq!(body[0]["fingerprint"], "fp-http");
    assert_eq!(body[0]["count"], 5);

    let (status, body) = get(&app, "/events?level=loud").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_that_is_gone_is_a_503() {
    let Some(db) = TestDb::new("http_gone").await else {
        return;
    };
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let app = tracepost_postgres::http::router(sink.store().clone());
    let (status, _) = get(&app, "/events").await;
    assert_eq!(status, StatusCode::OK);
    // Refused until someone fixes it (3D000): the store can't answer, not a server bug.
    db.drop_db().await;
    for uri in ["/events", "/issues", "/histogram"] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
    }
}
