use std::sync::Arc;

use tower::Layer;
use tracepost_core::capture::{CaptureConfig, ClassifyStatus, SnapshotPolicy};
use tracepost_core::TracepostHandle;

use crate::service::TracepostService;

/// Extracts the route template of a request (`/users/{id}`), or `None` when unmatched.
pub type RouteFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// The settings shared by every request of one layer: core's capture settings, and how to
/// find a request's route.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) capture: Arc<CaptureConfig>,
    pub(crate) route_fn: Option<RouteFn>,
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
            .field("capture", &self.config.capture)
            .field("route_with", &self.config.route_fn.is_some())
            .finish()
    }
}

impl TracepostLayer {
    /// A layer with the defaults: 64 KiB body capture, 100 breadcrumbs, panics caught,
    /// [`SnapshotPolicy::default`].
    pub fn new(handle: TracepostHandle) -> Self {
        TracepostLayer {
            config: Arc::new(Config {
                capture: Arc::new(CaptureConfig::new(handle)),
                route_fn: None,
            }),
        }
    }

    /// A layer with core capture settings built elsewhere (shared with another adapter).
    pub fn with_config(config: CaptureConfig) -> Self {
        TracepostLayer {
            config: Arc::new(Config {
                capture: Arc::new(config),
                route_fn: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(CaptureConfig) -> CaptureConfig) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.capture = Arc::new(f((*config.capture).clone()));
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

    /// Which response statuses count as failures (default: 5xx). Takes a
    /// [`ClassifyStatus`], such as a closure `|status| status >= 500 || status == 429`.
    pub fn classify_status(self, classify: impl ClassifyStatus) -> Self {
        self.with(|c| c.classify_status(classify))
    }

    /// Whether panics in the inner service, and in its response bodies, are caught (default
    /// true): a panic before the response head becomes a 500 and an error event; one while
    /// the body streams cuts the response (as without the layer) and is recorded as a failed
    /// request (status 500) with an error event.
    pub fn catch_panics(self, on: bool) -> Self {
        self.with(|c| c.catch_panics(on))
    }

    /// Opens a `tracing` span per request (target `tracepost::request`, INFO) when the tracing
    /// layer is installed (default false). Without it, logs emitted on the request's own task
    /// still become its breadcrumbs; with it, so do logs of work spawned with
    /// `.in_current_span()`, and `fmt` prints the request's ids on every line. Costs about
    /// 0.6 µs per request.
    pub fn request_span(self, on: bool) -> Self {
        self.with(|c| c.request_span(on))
    }

    /// Uses `f` to find the route template instead of axum's `MatchedPath` (for other
    /// frameworks). Return `None` for unmatched requests; never return the raw path.
    pub fn route_with(
        mut self,
        f: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.config).route_fn = Some(Arc::new(f));
        self
    }
}

impl<S> Layer<S> for TracepostLayer {
    type Service = TracepostService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.config.capture.install_panic_hook();
        TracepostService::new(inner, self.config.clone())
    }
}
