//! One request's capture, from its head to its response head: ids, route metrics, the
//! request span, the request-body tee and the request's place as this thread's current one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use super::body::BodyCapture;
use super::classify::{BodyEnd, Failure, STATUS_CLIENT_CLOSED};
use super::finish::{Ending, ResponseCapture};
use super::head::{RequestHead, RequestId};
use super::task::{self, Current};
use super::CaptureConfig;
use crate::metrics::http::{normalize_method, RouteMetrics, UNMATCHED_ROUTE};
use crate::metrics::RequestOutcome;
use crate::scope::{self, RequestScope};
use crate::trace_context::{Hex, TraceContext};

/// The route of a request, as the adapter's router matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// The route template (`/users/{id}`); never the raw path, which would make one metric
    /// series per URL.
    Matched(&'a str),
    /// No route matched (a 404): recorded as `_unmatched`.
    Unmatched,
    /// The adapter cannot tell (no router information): recorded as `_unmatched`, and events
    /// say `route_unknown: true` so that the user knows to configure a route function.
    Unknown,
}

/// The request's trace identity, for handlers: log it, or propagate it to the services they
/// call. Adapters put it in the request's extensions.
#[derive(Debug, Clone)]
pub struct TraceInfo {
    trace: TraceContext,
    request_id: RequestId,
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
        self.request_id.as_str()
    }

    /// A `traceparent` value for outgoing calls made while handling this request.
    pub fn traceparent(&self) -> String {
        self.trace.traceparent()
    }
}

/// Everything known about one request while it runs; shared by the request body, the
/// response future and the response body of the adapter.
pub(crate) struct RequestState {
    pub(crate) config: Arc<CaptureConfig>,
    pub(crate) start: Instant,
    /// The normalised method label (`GET`, …, `_OTHER`).
    pub(crate) method: &'static str,
    pub(crate) route_unknown: bool,
    pub(crate) route_metrics: Arc<RouteMetrics>,
    pub(crate) trace: TraceContext,
    pub(crate) request_id: RequestId,
    /// Whether the id came from the request's `x-request-id` (else it was generated).
    pub(crate) request_id_received: bool,
    pub(crate) scope: Option<Arc<RequestScope>>,
    pub(crate) head: RequestHead,
    pub(crate) request_body: Mutex<BodyCapture>,
    /// Set once a response head exists (or the service failed): from then on the
    /// [`ResponseCapture`] finishes the request, not the drop of this state.
    pub(crate) responded: AtomicBool,
}

impl RequestState {
    pub(crate) fn route_label(&self) -> &str {
        self.route_metrics.route()
    }

    pub(crate) fn request_id_str(&self) -> &str {
        self.request_id.as_str()
    }
}

impl Drop for RequestState {
    fn drop(&mut self) {
        // The adapter dropped the request before a response head: the client went away (or the
        // server shut down) while the handler ran.
        if !self.responded.load(Ordering::Relaxed) && std::thread::panicking() {
            // A panic the adapter did not catch (`catch_panics(false)`) is unwinding through
            // it: a server failure, reported by the panic hook with this request's ids, so
            // only the metrics are recorded here.
            self.route_metrics.record(&RequestOutcome {
                method: self.method,
                status: 500,
                duration: self.start.elapsed(),
                request_bytes: self.request_body.lock().total(),
                response_bytes: 0,
                failed: true,
            });
        } else if !self.responded.load(Ordering::Relaxed) {
            let keep = self.config.policy.decide(self.route_label(), false);
            super::finish::finish(
                self,
                Ending::new(STATUS_CLIENT_CLOSED, keep, BodyEnd::Dropped),
            );
        }
        // Whatever ended the request (body done, client gone, future dropped), it is no
        // longer active.
        self.config
            .handle
            .http_metrics()
            .add_active(self.method, -1);
    }
}

/// One request being captured. Cheap to clone (an `Arc`): the adapter keeps one in its
/// response future and one in its request-body wrapper.
///
/// The lifecycle, for an adapter:
/// 1. [`RequestCapture::start`] when the request arrives (before the handler runs);
/// 2. [`enter`](Self::enter) around every poll of the handler's future (and the guard's
///    panic catching when [`catch_panics`](Self::catch_panics) says so);
/// 3. [`request_chunk`](Self::request_chunk) for each request body chunk the handler reads;
/// 4. [`respond`](Self::respond) with the response status (and the failure, after a caught
///    panic), or [`fail_without_response`](Self::fail_without_response) when the service
///    returned an error;
/// 5. then on the [`ResponseCapture`]: chunks, and [`finish`](ResponseCapture::finish) when
///    the body ends (dropping it counts as [`BodyEnd::Dropped`]).
///
/// A capture dropped before step 4 records the request as aborted by the client
/// (status 499, `error.type` `aborted`), or — when dropped by an uncaught panic unwinding
/// through the adapter — as a failed request with status 500 (the panic hook reports the
/// panic itself, with the request's ids).
#[derive(Clone)]
pub struct RequestCapture {
    pub(crate) state: Arc<RequestState>,
}

impl std::fmt::Debug for RequestCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCapture")
            .field("method", &self.state.head.method())
            .field("route", &self.state.route_label())
            .field("request_id", &self.state.request_id_str())
            .finish_non_exhaustive()
    }
}

impl RequestCapture {
    /// Starts capturing a request: counts it as active, resolves its route metrics, continues
    /// the trace from `traceparent` (or starts one), honours a valid `x-request-id` (1–128
    /// visible ASCII characters) or generates a UUIDv7, and — when the tracing layer is
    /// installed — creates the request scope that collects breadcrumbs and, if configured,
    /// the request span (returned: the adapter enters it while polling the handler).
    pub fn start(
        config: &Arc<CaptureConfig>,
        head: RequestHead,
        route: Route<'_>,
    ) -> (Self, Option<tracing::Span>) {
        let start = Instant::now();
        let method = normalize_method(head.method());
        let http = config.handle.http_metrics();
        let route_metrics = match route {
            Route::Matched(r) => http.route(r),
            Route::Unmatched | Route::Unknown => http.route(UNMATCHED_ROUTE),
        };
        http.add_active(method, 1);
        // One handle on the thread's generator for the trace, span and request ids.
        let mut rng = rand::thread_rng();
        let trace = TraceContext::continue_or_start_with(head.get("traceparent"), &mut rng);
        let received = head.get("x-request-id").and_then(RequestId::received);
        let request_id_received = received.is_some();
        let request_id = received.unwrap_or_else(|| RequestId::generate(&mut rng));
        let request_id_str = request_id.as_str();
        let (scope, span) = if scope::layer_installed() {
            let scope = Arc::new(RequestScope::for_request(
                trace,
                request_id,
                route_metrics.route_arc(),
                config.max_breadcrumbs,
            ));
            let span = config.request_span.then(|| {
                scope::set_pending(scope.clone());
                let span = tracing::info_span!(
                    target: "tracepost::request",
                    "request",
                    method = head.method(),
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
            route_unknown: route == Route::Unknown,
            route_metrics,
            trace,
            request_id,
            request_id_received,
            scope,
            head,
            request_body: Mutex::new(BodyCapture::default()),
            responded: AtomicBool::new(false),
        };
        (
            RequestCapture {
                state: Arc::new(state),
            },
            span,
        )
    }

    /// Makes this request the thread's current one while the guard lives: logs become its
    /// breadcrumbs, [`spawn`](super::spawn) carries its context, and an uncaught panic is
    /// reported with its ids. Enter it around every poll of the handler's future.
    pub fn enter(&self) -> RequestGuard {
        enter(&self.state)
    }

    /// Whether the adapter should catch panics of the handler (and of the response body) and
    /// answer 500 ([`CaptureConfig::catch_panics`]). Run the poll inside
    /// [`panic::catching`](super::panic::catching) and build the failure with
    /// [`PanicDetail::caught`](super::PanicDetail::caught).
    pub fn catch_panics(&self) -> bool {
        self.state.config.catch_panics
    }

    /// Polls the handler's future as every adapter must: inside this request's scope
    /// ([`enter`](Self::enter)), and, when [`catch_panics`](Self::catch_panics) says so,
    /// with a panic caught inside [`panic::catching`](super::panic::catching). `Err` holds
    /// the panic's payload (build the failure with [`PanicDetail::caught`](super::PanicDetail::caught)).
    pub fn poll_guarded<T>(&self, poll: impl FnOnce() -> T) -> std::thread::Result<T> {
        let _current = self.enter();
        if self.catch_panics() {
            super::panic::catching(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(poll)))
        } else {
            Ok(poll())
        }
    }

    /// The request's trace identity, for the request's extensions.
    pub fn trace_info(&self) -> TraceInfo {
        TraceInfo {
            trace: self.state.trace,
            request_id: self.state.request_id,
        }
    }

    /// The request id (as received, or a generated UUIDv7), to echo as `x-request-id`.
    pub fn request_id(&self) -> &str {
        self.state.request_id.as_str()
    }

    /// Whether [`request_id`](Self::request_id) is the request's own `x-request-id` (an
    /// adapter may then echo the header value it already holds instead of building one).
    pub fn request_id_received(&self) -> bool {
        self.state.request_id_received
    }

    /// Records a chunk of the request body as the handler reads it (kept up to the body
    /// limit; the total is always counted).
    pub fn request_chunk(&self, data: &Bytes) {
        self.state
            .request_body
            .lock()
            .push(data, self.state.config.body_limit);
    }

    /// The response head is known: decides whether the request keeps its snapshot and returns
    /// what follows the response body. `failure` is the panic the adapter caught (it then
    /// answers 500), if any.
    pub fn respond(self, status: u16, failure: Option<Failure>) -> ResponseCapture {
        self.state.responded.store(true, Ordering::Relaxed);
        ResponseCapture::new(self.state, status, failure)
    }

    /// Ends the capture without recording anything: no metrics, no event. For the
    /// observability endpoints an adapter serves itself (`/metrics`, `/health`): a scrape is
    /// not a request of the app, and a health check answering 503 while a sink is down is not
    /// an app failure. The request still counted as active while it ran.
    pub fn discard(self) {
        self.state.responded.store(true, Ordering::Relaxed);
    }

    /// The service failed without a response (its error's message): records a 500 and reports
    /// the error.
    pub fn fail_without_response(self, failure: Failure) {
        self.state.responded.store(true, Ordering::Relaxed);
        let state = &*self.state;
        let keep = state.config.policy.decide(state.route_label(), true);
        let mut ending = Ending::new(500, keep, BodyEnd::Complete);
        ending.failure = Some(failure);
        super::finish::finish(state, ending);
    }
}

/// Leaves the request's scope (and its place as the thread's current request) when dropped;
/// see [`RequestCapture::enter`].
#[must_use = "the request is only current while the guard lives"]
pub struct RequestGuard {
    _scope: Option<scope::ScopeGuard>,
    _current: task::CurrentGuard,
}

impl std::fmt::Debug for RequestGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestGuard").finish_non_exhaustive()
    }
}

pub(crate) fn enter(state: &Arc<RequestState>) -> RequestGuard {
    RequestGuard {
        _scope: state.scope.as_ref().map(scope::enter),
        _current: task::set_current(Current::Request(state.clone())),
    }
}
