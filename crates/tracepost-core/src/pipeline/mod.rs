//! The delivery pipeline: the [stages] enrich → redact → fingerprint → sample, then one bounded
//! queue and worker per sink.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tracepost_core::BuildError> {
//! use std::time::Duration;
//! use tracepost_core::{sinks::Console, Event, Kind, Level, Tracepost};
//!
//! let tp = Tracepost::builder().service("shop-api").sink(Console::default()).build()?;
//! tp.handle().capture(Event::new(Kind::Log, Level::Info, "hello"));
//! let report = tp.shutdown(Duration::from_secs(5)).await;
//! assert!(report.completed);
//! # Ok(()) }
//! ```

mod builder;
mod handle;
mod health;
mod lifecycle;
mod metrics;
mod options;
mod returns;
mod runtime;
mod spool;
pub mod stages;
mod stats;
mod worker;

pub use builder::{BuildError, Builder};
pub use handle::{QueueFull, TracepostHandle};
pub use health::{HealthReport, SinkHealth};
pub use lifecycle::{ShutdownReport, Tracepost};
pub use options::{BatchOptions, RetryOptions, SinkOptions};
pub use runtime::{internal_runtime, run_internal, WorkerRuntime, WORKER_THREADS};
pub use spool::{FsyncPolicy, PushOutcome, Spool, SpoolFullPolicy, SpoolOptions};
pub use stats::{DropReason, Health, SinkCounts, SinkStats};
