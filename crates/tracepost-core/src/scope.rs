//! Request scope: what the HTTP middleware and the `tracing` layer share about one request.
//!
//! The middleware creates a [`RequestScope`], hands it over with [`set_pending`] and then
//! creates its request span on the same thread; the `tracing` layer takes it with
//! [`take_pending`] in `on_new_span` and keeps it in that span's extensions. Log events inside
//! the span then land as breadcrumbs in the scope, and carry its trace and request ids.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::event::Breadcrumb;
use crate::trace_context::TraceContext;

/// What one request's logs share: its ids and a bounded breadcrumb buffer.
#[derive(Debug)]
pub struct RequestScope {
    trace: TraceContext,
    request_id: Arc<str>,
    route: Arc<str>,
    max_breadcrumbs: usize,
    breadcrumbs: Mutex<VecDeque<Breadcrumb>>,
    overflowed: AtomicU64,
}

impl RequestScope {
    /// A scope keeping at most `max_breadcrumbs` (the oldest are dropped first).
    pub fn new(
        trace: TraceContext,
        request_id: Arc<str>,
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
        }
    }

    /// The request's trace context.
    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
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

    /// Takes the breadcrumbs recorded so far, and how many older ones were evicted.
    pub fn take(&self) -> (Vec<Breadcrumb>, u64) {
        let crumbs = std::mem::take(&mut *self.breadcrumbs.lock()).into();
        (crumbs, self.overflowed.swap(0, Ordering::Relaxed))
    }
}

thread_local! {
    static PENDING: RefCell<Option<Arc<RequestScope>>> = const { RefCell::new(None) };
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
