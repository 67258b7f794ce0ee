//! Web analytics over the stored `analytics` events (browser capture's `pageview`, `track`
//! and `identify`): page views, unique visitors, top pages, referrers and funnels, asked of
//! any [`Store`](super::Store) with [`Store::analytics`](super::Store::analytics) and
//! [`Store::funnel`](super::Store::funnel). The stores aggregate in SQL.
//!
//! How an event is read (the same in every store):
//!
//! | what | from |
//! |------|------|
//! | the event's type | attribute `analytics.event` (`pageview`, `track`, `identify`) |
//! | the visitor | attribute `visitor.id` (the browser's id, or the cookieless daily id the ingest derives), else the event's `session_id`; events with neither count as views, not visitors |
//! | the page | the path of attribute `url.full`: scheme and host cut off, then the query string and fragment (they may carry secrets, and would split one page's counts), `/` when empty — see [`page_path`] |
//! | the referrer | the host of attribute `page.referrer` ([`url_host`], lower case); a referrer on the page's own host is *internal* (navigation inside the site) and is counted apart from the referrer list; no referrer, or one without a host, is *direct* |
//! | a track's name | attribute `event.name` |
//!
//! Cookieless visitor ids change at each UTC midnight, so over several days a returning
//! cookieless browser counts once per day.
//!
//! ```
//! use tracepost_core::store::analytics::{page_path, url_host, FunnelStep};
//!
//! assert_eq!(page_path("https://shop.example/pricing?token=abc#plans"), "/pricing");
//! assert_eq!(url_host("https://Docs.Example:8443/a").as_deref(), Some("docs.example"));
//! let steps = FunnelStep::parse_list("/, /pricing ,signup").unwrap();
//! assert_eq!(steps[2], FunnelStep::Event("signup".into()));
//! assert!(FunnelStep::parse_list("/a,,/b").is_err());
//! ```

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use super::{width_micros, StoreError, MAX_HISTOGRAM_BUCKETS};
use crate::event::{Event, Kind, Timestamp};

/// The attribute carrying the visitor id (see [`crate::store::analytics`]).
pub const VISITOR_ATTRIBUTE: &str = "visitor.id";

/// A funnel has at most this many steps (each step is one more self-join in SQL).
pub const MAX_FUNNEL_STEPS: usize = 10;

/// A funnel step is at most this many characters.
pub const MAX_FUNNEL_STEP_CHARS: usize = 200;

/// Top pages and referrers return at most this many rows.
pub const MAX_TOP_ROWS: usize = 1000;

/// The scheme and authority at the start of an absolute URL; the stores cut it with this
/// pattern (PostgreSQL's `regexp_replace` reads it the same way).
pub const SCHEME_AUTHORITY_PATTERN: &str = "^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*";

/// The host of an absolute URL: the first group (user info and port left out; an IPv6
/// literal keeps its brackets).
pub const HOST_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^\]/?#]*\]|[^/?#:]*)";

static SCHEME_AUTHORITY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SCHEME_AUTHORITY_PATTERN).expect("valid pattern"));
static HOST: LazyLock<Regex> = LazyLock::new(|| Regex::new(HOST_PATTERN).expect("valid pattern"));

/// The page of a URL: its path without scheme, host, query string or fragment; `/` when
/// that leaves nothing. Relative URLs keep their path.
pub fn page_path(url: &str) -> String {
    let rest = SCHEME_AUTHORITY.replace(url, "");
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// The host of an absolute URL, lower case, without user info or port; `None` for a
/// relative URL or an empty host.
pub fn url_host(url: &str) -> Option<String> {
    HOST.captures(url)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_lowercase())
        .filter(|h| !h.is_empty())
}

/// An attribute as text, the way PostgreSQL's `->>` reads it: strings as they are, other
/// scalars as JSON, `null` as absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// What the analytics queries read from one `analytics` event (stores that keep a table of
/// their own for it fill it from this).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnalyticsFacts {
    /// `analytics.event`: `pageview`, `track`, `identify`.
    pub event: Option<String>,
    /// The visitor: `visitor.id`, else the session id.
    pub visitor: Option<String>,
    /// The [`page_path`] of `url.full`.
    pub path: Option<String>,
    /// The [`url_host`] of `url.full`.
    pub host: Option<String>,
    /// The [`url_host`] of `page.referrer`.
    pub referrer_host: Option<String>,
    /// `event.name` (tracks).
    pub name: Option<String>,
}

impl AnalyticsFacts {
    /// The facts of `event`, or `None` when it is not an `analytics` event.
    pub fn of(event: &Event) -> Option<Self> {
        if event.kind != Kind::Analytics {
            return None;
        }
        Some(Self::from_parts(
            &event.attributes,
            event.session_id.as_deref(),
        ))
    }

    /// The facts of an `analytics` event with these attributes and session id (for stores
    /// reading back rows stored before they kept the facts).
    pub fn from_parts(a: &Map<String, Value>, session_id: Option<&str>) -> Self {
        let url = text(a.get("url.full"));
        AnalyticsFacts {
            event: text(a.get(crate::pipeline::stages::ANALYTICS_EVENT)),
            visitor: text(a.get(VISITOR_ATTRIBUTE)).or_else(|| session_id.map(str::to_owned)),
            path: url.as_deref().map(page_path),
            host: url.as_deref().and_then(url_host),
            referrer_host: text(a.get("page.referrer")).as_deref().and_then(url_host),
            name: text(a.get("event.name")),
        }
    }
}

/// The question of [`Store::analytics`](super::Store::analytics): a time range, the width of
/// the chart's buckets and how many top pages and referrers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AnalyticsQuery {
    /// At or after this time.
    pub since: Timestamp,
    /// Before this time.
    pub until: Timestamp,
    /// The width of the series' buckets (aligned as the histogram's, to multiples of the
    /// width since 2000-01-01 UTC).
    pub bucket: Duration,
    /// How many top pages and referrers (clamped to 1–[`MAX_TOP_ROWS`]).
    pub limit: usize,
}

impl AnalyticsQuery {
    /// `[since, until)` in hourly buckets, 20 top pages and referrers.
    pub fn new(since: Timestamp, until: Timestamp) -> Self {
        AnalyticsQuery {
            since,
            until,
            bucket: Duration::from_secs(3600),
            limit: 20,
        }
    }

    /// Sets the bucket width.
    pub fn bucket(mut self, width: Duration) -> Self {
        self.bucket = width;
        self
    }

    /// Sets how many top pages and referrers.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Refuses an empty range or more than [`MAX_HISTOGRAM_BUCKETS`] buckets
    /// ([`StoreError::InvalidQuery`]); stores call it first.
    pub fn check(&self) -> Result<(), StoreError> {
        check_range(self.since, self.until)?;
        let span = super::ts_to_micros(self.until) - super::ts_to_micros(self.since);
        if span / width_micros(self.bucket) >= MAX_HISTOGRAM_BUCKETS as i64 {
            return Err(StoreError::InvalidQuery(format!(
                "analytics: more than {MAX_HISTOGRAM_BUCKETS} buckets; widen the buckets or \
                 narrow the range"
            )));
        }
        Ok(())
    }
}

fn check_range(since: Timestamp, until: Timestamp) -> Result<(), StoreError> {
    if since >= until {
        return Err(StoreError::InvalidQuery(format!(
            "analytics: the range is empty (since {since} is not before until {until})"
        )));
    }
    Ok(())
}

/// One bucket of the page-view series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnalyticsBucket {
    /// The bucket's start.
    pub start: Timestamp,
    /// Page views in the bucket.
    pub pageviews: u64,
    /// Distinct visitors with a page view in the bucket.
    pub visitors: u64,
}

/// Views of one page (or from one referrer host).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopRow {
    /// The page's path, or the referrer's host.
    pub key: String,
    /// Page views.
    pub views: u64,
    /// Distinct visitors among them.
    pub visitors: u64,
}

impl TopRow {
    /// A row of `views` page views by `visitors` visitors.
    pub fn new(key: String, views: u64, visitors: u64) -> Self {
        TopRow {
            key,
            views,
            visitors,
        }
    }
}

/// The answer of [`Store::analytics`](super::Store::analytics). Everything counts page views
/// (`analytics.event = "pageview"`) in the range, except `tracks`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AnalyticsSummary {
    /// Page views.
    pub pageviews: u64,
    /// Distinct visitors with a page view.
    pub visitors: u64,
    /// `track` events.
    pub tracks: u64,
    /// One bucket per width from the bucket holding `since` up to `until`, zeros included,
    /// oldest first.
    pub series: Vec<AnalyticsBucket>,
    /// Pages by views (ties: path, byte order), at most `limit`.
    pub top_pages: Vec<TopRow>,
    /// External referrer hosts by views (ties: host, byte order), at most `limit`; internal
    /// referrers are left out (counted in `internal_views`).
    pub referrers: Vec<TopRow>,
    /// Page views whose referrer is on the page's own host.
    pub internal_views: u64,
    /// Page views without a referrer host (typed in, bookmarks, stripped referrers).
    pub direct_views: u64,
}

impl AnalyticsSummary {
    /// An empty summary (stores fill the fields).
    pub fn new() -> Self {
        Self::default()
    }

    /// The series from `(bucket start µs, page views, visitors)` rows sorted by start, gaps
    /// filled with zeros over the query's range.
    pub fn fill_series(
        q: &AnalyticsQuery,
        found: Vec<(i64, u64, u64)>,
    ) -> Result<Vec<AnalyticsBucket>, StoreError> {
        let w = width_micros(q.bucket);
        let (since, until) = (super::ts_to_micros(q.since), super::ts_to_micros(q.until));
        let views =
            super::fill_histogram(found.iter().map(|r| (r.0, r.1)).collect(), since, until, w)?;
        let visitors =
            super::fill_histogram(found.iter().map(|r| (r.0, r.2)).collect(), since, until, w)?;
        Ok(views
            .into_iter()
            .zip(visitors)
            .map(|(v, u)| AnalyticsBucket {
                start: v.start,
                pageviews: v.count,
                visitors: u.count,
            })
            .collect())
    }
}

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunnelStep {
    /// A page view of this path (written with a leading `/`; a query string or fragment is
    /// cut off, as [`page_path`] does).
    Page(String),
    /// A `track` event with this `event.name`.
    Event(String),
}

impl FunnelStep {
    /// The steps of a comma-separated list (`/,/pricing,signup`): items starting with `/`
    /// are pages, others event names; spaces around items are ignored. Refused
    /// ([`StoreError::InvalidQuery`], naming the item): no steps, an empty item, more than
    /// [`MAX_FUNNEL_STEPS`] steps, an item longer than [`MAX_FUNNEL_STEP_CHARS`] or holding
    /// control characters.
    pub fn parse_list(list: &str) -> Result<Vec<FunnelStep>, StoreError> {
        let bad = |m: String| StoreError::InvalidQuery(format!("funnel: {m}"));
        if list.trim().is_empty() {
            return Err(bad("no steps given".into()));
        }
        let items: Vec<&str> = list.split(',').collect();
        if items.len() > MAX_FUNNEL_STEPS {
            return Err(bad(format!(
                "{} steps; at most {MAX_FUNNEL_STEPS}",
                items.len()
            )));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let item = item.trim();
                let n = i + 1;
                if item.is_empty() {
                    return Err(bad(format!("step {n} is empty")));
                }
                if item.chars().count() > MAX_FUNNEL_STEP_CHARS {
                    return Err(bad(format!(
                        "step {n} is longer than {MAX_FUNNEL_STEP_CHARS} characters"
                    )));
                }
                if item.chars().any(char::is_control) {
                    return Err(bad(format!("step {n} holds control characters")));
                }
                Ok(if item.starts_with('/') {
                    FunnelStep::Page(page_path(item))
                } else {
                    FunnelStep::Event(item.to_owned())
                })
            })
            .collect()
    }

    /// The path or event name.
    pub fn value(&self) -> &str {
        match self {
            FunnelStep::Page(s) | FunnelStep::Event(s) => s,
        }
    }

    /// True for a page step.
    pub fn is_page(&self) -> bool {
        matches!(self, FunnelStep::Page(_))
    }
}

impl fmt::Display for FunnelStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.value())
    }
}

/// The question of [`Store::funnel`](super::Store::funnel).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FunnelQuery {
    /// At or after this time.
    pub since: Timestamp,
    /// Before this time.
    pub until: Timestamp,
    /// The steps, in order (1–[`MAX_FUNNEL_STEPS`]).
    pub steps: Vec<FunnelStep>,
}

impl FunnelQuery {
    /// These steps over `[since, until)`.
    pub fn new(since: Timestamp, until: Timestamp, steps: Vec<FunnelStep>) -> Self {
        FunnelQuery {
            since,
            until,
            steps,
        }
    }

    /// Refuses an empty range, no steps or too many ([`StoreError::InvalidQuery`]).
    pub fn check(&self) -> Result<(), StoreError> {
        check_range(self.since, self.until)?;
        if self.steps.is_empty() || self.steps.len() > MAX_FUNNEL_STEPS {
            return Err(StoreError::InvalidQuery(format!(
                "funnel: {} steps; give 1 to {MAX_FUNNEL_STEPS}",
                self.steps.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_hosts() {
        for (url, path) in [
            ("https://a.example/p/q?x=1#f", "/p/q"),
            ("https://a.example", "/"),
            ("https://a.example?x", "/"),
            ("http://u:p@a.example:80/x", "/x"),
            ("/relative?y", "/relative"),
            ("", "/"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(page_path(url), path, "{url}");
        }
        assert_eq!(
            url_host("https://u@A.Example:8080/").as_deref(),
            Some("a.example")
        );
        assert_eq!(url_host("http://[::1]:3000/").as_deref(), Some("[::1]"));
        assert_eq!(url_host("/relative"), None);
        assert_eq!(url_host("https:///x"), None);
    }

    #[test]
    fn funnel_steps_parse_or_say_why() {
        let s = FunnelStep::parse_list("/, /pricing?utm=1 ,signup").unwrap();
        assert_eq!(
            s,
            [
                FunnelStep::Page("/".into()),
                FunnelStep::Page("/pricing".into()),
                FunnelStep::Event("signup".into())
            ]
        );
        let many = vec!["/a"; 10_000].join(",");
        let e = FunnelStep::parse_list(&many).unwrap_err().to_string();
        assert!(e.contains("10000 steps; at most 10"), "{e}");
        assert!(FunnelStep::parse_list(" ").is_err());
        assert!(FunnelStep::parse_list("a,\u{7}")
            .unwrap_err()
            .to_string()
            .contains("step 2"));
        assert!(FunnelStep::parse_list(&"x".repeat(201)).is_err());
    }
}
