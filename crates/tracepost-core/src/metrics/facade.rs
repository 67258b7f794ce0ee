//! A [`metrics`](https://docs.rs/metrics) facade recorder that records into a
//! [`MetricsRegistry`], so `metrics::counter!`/`gauge!`/`histogram!` appear on tracepost's
//! `/metrics` (feature `metrics-facade`).
//!
//! Why a bridge rather than `metrics-exporter-prometheus` next to tracepost: that exporter
//! renders only the Prometheus 0.0.4 text, where a counter keeps the name it was given, so its
//! output cannot be joined to an OpenMetrics exposition (whose counter samples end in `_total`)
//! without renaming series; and `metrics-prometheus-client`, the bridge to `prometheus-client`,
//! is built on `prometheus-client` 0.22, whose `Collector` is not 0.26's. Here each facade
//! metric is a `prometheus-client` metric, encoded by one collector in the registry, in
//! whichever format the scraper negotiated.
//!
//! Naming: characters Prometheus does not allow (`.`, `-`, …) become `_`, and a counter's
//! samples end in `_total` (`counter!("orders_placed")` is `orders_placed_total`, and so is
//! `counter!("orders_placed_total")`). Units given to `describe_*!` are not added to names.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

use super::MetricsRegistry;

type Labels = Vec<(String, String)>;
type Families<M, C = fn() -> M> = RwLock<BTreeMap<String, Family<Labels, M, C>>>;

/// The bucket bounds of facade histograms unless set with
/// [`MetricsFacade::histogram_buckets`]: the Prometheus client libraries' defaults, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A `metrics::Recorder` over a [`MetricsRegistry`].
///
/// ```
/// use tracepost_core::metrics::{facade::MetricsFacade, MetricsRegistry};
///
/// let registry = MetricsRegistry::default();
/// let recorder = MetricsFacade::new(&registry);
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("orders_placed", "kind" => "web").increment(1);
/// });
/// ```
#[derive(Debug, Clone)]
pub struct MetricsFacade {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: RwLock<Option<Arc<[f64]>>>,
    help: RwLock<BTreeMap<String, String>>,
    counters: Families<Counter>,
    gauges: Families<Gauge<f64, AtomicU64>>,
    histograms: Families<Histogram, Buckets>,
}

#[derive(Debug, Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

impl MetricsFacade {
    /// A recorder whose metrics are served with `registry` (registers one collector in it).
    pub fn new(registry: &MetricsRegistry) -> Self {
        let state = Arc::new(State::default());
        registry.write().register_collector(Box::new(state.clone()));
        MetricsFacade { state }
    }

    /// Sets the bucket bounds (ascending) of histograms created from now on.
    pub fn histogram_buckets(self, bounds: &[f64]) -> Self {
        *self.state.buckets.write() = Some(bounds.into());
        self
    }

    /// Installs this recorder as the process-wide `metrics` recorder. Fails if one is already
    /// installed (a process has one, for good).
    pub fn install(self) -> Result<(), metrics::SetRecorderError<Self>> {
        metrics::set_global_recorder(self)
    }

    fn describe(&self, key: metrics::KeyName, description: metrics::SharedString) {
        self.state
            .help
            .write()
            .insert(sanitize(key.as_str()), description.into_owned());
    }
}

/// A Prometheus metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, other characters as `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn labels(key: &metrics::Key) -> Labels {
    key.labels()
        .map(|l| (sanitize(l.key()), l.value().to_owned()))
        .collect()
}

/// The family of `name` in `map`, created on first use.
fn family<F: Clone>(
    map: &RwLock<BTreeMap<String, F>>,
    name: String,
    create: impl FnOnce() -> F,
) -> F {
    if let Some(f) = map.read().get(&name) {
        return f.clone();
    }
    map.write().entry(name).or_insert_with(create).clone()
}

struct CounterHandle(Counter);
struct GaugeHandle(Gauge<f64, AtomicU64>);
struct HistogramHandle(Histogram);

impl metrics::CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }
    fn absolute(&self, value: u64) {
        self.0.inner().fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for GaugeHandle {
    fn increment(&self, value: f64) {
        self.0.inc_by(value);
    }
    fn decrement(&self, value: f64) {
        self.0.dec_by(value);
    }
    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

impl metrics::HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        self.0.observe(value);
    }
}

impl metrics::Recorder for MetricsFacade {
    fn describe_counter(
        &self,
        key: metrics::KeyName,
        _unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.describe(key, description);
    }

    fn describe_gauge(
        &self,
        key: metrics::KeyName,
        _unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.describe(key, description);
    }

    fn describe_histogram(
        &self,
        key: metrics::KeyName,
        _unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.describe(key, description);
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let name = sanitize(key.name());
        let name = name
            .strip_suffix("_total")
            .map_or(name.clone(), str::to_owned);
        let family = family(&self.state.counters, name, Family::default);
        let counter = family.get_or_create_owned(&labels(key));
        metrics::Counter::from_arc(Arc::new(CounterHandle(counter)))
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let family = family(&self.state.gauges, sanitize(key.name()), Family::default);
        let gauge = family.get_or_create_owned(&labels(key));
        metrics::Gauge::from_arc(Arc::new(GaugeHandle(gauge)))
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let buckets = self
            .state
            .buckets
            .read()
            .clone()
            .unwrap_or_else(|| DEFAULT_BUCKETS.into());
        let family = family(&self.state.histograms, sanitize(key.name()), || {
            Family::new_with_constructor(Buckets(buckets))
        });
        let histogram = family.get_or_create_owned(&labels(key));
        metrics::Histogram::from_arc(Arc::new(HistogramHandle(histogram)))
    }
}

impl Collector for State {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let help = self.help.read();
        let help_for = |name: &str, alt: &str| {
            help.get(name)
                .or_else(|| help.get(alt))
                .map_or("", String::as_str)
                .to_owned()
        };
        for (name, family) in self.counters.read().iter() {
            let help = help_for(name, &format!("{name}_total"));
            family.encode(encoder.encode_descriptor(name, &help, None, MetricType::Counter)?)?;
        }
        for (name, family) in self.gauges.read().iter() {
            let help = help_for(name, name);
            family.encode(encoder.encode_descriptor(name, &help, None, MetricType::Gauge)?)?;
        }
        for (name, family) in self.histograms.read().iter() {
            let help = help_for(name, name);
            family.encode(encoder.encode_descriptor(
                name,
                &help,
                None,
                MetricType::Histogram,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode_registries, MetricsFormat};

    #[test]
    fn facade_metrics_are_encoded_in_both_formats() {
        let registry = MetricsRegistry::default();
        let recorder = MetricsFacade::new(&registry).histogram_buckets(&[0.1, 1.0]);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("shop.orders_total", "Orders placed.");
            metrics::counter!("shop.orders_total", "kind" => "web").increment(2);
            metrics::counter!("shop.orders", "kind" => "web").increment(1);
            metrics::counter!("shop.orders", "kind" => "app").absolute(5);
            metrics::gauge!("queue-depth").set(3.5);
            metrics::gauge!("queue-depth").decrement(1.0);
            metrics::histogram!("9lives", "route" => "/a").record(0.5);
        });
        let text = encode_registries(&[&registry.read()], MetricsFormat::Prometheus);
        for line in [
            "# HELP shop_orders_total Orders placed.",
            "# TYPE shop_orders_total counter",
            "shop_orders_total{kind=\"web\"} 3",
            "shop_orders_total{kind=\"app\"} 5",
            "queue_depth 2.5",
            "_9lives_bucket{le=\"1.0\",route=\"/a\"} 1",
            "_9lives_bucket{le=\"0.1\",route=\"/a\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        let om = encode_registries(&[&registry.read()], MetricsFormat::OpenMetrics);
        assert!(om.contains("# TYPE shop_orders counter\n"), "{om}");
        assert!(om.contains("shop_orders_total{kind=\"web\"} 3\n"), "{om}");
    }
}
