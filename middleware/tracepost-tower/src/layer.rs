use std::sync::Arc;

use tower::Layer;
use tracepost_core::TracepostHandle;

use crate::policy::SnapshotPolicy;
use crate::service::TracepostService;

/// Extracts the route template of a request (`/users/{id}`), or `None` when unmatched.
pub type RouteFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// The capture settings shared by every request of one layer.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) handle: TracepostHandle,
    pub(crate) body_limit: usize,
    pub(crate) max_breadcrumbs: usize,
    pub(crate) policy: SnapshotPolicy,
    pub(crate) route_fn: Option<RouteFn>,
    pub(crate) catch_panics: bool,
    pub(crate) request_span: bool,
}

/// A tower [`Layer`] that measures every request and captures failures.
///
/// Per request it records RED metrics by route template, continues or starts a W3C trace,
/// honours or generates `x-request-id` (echoed on the response), tees the request and response
/// bodies while they stream (up to a cap; nothing is buffered before the handler runs), turns
/// panics into a 500 and an error event with a backtrace, and keeps a request snapshot as the
/// [`SnapshotPolicy`] says: every failure, slow requests and a sample of the rest.
///
/// The event for a request is emitted when its response body ends (or is dropped), so the
/// snapshot holds the full latency and the response body.
///
/// ```
/// use axum::{routing::get, Router};
/// use tracepost_tower::TracepostLayer;
///
/// # async fn demo() -> Result<(), tracepost_core::BuildError> {
/// let tp = tracepost_core::Tracepost::builder().service("shop").build()?;
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "ann" }))
///     .layer(TracepostLayer::new(tp.handle()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TracepostLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for TracepostLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracepostLayer")
            .field("body_limit", &self.config.body_limit)
            .field("max_breadcrumbs", &self.config.max_breadcrumbs)
            .field("policy", &self.config.policy)
            .field("catch_panics", &self.config.catch_panics)
            .field("request_span", &self.config.request_span)
            .finish_non_exhaustive()
    }
}

impl TracepostLayer {
    /// A layer with the defaults: 64 KiB body capture, 100 breadcrumbs, panics caught,
    /// [`SnapshotPolicy::default`].
    pub fn new(handle: TracepostHandle) -> Self {
        TracepostLayer {
            config: Arc::new(Config {
                handle,
                body_limit: 64 * 1024,
                max_breadcrumbs: 100,
                policy: SnapshotPolicy::default(),
                route_fn: None,
                catch_panics: true,
                request_span: false,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// How many bytes of each request and response body a snapshot keeps (0: none).
    pub fn body_limit(self, bytes: usize) -> Self {
        self.with(|c| c.body_limit = bytes)
    }

    /// How many log lines emitted during a request are kept as breadcrumbs (oldest dropped).
    pub fn max_breadcrumbs(self, n: usize) -> Self {
        self.with(|c| c.max_breadcrumbs = n)
    }

    /// Which requests keep a snapshot.
    pub fn snapshot_policy(self, policy: SnapshotPolicy) -> Self {
        self.with(|c| c.policy = policy)
    }

    /// Whether panics in the inner service are caught and answered with a 500 (default true).
    pub fn catch_panics(self, on: bool) -> Self {
        self.with(|c| c.catch_panics = on)
    }

    /// Opens a `tracing` span per request (target `tracepost::request`, INFO) when the tracing
    /// layer is installed (default false). Without it, logs emitted on the request's own task
    /// still become its breadcrumbs; with it, so do logs of work spawned with
    /// `.in_current_span()`, and `fmt` prints the request's ids on every line. Costs about
    /// 0.6 µs per request.
    pub fn request_span(self, on: bool) -> Self {
        self.with(|c| c.request_span = on)
    }

    /// Uses `f` to find the route template instead of axum's `MatchedPath` (for other
    /// frameworks). Return `None` for unmatched requests; never return the raw path.
    pub fn route_with(
        self,
        f: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.route_fn = Some(Arc::new(f)))
    }
}

impl<S> Layer<S> for TracepostLayer {
    type Service = TracepostService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        crate::panic::install_hook();
        TracepostService::new(inner, self.config.clone())
    }
}
