//! Which requests keep a snapshot: decided when the response head is known, and again
//! (for slowness) when the request ends.

use std::time::Duration;

/// Which requests keep a full snapshot (headers, bodies, breadcrumbs) as an event.
///
/// Failures (5xx, panics) always do unless their route says [`RouteSnapshot::Never`]; requests
/// slower than `slow_threshold` do (as `request` events at WARN); of the rest, a random
/// `sample_rate` fraction does. Per-route overrides replace the rate for one route template.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotPolicy {
    /// Fraction (0..=1) of successful requests kept. Default 0.
    pub sample_rate: f64,
    /// Requests at least this slow are kept. Default 1 s; `None` turns it off.
    pub slow_threshold: Option<Duration>,
    /// Per-route overrides, by route template.
    pub routes: Vec<(String, RouteSnapshot)>,
}

/// A per-route override of the [`SnapshotPolicy`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RouteSnapshot {
    /// Keep every request of the route.
    Always,
    /// Keep none, not even failures' bodies (the error event still says what failed).
    Never,
    /// Keep this fraction of successes (failures are still kept).
    Sample(f64),
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            sample_rate: 0.0,
            slow_threshold: Some(Duration::from_secs(1)),
            routes: Vec::new(),
        }
    }
}

impl SnapshotPolicy {
    /// Keeps this fraction of successful requests.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Keeps requests at least this slow (`None`: off).
    pub fn slow_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.slow_threshold = threshold;
        self
    }

    /// Overrides the policy for one route template.
    pub fn route(mut self, route: impl Into<String>, rule: RouteSnapshot) -> Self {
        self.routes.push((route.into(), rule));
        self
    }

    /// The override for `route`, if any.
    pub fn rule(&self, route: &str) -> Option<RouteSnapshot> {
        self.routes
            .iter()
            .find(|(r, _)| r == route)
            .map(|(_, rule)| *rule)
    }

    /// Decided when the response head is known: could this request be kept?
    /// (`Some(true)`: keep; `Some(false)`: never; `None`: only if it turns out slow.)
    /// Successes are sampled here, so two calls may answer differently.
    pub fn decide(&self, route: &str, failed: bool) -> Option<bool> {
        let rate = match self.rule(route) {
            Some(RouteSnapshot::Never) => return Some(false),
            Some(RouteSnapshot::Always) => return Some(true),
            Some(RouteSnapshot::Sample(r)) => r,
            None => self.sample_rate,
        };
        if failed || (rate > 0.0 && rand::random::<f64>() < rate) {
            Some(true)
        } else if self.slow_threshold.is_some() {
            None
        } else {
            Some(false)
        }
    }
}
