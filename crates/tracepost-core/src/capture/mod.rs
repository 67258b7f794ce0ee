//! Request capture, independent of any web framework: a plain request head in, metric
//! observations and events out. The tower/axum layer (`tracepost-tower`) and other framework
//! adapters only map their request and response types onto it.
//!
//! ```
//! use std::sync::Arc;

//! use bytes::Bytes;
//! use tracepost_core::capture::{BodyEnd, CaptureConfig, RequestCapture, RequestHead, Route};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let tp = tracepost_core::Tracepost::builder().service("shop").build().unwrap();
//! let config = Arc::new(CaptureConfig::new(tp.handle()));
//!
//! // The request arrives: its head, and the route the router matched.
//! let head = RequestHead::new("POST", "/users/7?page=2")
//!     .version("HTTP/1.1")
//!     .header("content-type", "application/json");
//! let (request, _span) = RequestCapture::start(&config, head, Route::Matched("/users/{id}"));
//! {
//!     let _current = request.enter(); // around every poll of the handler
//!     request.request_chunk(&Bytes::from_static(br#"{"name":"ann"}"#));
//! }
//! // The handler answered: the head, then the body as it streams.
//! let mut response = request.respond(201, None);
//! response.set_body_len(Some(2));
//! response.response_chunk(&Bytes::from_static(b"ok"));
//! response.finish(BodyEnd::Complete); // records metrics; emits an event if kept
//! # }
//! ```
//!
//! When each part runs:
//! - [`RequestCapture::start`]: on arrival, before the handler (route, ids, active gauge);
//! - [`RequestCapture::respond`]: at the response head, where the [`SnapshotPolicy`] decides
//!   whether the snapshot could be kept, with [`ClassifyStatus`] saying whether it failed;
//! - [`ResponseCapture::finish`]: at the end of the body, where [`classify`] gives the final
//!   verdict, metrics are recorded and the event (if any) is built and captured.
//!
//! Panics: see [`panic`](mod@panic) for the hook, and [`spawn`] / [`in_current_request`] for work that a
//! request hands to other tasks.

mod body;
mod classify;
mod finish;
mod head;
pub mod panic;
mod policy;
mod request;
mod task;

use std::sync::Arc;

/// Marks a response of one of tracepost's own routes (`/metrics`, `/health`, the browser and
/// log ingest routes, the console): put it in the response's extensions and the tower layer
/// and the actix middleware pass the response through without recording it — no RED metrics,
/// no event, no snapshot. A scrape is not an app request, a 503 health check is not an app
/// failure, and a browser batch becomes events of its own, not a request event.
///
/// Because tracepost's routers mark their own responses, they can be merged into the app
/// *before* `.layer(tp.layer())`, which keeps the layer around the router's fallback: axum's
/// `Router::merge` keeps the default fallback of the router merged in, so routers merged
/// *after* the layer leave unmatched requests (404, route `_unmatched`) unmeasured.
/// A host can mark its own responses too (an internal probe route, say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnRoute;

pub use body::BodyCapture;
pub use classify::{
    classify, BodyEnd, Classification, ClassifyStatus, Failure, ServerErrors, STATUS_CLIENT_CLOSED,
};
pub use finish::ResponseCapture;
pub(crate) use head::RequestId;
pub use head::{Header, HeaderList, RequestHead};
pub use panic::PanicDetail;
pub use policy::{RouteSnapshot, SnapshotPolicy};
pub use request::{RequestCapture, RequestGuard, Route, TraceInfo};
pub use task::{in_current_request, spawn, InRequest};

/// The request header that carries the browser's session id (`tp.js` adds it to the page's
/// own `fetch`/XHR requests): the capture records it as `session_id` on the request's events
/// (request snapshots and errors), linking them to the browser session.
pub const SESSION_HEADER: &str = "x-tracepost-session";

/// The session id of a [`SESSION_HEADER`] value: 1 to 64 ASCII letters, digits, `-` and `_`
/// (what `tp.js` sends, and what a replay session id may be: see
/// [`SegmentKey::new`](crate::object_store::SegmentKey::new)), else `None` — a malformed or
/// hostile value (markup, quotes, path tricks) is ignored, never stored, never an error.
pub fn session_id(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(value)
}

use crate::pipeline::TracepostHandle;

/// The capture settings shared by every request of one adapter (one layer or middleware).
#[derive(Clone)]
pub struct CaptureConfig {
    pub(crate) handle: TracepostHandle,
    pub(crate) body_limit: usize,
    pub(crate) max_breadcrumbs: usize,
    pub(crate) policy: SnapshotPolicy,
    pub(crate) classify: Arc<dyn ClassifyStatus>,
    pub(crate) catch_panics: bool,
    pub(crate) request_span: bool,
}

impl std::fmt::Debug for CaptureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureConfig")
            .field("body_limit", &self.body_limit)
            .field("max_breadcrumbs", &self.max_breadcrumbs)
            .field("policy", &self.policy)
            .field("catch_panics", &self.catch_panics)
            .field("request_span", &self.request_span)
            .finish_non_exhaustive()
    }
}

impl CaptureConfig {
    /// The defaults: 64 KiB of each body kept, 100 breadcrumbs, panics caught, no request
    /// span, [`SnapshotPolicy::default`], 5xx are failures ([`ServerErrors`]).
    pub fn new(handle: TracepostHandle) -> Self {
        CaptureConfig {
            handle,
            body_limit: 64 * 1024,
            max_breadcrumbs: 100,
            policy: SnapshotPolicy::default(),
            classify: Arc::new(ServerErrors),
            catch_panics: true,
            request_span: false,
        }
    }

    /// How many bytes of each request and response body a snapshot keeps (0: none). A
    /// compressed body is decoded within the same cap.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many log lines emitted during a request are kept as breadcrumbs (oldest dropped).
    pub fn max_breadcrumbs(mut self, n: usize) -> Self {
        self.max_breadcrumbs = n;
        self
    }

    /// Which requests keep a snapshot.
    pub fn snapshot_policy(mut self, policy: SnapshotPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Which statuses are failures (default: 5xx).
    pub fn classify_status(mut self, classify: impl ClassifyStatus) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// Whether adapters catch panics of handlers and response bodies (default true).
    pub fn catch_panics(mut self, on: bool) -> Self {
        self.catch_panics = on;
        self
    }

    /// Whether each request opens a `tracing` span (target `tracepost::request`) when the
    /// tracing layer is installed (default false).
    pub fn request_span(mut self, on: bool) -> Self {
        self.request_span = on;
        self
    }

    /// The pipeline this capture reports to.
    pub fn handle(&self) -> &TracepostHandle {
        &self.handle
    }

    /// The body capture cap, in bytes.
    pub fn get_body_limit(&self) -> usize {
        self.body_limit
    }

    /// Whether a response with `status` is a failure under
    /// [`classify_status`](Self::classify_status) (adapters ask it to decide whether a
    /// framework's error attached to a response is reported as a failure).
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.classify.is_failure(status)
    }

    /// The snapshot policy.
    pub fn policy(&self) -> &SnapshotPolicy {
        &self.policy
    }

    /// Installs the panic hook and makes this pipeline the one unattached panics go to
    /// ([`panic::install`]). Adapters call it when their layer is applied.
    pub fn install_panic_hook(&self) {
        panic::install(&self.handle);
    }
}

#[cfg(test)]
mod session_tests {
    use super::session_id;

    #[test]
    fn session_ids_are_what_tp_js_sends_or_nothing() {
        assert_eq!(session_id("9f86d081884c7d65"), Some("9f86d081884c7d65"));
        assert_eq!(session_id("sess-browser_1"), Some("sess-browser_1"));
        for hostile in [
            "",
            r#""><script>alert(1)</script>"#,
            "../../etc/passwd",
            "a b",
            "sess%2F1",
            "ü",
            "a".repeat(65).as_str(),
        ] {
            assert_eq!(session_id(hostile), None, "{hostile:?}");
        }
    }
}
