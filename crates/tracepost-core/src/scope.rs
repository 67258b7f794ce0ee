//! Request scope: what the HTTP middleware and the `tracing` layer share about one request;
//! and the internal flag ([`is_internal`]) that keeps tracepost from capturing itself.
//!
//! Two ways link a log event to its request:
//! - **The current scope** (always): while the middleware polls a request's future or its
//!   response body, the scope is this thread's [`current`] one ([`enter`]). Events the
//!   handler logs on its own task land in it. This costs a thread-local write per poll.
//! - **A request span** (opt-in, `TracepostLayer::request_span(true)`): the middleware hands
//!   the scope over with [`set_pending`] and creates a span on the same thread; the `tracing`
//!   layer takes it with [`take_pending`] in `on_new_span` and keeps it in the span's
//!   extensions. Work the handler spawns with `.in_current_span()` then stays linked too, and
//!   log lines printed by `fmt` carry the request's ids.
//!
//! Either way, events become breadcrumbs of the scope and carry its trace and request ids.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use parking_lot::Mutex;

use crate::capture::RequestId;
use crate::event::Breadcrumb;
use crate::trace_context::TraceContext;

/// What one request's logs share: its ids and a bounded breadcrumb buffer.
#[derive(Debug)]
pub struct RequestScope {
    trace: TraceContext,
    request_id: ScopeId,
    route: Arc<str>,
    max_breadcrumbs: usize,
    breadcrumbs: Mutex<VecDeque<Breadcrumb>>,
    overflowed: AtomicU64,
    failed: AtomicBool,
    attachment: OnceLock<Arc<dyn ScopeAttachment>>,
}

/// Something a layer keeps with a request until the request is over: the `tracing` layer's
/// buffer of the request's spans, whose trace is kept or dropped whole once the outcome is
/// known. [`ScopeAttachment::request_finished`] runs when the scope is dropped, which is
/// after the middleware recorded the response (or the panic).
pub trait ScopeAttachment: std::any::Any + Send + Sync + std::fmt::Debug {
    /// The request is over; `failed` when it answered a 5xx or panicked
    /// ([`RequestScope::mark_failed`]).
    fn request_finished(&self, failed: bool);
    /// `self`, for downcasting to the layer's own type.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A scope's request id: the capture's own inline copy (no allocation per request), or a
/// shared string from [`RequestScope::new`].
#[derive(Debug)]
enum ScopeId {
    Inline(RequestId),
    Shared(Arc<str>),
}

impl RequestScope {
    /// A scope keeping at most `max_breadcrumbs` (the oldest are dropped first).
    pub fn new(
        trace: TraceContext,
        request_id: Arc<str>,
        route: Arc<str>,
        max_breadcrumbs: usize,
    ) -> Self {
        Self::with_id(trace, ScopeId::Shared(request_id), route, max_breadcrumbs)
    }

    /// The capture's scope: the request id is copied inline rather than shared.
    pub(crate) fn for_request(
        trace: TraceContext,
        request_id: RequestId,
        route: Arc<str>,
        max_breadcrumbs: usize,
    ) -> Self {
        Self::with_id(trace, ScopeId::Inline(request_id), route, max_breadcrumbs)
    }

    fn with_id(
        trace: TraceContext,
        request_id: ScopeId,
        route: Arc<str>,
        max_breadcrumbs: usize,
    ) -> Self {
        RequestScope {
            trace,
            request_id,
            route,
            max_breadcrumbs,
            breadcrumbs: Mutex::new(VecDeque::new()),
            overflowed: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            attachment: OnceLock::new(),
        }
    }

    /// Records that the request failed (a 5xx or a panic); the middleware calls it when it
    /// finishes a failed request.
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Whether [`mark_failed`](Self::mark_failed) was called.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The scope's attachment, made by `init` on first use (at most one per scope).
    pub fn attachment_or_init(
        &self,
        init: impl FnOnce() -> Arc<dyn ScopeAttachment>,
    ) -> &Arc<dyn ScopeAttachment> {
        self.attachment.get_or_init(init)
    }

    /// The request's trace context.
    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        match &self.request_id {
            ScopeId::Inline(id) => id.as_str(),
            ScopeId::Shared(id) => id,
        }
    }

    /// The route template.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Records one breadcrumb, evicting the oldest when full.
    pub fn push(&self, crumb: Breadcrumb) {
        if self.max_breadcrumbs == 0 {
            return;
        }
        let mut q = self.breadcrumbs.lock();
        if q.len() >= self.max_breadcrumbs {
            q.pop_front();
            self.overflowed.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(crumb);
    }

    /// A copy of the breadcrumbs recorded so far (they stay for the request's own event).
    pub fn peek(&self) -> Vec<Breadcrumb> {
        self.breadcrumbs.lock().iter().cloned().collect()
    }

    /// Takes the breadcrumbs recorded so far, and how many older ones were evicted.
    pub fn take(&self) -> (Vec<Breadcrumb>, u64) {
        let crumbs = std::mem::take(&mut *self.breadcrumbs.lock()).into();
        (crumbs, self.overflowed.swap(0, Ordering::Relaxed))
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        if let Some(attachment) = self.attachment.take() {
            attachment.request_finished(*self.failed.get_mut());
        }
    }
}

thread_local! {
    static PENDING: RefCell<Option<Arc<RequestScope>>> = const { RefCell::new(None) };
    static CURRENT: RefCell<Option<Arc<RequestScope>>> = const { RefCell::new(None) };
}

/// Makes `scope` this thread's current request scope until the guard drops (restoring the
/// previous one, so nested requests — a service calling another in process — behave).
pub fn enter(scope: &Arc<RequestScope>) -> ScopeGuard {
    let previous = CURRENT.with(|c| c.replace(Some(scope.clone())));
    ScopeGuard { previous }
}

/// The request scope being polled on this thread, if any.
pub fn current() -> Option<Arc<RequestScope>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Restores the previous current scope when dropped; see [`enter`].
#[derive(Debug)]
pub struct ScopeGuard {
    previous: Option<Arc<RequestScope>>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Offers `scope` to the next request span created on this thread.
pub fn set_pending(scope: Arc<RequestScope>) {
    PENDING.with(|p| *p.borrow_mut() = Some(scope));
}

/// Takes the scope offered with [`set_pending`], if any (also used to clear it).
pub fn take_pending() -> Option<Arc<RequestScope>> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// The target of tracepost's request span. The `tracing` layer attaches the pending scope to
/// spans with this target and the name [`REQUEST_SPAN_NAME`].
pub const REQUEST_SPAN_TARGET: &str = "tracepost::request";
/// The name of tracepost's request span.
pub const REQUEST_SPAN_NAME: &str = "request";

static LAYER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Called by the `tracing` layer when it is built: from then on the middleware opens request
/// spans, so that logs emitted during a request become its breadcrumbs. Without the layer
/// the middleware skips the span, and its cost.
pub fn mark_layer_installed() {
    LAYER_INSTALLED.store(true, Ordering::Relaxed);
}

/// Whether a tracepost `tracing` layer has been built in this process.
pub fn layer_installed() -> bool {
    LAYER_INSTALLED.load(Ordering::Relaxed)
}

thread_local! {
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

/// True while tracepost itself works on this thread: on the pipeline's own threads (always),
/// inside [`TracepostHandle::capture`](crate::TracepostHandle::capture), and while a sink's
/// send future is polled. The `tracing` layer ignores every event and span emitted then, so
/// that tracepost never captures itself (an HTTP client's debug logs from a push would
/// otherwise become events that cause the next push).
pub fn is_internal() -> bool {
    INTERNAL.with(Cell::get)
}

/// Marks this thread as working for tracepost until the guard drops (restoring the previous
/// state, so guards nest).
pub fn enter_internal() -> InternalGuard {
    InternalGuard {
        previous: INTERNAL.with(|i| i.replace(true)),
        _not_send: PhantomData,
    }
}

/// Marks the calling thread as tracepost's for the rest of its life; the pipeline's runtime
/// calls it when it starts each of its threads.
pub fn mark_thread_internal() {
    INTERNAL.with(|i| i.set(true));
}

/// Restores the previous internal state when dropped; see [`enter_internal`].
#[derive(Debug)]
pub struct InternalGuard {
    previous: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for InternalGuard {
    fn drop(&mut self) {
        INTERNAL.with(|i| i.set(self.previous));
    }
}

/// A future that is [internal](is_internal) while it is polled (whatever thread polls it).
/// Tasks it spawns are not: for them the pipeline runs its workers on its own runtime.
#[derive(Debug)]
pub struct Internal<F> {
    inner: Pin<Box<F>>,
}

/// Wraps `future` so that it is [internal](is_internal) while polled.
pub fn internal<F: Future>(future: F) -> Internal<F> {
    Internal {
        inner: Box::pin(future),
    }
}

impl<F: Future> Future for Internal<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _internal = enter_internal();
        self.inner.as_mut().poll(cx)
    }
}
