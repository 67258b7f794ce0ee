use std::sync::atomic::{AtomicU64, Ordering};

use super::{Stage, Verdict};
use crate::event::{Event, Kind};

/// Keeps a fraction of the events of some kinds (`Builder::sample`), at random; every event
/// dropped is counted (`tracepost_events_sampled_out_total`). Kinds without a rate are kept.
#[derive(Debug, Default)]
pub struct Sample {
    rates: Vec<(Kind, f64)>,
    sampled_out: AtomicU64,
}

impl Sample {
    /// Keeps the fraction `rate` (0..=1) of each listed kind.
    pub fn new(rates: Vec<(Kind, f64)>) -> Self {
        Sample {
            rates,
            sampled_out: AtomicU64::new(0),
        }
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
        if let Some((_, rate)) = self.rates.iter().find(|(k, _)| *k == event.kind) {
            if *rate < 1.0 && rand::random::<f64>() >= *rate {
                self.sampled_out.fetch_add(1, Ordering::Relaxed);
                return Verdict::Drop;
            }
        }
        Verdict::Keep
    }
}
