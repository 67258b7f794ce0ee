//! Metrics kept in process and exposed in the Prometheus text or OpenMetrics format.
//!
//! The exposition is `prometheus-client`'s: tracepost's families are encoded by a
//! [`Collector`](prometheus_client::collector::Collector) over lock-free atomics (recording a
//! request costs a few atomic adds, no lock), followed by each sink's registry and the
//! application's own [`MetricsRegistry`]. tracepost installs no global recorder, so `/metrics`
//! works whether or not the host application uses the `metrics` or `prometheus` crates.

pub(crate) mod exposition;
#[cfg(feature = "metrics-facade")]
pub mod facade;
pub mod http;
mod registry;
mod window;

pub use exposition::{encode_registries, openmetrics_to_prometheus_text, MetricsFormat};
pub use http::{HttpMetrics, RequestOutcome};
pub use registry::MetricsRegistry;
pub use window::LatencySketch;

use prometheus_client::encoding::{EncodeLabelSet, MetricEncoder, NoLabelSet};

use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed-bucket histogram with atomic counters (lock-free to record).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum in whole units of `1 / units_per_value` (µs for seconds, bytes for bytes), so
    /// that it fits an atomic integer without wrapping in any realistic lifetime.
    sum_units: AtomicU64,
    units_per_value: f64,
}

impl Histogram {
    /// A histogram with the given upper bounds (ascending; `+Inf` is implicit) whose sum is
    /// kept in units of `1 / units_per_value` (`1e6`: µs for seconds; `1.0` for bytes).
    pub fn new(bounds: &'static [f64], units_per_value: f64) -> Self {
        Histogram {
            bounds,
            buckets: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_units: AtomicU64::new(0),
            units_per_value,
        }
    }

    /// Records one observation.
    pub fn record(&self, value: f64) {
        // Non-cumulative per bucket; made cumulative when rendered.
        let i = self.bounds.partition_point(|b| *b < value);
        if i < self.bounds.len() {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_units.fetch_add(
            (value * self.units_per_value).round() as u64,
            Ordering::Relaxed,
        );
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Encodes this histogram as one labelled series of the family `encoder` was opened for.
    pub fn encode(
        &self,
        encoder: &mut MetricEncoder<'_>,
        labels: &impl EncodeLabelSet,
    ) -> Result<(), std::fmt::Error> {
        // Read the buckets before the count so that no bucket ever exceeds `+Inf`.
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(self.bounds.len() + 1);
        let mut finite = 0;
        for (bound, n) in self.bounds.iter().zip(self.buckets.iter()) {
            let n = n.load(Ordering::Relaxed);
            finite += n;
            buckets.push((*bound, n));
        }
        let count = self.count.load(Ordering::Relaxed).max(finite);
        buckets.push((f64::INFINITY, count - finite));
        let sum = self.sum_units.load(Ordering::Relaxed) as f64 / self.units_per_value;
        encoder
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Request duration buckets in seconds, as the OpenTelemetry HTTP semantic conventions advise.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Body size buckets in bytes.
pub const SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// Sink batch latency buckets in seconds.
pub const BATCH_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
