//! tracepost's tower [`Layer`](tower::Layer): RED metrics, request snapshots, errors and
//! panics, for axum and any tower HTTP service.
//!
//! Most users get it from the `tracepost` facade as `tp.layer()`; see [`TracepostLayer`].
//! The capture itself (ids, policy, body capture, classification, the finisher, panics) is
//! framework-neutral and lives in [`tracepost_core::capture`]; this crate maps `http` 1.x
//! requests and responses onto it.

mod body;
mod head;
mod layer;
mod service;

#[cfg(feature = "axum")]
mod metrics_route;

pub use body::{RequestBody, ResponseBody};
pub use layer::{RouteFn, TracepostLayer};
pub use service::{ResponseFuture, TracepostService};
pub use tracepost_core::capture::{
    in_current_request, spawn, CaptureConfig, ClassifyStatus, RouteSnapshot, SnapshotPolicy,
    TraceInfo,
};

#[cfg(feature = "axum")]
pub use metrics_route::{
    health_router, metrics_router, render_metrics, render_metrics_for, METRICS_CONTENT_TYPE,
};

/// axum's `Router`, re-exported so the facade can name it without its own axum dependency.
#[cfg(feature = "axum")]
pub mod axum_router {
    pub use axum::Router;
}
