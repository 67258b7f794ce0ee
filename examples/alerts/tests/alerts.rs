//! The example against the local Discord stand-in (Discord can't run here; the stand-in
//! enforces its published limits): a 500 becomes a "New issue" message, the admin route
//! sends a test alert and refuses a wrong token.

#[path = "../../../plugins/tracepost-discord/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_and_the_admin_route_reach_discord() {
    let stand_in = support::StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = alerts_example::alert_engine(&stand_in.url("shop"), dir.path()).unwrap();
    let tp = alerts_example::pipeline(&engine, dir.path()).unwrap();
    let app = alerts_example::app(&tp, "let-me-in");

    let r = app
        .clone()
        .oneshot(Request::get("/orders/0").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The request is captured when its response body ends.
    r.into_body().collect().await.unwrap();
    let m = stand_in.wait_messages("shop", 1).await;
    let embed = &m[0]["embeds"][0];
    let description = embed["description"].as_str().unwrap();
    assert!(
        embed["title"].as_str().unwrap().starts_with("New issue:"),
        "{embed:#}"
    );
    assert!(description.contains("GET /orders/{id}"), "{description}");
    assert!(embed["url"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:3002/api/issues/"));

    let wrong = app
        .clone()
        .oneshot(
            Request::post("/admin/alerts/test")
                .header("authorization", "Bearer guess")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body = wrong.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "wrong admin token");

    let send = || {
        app.clone().oneshot(
            Request::post("/admin/alerts/test")
                .header("authorization", "Bearer let-me-in")
                .body(Body::empty())
                .unwrap(),
        )
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::ACCEPTED);
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(again.headers().contains_key("retry-after"));
    let m = stand_in.wait_messages("shop", 2).await;
    assert_eq!(m[1]["embeds"][0]["title"], "Test alert from shop");
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);
}
