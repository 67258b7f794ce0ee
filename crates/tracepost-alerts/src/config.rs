//! [`AlertRules`]: the rules and their thresholds, in code or from a config file (serde,
//! unknown fields rejected).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracepost_core::sinks::serde_duration;
use tracepost_core::{Event, Level};

/// Which events a rule looks at. Empty lists match everything.
///
/// ```toml
/// environments = ["production"]
/// routes = ["/api/*", "/checkout"]
/// min_level = "error"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RuleFilter {
    /// Deployment environments (`Resource::environment`) the rule applies to; an event
    /// without an environment matches only an empty list.
    pub environments: Vec<String>,
    /// Route templates (`/users/{id}`; a trailing `*` matches any suffix); an event without
    /// a route (not from a request) matches only an empty list.
    pub routes: Vec<String>,
    /// The least severe level the rule counts (issue rules: default `error`).
    pub min_level: Option<Level>,
}

impl RuleFilter {
    /// Only these environments.
    pub fn environments<I: IntoIterator<Item = S>, S: Into<String>>(mut self, envs: I) -> Self {
        self.environments = envs.into_iter().map(Into::into).collect();
        self
    }

    /// Only these route templates (a trailing `*` is a prefix match).
    pub fn routes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, routes: I) -> Self {
        self.routes = routes.into_iter().map(Into::into).collect();
        self
    }

    /// Only events at least this severe.
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = Some(level);
        self
    }

    /// True when the event's level, environment and route pass.
    pub fn matches(&self, event: &Event) -> bool {
        let route = event
            .request
            .as_ref()
            .map(|r| r.route.as_str())
            .or_else(|| event.metric.as_ref().map(|m| m.route.as_str()));
        self.min_level.is_none_or(|l| event.level >= l)
            && self.matches_environment(event.resource.environment.as_deref())
            && self.matches_route(route)
    }

    fn matches_environment(&self, env: Option<&str>) -> bool {
        self.environments.is_empty()
            || env.is_some_and(|e| self.environments.iter().any(|x| x == e))
    }

    fn matches_route(&self, route: Option<&str>) -> bool {
        if self.routes.is_empty() {
            return true;
        }
        let Some(route) = route else { return false };
        self.routes
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => route.starts_with(prefix),
                None => pattern == route,
            })
    }
}

/// **New issue**: an alert for the first event of a fingerprint ever seen (remembered
/// across restarts, see `AlertEngineBuilder::data_dir`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct NewIssueRule {
    /// Default true.
    pub enabled: bool,
    /// Default: every environment and route, level `error`.
    pub filter: RuleFilter,
}

impl Default for NewIssueRule {
    fn default() -> Self {
        NewIssueRule {
            enabled: true,
            filter: RuleFilter::default().min_level(Level::Error),
        }
    }
}

/// **Spike**: `threshold` events of one known fingerprint within `window` → one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SpikeRule {
    /// Default true.
    pub enabled: bool,
    /// Events (default 5).
    pub threshold: u32,
    /// Default 60 s (`"60s"`, `"1m"` or seconds as a number in config files).
    #[serde(with = "serde_duration")]
    pub window: Duration,
    /// Default: every environment and route, level `error`.
    pub filter: RuleFilter,
}

impl Default for SpikeRule {
    fn default() -> Self {
        SpikeRule {
            enabled: true,
            threshold: 5,
            window: Duration::from_secs(60),
            filter: RuleFilter::default().min_level(Level::Error),
        }
    }
}

/// **Error rate**: the share of failed requests (5xx and panics, from the pipeline's metric
/// windows) over `window` above `threshold_percent`, with at least `min_requests` → an
/// alert; a "resolved" alert when it falls back to or below the threshold (or the traffic
/// stops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ErrorRateRule {
    /// Default true.
    pub enabled: bool,
    /// Percent, exclusive (default 5.0: fires above 5 %).
    pub threshold_percent: f64,
    /// Requests in the window needed to judge (default 20).
    pub min_requests: u64,
    /// Default 5 min. Metric windows (60 s by default) are counted while they are younger
    /// than this.
    #[serde(with = "serde_duration")]
    pub window: Duration,
    /// Default: every environment and route (`min_level` is ignored).
    pub filter: RuleFilter,
}

impl Default for ErrorRateRule {
    fn default() -> Self {
        ErrorRateRule {
            enabled: true,
            threshold_percent: 5.0,
            min_requests: 20,
            window: Duration::from_secs(300),
            filter: RuleFilter::default(),
        }
    }
}

/// **Pipeline health**: tracepost watching itself (needs `AlertEngine::watch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HealthRule {
    /// Default true.
    pub enabled: bool,
    /// A sink down for longer than this → an alert, and one when it is back (default 5 min).
    #[serde(with = "serde_duration")]
    pub sink_down_after: Duration,
    /// Events dropped by any sink (queue full, retries exhausted, spool full, …) → an alert
    /// with the count, then suppressed like an issue (default true).
    pub dropped_events: bool,
}

impl Default for HealthRule {
    fn default() -> Self {
        HealthRule {
            enabled: true,
            sink_down_after: Duration::from_secs(300),
            dropped_events: true,
        }
    }
}

/// The alert rules. `AlertRules::default()` is the set described in the book; a config
/// file may give any subset (unknown fields are errors):
///
/// ```
/// use std::time::Duration;
/// use tracepost_alerts::AlertRules;
///
/// let rules: AlertRules = toml::from_str(r#"
///     suppress_for = "30m"
///     max_alerts_per_minute = 20
///     [spike]
///     threshold = 10
///     window = "2m"
///     [error_rate.filter]
///     environments = ["production"]
/// "#).unwrap();
/// assert_eq!(rules.spike.threshold, 10);
/// assert_eq!(rules.suppress_for, Duration::from_secs(1800));
/// assert!(rules.new_issue.enabled);
/// assert!(rules.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AlertRules {
    /// The new-issue rule.
    pub new_issue: NewIssueRule,
    /// The spike rule.
    pub spike: SpikeRule,
    /// After an alert for a fingerprint (or for dropped events), no other for this long;
    /// then one follow-up with how many more occurrences there were, none if there were
    /// none (default 15 min).
    #[serde(with = "serde_duration")]
    pub suppress_for: Duration,
    /// The error-rate rule.
    pub error_rate: ErrorRateRule,
    /// The pipeline-health rule.
    pub health: HealthRule,
    /// The most alerts delivered per minute, all rules together (default 30). Alerts over
    /// the cap are counted and summed up in one `cap_reached` alert the next minute; test
    /// alerts don't count.
    pub max_alerts_per_minute: u32,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            new_issue: NewIssueRule::default(),
            spike: SpikeRule::default(),
            suppress_for: Duration::from_secs(15 * 60),
            error_rate: ErrorRateRule::default(),
            health: HealthRule::default(),
            max_alerts_per_minute: 30,
        }
    }
}

/// A setting out of range: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid alert setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The setting (`spike.threshold`, …).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl AlertRules {
    /// Checks the ranges: thresholds and the cap at least 1, windows non-zero, the error
    /// rate's threshold within 0..100.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.spike.threshold == 0 {
            return Err(ConfigError::new("spike.threshold", "must be at least 1"));
        }
        if self.spike.window.is_zero() {
            return Err(ConfigError::new("spike.window", "must be longer than 0"));
        }
        if self.suppress_for.is_zero() {
            return Err(ConfigError::new("suppress_for", "must be longer than 0"));
        }
        let t = self.error_rate.threshold_percent;
        if !(0.0..100.0).contains(&t) {
            return Err(ConfigError::new(
                "error_rate.threshold_percent",
                format!("{t} is not within 0..100"),
            ));
        }
        if self.error_rate.window.is_zero() {
            return Err(ConfigError::new(
                "error_rate.window",
                "must be longer than 0",
            ));
        }
        if self.max_alerts_per_minute == 0 {
            return Err(ConfigError::new(
                "max_alerts_per_minute",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
