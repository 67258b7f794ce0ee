use std::sync::atomic::{AtomicU64, Ordering};

use super::{Stage, Verdict};
use crate::event::{Event, Kind};

/// Keeps a fraction of the events of some kinds (`Builder::sample`), and of some analytics
/// events by their `analytics.event` attribute (`pageview`, `track`, `identify`;
/// `Builder::sample_analytics`), at random; every event dropped is counted
/// (`tracepost_events_sampled_out_total`). Events without a rate are kept.
///
/// `span` events are never sampled here: the `tracing` layer keeps or drops a trace's spans
/// whole and counts the spans of the traces it drops ([`Sample::count_sampled_out`]) and of
/// the buffers that overflow ([`Sample::count_span_overflow`]).
#[derive(Debug, Default)]
pub struct Sample {
    rates: Vec<(Kind, f64)>,
    analytics: Vec<(String, f64)>,
    sampled_out: AtomicU64,
    span_overflow: AtomicU64,
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
            span_overflow: AtomicU64::new(0),
        }
    }

    /// Also keeps the fraction `rate` (0..=1) of the `analytics` events whose
    /// [`ANALYTICS_EVENT`] attribute is each listed name; such a rate wins over the rate of
    /// the whole `analytics` kind.
    pub fn with_analytics(mut self, rates: Vec<(String, f64)>) -> Self {
        self.analytics = rates;
        self
    }

    /// Events dropped by sampling so far (spans of dropped traces included).
    pub fn sampled_out(&self) -> u64 {
        self.sampled_out.load(Ordering::Relaxed)
    }

    /// Counts `n` events dropped by a sampling decision taken outside this stage (the spans
    /// of a trace the `tracing` layer dropped whole).
    pub fn count_sampled_out(&self, n: u64) {
        self.sampled_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Spans dropped because a trace's span buffer was full (the per-trace span cap or the
    /// layer's global byte cap), `tracepost_spans_overflowed_total`.
    pub fn span_overflow(&self) -> u64 {
        self.span_overflow.load(Ordering::Relaxed)
    }

    /// Counts `n` spans dropped because a span buffer was full.
    pub fn count_span_overflow(&self, n: u64) {
        self.span_overflow.fetch_add(n, Ordering::Relaxed);
    }
}

impl Stage for Sample {
    fn name(&self) -> &'static str {
        "sample"
    }

    fn process(&self, event: &mut Event) -> Verdict {
        if event.kind == Kind::Span {
            return Verdict::Keep; // sampled per trace, whole, by the `tracing` layer
        }
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
