//! Per-request state, and what happens when a request ends: metrics, then (if the policy
//! keeps it) the event with its snapshot.

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use parking_lot::Mutex;
use tracepost_core::metrics::http::{normalize_method, RouteMetrics, UNMATCHED_ROUTE};
use tracepost_core::metrics::RequestOutcome;
use tracepost_core::scope::{self, RequestScope};
use tracepost_core::trace_context::{Hex, TraceContext};
use tracepost_core::{CapturedBody, ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp};

use crate::layer::Config;

/// The request's trace identity, inserted into the request's extensions so handlers can log
/// it or propagate it to the services they call.
#[derive(Debug, Clone)]
pub struct TraceInfo {
    trace: TraceContext,
    request_id: HeaderValue,
}

impl TraceInfo {
    /// W3C trace id (32 hex digits).
    pub fn trace_id(&self) -> String {
        self.trace.trace_id_hex()
    }

    /// This request's span id (16 hex digits).
    pub fn span_id(&self) -> String {
        self.trace.span_id_hex()
    }

    /// The request id (echoed as `x-request-id`).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// A `traceparent` value for outgoing calls made while handling this request.
    pub fn traceparent(&self) -> String {
        self.trace.traceparent()
    }
}

/// Bytes of a body kept for the snapshot: clones of the chunks (no copy), up to a cap.
#[derive(Debug, Default)]
pub(crate) struct BodyCapture {
    chunks: Vec<Bytes>,
    kept: usize,
    total: u64,
}

impl BodyCapture {
    fn push(&mut self, data: &Bytes, limit: usize) {
        self.total += data.len() as u64;
        if self.kept < limit {
            let take = data.len().min(limit - self.kept);
            self.chunks.push(data.slice(..take));
            self.kept += take;
        }
    }

    fn to_captured(
        &self,
        content_type: Option<&str>,
        redactor: &tracepost_core::Redactor,
    ) -> Option<CapturedBody> {
        if self.total == 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(self.kept);
        for c in &self.chunks {
            bytes.extend_from_slice(c);
        }
        let truncated = self.total > self.kept as u64;
        let (text, encoding) = match String::from_utf8(bytes) {
            Ok(s) => (redactor.body(content_type, &s), "utf8"),
            Err(e) => {
                // A cut may split a UTF-8 character: keep the valid prefix as text if that is
                // all that is wrong.
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                if truncated && bytes.len() - valid < 4 {
                    let s = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                    (redactor.body(content_type, &s), "utf8")
                } else {
                    (BASE64.encode(&bytes), "base64")
                }
            }
        };
        Some(CapturedBody {
            text,
            encoding: encoding.to_owned(),
            truncated,
            content_type: content_type.map(str::to_owned),
        })
    }
}

/// What went wrong, beyond the status code.
pub(crate) enum Failure {
    Panic {
        message: String,
        backtrace: Option<String>,
        location: Option<String>,
    },
    Service(String),
}

/// Shared by the request body, the response future and the response body.
pub(crate) struct RequestState {
    config: Arc<Config>,
    start: Instant,
    method: &'static str,
    route_known: bool,
    route_metrics: Arc<RouteMetrics>,
    trace: TraceContext,
    pub(crate) request_id: HeaderValue,
    scope: Option<Arc<RequestScope>>,
    raw_method: Method,
    uri: Uri,
    version: Version,
    /// The request headers, copied as a flat list (cheaper than cloning the map's index).
    headers: Vec<(http::HeaderName, HeaderValue)>,
    client: Option<String>,
    request_body: Mutex<BodyCapture>,
}

impl RequestState {
    /// Called when the request arrives: route, trace, request id, and (when the tracing layer
    /// is installed) the request span that collects breadcrumbs.
    pub(crate) fn start(
        config: &Arc<Config>,
        parts: &http::request::Parts,
    ) -> (Arc<Self>, Option<tracing::Span>) {
        let start = Instant::now();
        let method = normalize_method(parts.method.as_str());
        let http = config.handle.http_metrics();
        let route_metrics = match &config.route_fn {
            Some(f) => f(parts).map(|r| http.route(&r)),
            None => matched_path(parts).map(|r| http.route(r)),
        };
        let route_known = route_metrics.is_some();
        let route_metrics = route_metrics.unwrap_or_else(|| http.route(UNMATCHED_ROUTE));
        http.add_active(method, 1);
        let trace =
            TraceContext::continue_or_start(parts.headers.get("traceparent").map(|v| v.as_bytes()));
        let request_id = parts
            .headers
            .get("x-request-id")
            .filter(|v| {
                !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
            })
            .cloned()
            .unwrap_or_else(|| {
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                let id = tracepost_core::event::new_id(Timestamp::now());
                HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut buf).as_bytes())
                    .expect("a UUID is a valid header value")
            });
        let request_id_str = request_id.to_str().unwrap_or_default();
        let (scope, span) = if scope::layer_installed() {
            let scope = Arc::new(RequestScope::new(
                trace,
                Arc::from(request_id_str),
                route_metrics.route_arc(),
                config.max_breadcrumbs,
            ));
            let span = config.request_span.then(|| {
                scope::set_pending(scope.clone());
                let span = tracing::info_span!(
                    target: "tracepost::request",
                    "request",
                    method = %parts.method,
                    route = route_metrics.route(),
                    trace_id = %Hex(&trace.trace_id),
                    request_id = request_id_str,
                );
                scope::take_pending();
                span
            });
            (Some(scope), span)
        } else {
            (None, None)
        };
        let state = RequestState {
            config: config.clone(),
            start,
            method,
            route_known,
            route_metrics,
            trace,
            request_id,
            scope,
            raw_method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            client: client_address(parts),
            request_body: Mutex::new(BodyCapture::default()),
        };
        (Arc::new(state), span)
    }

    /// Makes this request's scope the thread's current one while the guard lives.
    pub(crate) fn enter_scope(&self) -> Option<scope::ScopeGuard> {
        self.scope.as_ref().map(scope::enter)
    }

    pub(crate) fn catch_panics(&self) -> bool {
        self.config.catch_panics
    }

    pub(crate) fn trace_info(&self) -> TraceInfo {
        TraceInfo {
            trace: self.trace,
            request_id: self.request_id.clone(),
        }
    }

    fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    pub(crate) fn request_chunk(&self, data: &Bytes) {
        self.request_body.lock().push(data, self.config.body_limit);
    }

    fn route_label(&self) -> &str {
        self.route_metrics.route()
    }

    /// Prepares what the response body needs to finish the request.
    pub(crate) fn finisher(
        self: Arc<Self>,
        parts: &http::response::Parts,
        failure: Option<Failure>,
    ) -> Finisher {
        let status = parts.status.as_u16();
        let failed = status >= 500 || failure.is_some();
        let policy = &self.config.policy;
        // Slow before the response head: keep everything. A request that only turns slow
        // while its body streams is still kept, without the response headers and body.
        let keep = match policy.decide(self.route_label(), failed) {
            None if policy
                .slow_threshold
                .is_some_and(|t| self.start.elapsed() >= t) =>
            {
                Some(true)
            }
            keep => keep,
        };
        let full = keep == Some(true);
        Finisher {
            response_headers: full.then(|| parts.headers.clone()),
            response_body: (full && self.config.body_limit > 0).then(BodyCapture::default),
            response_bytes: 0,
            status,
            keep,
            failure,
            state: self,
        }
    }

    pub(crate) fn finish_without_response(self: Arc<Self>, failure: Failure) {
        Finisher {
            response_headers: None,
            response_body: None,
            response_bytes: 0,
            status: 500,
            keep: self.config.policy.decide(self.route_label(), true),
            failure: Some(failure),
            state: self,
        }
        .finish(false);
    }
}

impl Drop for RequestState {
    fn drop(&mut self) {
        // Whatever ended the request (body done, client gone, future dropped), it is no
        // longer active.
        self.config
            .handle
            .http_metrics()
            .add_active(self.method, -1);
    }
}

/// Finishes a request once its response body has ended.
pub(crate) struct Finisher {
    state: Arc<RequestState>,
    status: u16,
    keep: Option<bool>,
    failure: Option<Failure>,
    response_headers: Option<HeaderMap>,
    response_body: Option<BodyCapture>,
    response_bytes: u64,
}

impl Finisher {
    pub(crate) fn enter_scope(&self) -> Option<scope::ScopeGuard> {
        self.state.enter_scope()
    }

    pub(crate) fn response_chunk(&mut self, data: &Bytes) {
        self.response_bytes += data.len() as u64;
        if let Some(c) = &mut self.response_body {
            c.push(data, self.state.config.body_limit);
        }
    }

    /// Records the request; emits its event if it failed or the policy keeps it.
    /// `body_error`: the response body failed mid-stream.
    pub(crate) fn finish(self, body_error: bool) {
        let state = &*self.state;
        let duration = state.start.elapsed();
        let failed = self.status >= 500 || self.failure.is_some() || body_error;
        let request_bytes = state.request_body.lock().total;
        state.route_metrics.record(&RequestOutcome {
            method: state.method,
            status: self.status,
            duration,
            request_bytes,
            response_bytes: self.response_bytes,
            failed,
        });
        let slow = state
            .config
            .policy
            .slow_threshold
            .is_some_and(|t| duration >= t);
        let keep = self.keep.unwrap_or(slow);
        if !failed && !keep {
            return;
        }
        let redactor = state.config.handle.redactor();
        let keep_details = keep && self.keep != Some(false);
        let mut snapshot = RequestSnapshot {
            method: state.raw_method.to_string(),
            route: state.route_label().to_owned(),
            path: state.uri.path().to_owned(),
            query: state.uri.query().map(|q| redactor.query(q)),
            status: self.status,
            duration_ms: (duration.as_secs_f64() * 1e6).round() / 1e3,
            request_bytes,
            response_bytes: self.response_bytes,
            client_address: state.client.clone(),
            http_version: Some(format!("{:?}", state.version)),
            ..Default::default()
        };
        if keep_details {
            snapshot.request_headers = headers(state.headers.iter().map(|(k, v)| (k, v)), redactor);
            snapshot.response_headers = self
                .response_headers
                .as_ref()
                .map(|h| headers(h.iter(), redactor))
                .unwrap_or_default();
            let ct = |h: &HeaderMap| {
                h.get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let req_ct = state
                .headers
                .iter()
                .find(|(k, _)| k == http::header::CONTENT_TYPE)
                .and_then(|(_, v)| v.to_str().ok());
            snapshot.request_body = state.request_body.lock().to_captured(req_ct, redactor);
            let resp_ct = self.response_headers.as_ref().and_then(ct);
            snapshot.response_body = self
                .response_body
                .as_ref()
                .and_then(|b| b.to_captured(resp_ct.as_deref(), redactor));
        }
        let what = format!("{} {}", state.raw_method, state.route_label());
        let (kind, level, message, error) = match self.failure {
            Some(Failure::Panic {
                message,
                backtrace,
                location,
            }) => (
                Kind::Error,
                Level::Error,
                format!("panic in {what}: {message}"),
                Some(ErrorDetail {
                    error_type: "panic".into(),
                    message,
                    backtrace,
                    location,
                }),
            ),
            Some(Failure::Service(e)) => (
                Kind::Error,
                Level::Error,
                format!("service error in {what}: {e}"),
                Some(ErrorDetail {
                    error_type: "service_error".into(),
                    message: e,
                    ..Default::default()
                }),
            ),
            None if failed => {
                let reason = if body_error {
                    "response body failed"
                } else {
                    "server error"
                };
                let message = format!("HTTP {} {}", self.status, reason);
                (
                    Kind::Error,
                    Level::Error,
                    format!("{message} in {what}"),
                    Some(ErrorDetail {
                        error_type: format!("http_{}", self.status),
                        message,
                        ..Default::default()
                    }),
                )
            }
            None => {
                let why = if slow { "slow" } else { "sampled" };
                let level = if slow { Level::Warn } else { Level::Info };
                (
                    Kind::Request,
                    level,
                    format!(
                        "{what} {} in {} ms ({why})",
                        self.status, snapshot.duration_ms
                    ),
                    None,
                )
            }
        };
        // Only clock read of wall time for this request: derived when an event is emitted.
        let started_at = Timestamp::from(std::time::SystemTime::now() - duration);
        let mut event = Event::new(kind, level, message).with_timestamp(started_at);
        event.trace_id = Some(state.trace.trace_id_hex());
        event.span_id = Some(state.trace.span_id_hex());
        event.request_id = Some(state.request_id_str().to_owned());
        event.error = error;
        if let Some(scope) = &state.scope {
            let (crumbs, evicted) = scope.take();
            event.breadcrumbs = crumbs;
            if evicted > 0 {
                event
                    .attributes
                    .insert("breadcrumbs_evicted".into(), evicted.into());
            }
        }
        if !state.route_known && state.config.route_fn.is_none() && !cfg!(feature = "axum") {
            event.attributes.insert("route_unknown".into(), true.into());
        }
        event.request = Some(snapshot);
        state.config.handle.capture(event);
    }
}

fn headers<'a>(
    pairs: impl Iterator<Item = (&'a http::HeaderName, &'a HeaderValue)>,
    redactor: &tracepost_core::Redactor,
) -> Vec<(String, String)> {
    pairs
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes());
            (
                k.as_str().to_owned(),
                redactor.header_value(k.as_str(), &value),
            )
        })
        .collect()
}

#[cfg(feature = "axum")]
fn matched_path(parts: &http::request::Parts) -> Option<&str> {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
}

#[cfg(not(feature = "axum"))]
fn matched_path(_parts: &http::request::Parts) -> Option<&str> {
    None
}

#[cfg(feature = "axum")]
fn client_address(parts: &http::request::Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

#[cfg(not(feature = "axum"))]
fn client_address(parts: &http::request::Parts) -> Option<String> {
    parts
        .extensions
        .get::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
}
