//! The core of [tracepost](https://docs.rs/tracepost): the event model, the [`Sink`] trait and
//! the delivery pipeline. It has no web framework dependencies; the middleware crates and the
//! sink plugins build on it, and most users depend on the `tracepost` facade instead.

pub mod capture;
pub mod event;
pub mod fingerprint;
#[cfg(feature = "http-sink")]
pub mod http_sink;
pub mod metrics;
pub mod object_store;
pub mod pipeline;
pub mod redact;
pub mod scope;
pub mod sink;
pub mod sinks;
pub mod store;
pub mod tail;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time_range;
pub mod trace_context;

/// The `prometheus-client` version tracepost's metrics are built on: use this path to register
/// metrics into a [`metrics::MetricsRegistry`] or to implement `Sink::register_metrics`, so
/// that the types match.
pub use prometheus_client;

pub use capture::{in_current_request, spawn};
pub use event::{
    Breadcrumb, CapturedBody, ErrorDetail, Event, Kind, Level, MetricWindow, RequestSnapshot,
    Resource, Timestamp,
};
pub use pipeline::{
    BatchOptions, BuildError, Builder, DropReason, FsyncPolicy, Health, HealthReport, RetryOptions,
    ShutdownReport, SinkCounts, SinkHealth, SinkOptions, SpoolFullPolicy, SpoolOptions, Tracepost,
    TracepostHandle,
};
pub use redact::Redactor;
pub use sink::{
    Batch, Rejection, Settled, Sink, SinkError, SinkErrorClass, SinkErrorKind, SinkOutcome,
};

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
