use super::{Stage, Verdict};
use crate::event::{Event, Resource};

/// Fills in the resource fields an event leaves empty from the builder's settings.
#[derive(Debug, Clone)]
pub struct Enrich {
    resource: Resource,
}

impl Enrich {
    /// Fills events from `resource`.
    pub fn new(resource: Resource) -> Self {
        Enrich { resource }
    }

    /// The resource put on events.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
}

impl Stage for Enrich {
    fn name(&self) -> &'static str {
        "enrich"
    }

    fn process(&self, event: &mut Event) -> Verdict {
        let (ours, theirs) = (&self.resource, &mut event.resource);
        if theirs.service.is_empty() {
            theirs.service.clone_from(&ours.service);
        }
        if theirs.environment.is_none() {
            theirs.environment.clone_from(&ours.environment);
        }
        if theirs.release.is_none() {
            theirs.release.clone_from(&ours.release);
        }
        if theirs.host.is_none() {
            theirs.host.clone_from(&ours.host);
        }
        Verdict::Keep
    }
}
