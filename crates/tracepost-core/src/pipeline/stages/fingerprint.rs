use serde_json::Value;

use super::{Stage, Verdict};
use crate::event::{Event, Kind};
use crate::fingerprint::fingerprint;

/// Gives `error` events without a fingerprint one: the error's type, normalised message and
/// top frames ([`crate::fingerprint`]). Without a backtrace, the request's `METHOD route`
/// stands in for the frames, else the `target` attribute (the `tracing` target), else nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fingerprint;

impl Stage for Fingerprint {
    fn name(&self) -> &'static str {
        "fingerprint"
    }

    fn process(&self, event: &mut Event) -> Verdict {
        if event.kind != Kind::Error || event.fingerprint.is_some() {
            return Verdict::Keep;
        }
        let (ty, msg, bt) = match &event.error {
            Some(e) => (
                e.error_type.as_str(),
                e.message.as_str(),
                e.backtrace.as_deref(),
            ),
            None => ("error", event.message.as_str(), None),
        };
        let route = match &event.request {
            Some(r) => Some(format!("{} {}", r.method, r.route)),
            None => event
                .attributes
                .get("target")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        event.fingerprint = Some(fingerprint(ty, msg, bt, route.as_deref()));
        Verdict::Keep
    }
}
