//! [`MetricsRegistry`]: the application's own metrics, served on tracepost's `/metrics`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::registry::Registry;

/// A shared [`prometheus_client::registry::Registry`] for the application's own metrics:
/// whatever is registered here is written on tracepost's `/metrics` after tracepost's own
/// families, in whichever format the scraper negotiated.
///
/// Cloning is cheap and every clone is the same registry. Register with
/// [`write`](Self::write) (a write lock, held only while registering; scrapes take a read lock),
/// or hand a registry you built to `Builder::metrics_registry`. Recording into a registered
/// metric (`counter.inc()`) takes no lock at all: prometheus-client metrics are handles.
///
/// Families here must not reuse tracepost's names (`http_server_*`, `tracepost_*`): the
/// exposition would list the family twice and Prometheus would reject the scrape. A prefix or
/// constant labels set on this registry (`Registry::with_prefix`) apply to these families
/// only, never to tracepost's.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
/// use tracepost_core::metrics::MetricsRegistry;
///
/// let registry = MetricsRegistry::default();
/// let orders: Counter = Counter::default();
/// registry.write().register("shop_orders", "Orders placed", orders.clone());
/// orders.inc();
/// ```
#[derive(Clone, Default)]
pub struct MetricsRegistry(Arc<RwLock<Registry>>);

impl MetricsRegistry {
    /// Shares `registry` (which may already hold metrics, a prefix or constant labels).
    pub fn new(registry: Registry) -> Self {
        MetricsRegistry(Arc::new(RwLock::new(registry)))
    }

    /// The registry, locked for registering metrics or collectors. Do not hold the guard
    /// across an `.await`: scrapes wait for it.
    pub fn write(&self) -> impl DerefMut<Target = Registry> + '_ {
        self.0.write()
    }

    /// The registry, locked for reading (encoding it elsewhere, for instance).
    pub fn read(&self) -> impl Deref<Target = Registry> + '_ {
        self.0.read()
    }
}

impl From<Registry> for MetricsRegistry {
    fn from(registry: Registry) -> Self {
        MetricsRegistry::new(registry)
    }
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Registry`'s own Debug lists every metric's state: too much for a log line.
        f.debug_struct("MetricsRegistry").finish_non_exhaustive()
    }
}
