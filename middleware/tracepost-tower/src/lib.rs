//! tracepost's tower [`Layer`](tower::Layer): RED metrics, request snapshots, errors and
//! panics, for axum and any tower HTTP service.
//!
//! Most users get it from the `tracepost` facade as `tp.layer()`; see [`TracepostLayer`].

mod body;
mod capture;
mod layer;
mod panic;
mod policy;
mod service;

#[cfg(feature = "axum")]
mod metrics_route;

pub use body::{RequestBody, ResponseBody};
pub use capture::TraceInfo;
pub use layer::{RouteFn, TracepostLayer};
pub use policy::{RouteSnapshot, SnapshotPolicy};
pub use service::{ResponseFuture, TracepostService};

#[cfg(feature = "axum")]
pub use metrics_route::{
    health_router, metrics_router, render_metrics, render_metrics_for, METRICS_CONTENT_TYPE,
};

/// axum's `Router`, re-exported so the facade can name it without its own axum dependency.
#[cfg(feature = "axum")]
pub mod axum_router {
    pub use axum::Router;
}
