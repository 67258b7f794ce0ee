use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tracepost_core::capture::{panic, BodyEnd, PanicDetail, RequestCapture, ResponseCapture};

pin_project_lite::pin_project! {
    /// The request body handed to the inner service: the original body, teed (up to the
    /// capture cap) while the handler reads it.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        capture: RequestCapture,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, capture: RequestCapture) -> Self {
        RequestBody { inner, capture }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.capture.request_chunk(data);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The response body: the inner body, teed while it streams. When it ends, fails, panics
    /// or is dropped early (the client went away), the request is recorded accordingly and
    /// its event, if any, is emitted.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
        capture: Option<ResponseCapture>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its end: the client went away, unless the whole body was sent
            // (the capture knows the length from the size hint).
            if let Some(capture) = this.project().capture.take() {
                capture.finish(BodyEnd::Dropped);
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    #[project_ref = InnerRef]
    enum Inner<B> {
        Body { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B: Body<Data = Bytes>> Inner<B> {
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            InnerProj::Body { body } => body.poll_frame(cx),
            InnerProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(self: Pin<&Self>) -> bool {
        match self.project_ref() {
            InnerRef::Body { body } => body.is_end_stream(),
            InnerRef::Full { data } => data.is_none(),
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(body: B, capture: ResponseCapture) -> Self {
        ResponseBody {
            inner: Inner::Body { body },
            capture: Some(capture),
        }
    }

    /// The body as is, not captured (tracepost's own routes).
    pub(crate) fn passthrough(body: B) -> Self {
        ResponseBody {
            inner: Inner::Body { body },
            capture: None,
        }
    }

    pub(crate) fn full(data: Bytes, capture: ResponseCapture) -> Self {
        ResponseBody {
            inner: Inner::Full { data: Some(data) },
            capture: Some(capture),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B>
where
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        // Logs emitted while the body streams belong to the request too.
        let _current = this.capture.as_ref().map(|c| c.enter());
        let catch = this.capture.as_ref().is_some_and(|c| c.catch_panics());
        let polled = if catch {
            let inner = this.inner.as_mut();
            match panic::catching(|| catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx)))) {
                Ok(polled) => polled,
                Err(payload) => {
                    // The head is sent: the only honest answer left is to cut the response,
                    // as it would be cut without the layer. Record it first.
                    if let Some(c) = this.capture.take() {
                        c.finish(BodyEnd::Panic(PanicDetail::caught(&*payload)));
                    }
                    resume_unwind(payload)
                }
            }
        } else {
            this.inner.as_mut().poll_frame(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(c)) = (frame.data_ref(), this.capture.as_mut()) {
                    c.response_chunk(data);
                }
                // hyper may drop a body that says it has ended without polling it again.
                if this.inner.as_ref().is_end_stream() {
                    if let Some(c) = this.capture.take() {
                        c.finish(BodyEnd::Complete);
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(c) = this.capture.take() {
                    c.finish(BodyEnd::Error(e.to_string()));
                }
            }
            Poll::Ready(None) => {
                if let Some(c) = this.capture.take() {
                    c.finish(BodyEnd::Complete);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Body { body } => body.is_end_stream(),
            Inner::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Body { body } => body.size_hint(),
            Inner::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
