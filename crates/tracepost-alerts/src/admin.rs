//! `POST /admin/alerts/test`: a test alert on demand, for axum (feature `axum`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::json;
use tracepost_core::TracepostHandle;

/// At most one test alert per this interval (a leaked token can't flood the channel).
pub const TEST_ALERT_INTERVAL: Duration = Duration::from_secs(10);

/// A router serving `POST /admin/alerts/test`, which sends a test alert through the pipeline
/// (like [`send_test_alert`](crate::send_test_alert)) and answers `202 {"status":"queued"}`.
///
/// The route needs `Authorization: Bearer <token>`: without it, or with another token,
/// `401 {"error": "…"}`. One test alert per [`TEST_ALERT_INTERVAL`]; sooner,
/// `429 {"error": "…", "retry_after_seconds": n}` with `Retry-After`. An empty token refuses
/// every request.
pub fn admin_router<S: Clone + Send + Sync + 'static>(
    handle: TracepostHandle,
    token: impl Into<String>,
) -> Router<S> {
    let token: Arc<str> = token.into().into();
    let last: Arc<Mutex<Option<Instant>>> = Arc::default();
    // Marked tracepost's own (`OwnRoute`): the tower layer doesn't record a test alert
    // request as an app request.
    Router::new()
        .route(
            "/admin/alerts/test",
            post(move |headers: HeaderMap| async move {
                test_alert(&handle, &token, &last, &headers)
            }),
        )
        .route_layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.extensions_mut()
                    .insert(tracepost_core::capture::OwnRoute);
                r
            },
        ))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn test_alert(
    handle: &TracepostHandle,
    token: &str,
    last: &Mutex<Option<Instant>>,
    headers: &HeaderMap,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <admin token>` header",
        );
    };
    if token.is_empty() || !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        return error(StatusCode::UNAUTHORIZED, "wrong admin token");
    }
    let mut last = last.lock();
    if let Some(at) = *last {
        let since = at.elapsed();
        if since < TEST_ALERT_INTERVAL {
            let wait = (TEST_ALERT_INTERVAL - since).as_secs().max(1);
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({
                    "error": "one test alert per 10 seconds",
                    "retry_after_seconds": wait,
                })),
            )
                .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, wait.into());
            return r;
        }
    }
    *last = Some(Instant::now());
    crate::send_test_alert(handle);
    (StatusCode::ACCEPTED, Json(json!({ "status": "queued" }))).into_response()
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
