//! The processing stages every event passes before it is queued for the sinks, in this order:
//!
//! 1. [`Enrich`]: the resource fields (`service`, `environment`, `release`, `host`) the event
//!    does not set itself, and the `replay.url` link of backend events to their browser
//!    session's replay ([`ReplayLinks`], with `Builder::replay_console_url`);
//! 2. [`Redact`]: secrets by name and by shape, everywhere in the event ([`Redactor::event`]);
//! 3. [`Fingerprint`]: the grouping key of `error` events that have none (computed on the
//!    redacted text, so a secret never influences it);
//! 4. [`Sample`]: the per-kind sampling rates of `Builder::sample`.
//!
//! [`TracepostHandle::capture`](super::TracepostHandle::capture) runs them on every event,
//! whatever produced it (the HTTP layer, the `tracing` layer, an ingest route, a direct
//! call), so no capture path can skip one.

mod enrich;
mod fingerprint;
mod redact;
mod sample;

pub use enrich::{Enrich, ReplayLinks, REPLAY_LINK_SESSIONS, REPLAY_URL_ATTRIBUTE};
pub use fingerprint::Fingerprint;
pub use redact::Redact;
pub use sample::{Sample, ANALYTICS_EVENT};

use crate::event::Event;
#[cfg(doc)]
use crate::redact::Redactor;

/// What a stage decided about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Pass it on to the next stage (and finally the sinks).
    Keep,
    /// Stop here: the event goes to no sink.
    Drop,
}

/// One processing step. It changes the event in place, and may drop it.
pub trait Stage: Send + Sync {
    /// A short name for diagnostics (`enrich`, `redact`, …).
    fn name(&self) -> &'static str;
    /// Processes one event.
    fn process(&self, event: &mut Event) -> Verdict;
}

/// The fixed chain enrich → redact → fingerprint → sample.
#[derive(Debug)]
pub struct Stages {
    enrich: Enrich,
    redact: Redact,
    fingerprint: Fingerprint,
    sample: Sample,
}

impl Stages {
    pub(crate) fn new(enrich: Enrich, redact: Redact, sample: Sample) -> Self {
        Stages {
            enrich,
            redact,
            fingerprint: Fingerprint,
            sample,
        }
    }

    /// Runs every stage in order; stops at the first that drops the event.
    pub fn run(&self, event: &mut Event) -> Verdict {
        // Static calls, in the documented order.
        if self.enrich.process(event) == Verdict::Drop
            || self.redact.process(event) == Verdict::Drop
            || self.fingerprint.process(event) == Verdict::Drop
            || self.sample.process(event) == Verdict::Drop
        {
            return Verdict::Drop;
        }
        Verdict::Keep
    }

    /// The enrich stage.
    pub fn enrich(&self) -> &Enrich {
        &self.enrich
    }

    /// The redact stage.
    pub fn redact(&self) -> &Redact {
        &self.redact
    }

    /// The sample stage.
    pub fn sample(&self) -> &Sample {
        &self.sample
    }
}

#[cfg(test)]
mod tests;
