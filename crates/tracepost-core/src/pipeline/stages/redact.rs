use super::{Stage, Verdict};
use crate::event::Event;
use crate::redact::Redactor;

/// Masks secrets everywhere in the event with the builder's [`Redactor`]: message,
/// attributes, error, breadcrumbs and the request snapshot. Idempotent, so an event a capture
/// path has already redacted in part passes unchanged.
#[derive(Debug, Clone)]
pub struct Redact {
    redactor: Redactor,
}

impl Redact {
    /// Redacts with `redactor`.
    pub fn new(redactor: Redactor) -> Self {
        Redact { redactor }
    }

    /// The rules.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

impl Stage for Redact {
    fn name(&self) -> &'static str {
        "redact"
    }

    fn process(&self, event: &mut Event) -> Verdict {
        self.redactor.event(event);
        Verdict::Keep
    }
}
