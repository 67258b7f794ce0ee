//! The pipeline's `/metrics` exposition: the HTTP metrics, the pipeline's self-metrics, each
//! sink's registry and the application's own registry, in the negotiated format.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::handle::{Inner, TracepostHandle};
use super::stats;
use crate::metrics::exposition::{self, FnCollector};
use crate::metrics::{MetricsFormat, MetricsRegistry};

impl TracepostHandle {
    /// The HTTP metrics, the pipeline's self-metrics, each sink's metrics and the
    /// application's [`metrics_registry`](Self::metrics_registry), in the Prometheus text
    /// format (0.0.4).
    pub fn render_metrics(&self) -> String {
        self.render_metrics_as(MetricsFormat::Prometheus)
    }

    /// The same metrics as [`render_metrics`](Self::render_metrics), in `format` (pick it from
    /// the scrape's `Accept` header with [`MetricsFormat::from_accept`]). Sample names, labels
    /// and values are the same in both formats; only the metadata lines differ.
    pub fn render_metrics_as(&self, format: MetricsFormat) -> String {
        let mut own = Registry::default();
        let inner = self.inner.clone();
        own.register_collector(Box::new(FnCollector::new(move |e| encode_own(&inner, e))));
        let app = self.inner.app_metrics.read();
        let mut registries: Vec<&Registry> = vec![&own];
        registries.extend(self.inner.sinks.iter().map(|s| &s.metrics));
        registries.push(&app);
        exposition::encode_registries(&registries, format)
    }

    /// The registry of the application's own metrics: register counters, gauges, histograms
    /// or collectors here and they are served on `/metrics` with tracepost's.
    pub fn metrics_registry(&self) -> &MetricsRegistry {
        &self.inner.app_metrics
    }
}

fn encode_own(inner: &Arc<Inner>, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    inner.http.encode(e)?;
    let sinks: Vec<_> = inner
        .sinks
        .iter()
        .map(|s| (&*s.stats, s.stats.queue_capacity - s.tx.capacity()))
        .collect();
    stats::encode(e, &sinks)?;
    e.encode_descriptor(
        "tracepost_events_sampled_out",
        "Events dropped by sampling.",
        None,
        MetricType::Counter,
    )?
    .encode_counter::<NoLabelSet, _, u64>(&inner.stages.sample().sampled_out(), None)?;
    e.encode_descriptor(
        "tracepost_spans_overflowed",
        "Spans dropped because a trace's span buffer was full.",
        None,
        MetricType::Counter,
    )?
    .encode_counter::<NoLabelSet, _, u64>(&inner.stages.sample().span_overflow(), None)
}

impl super::Tracepost {
    /// The registry of the application's own metrics (see
    /// [`TracepostHandle::metrics_registry`]).
    pub fn metrics_registry(&self) -> &MetricsRegistry {
        self.handle.metrics_registry()
    }
}
