//! The quickstart's routes, in a library so that tests drive the same router.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

/// The demo page served at `/` (and at its client-side routes, `/demo/…`): it loads the
/// browser script from `/tracepost/tp.js` and has buttons that throw, reject a promise, track an
/// event, call the failing `/fail` and navigate without a page load.
pub const DEMO_PAGE: &str = include_str!("demo.html");

/// The app's routes (without tracepost: `main` adds the layer, `/metrics`, `/health` and the
/// browser ingest routes under `/tracepost`).
pub fn app() -> Router {
    Router::new()
        .route("/", get(demo_page))
        .route("/demo/{*route}", get(demo_page))
        .route("/users/{id}", get(user))
        .route("/checkout", post(checkout))
        .route("/fail", get(fail))
        .route("/panic", get(panic))
        .route("/slow", get(slow))
        .route("/stream", get(stream))
        .route("/rrweb.js", get(rrweb))
}

/// `/rrweb.js`, the recorder the demo page's `tp-replay.js` loads (tracepost does not ship
/// rrweb): the file or URL in `QUICKSTART_RRWEB_JS` (e.g.
/// `node_modules/rrweb/dist/rrweb.umd.min.cjs`, or
/// `https://cdn.jsdelivr.net/npm/rrweb@2.2.2/dist/rrweb.umd.min.cjs`); unset, an empty script,
/// and the page records nothing.
async fn rrweb() -> axum::response::Response {
    let js = [("content-type", "text/javascript; charset=utf-8")];
    match std::env::var("QUICKSTART_RRWEB_JS") {
        Ok(url) if url.starts_with("https://") || url.starts_with("http://") => {
            axum::response::Redirect::temporary(&url).into_response()
        }
        Ok(path) if !path.is_empty() => match tokio::fs::read(&path).await {
            Ok(body) => (js, body).into_response(),
            Err(e) => (
                js,
                format!("// QUICKSTART_RRWEB_JS={path:?} is unreadable ({e}): no session replay\n"),
            )
                .into_response(),
        },
        _ => (
            js,
            "// rrweb is not configured (QUICKSTART_RRWEB_JS): no session replay\n".to_owned(),
        )
            .into_response(),
    }
}

async fn demo_page() -> Html<&'static str> {
    Html(DEMO_PAGE)
}

async fn user(Path(id): Path<u32>) -> Result<Json<Value>, StatusCode> {
    tracing::info!(user_id = id, "loading user");
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(json!({ "id": id, "name": format!("user {id}") })))
}

async fn checkout(Json(order): Json<Value>) -> impl IntoResponse {
    tracing::info!(
        items = order["items"].as_array().map_or(0, Vec::len),
        "checking out"
    );
    tracing::warn!("payment provider answered 503");
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({ "error": "payment provider unavailable" })),
    )
}

async fn fail() -> impl IntoResponse {
    tracing::info!("connecting to the inventory service");
    tracing::error!(error = "connection refused", "inventory lookup failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "inventory unavailable\n")
}

async fn panic() -> String {
    tracing::info!("about to look up the cart");
    let carts: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    carts
        .get(&7)
        .cloned()
        .expect("cart must be loaded before checkout")
}

async fn slow(Query(q): Query<std::collections::HashMap<String, u64>>) -> &'static str {
    let ms = q.get("ms").copied().unwrap_or(1500);
    tracing::info!(ms, "doing something slow");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "done\n"
}

/// Streams `chunks` chunks (default 100) of `size` bytes (default 100 KiB), each chunk filled
/// with its index, as they are produced.
async fn stream(Query(q): Query<std::collections::HashMap<String, usize>>) -> impl IntoResponse {
    let chunks = q.get("chunks").copied().unwrap_or(100);
    let size = q.get("size").copied().unwrap_or(100 * 1024);
    let body = futures_util::stream::iter(
        (0..chunks)
            .map(move |i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (i % 26) as u8; size]))),
    );
    (
        [("content-type", "application/octet-stream")],
        Body::from_stream(body),
    )
}
