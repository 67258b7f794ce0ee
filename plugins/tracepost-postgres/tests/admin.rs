//! The admin HTTP API of API keys (feature `admin`) over a real Postgres: the admin token is
//! required, keys are created (shown once), listed, rotated and revoked.
#![cfg(feature = "admin")]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use tracepost_postgres::PostgresSink;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn admin_api_manages_keys() {
    let Some(db) = TestDb::new("admin").await else {
        return;
    };
    let store = PostgresSink::builder(&db.url)
        .connect_store()
        .await
        .unwrap();
    let app = tracepost_postgres::admin::router(store.clone(), "admin-secret-token");
    let t = Some("admin-secret-token");

    let (s, b) = call(&app, "POST", "/admin/projects/shop/keys", None, "").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_admin_token"))
    );
    let (s, b) = call(&app, "POST", "/admin/projects/shop/keys", Some("wrong"), "").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_admin_token"))
    );
    let (s, b) = call(
        &app,
        "POST",
        "/admin/projects/shop/keys",
        t,
        r#"{"require_signature": "yes"}"#,
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("/require_signature"))
    );

    // Issue 13, S9: names with control characters (or only whitespace) are refused.
    for path in [
        "/admin/projects/shop%0Aforged/keys",
        "/admin/projects/%20/keys",
    ] {
        let (s, b) = call(&app, "POST", path, t, "").await;
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("/name")),
            "{path}: {b}"
        );
    }

    let (s, created) = call(
        &app,
        "POST",
        "/admin/projects/shop/keys",
        t,
        r#"{"require_signature": true}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tpk_") && key.len() == 68);
    let id = created["id"].as_i64().unwrap();
    let (s, rotated) = call(&app, "POST", &format!("/admin/keys/{id}/rotate"), t, "").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(rotated["key"], created["key"]);
    let (s, _) = call(&app, "POST", &format!("/admin/keys/{id}/revoke"), t, "").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(&app, "POST", &format!("/admin/keys/{id}/revoke"), t, "").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (s, list) = call(&app, "GET", "/admin/projects/shop/keys", t, "").await;
    assert_eq!(s, StatusCode::OK);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["require_signature"], true);
    assert_eq!(
        keys[1]["require_signature"], true,
        "a rotation keeps the setting"
    );
    assert!(keys[0]["revoked_at"].is_string() && keys[1]["revoked_at"].is_null());
    assert!(
        !list.to_string().contains(&key[12..]),
        "a list never shows a key"
    );
    let (s, _) = call(&app, "GET", "/admin/projects/nope/keys", t, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    drop(store);
    db.drop_db().await;
}
