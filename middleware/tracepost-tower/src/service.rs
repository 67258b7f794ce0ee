use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tower::Service;
use tracepost_core::capture::{Failure, PanicDetail, RequestCapture};

use crate::body::{RequestBody, ResponseBody};
use crate::head;
use crate::layer::Config;

/// The service produced by [`TracepostLayer`](crate::TracepostLayer).
#[derive(Clone)]
pub struct TracepostService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for TracepostService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracepostService").finish_non_exhaustive()
    }
}

impl<S> TracepostService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        TracepostService { inner, config }
    }
}

pub(crate) use tracepost_core::capture::OwnRoute;

static REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TracepostService<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ReqBody: http_body::Body<Data = Bytes>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let (capture, span) = {
            let mut owned = None;
            let route = head::route(&self.config, &parts, &mut owned);
            RequestCapture::start(&self.config.capture, head::request_head(&parts), route)
        };
        // The request's own id header, echoed as is when the capture kept it.
        let request_id = capture
            .request_id_received()
            .then(|| parts.headers.get(&REQUEST_ID).cloned())
            .flatten();
        parts.extensions.insert(capture.trace_info());
        let req = Request::from_parts(parts, RequestBody::new(body, capture.clone()));
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
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = this.span.as_ref().map(|s| s.enter());
        let Some(capture) = this.capture.as_ref() else {
            panic!("ResponseFuture polled after completion");
        };
        let inner = this.inner;
        let polled = capture.poll_guarded(|| inner.poll(cx));
        if let Ok(Poll::Pending) = polled {
            return Poll::Pending;
        }
        let capture = this.capture.take().expect("checked above");
        let request_id = this.request_id.take();
        match polled {
            Ok(Poll::Pending) => unreachable!("returned above"),
            Ok(Poll::Ready(Ok(res))) if res.extensions().get::<OwnRoute>().is_some() => {
                // tracepost's own `/metrics` or `/health`: not a request of the app, so no
                // metrics and no event (a 503 health check is not an app failure).
                capture.discard();
                let (parts, body) = res.into_parts();
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    ResponseBody::passthrough(body),
                )))
            }
            Ok(Poll::Ready(Ok(mut res))) => {
                if !res.headers().contains_key(&REQUEST_ID) {
                    let id = request_id_value(request_id, &capture);
                    res.headers_mut().insert(REQUEST_ID.clone(), id);
                }
                let (parts, body) = res.into_parts();
                let len = body.size_hint().exact();
                let mut response = capture.respond(parts.status.as_u16(), None);
                respond_head(&mut response, &parts, len);
                let body = ResponseBody::new(body, response);
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            Ok(Poll::Ready(Err(e))) => {
                capture.fail_without_response(Failure::Service(e.to_string()));
                Poll::Ready(Err(e))
            }
            Err(payload) => {
                let failure = Failure::Panic(PanicDetail::caught(&*payload));
                let mut res = Response::new(());
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                let id = request_id_value(request_id, &capture);
                res.headers_mut().insert(REQUEST_ID.clone(), id);
                let (parts, ()) = res.into_parts();
                const BODY: &[u8] = b"Internal Server Error";
                let mut response = capture.respond(500, Some(failure));
                respond_head(&mut response, &parts, Some(BODY.len() as u64));
                let body = ResponseBody::full(Bytes::from_static(BODY), response);
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
        }
    }
}

/// The `x-request-id` to echo: the request's own header value, else the generated id.
fn request_id_value(received: Option<HeaderValue>, capture: &RequestCapture) -> HeaderValue {
    received.unwrap_or_else(|| {
        HeaderValue::from_str(capture.request_id()).expect("request ids are visible ASCII")
    })
}

/// Hands the response head to the capture (it reads the headers only when the snapshot keeps
/// them).
fn respond_head(
    response: &mut tracepost_core::capture::ResponseCapture,
    parts: &http::response::Parts,
    len: Option<u64>,
) {
    response.set_body_len(len);
    response.set_header_pairs(
        parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
    );
}
