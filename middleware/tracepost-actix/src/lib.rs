//! tracepost's actix-web 4 middleware: RED metrics by route pattern, request snapshots, handler
//! errors and panics, for actix-web apps.
//!
//! Most users get it from the `tracepost` facade (feature `actix`) as `tp.actix()`; see
//! [`TracepostMiddleware`]. Every decision (ids, snapshot policy, body capture and redaction,
//! classification, the event and the metrics) is made by the framework-neutral
//! [`tracepost_core::capture`]; this crate only maps actix-web's request, payload, response and
//! body types (which use `http` 0.2) onto it.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use tracepost_actix::{health_service, metrics_service, TracepostMiddleware};
//!
//! # async fn run() -> std::io::Result<()> {
//! let tp = tracepost_core::Tracepost::builder().service("shop").build().unwrap();
//! let handle = tp.handle();
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(TracepostMiddleware::new(handle.clone()))
//!         .service(metrics_service(handle.clone()))
//!         .service(health_service(handle.clone()))
//!         .route("/users/{id}", web::get().to(|| async { "ann" }))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```

mod body;
mod head;
mod middleware;
mod routes;

pub use body::{RequestPayload, ResponseBody};
pub use middleware::{ResponseFuture, TracepostMiddleware, TracepostService};
pub use routes::{health_service, metrics_service};
pub use tracepost_core::capture::{
    in_current_request, spawn, CaptureConfig, ClassifyStatus, RouteSnapshot, SnapshotPolicy,
    TraceInfo,
};

/// actix-web's `Resource`, the type of [`metrics_service`] and [`health_service`], re-exported
/// so the facade can name it without its own actix-web dependency.
pub use actix_web::Resource;
