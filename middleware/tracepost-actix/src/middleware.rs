//! The `Transform`/`Service` pair and the response future.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use tracepost_core::capture::{
    BodyEnd, CaptureConfig, ClassifyStatus, Failure, PanicDetail, RequestCapture, Route,
    SnapshotPolicy,
};
use tracepost_core::TracepostHandle;

use crate::body::{exact_len, RequestPayload, ResponseBody};
use crate::head;
use crate::routes::OwnRoute;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// actix-web middleware that measures every request and captures failures; apply it with
/// `App::wrap`.
///
/// Per request it records RED metrics by route **pattern** (`/users/{id}`, from actix's
/// resource map; `_unmatched` when no resource matches, never the raw path), continues or
/// starts a W3C trace, honours or generates `x-request-id` (echoed on the response), tees the
/// request payload and the response body while they stream (up to a cap; nothing is buffered),
/// reports handler errors (`ResponseError`) whose status is a failure and 5xx responses as
/// error events, turns panics into a 500 and an error event with a backtrace, and keeps a
/// request snapshot as the [`SnapshotPolicy`] says.
///
/// The request's [`TraceInfo`](tracepost_core::capture::TraceInfo) is in its extensions
/// (`web::ReqData<TraceInfo>`).
///
/// ```
/// use actix_web::{test, web, App};
/// use tracepost_actix::TracepostMiddleware;
///
/// # actix_web::rt::System::new().block_on(async {
/// let tp = tracepost_core::Tracepost::builder().service("shop").build().unwrap();
/// let app = test::init_service(
///     App::new()
///         .wrap(TracepostMiddleware::new(tp.handle()))
///         .route("/users/{id}", web::get().to(|| async { "ann" })),
/// )
/// .await;
/// let req = test::TestRequest::get().uri("/users/7").to_request();
/// let res = test::call_service(&app, req).await;
/// assert!(res.headers().contains_key("x-request-id"));
/// drop(res);
/// let metrics = tp.handle().render_metrics();
/// assert!(metrics.contains(r#"http_route="/users/{id}""#));
/// # });
/// ```
#[derive(Clone)]
pub struct TracepostMiddleware {
    config: Arc<CaptureConfig>,
}

impl std::fmt::Debug for TracepostMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracepostMiddleware")
            .field("capture", &self.config)
            .finish()
    }
}

impl TracepostMiddleware {
    /// Middleware with the defaults: 64 KiB body capture, 100 breadcrumbs, panics caught,
    /// [`SnapshotPolicy::default`].
    pub fn new(handle: TracepostHandle) -> Self {
        Self::with_config(CaptureConfig::new(handle))
    }

    /// Middleware with core capture settings built elsewhere (shared with another adapter).
    pub fn with_config(config: CaptureConfig) -> Self {
        TracepostMiddleware {
            config: Arc::new(config),
        }
    }

    fn with(mut self, f: impl FnOnce(CaptureConfig) -> CaptureConfig) -> Self {
        self.config = Arc::new(f((*self.config).clone()));
        self
    }

    /// How many bytes of each request and response body a snapshot keeps (0: none). Bodies
    /// sent with `Content-Encoding` gzip, deflate or br are decoded within the same cap.
    pub fn body_limit(self, bytes: usize) -> Self {
        self.with(|c| c.body_limit(bytes))
    }

    /// How many log lines emitted during a request are kept as breadcrumbs (oldest dropped).
    pub fn max_breadcrumbs(self, n: usize) -> Self {
        self.with(|c| c.max_breadcrumbs(n))
    }

    /// Which requests keep a snapshot.
    pub fn snapshot_policy(self, policy: SnapshotPolicy) -> Self {
        self.with(|c| c.snapshot_policy(policy))
    }

    /// Which response statuses count as failures (default: 5xx), for responses and for
    /// handler errors alike.
    pub fn classify_status(self, classify: impl ClassifyStatus) -> Self {
        self.with(|c| c.classify_status(classify))
    }

    /// Whether panics of handlers and of response bodies are caught (default true): a panic
    /// before the response head becomes a 500 and an error event; one while the body streams
    /// cuts the response (the body returns an error, actix closes the connection) and is
    /// recorded as a failed request (status 500) with an error event.
    pub fn catch_panics(self, on: bool) -> Self {
        self.with(|c| c.catch_panics(on))
    }

    /// Opens a `tracing` span per request (target `tracepost::request`, INFO) when the tracing
    /// layer is installed (default false).
    pub fn request_span(self, on: bool) -> Self {
        self.with(|c| c.request_span(on))
    }
}

impl<S, B> Transform<S, ServiceRequest> for TracepostMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = actix_web::Error;
    type Transform = TracepostService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        self.config.install_panic_hook();
        ready(Ok(TracepostService {
            inner: Rc::new(service),
            config: self.config.clone(),
        }))
    }
}

/// The service produced by [`TracepostMiddleware`] (one per actix worker).
pub struct TracepostService<S> {
    inner: Rc<S>,
    config: Arc<CaptureConfig>,
}

impl<S> std::fmt::Debug for TracepostService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracepostService").finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for TracepostService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(inner);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        // actix resolves the pattern from its resource map before routing, so it is known here.
        let pattern = req.match_pattern();
        let route = match &pattern {
            Some(p) => Route::Matched(p),
            None => Route::Unmatched,
        };
        let (capture, span) = RequestCapture::start(&self.config, head::request_head(&req), route);
        let request_id = capture
            .request_id_received()
            .then(|| req.headers().get(&REQUEST_ID).cloned())
            .flatten();
        req.extensions_mut().insert(capture.trace_info());
        match req.take_payload() {
            Payload::None => {}
            payload => req.set_payload(Payload::Stream {
                payload: Box::pin(RequestPayload::new(payload, capture.clone())),
            }),
        }
        let inner = {
            let _enter = span.as_ref().map(|s| s.enter());
            let _current = capture.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            capture: Some(capture),
            request_id,
            span,
            config: self.config.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TracepostService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        capture: Option<RequestCapture>,
        request_id: Option<HeaderValue>,
        span: Option<tracing::Span>,
        config: Arc<CaptureConfig>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ResponseBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = this.span.as_ref().map(|s| s.enter());
        // Held on the stack while the handler is polled: when a panic is not caught
        // (`catch_panics(false)`), it unwinds through this frame and the capture records the
        // request as failed (500) while unwinding, rather than as aborted when the executor
        // drops this future later.
        let Some(capture) = this.capture.take() else {
            panic!("ResponseFuture polled after completion");
        };
        let inner = this.inner;
        let polled = capture.poll_guarded(|| inner.poll(cx));
        if let Ok(Poll::Pending) = polled {
            *this.capture = Some(capture);
            return Poll::Pending;
        }
        let request_id = this.request_id.take();
        match polled {
            Ok(Poll::Pending) => unreachable!("returned above"),
            Ok(Poll::Ready(Ok(res))) if res.response().extensions().get::<OwnRoute>().is_some() => {
                // tracepost's own `/metrics` or `/health`: not a request of the app, so no
                // metrics and no event (a 503 health check is not an app failure).
                capture.discard();
                Poll::Ready(Ok(res.map_body(|_, body| ResponseBody::passthrough(body))))
            }
            Ok(Poll::Ready(Ok(mut res))) => {
                if !res.headers().contains_key(&REQUEST_ID) {
                    let id = request_id_value(request_id, &capture);
                    res.headers_mut().insert(REQUEST_ID.clone(), id);
                }
                let status = res.status().as_u16();
                // A handler's `Err` became this response; when its status is a failure, the
                // error's own message is reported (not only the status).
                let failure = res
                    .response()
                    .error()
                    .filter(|_| this.config.is_failure_status(status))
                    .map(|e| Failure::Service(e.to_string()));
                let mut response = capture.respond(status, failure);
                response.set_body_len(exact_len(res.response().body().size()));
                // Read only when the snapshot keeps them, each pair copied once.
                response.set_header_pairs(
                    res.headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
                );
                Poll::Ready(Ok(res.map_body(|_, body| ResponseBody::new(body, response))))
            }
            Ok(Poll::Ready(Err(e))) => {
                // An inner middleware answered with an error instead of a response (an auth
                // middleware's 401, a failure); actix renders it. Reported like a handler's
                // error: a failure only when its status is one.
                let status = e.as_response_error().status_code().as_u16();
                let failure = this
                    .config
                    .is_failure_status(status)
                    .then(|| Failure::Service(e.to_string()));
                let mut response = capture.respond(status, failure);
                response.set_body_len(Some(0));
                response.finish(BodyEnd::Complete);
                Poll::Ready(Err(e))
            }
            Err(payload) => {
                let failure = Failure::Panic(PanicDetail::caught(&*payload));
                let request_id = request_id_value(request_id, &capture);
                let mut response = capture.respond(500, Some(failure));
                response.set_body_len(Some(PANIC_BODY.len() as u64));
                response.response_chunk(&bytes::Bytes::from_static(PANIC_BODY.as_bytes()));
                response.finish(BodyEnd::Complete);
                // The request was moved into the handler, so the answer goes out as an error
                // that actix renders (a 500 that still carries the request id).
                Poll::Ready(Err(HandlerPanicked { request_id }.into()))
            }
        }
    }
}

const PANIC_BODY: &str = "Internal Server Error";

/// The error a request whose handler panicked is answered with: a plain 500 with the request's
/// `x-request-id`.
#[derive(Debug)]
struct HandlerPanicked {
    request_id: HeaderValue,
}

impl std::fmt::Display for HandlerPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(PANIC_BODY)
    }
}

impl ResponseError for HandlerPanicked {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError()
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .insert_header((REQUEST_ID.clone(), self.request_id.clone()))
            .body(PANIC_BODY)
    }
}

/// The `x-request-id` to echo: the request's own header value, else the generated id.
fn request_id_value(received: Option<HeaderValue>, capture: &RequestCapture) -> HeaderValue {
    received.unwrap_or_else(|| {
        HeaderValue::from_str(capture.request_id()).expect("request ids are visible ASCII")
    })
}
