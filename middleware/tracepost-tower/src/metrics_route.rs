use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use tracepost_core::metrics::MetricsFormat;
use tracepost_core::TracepostHandle;

use crate::service::OwnRoute;

/// The content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A router serving `GET /metrics`: the HTTP metrics, the pipeline's self-metrics and the
/// application's own registry (`TracepostHandle::metrics_registry`), in OpenMetrics when the
/// scraper's `Accept` header prefers `application/openmetrics-text` (Prometheus does) and in
/// the Prometheus text format otherwise. Merge it into the app (or serve it on a separate,
/// private port).
pub fn metrics_router<S: Clone + Send + Sync + 'static>(handle: TracepostHandle) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move { render_metrics_for(&handle, &headers) }),
    )
}

/// The metrics as an axum response, in the Prometheus text format.
pub fn render_metrics(handle: &TracepostHandle) -> impl IntoResponse {
    render_metrics_as(handle, MetricsFormat::Prometheus)
}

/// The metrics as an axum response, in the format the request's `Accept` header negotiates
/// (see [`MetricsFormat::from_accept`]).
pub fn render_metrics_for(
    handle: &TracepostHandle,
    request_headers: &HeaderMap,
) -> impl IntoResponse {
    let accept = request_headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    render_metrics_as(handle, MetricsFormat::from_accept(accept))
}

fn render_metrics_as(handle: &TracepostHandle, format: MetricsFormat) -> impl IntoResponse {
    (
        Extension(OwnRoute),
        [(CONTENT_TYPE, format.content_type()), (VARY, "accept")],
        handle.render_metrics_as(format),
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
            (status, Extension(OwnRoute), axum::Json(report.to_json()))
        }),
    )
}
