#![doc = include_str!("../docs.md")]

pub mod body;
pub mod config;
pub mod error;
mod ingest;
pub mod logs;
pub mod map;
pub mod origin;
pub mod replay;
#[cfg(feature = "axum")]
mod router;
pub mod schema;
pub mod script;
pub mod sourcemaps;
pub mod stack;
pub mod time;
pub mod token;
pub mod ua;
pub mod visitor;

pub use config::{ConfigError, IngestConfig, Secret};
pub use error::{ErrorBody, ErrorObject, IngestError};
pub use ingest::{Ingest, MAX_TRACKED_CLIENTS, RETAIN_EVERY};
pub use logs::{LogIngest, LogIngestConfig};
#[cfg(feature = "axum")]
pub use replay::replay_router;
pub use replay::{ReplayConfig, ReplayIngest, SegmentStore};
#[cfg(feature = "axum")]
pub use router::{events_router, logs_router, router, token_router};
pub use token::{TokenSigner, UploadToken};

/// The axum types the router is built from (the same version as the facade's).
#[cfg(feature = "axum")]
pub mod axum_router {
    pub use axum::Router;
}
