//! `/metrics` and `/health` as actix-web resources.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Resource};
use tracepost_core::metrics::MetricsFormat;
use tracepost_core::{Health, TracepostHandle};

pub(crate) use tracepost_core::capture::OwnRoute;

/// `response`, marked as one of tracepost's own.
fn own(mut response: HttpResponse) -> HttpResponse {
    response.extensions_mut().insert(OwnRoute);
    response
}

/// A resource serving `GET /metrics`: the HTTP metrics, the pipeline's self-metrics and the
/// application's own registry (`TracepostHandle::metrics_registry`), in OpenMetrics when the
/// scraper's `Accept` header prefers `application/openmetrics-text` (Prometheus does) and in
/// the Prometheus text format otherwise (see [`MetricsFormat::from_accept`]). Register it
/// with `App::service`.
pub fn metrics_service(handle: TracepostHandle) -> Resource {
    web::resource("/metrics").route(web::get().to(move |req: HttpRequest| {
        let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = MetricsFormat::from_accept(accept);
        let body = handle.render_metrics_as(format);
        async move {
            own(HttpResponse::Ok()
                .insert_header((CONTENT_TYPE, format.content_type()))
                .insert_header((VARY, "accept"))
                .body(body))
        }
    }))
}

/// A resource serving `GET /health`: each sink's state (`up`, `degraded`, `down`), last error,
/// queue and spool, as JSON. Answers 503 while any sink is down, 200 otherwise: a readiness
/// or alerting probe, not a liveness probe.
pub fn health_service(handle: TracepostHandle) -> Resource {
    web::resource("/health").route(web::get().to(move || {
        let report = handle.health();
        let status = if report.state == Health::Down {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let body = report.to_json().to_string();
        async move {
            own(HttpResponse::build(status)
                .content_type("application/json")
                .body(body))
        }
    }))
}
