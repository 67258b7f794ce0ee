//! Carrying a request's context into the tasks it spawns, and catching their panics there.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::head::RequestId;
use super::panic::{self, PanicDetail};
use super::request::RequestState;
use crate::event::Event;
use crate::pipeline::TracepostHandle;
use crate::scope::{self, RequestScope};
use crate::trace_context::TraceContext;

/// What is current on this thread: a request being polled by its adapter, or a task spawned
/// from one.
pub(crate) enum Current {
    Request(Arc<RequestState>),
    Task(Arc<TaskContext>),
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Restores the previous current request when dropped.
pub(crate) struct CurrentGuard {
    previous: Option<Current>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // `try_with`: the guard may drop during thread teardown.
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

pub(crate) fn set_current(current: Current) -> CurrentGuard {
    CurrentGuard {
        previous: CURRENT.with(|c| c.replace(Some(current))),
    }
}

/// The context of the request current on this thread, if any (allocates: only called when
/// spawning or reporting a panic).
pub(crate) fn current_context() -> Option<Arc<TaskContext>> {
    CURRENT
        .try_with(|c| match &*c.borrow() {
            Some(Current::Request(state)) => Some(Arc::new(TaskContext {
                handle: state.config.handle.clone(),
                trace: state.trace,
                request_id: state.request_id,
                method: state.head.method().to_owned(),
                route: state.route_metrics.route_arc(),
                scope: state.scope.clone(),
            })),
            Some(Current::Task(ctx)) => Some(ctx.clone()),
            None => None,
        })
        .ok()
        .flatten()
}

/// What a task spawned during a request keeps of it: its ids, route and breadcrumbs scope.
pub(crate) struct TaskContext {
    handle: TracepostHandle,
    trace: TraceContext,
    request_id: RequestId,
    method: String,
    route: Arc<str>,
    scope: Option<Arc<RequestScope>>,
}

impl TaskContext {
    /// Puts the request's ids, method, route and breadcrumbs so far on `event`.
    pub(crate) fn annotate(&self, event: &mut Event) {
        event.trace_id = Some(self.trace.trace_id_hex());
        event.span_id = Some(self.trace.span_id_hex());
        event.request_id = Some(self.request_id.as_str().to_owned());
        event
            .attributes
            .insert("http.request.method".into(), self.method.clone().into());
        event
            .attributes
            .insert("http.route".into(), self.route.to_string().into());
        if let Some(scope) = &self.scope {
            event.breadcrumbs = scope.peek();
        }
    }

    fn report_panic(&self, detail: PanicDetail) {
        let mut event = crate::event::Event::new(
            crate::event::Kind::Error,
            crate::event::Level::Error,
            format!(
                "panic in a task spawned by {} {}: {}",
                self.method, self.route, detail.message
            ),
        );
        event.error = Some(detail.into_error());
        event.attributes.insert("error.type".into(), "panic".into());
        event
            .attributes
            .insert("panic.attached".into(), true.into());
        self.annotate(&mut event);
        self.handle.capture(event);
    }
}

pin_project_lite::pin_project! {
    /// A future carrying the context of the request it was created in; see
    /// [`in_current_request`].
    pub struct InRequest<F> {
        #[pin]
        inner: F,
        context: Option<Arc<TaskContext>>,
    }
}

impl<F> std::fmt::Debug for InRequest<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InRequest")
            .field("in_request", &self.context.is_some())
            .finish_non_exhaustive()
    }
}

/// Wraps `future` so that, wherever it runs, it belongs to the request current where this is
/// called: its logs become the request's breadcrumbs and carry its ids, and a panic in it is
/// reported as an `error` event with the panic site, backtrace, the request's trace and request
/// ids, route and breadcrumbs so far. The panic then continues (a `JoinHandle` still sees it).
///
/// Outside a request it wraps nothing: a panic there is reported as unattached by the hook.
pub fn in_current_request<F: Future>(future: F) -> InRequest<F> {
    InRequest {
        inner: future,
        context: current_context(),
    }
}

/// `tokio::spawn(in_current_request(future))`: spawns a task that stays part of the current
/// request (see [`in_current_request`]). Must be called within a Tokio runtime.
///
/// ```no_run
/// # async fn handler() {
/// tracepost_core::capture::spawn(async {
///     // a panic here is an error event with this request's ids
/// });
/// # }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(in_current_request(future))
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(context) = this.context.as_ref() else {
            return this.inner.poll(cx);
        };
        let _scope = context.scope.as_ref().map(scope::enter);
        let _current = set_current(Current::Task(context.clone()));
        let inner = this.inner;
        match panic::catching(|| catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))) {
            Ok(polled) => polled,
            Err(payload) => {
                context.report_panic(PanicDetail::caught(&*payload));
                resume_unwind(payload)
            }
        }
    }
}
