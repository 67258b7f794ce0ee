//! [`Alert`]: what the engine hands to a [`Notifier`](crate::Notifier), independent of where
//! it goes.

use serde::Serialize;
use tracepost_core::{Level, Timestamp};

/// Which rule raised an alert. Serialised in `snake_case` (`"new_issue"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// The first event of a fingerprint ever seen.
    NewIssue,
    /// A known fingerprint occurred at least `spike.threshold` times within `spike.window`.
    Spike,
    /// The end of a suppression window: how many more occurrences there were
    /// ([`Alert::count`], never 0: no follow-up is sent for none).
    FollowUp,
    /// The share of failed requests is above the threshold.
    ErrorRate,
    /// The error rate fell back to or below the threshold.
    ErrorRateResolved,
    /// A sink has been down for longer than `health.sink_down_after`.
    SinkDown,
    /// A sink that was reported down is up again.
    SinkRecovered,
    /// The pipeline dropped events ([`Alert::count`] of them since the last alert).
    EventsDropped,
    /// More alerts fired in a minute than `max_alerts_per_minute`: how many were held back.
    CapReached,
    /// Sent on request (`send_test_alert`, the admin route) to check the wiring.
    Test,
}

impl AlertKind {
    /// The rule's name as used in metric labels and JSON (`new_issue`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NewIssue => "new_issue",
            AlertKind::Spike => "spike",
            AlertKind::FollowUp => "follow_up",
            AlertKind::ErrorRate => "error_rate",
            AlertKind::ErrorRateResolved => "error_rate_resolved",
            AlertKind::SinkDown => "sink_down",
            AlertKind::SinkRecovered => "sink_recovered",
            AlertKind::EventsDropped => "events_dropped",
            AlertKind::CapReached => "cap_reached",
            AlertKind::Test => "test",
        }
    }

    /// True for the "all clear" kinds (resolved, recovered), shown in green.
    pub fn is_resolution(self) -> bool {
        matches!(
            self,
            AlertKind::ErrorRateResolved | AlertKind::SinkRecovered
        )
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, as rendered by every notifier. Text fields come from events *after* the
/// pipeline's redact stage; notifiers cut them to their destination's limits.
///
/// Serialised as the body of a JSON webhook (`webhook::JsonWebhook`, feature `webhook`), one
/// object per alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// Which rule fired.
    pub kind: AlertKind,
    /// Severity (colour in chat messages).
    pub level: Level,
    /// One line: the error type and message, or what the rule saw.
    pub title: String,
    /// Details: the route, the top application frames, the rule's numbers.
    pub description: String,
    /// The grouping key, for issue alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Occurrences this alert speaks for (spike: in the window; follow-up: suppressed since
    /// the last alert; dropped events: since the last alert).
    pub count: u64,
    /// The first occurrence the engine saw (for issue alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    /// The latest occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// The service of the events.
    pub service: String,
    /// Their deployment environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Their release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The route template of the latest occurrence, when it came from a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Distinct users affected (counted up to 1 000 per issue), when events carry a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_affected: Option<u64>,
    /// A link to see more, from the engine's link template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When the alert was raised.
    pub timestamp: Timestamp,
}

impl Alert {
    /// An alert of `kind` with a title and nothing else set, raised now.
    pub fn new(kind: AlertKind, level: Level, title: impl Into<String>) -> Self {
        Alert {
            kind,
            level,
            title: title.into(),
            description: String::new(),
            fingerprint: None,
            count: 0,
            first_seen: None,
            last_seen: None,
            service: String::new(),
            environment: None,
            release: None,
            route: None,
            users_affected: None,
            link: None,
            timestamp: Timestamp::now(),
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the count.
    pub fn with_count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// Sets the fingerprint.
    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }
}

/// Cuts `text` to at most `max` characters (Unicode scalar values, after trimming
/// whitespace as Discord does before counting), ending with `…` when cut.
///
/// ```
/// use tracepost_alerts::truncate_chars;
/// assert_eq!(truncate_chars("  short  ", 10), "short");
/// assert_eq!(truncate_chars("abcdef", 4), "abc…");
/// assert_eq!(truncate_chars("ééééé", 3).chars().count(), 3);
/// ```
pub fn truncate_chars(text: &str, max: usize) -> String {
    let text = text.trim();
    if max == 0 {
        return String::new();
    }
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let end = text
                .char_indices()
                .nth(max - 1)
                .map_or(text.len(), |(i, _)| i);
            format!("{}…", text[..end].trim_end())
        }
    }
}
