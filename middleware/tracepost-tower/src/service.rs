use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tower::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::capture::{Failure, RequestState};
use crate::layer::Config;
use crate::panic;

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
        let (state, span) = RequestState::start(&self.config, &parts);
        parts.extensions.insert(state.trace_info());
        let req = Request::from_parts(parts, RequestBody::new(body, state.clone()));
        let inner = {
            let _enter = span.as_ref().map(|s| s.enter());
            let _scope = state.enter_scope();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            state: Some(state),
            span,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TracepostService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Arc<RequestState>>,
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
        let Some(state) = this.state.as_ref() else {
            panic!("ResponseFuture polled after completion");
        };
        let _scope = state.enter_scope();
        let inner = this.inner;
        let polled = if state.catch_panics() {
            panic::in_request(|| catch_unwind(AssertUnwindSafe(|| inner.poll(cx))))
        } else {
            Ok(inner.poll(cx))
        };
        let state = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            _ => this.state.take().expect("checked above"),
        };
        match polled {
            Ok(Poll::Pending) => unreachable!("returned above"),
            Ok(Poll::Ready(Ok(mut res))) => {
                if !res.headers().contains_key(&REQUEST_ID) {
                    res.headers_mut()
                        .insert(REQUEST_ID.clone(), state.request_id.clone());
                }
                let (parts, body) = res.into_parts();
                let body = ResponseBody::new(body, state.finisher(&parts, None));
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            Ok(Poll::Ready(Err(e))) => {
                state.finish_without_response(Failure::Service(e.to_string()));
                Poll::Ready(Err(e))
            }
            Err(payload) => {
                let message = panic::message(&*payload);
                let (backtrace, location) = panic::take_last();
                let mut res = Response::new(());
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                res.headers_mut()
                    .insert(REQUEST_ID.clone(), state.request_id.clone());
                let (parts, ()) = res.into_parts();
                let finisher = state.finisher(
                    &parts,
                    Some(Failure::Panic {
                        message,
                        backtrace,
                        location,
                    }),
                );
                let body =
                    ResponseBody::full(Bytes::from_static(b"Internal Server Error"), finisher);
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
        }
    }
}
