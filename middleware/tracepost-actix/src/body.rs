//! The request payload and response body wrappers: both tee what streams through them into the
//! capture (up to its cap); nothing is buffered.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;
use tracepost_core::capture::{panic, BodyEnd, PanicDetail, RequestCapture, ResponseCapture};

/// The request payload handed to the handler: the original payload, teed (up to the capture
/// cap) while the handler reads it.
pub struct RequestPayload {
    inner: Payload,
    capture: RequestCapture,
}

impl std::fmt::Debug for RequestPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestPayload").finish_non_exhaustive()
    }
}

impl RequestPayload {
    pub(crate) fn new(inner: Payload, capture: RequestCapture) -> Self {
        RequestPayload { inner, capture }
    }
}

impl Stream for RequestPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.capture.request_chunk(chunk);
        }
        polled
    }
}

/// The error a response body returns after its producer panicked mid-stream: the head is
/// sent, so actix cuts the connection, as it would without the middleware (where the panic
/// would unwind into the server's task).
#[derive(Debug)]
struct BodyPanicked;

impl std::fmt::Display for BodyPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the response body panicked")
    }
}

impl std::error::Error for BodyPanicked {}

pin_project_lite::pin_project! {
    /// The response body: the inner body, teed while it streams. When it ends, fails, panics
    /// or is dropped early (the client went away), the request is recorded accordingly and
    /// its event, if any, is emitted.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        capture: Option<ResponseCapture>,
        // Set after the inner body panicked: it is never polled again.
        poisoned: bool,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its end: the client went away, unless the whole body was sent
            // (the capture knows the length from the body's size).
            if let Some(capture) = this.project().capture.take() {
                capture.finish(BodyEnd::Dropped);
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, capture: ResponseCapture) -> Self {
        ResponseBody {
            inner,
            capture: Some(capture),
            poisoned: false,
        }
    }

    /// The body as is, not captured (tracepost's own `/metrics` and `/health`).
    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody {
            inner,
            capture: None,
            poisoned: false,
        }
    }
}

/// The exact length of a body of `size`, if known in advance.
pub(crate) fn exact_len(size: BodySize) -> Option<u64> {
    match size {
        BodySize::None => Some(0),
        BodySize::Sized(n) => Some(n),
        BodySize::Stream => None,
    }
}

impl<B: MessageBody> MessageBody for ResponseBody<B> {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        if *this.poisoned {
            return Poll::Ready(None);
        }
        // Logs emitted while the body streams belong to the request too.
        let _current = this.capture.as_ref().map(|c| c.enter());
        let catch = this.capture.as_ref().is_some_and(|c| c.catch_panics());
        let inner = this.inner;
        let polled = if catch {
            match panic::catching(|| catch_unwind(AssertUnwindSafe(|| inner.poll_next(cx)))) {
                Ok(polled) => polled,
                Err(payload) => {
                    *this.poisoned = true;
                    if let Some(c) = this.capture.take() {
                        c.finish(BodyEnd::Panic(PanicDetail::caught(&*payload)));
                    }
                    return Poll::Ready(Some(Err(Box::new(BodyPanicked))));
                }
            }
        } else {
            inner.poll_next(cx)
        };
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(c) = this.capture.as_mut() {
                    c.response_chunk(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: Box<dyn std::error::Error> = e.into();
                if let Some(c) = this.capture.take() {
                    c.finish(BodyEnd::Error(e.to_string()));
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let Some(c) = this.capture.take() {
                    c.finish(BodyEnd::Complete);
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
