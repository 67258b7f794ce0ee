//! The filter form shared by the Events page and the live tail: query parameters to an
//! [`EventFilter`], and the same filter applied in memory to live events.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use tracepost_core::store::EventFilter;
use tracepost_core::{Event, Kind, Level, Timestamp};

/// The filter form's fields, as query parameters. Empty fields don't filter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterParams {
    /// Minimum level: `trace`, `debug`, `info`, `warn`, `error`.
    pub level: String,
    /// A kind: `log`, `error`, `request`, `analytics`, `replay`, `metric_window`, `alert`, `metric`, `span`.
    pub kind: String,
    /// A service name.
    pub service: String,
    /// Text the message contains, ignoring case.
    pub q: String,
    /// Attributes as `key=value` pairs separated by commas; a value that reads as a JSON
    /// number, `true`, `false` or `null` matches that, anything else (or `"quoted"`) a
    /// string.
    pub attr: String,
    /// Start of the time range: a duration back from now (`15m`, `24h`, `7d`) or a time
    /// (RFC 3339, or `2026-11-29T18:00` in UTC).
    pub since: String,
    /// End of the time range (exclusive), in the same forms.
    pub until: String,
    /// An error fingerprint.
    pub fingerprint: String,
    /// A trace id.
    pub trace_id: String,
    /// A request id.
    pub request_id: String,
    /// A user id.
    pub user_id: String,
    /// A session id.
    pub session_id: String,
    /// The keyset cursor of the next page.
    pub after: String,
    /// `1`: only the rows (for infinite scroll).
    pub fragment: String,
}

/// A field of the filter form that could not be read: `field` is the parameter's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    /// The query parameter.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadField {
    BadField {
        field,
        message: message.into(),
    }
}

/// Parses a level name.
pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" => Level::Error,
        _ => return None,
    })
}

/// Every kind, in the order the filter form lists them.
pub const KINDS: [Kind; 8] = [
    Kind::Log,
    Kind::Error,
    Kind::Request,
    Kind::Span,
    Kind::Analytics,
    Kind::Replay,
    Kind::MetricWindow,
    Kind::Alert,
];

/// Parses a kind name.
pub fn parse_kind(s: &str) -> Option<Kind> {
    KINDS.into_iter().find(|k| k.as_str() == s)
}

/// A time-range bound: a duration back from `now`, RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` read
/// as UTC (what `<input type=datetime-local>` sends).
pub fn parse_time(s: &str, now: SystemTime) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return Some(Timestamp::from(
            now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
        ));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Some(Timestamp::from(t));
    }
    let padded = match s.len() {
        16 => format!("{s}:00"),
        _ => s.to_owned(),
    };
    humantime::parse_rfc3339_weak(&padded)
        .ok()
        .map(Timestamp::from)
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl FilterParams {
    /// The filter these fields describe, or the first field that can't be read.
    pub fn to_filter(&self, now: SystemTime) -> Result<EventFilter, BadField> {
        let mut f = EventFilter::new();
        if let Some(l) = some(&self.level) {
            let level = parse_level(&l).ok_or_else(|| {
                bad(
                    "level",
                    format!("unknown level {l:?}: use trace, debug, info, warn or error"),
                )
            })?;
            f = f.min_level(level);
        }
        if let Some(k) = some(&self.kind) {
            let kind = parse_kind(&k).ok_or_else(|| bad("kind", format!("unknown kind {k:?}")))?;
            f = f.kind(kind);
        }
        f.service = some(&self.service);
        f.message_contains = some(&self.q);
        for pair in self
            .attr
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("attr", format!("{pair:?} is not key=value")))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(bad("attr", format!("{pair:?} has no key")));
            }
            let value = match serde_json::from_str::<Value>(v) {
                Ok(j @ (Value::Number(_) | Value::Bool(_) | Value::Null | Value::String(_))) => j,
                _ => Value::String(v.to_owned()),
            };
            f.attributes.insert(k.to_owned(), value);
            if f.attributes.len() > tracepost_core::store::MAX_ATTRIBUTE_FILTERS {
                return Err(bad(
                    "attr",
                    format!(
                        "at most {} attributes",
                        tracepost_core::store::MAX_ATTRIBUTE_FILTERS
                    ),
                ));
            }
        }
        if let Some(s) = some(&self.since) {
            f.since = Some(parse_time(&s, now).ok_or_else(|| {
                bad(
                    "since",
                    format!("{s:?} is neither a duration (15m, 24h) nor a time (RFC 3339)"),
                )
            })?);
        }
        if let Some(s) = some(&self.until) {
            f.until = Some(parse_time(&s, now).ok_or_else(|| {
                bad(
                    "until",
                    format!("{s:?} is neither a duration (15m, 24h) nor a time (RFC 3339)"),
                )
            })?);
        }
        f.fingerprint = some(&self.fingerprint);
        f.trace_id = some(&self.trace_id);
        f.request_id = some(&self.request_id);
        f.user_id = some(&self.user_id);
        f.session_id = some(&self.session_id);
        Ok(f)
    }

    /// These fields as a query string (without `after` and `fragment`), for links to the
    /// next page and to the live tail.
    pub fn query_string(&self) -> String {
        let pairs = [
            ("level", &self.level),
            ("kind", &self.kind),
            ("service", &self.service),
            ("q", &self.q),
            ("attr", &self.attr),
            ("since", &self.since),
            ("until", &self.until),
            ("fingerprint", &self.fingerprint),
            ("trace_id", &self.trace_id),
            ("request_id", &self.request_id),
            ("user_id", &self.user_id),
            ("session_id", &self.session_id),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", crate::html::url_component(v.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// True when `event` passes `filter`, as the stores would answer (message text ignoring
/// case, attributes equal): [`EventFilter::matches`].
pub fn matches(filter: &EventFilter, event: &Event) -> bool {
    filter.matches(event)
}

/// A relative time for display: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(t: Timestamp, now: SystemTime) -> String {
    let d = now
        .duration_since(t.system_time())
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86_399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_to_filter_names_the_bad_field() {
        let now = SystemTime::now();
        let p = FilterParams {
            level: "warn".into(),
            kind: "error".into(),
            attr: "tenant=acme, n=3".into(),
            since: "1h".into(),
            ..Default::default()
        };
        let f = p.to_filter(now).unwrap();
        assert_eq!(f.levels, [Level::Warn, Level::Error]);
        assert_eq!(f.kinds, [Kind::Error]);
        assert_eq!(f.attributes["tenant"], "acme");
        assert_eq!(f.attributes["n"], 3);
        assert!(f.since.is_some());
        let e = FilterParams {
            since: "yesterday-ish".into(),
            ..Default::default()
        }
        .to_filter(now)
        .unwrap_err();
        assert_eq!(e.field, "since");
        let e = FilterParams {
            attr: "nokey".into(),
            ..Default::default()
        }
        .to_filter(now)
        .unwrap_err();
        assert_eq!(e.field, "attr");
        assert!(parse_time("2026-11-29T18:00", now).is_some());
    }

    #[test]
    fn live_matching_follows_the_filter() {
        let e = Event::new(Kind::Error, Level::Error, "Inventory LOOKUP failed")
            .with_attribute("tenant", "acme")
            .with_attribute("n", 3);
        let f = EventFilter::new()
            .kind(Kind::Error)
            .message_contains("lookup")
            .attribute("n", 3.0);
        assert!(matches(&f, &e));
        assert!(!matches(&f.clone().attribute("tenant", "other"), &e));
        assert!(!matches(&EventFilter::new().service("x"), &e));
    }
}
