use std::sync::atomic::{AtomicU64, Ordering};

use super::{Stage, Verdict};
use crate::event::{Event, Kind};

/// Keeps a fraction of the events of some kinds (`Builder::sample`), and of some analytics
/// events by their `analytics.event` attribute (`pageview`, `track`, `identify`;
/// `Builder::sample_analytics`), at random; every event dropped is counted
/// (`tracepost_events_sampled_out_total`). Events without a rate are kept.
#[derive(Debug, Default)]
pub struct Sample {
    rates: Vec<(Kind, f64)>,
    analytics: Vec<(String, f64)>,
    sampled_out: AtomicU64,
}

/// The attribute naming what an `analytics` event records (`pageview`, `track`, `identify`),
/// which [`Sample`]'s per-analytics-event rates match.
pub const ANALYTICS_EVENT: &str = "analytics.event";

impl Sample {
    /// Keeps the fraction `rate` (0..=1) of each listed kind.
    pub fn new(rates: Vec<(Kind, f64)>) -> Self {
        Sample {
            rates,
            analytics: Vec::new(),
            sampled_out: AtomicU64::new(0),
        }
    }

    /// Also keeps the fraction `rate` (0..=1) of the `analytics` events whose
    /// [`ANALYTICS_EVENT`] attribute is each listed name; such a rate wins over the rate of
    /// the whole `analytics` kind.
    pub fn with_analytics(mut self, rates: Vec<(String, f64)>) -> Self {
        self.analytics = rates;
        self
    }

    /// Events dropped by sampling so far.
    pub fn sampled_out(&self) -> u64 {
        self.sampled_out.load(Ordering::Relaxed)
    }
}

impl Stage for Sample {
    fn name(&self) -> &'static str {
        "sample"
    }

    fn process(&self, event: &mut Event) -> Verdict {
        let analytics = match event.kind {
            Kind::Analytics if !self.analytics.is_empty() => event
                .attributes
                .get(ANALYTICS_EVENT)
                .and_then(|v| v.as_str())
                .and_then(|name| self.analytics.iter().find(|(n, _)| n == name)),
            _ => None,
        };
        let rate = analytics.map(|(_, r)| r).or_else(|| {
            self.rates
                .iter()
                .find(|(k, _)| *k == event.kind)
                .map(|(_, r)| r)
        });
        if let Some(rate) = rate {
            if *rate < 1.0 && rand::random::<f64>() >= *rate {
                self.sampled_out.fetch_add(1, Ordering::Relaxed);
                return Verdict::Drop;
            }
        }
        Verdict::Keep
    }
}
