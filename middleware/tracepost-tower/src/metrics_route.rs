use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tracepost_core::TracepostHandle;

/// The content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A router serving `GET /metrics`: the HTTP metrics and the pipeline's self-metrics in the
/// Prometheus text format. Merge it into the app (or serve it on a separate, private port).
pub fn metrics_router<S: Clone + Send + Sync + 'static>(handle: TracepostHandle) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move || async move { render_metrics(&handle) }),
    )
}

/// The metrics as an axum response.
pub fn render_metrics(handle: &TracepostHandle) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        handle.render_metrics(),
    )
}

/// A router serving `GET /health`: each sink's state (`up`, `degraded`, `down`), last error,
/// queue and spool, as JSON. Answers 503 while any sink is down (events are being spooled
/// or dropped), 200 otherwise: use it as a readiness or alerting probe, not as a liveness
/// probe, since restarting the app does not bring a database back.
pub fn health_router<S: Clone + Send + Sync + 'static>(handle: TracepostHandle) -> Router<S> {
    Router::new().route(
        "/health",
        get(move || async move {
            let report = handle.health();
            let status = if report.state == tracepost_core::Health::Down {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                axum::http::StatusCode::OK
            };
            (status, axum::Json(report.to_json()))
        }),
    )
}
