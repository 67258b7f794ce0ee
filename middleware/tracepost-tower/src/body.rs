use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::capture::{Finisher, RequestState};

pin_project_lite::pin_project! {
    /// The request body handed to the inner service: the original body, teed (up to the
    /// capture cap) while the handler reads it.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        state: Arc<RequestState>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, state: Arc<RequestState>) -> Self {
        RequestBody { inner, state }
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
                this.state.request_chunk(data);
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
    /// The response body: the inner body, teed while it streams; when it ends (or is dropped
    /// early) the request is recorded and its event, if any, is emitted.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
        finisher: Option<Finisher>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().finisher.take() {
                f.finish(false);
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Body { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(body: B, finisher: Finisher) -> Self {
        ResponseBody {
            inner: Inner::Body { body },
            finisher: Some(finisher),
        }
    }

    pub(crate) fn full(data: Bytes, finisher: Finisher) -> Self {
        ResponseBody {
            inner: Inner::Full { data: Some(data) },
            finisher: Some(finisher),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        // Logs emitted while the body streams belong to the request too.
        let _scope = this.finisher.as_ref().and_then(|f| f.enter_scope());
        let polled = match this.inner.project() {
            InnerProj::Body { body } => body.poll_frame(cx),
            InnerProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(f)) = (frame.data_ref(), this.finisher.as_mut()) {
                    f.response_chunk(data);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.finisher.take() {
                    f.finish(true);
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = this.finisher.take() {
                    f.finish(false);
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
