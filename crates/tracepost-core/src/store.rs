//! One query API over every store that keeps events (SQLite, PostgreSQL): the [`Store`]
//! trait, its filter ([`EventFilter`]), keyset pagination ([`Cursor`]), the activity
//! histogram and issues.
//!
//! Every store answers the same question the same way; the query behaviour suite
//! (`tests/query_suite.rs` of `tracepost-sqlite`) loads the same events into SQLite and
//! PostgreSQL and compares the answers.
//!
//! ```
//! use tracepost_core::store::EventFilter;
//! use tracepost_core::{Kind, Level};
//!
//! let errors_at_checkout = EventFilter::new()
//!     .kind(Kind::Error)
//!     .min_level(Level::Warn)
//!     .service("checkout")
//!     .message_contains("timeout")
//!     .attribute("tenant", "acme");
//! assert_eq!(errors_at_checkout.levels, [Level::Warn, Level::Error]);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{Event, Kind, Level, MetricWindow, Timestamp};
use crate::replay_index::{ReplayFilter, ReplaySession};

pub mod analytics;

use analytics::{AnalyticsQuery, AnalyticsSummary, FunnelQuery};

/// The most attribute conditions one [`EventFilter`] may hold. Each is a condition of the
/// store's query; SQLite refuses an expression deeper than 1 000 (a tester's filter of 999
/// attributes was a `500`), and no view needs more than a handful.
pub const MAX_ATTRIBUTE_FILTERS: usize = 32;

/// Which events to return. All conditions must hold; empty fields don't filter.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EventFilter {
    /// Any of these kinds.
    pub kinds: Vec<Kind>,
    /// Any of these levels.
    pub levels: Vec<Level>,
    /// This service.
    pub service: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
    /// The message contains this text, ignoring case.
    pub message_contains: Option<String>,
    /// The attributes hold these keys with these values (Postgres: JSONB containment `@>`;
    /// SQLite: equal scalars, equal arrays and objects). At most
    /// [`MAX_ATTRIBUTE_FILTERS`] keys: a store refuses more as [`StoreError::InvalidQuery`].
    pub attributes: Map<String, Value>,
    /// This error fingerprint.
    pub fingerprint: Option<String>,
    /// This trace id.
    pub trace_id: Option<String>,
    /// This user id (combine it with a time range: not indexed everywhere).
    pub user_id: Option<String>,
    /// This request id.
    pub request_id: Option<String>,
    /// This session id.
    pub session_id: Option<String>,
}

impl EventFilter {
    /// No conditions: every event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind to match.
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Adds a level to match.
    pub fn level(mut self, level: impl Into<Level>) -> Self {
        self.levels.push(level.into());
        self
    }

    /// Matches `level` and every more severe level.
    pub fn min_level(mut self, level: impl Into<Level>) -> Self {
        let level = level.into();
        self.levels = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ]
        .into_iter()
        .filter(|l| *l >= level)
        .collect();
        self
    }

    /// Only this service.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// At or after `t`.
    pub fn since(mut self, t: Timestamp) -> Self {
        self.since = Some(t);
        self
    }

    /// Before `t`.
    pub fn until(mut self, t: Timestamp) -> Self {
        self.until = Some(t);
        self
    }

    /// Message contains `text`, ignoring case.
    pub fn message_contains(mut self, text: impl Into<String>) -> Self {
        self.message_contains = Some(text.into());
        self
    }

    /// Attribute `key` equals `value`.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Only this fingerprint.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Only this trace.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Only this user.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Only this request.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Only this session.
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// True when `event` passes this filter in memory, as the stores would answer (message
    /// text ignoring case, attributes equal, numbers compared as numbers): the live tails
    /// filter with it.
    pub fn matches(&self, event: &Event) -> bool {
        fn eq(want: &Option<String>, got: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| got.as_ref() == Some(w))
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&event.kind) {
            return false;
        }
        if !self.levels.is_empty() && !self.levels.contains(&event.level) {
            return false;
        }
        if self
            .service
            .as_ref()
            .is_some_and(|s| *s != event.resource.service)
        {
            return false;
        }
        if self.since.is_some_and(|t| event.timestamp < t)
            || self.until.is_some_and(|t| event.timestamp >= t)
        {
            return false;
        }
        if let Some(text) = &self.message_contains {
            if !event.message.to_lowercase().contains(&text.to_lowercase()) {
                return false;
            }
        }
        let attributes = self
            .attributes
            .iter()
            .all(|(k, v)| match (event.attributes.get(k), v) {
                (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
                (Some(g), v) => g == v,
                (None, _) => false,
            });
        attributes
            && eq(&self.fingerprint, &event.fingerprint)
            && eq(&self.trace_id, &event.trace_id)
            && eq(&self.request_id, &event.request_id)
            && eq(&self.user_id, &event.user_id)
            && eq(&self.session_id, &event.session_id)
    }
}

/// Where a page ended: pass it back to get the next (older) page. Its text form
/// (`Display`/`FromStr`) is opaque and URL-safe.
///
/// Stores order events by `(time in whole microseconds, id)`, newest first; the cursor is
/// the last event's pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    ts_us: i64,
    id: Uuid,
}

impl Cursor {
    /// The cursor after an event at `ts_us` (Unix microseconds) with this id.
    pub fn new(ts_us: i64, id: Uuid) -> Self {
        Cursor { ts_us, id }
    }

    /// The cursor's time in Unix microseconds.
    pub fn unix_micros(self) -> i64 {
        self.ts_us
    }

    /// The cursor's event id.
    pub fn id(self) -> Uuid {
        self.id
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.ts_us, self.id.simple())
    }
}

impl FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::InvalidQuery(format!("invalid cursor {s:?}"));
        let (ts, id) = s.split_once('_').ok_or_else(bad)?;
        // A cursor's time is a stored event's: from 1970 to the end of year 9999 (a tester's
        // `9223372036854775807_…` overflowed the conversion to nanoseconds).
        const LAST_US: i64 = 253_402_300_799_999_999;
        let ts_us: i64 = ts.parse().map_err(|_| bad())?;
        if !(0..=LAST_US).contains(&ts_us) {
            return Err(StoreError::InvalidQuery(format!(
                "invalid cursor {s:?}: its time is not between 1970 and 9999"
            )));
        }
        Ok(Cursor {
            ts_us,
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

/// One page of events, newest first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// The cursor for the next page, when there are more events.
    pub next: Option<Cursor>,
}

impl EventPage {
    /// A page of these events, with `next` when there are more.
    pub fn new(events: Vec<Event>, next: Option<Cursor>) -> Self {
        EventPage { events, next }
    }
}

/// One bar of the activity histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistogramBucket {
    /// The bucket's start (buckets are aligned to multiples of the width since
    /// 2000-01-01 00:00 UTC).
    pub start: Timestamp,
    /// Events in `[start, start + width)`.
    pub count: u64,
}

impl HistogramBucket {
    /// A bucket starting at `start` holding `count` events.
    pub fn new(start: Timestamp, count: u64) -> Self {
        HistogramBucket { start, count }
    }
}

/// Unix microseconds of 2000-01-01 00:00 UTC, where histogram buckets are aligned.
pub const HISTOGRAM_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Histograms return at most this many buckets (a bigger range or a smaller width is an
/// [`StoreError::InvalidQuery`]).
pub const MAX_HISTOGRAM_BUCKETS: usize = 100_000;

/// Fills the gaps of a histogram: `found` holds `(bucket start in Unix µs, count)` sorted by
/// start; the result has one bucket per `width_us` from the bucket holding `since` up to
/// `until` (exclusive), zeros included. Shared by the stores so they agree to the bucket.
pub fn fill_histogram(
    found: Vec<(i64, u64)>,
    since_us: i64,
    until_us: i64,
    width_us: i64,
) -> Result<Vec<HistogramBucket>, StoreError> {
    let first = bucket_start(since_us, width_us);
    let mut out = Vec::new();
    let mut found = found.into_iter().peekable();
    let mut b = first;
    while b < until_us {
        let mut count = 0;
        while let Some((t, n)) = found.peek() {
            if *t <= b {
                if *t == b {
                    count += n;
                }
                found.next();
            } else {
                break;
            }
        }
        out.push(HistogramBucket::new(micros_to_ts(b), count));
        b += width_us;
        if out.len() > MAX_HISTOGRAM_BUCKETS {
            return Err(StoreError::InvalidQuery(format!(
                "histogram: more than {MAX_HISTOGRAM_BUCKETS} buckets; widen the buckets or \
                 narrow the range"
            )));
        }
    }
    Ok(out)
}

/// The start (Unix µs) of the histogram bucket of width `width_us` holding `ts_us`.
pub fn bucket_start(ts_us: i64, width_us: i64) -> i64 {
    let width_us = width_us.max(1);
    HISTOGRAM_EPOCH_MICROS + (ts_us - HISTOGRAM_EPOCH_MICROS).div_euclid(width_us) * width_us
}

/// A histogram width in whole microseconds (at least 1).
pub fn width_micros(width: Duration) -> i64 {
    i64::try_from(width.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// A [`Timestamp`] from Unix microseconds (negative values clamp to the epoch).
pub fn micros_to_ts(us: i64) -> Timestamp {
    // Saturating: a time past year 2554 (u64 nanoseconds) is the last one, never a wrap.
    Timestamp::from_unix_nanos((us.max(0) as u64).saturating_mul(1000))
}

/// A timestamp's Unix microseconds (the precision stores order and page by).
pub fn ts_to_micros(t: Timestamp) -> i64 {
    (t.unix_nanos() / 1000) as i64
}

/// An issue's triage state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueStatus {
    /// Open (the default; a resolved issue that happens again is unresolved again).
    Unresolved,
    /// Marked fixed.
    Resolved,
    /// Muted.
    Ignored,
}

impl IssueStatus {
    /// The stored value: `unresolved`, `resolved` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }

    /// The status stored as `s` (anything unknown reads as unresolved).
    pub fn parse(s: &str) -> Self {
        match s {
            "resolved" => IssueStatus::Resolved,
            "ignored" => IssueStatus::Ignored,
            _ => IssueStatus::Unresolved,
        }
    }
}

/// Errors grouped by fingerprint.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Issue {
    /// The grouping key.
    pub fingerprint: String,
    /// The service of the latest event.
    pub service: String,
    /// The error type of the latest event.
    pub error_type: Option<String>,
    /// The message of the latest event.
    pub title: String,
    /// The first event's time (whole microseconds).
    pub first_seen: Timestamp,
    /// The latest event's time (whole microseconds).
    pub last_seen: Timestamp,
    /// Events with this fingerprint, all time (as kept by the store).
    pub count: u64,
    /// Events with this fingerprint in the queried window (equals `count` without one).
    pub recent: u64,
    /// The latest event's id.
    pub last_event_id: Uuid,
    /// Triage state.
    pub status: IssueStatus,
    /// Distinct user ids among the issue's events, all time as kept by the store (events
    /// without a user id don't count).
    pub users: u64,
    /// When a resolved issue happened again (the first new event's time, whole
    /// microseconds): a regression. `None` when it never did, or since its status was last
    /// set by hand.
    pub regressed_at: Option<Timestamp>,
}

impl Issue {
    /// An issue with every field given (stores build them from their rows).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fingerprint: String,
        service: String,
        error_type: Option<String>,
        title: String,
        first_seen: Timestamp,
        last_seen: Timestamp,
        count: u64,
        recent: u64,
        last_event_id: Uuid,
        status: IssueStatus,
    ) -> Self {
        Issue {
            fingerprint,
            service,
            error_type,
            title,
            first_seen,
            last_seen,
            count,
            recent,
            last_event_id,
            status,
            users: 0,
            regressed_at: None,
        }
    }

    /// Sets the number of users affected.
    pub fn with_users(mut self, users: u64) -> Self {
        self.users = users;
        self
    }

    /// Sets when the issue regressed.
    pub fn with_regressed_at(mut self, at: Option<Timestamp>) -> Self {
        self.regressed_at = at;
        self
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The question is malformed (a bad cursor, too many histogram buckets, an unusable
    /// filter): asking again won't help; HTTP 400.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The store can't answer now (a database down, a file missing); HTTP 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else; HTTP 500.
    #[error("store error: {0}")]
    Other(String),
}

/// Reading events back from a store, the same way for every store. Object-safe: hold an
/// `Arc<dyn Store>` to serve queries without caring which database is behind it.
///
/// Order and pagination: newest first by `(time in whole microseconds, id)`; a page's
/// [`EventPage::next`] continues strictly after its last event, so pages are stable while
/// new events arrive.
pub trait Store: Send + Sync {
    /// Events matching `filter`, newest first, at most `limit` (clamped to 1–10 000), after
    /// the cursor of a previous page.
    fn events<'a>(
        &'a self,
        filter: &'a EventFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>>;

    /// One event by id.
    fn event(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Event>, StoreError>>;

    /// Counts of matching events per bucket of `width` (aligned to multiples of the width
    /// since 2000-01-01 UTC), oldest first. With both `since` and `until` in the filter,
    /// empty buckets are included as zeros (see [`fill_histogram`]).
    fn histogram<'a>(
        &'a self,
        filter: &'a EventFilter,
        width: Duration,
    ) -> BoxFuture<'a, Result<Vec<HistogramBucket>, StoreError>>;

    /// The issues with the most events: since `since` (counted from the events) or all
    /// time. Ties go to the most recently seen, then the fingerprint.
    fn top_issues(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Issue>, StoreError>>;

    /// One issue by fingerprint.
    fn issue<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<Issue>, StoreError>>;

    /// Sets an issue's status (and clears its regression mark); false when there is no
    /// such issue.
    fn set_issue_status<'a>(
        &'a self,
        fingerprint: &'a str,
        status: IssueStatus,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Recorded browser sessions matching `filter` (see [`crate::replay_index`]), the most
    /// recently started first (ties: session id), at most `limit` (clamped to 1–
    /// [`MAX_SESSIONS_PER_QUERY`](crate::replay_index::MAX_SESSIONS_PER_QUERY)).
    ///
    /// The default answers [`StoreError::Unavailable`]: a store without a replay index.
    fn replay_sessions<'a>(
        &'a self,
        filter: &'a ReplayFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ReplaySession>, StoreError>> {
        let _ = (filter, limit);
        Box::pin(async { Err(no_replay_index()) })
    }

    /// One recorded session by id.
    ///
    /// The default answers [`StoreError::Unavailable`]: a store without a replay index.
    fn replay_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ReplaySession>, StoreError>> {
        let _ = session_id;
        Box::pin(async { Err(no_replay_index()) })
    }

    /// Deletes the index rows of sessions that ended before `cutoff` (replay retention);
    /// returns how many.
    ///
    /// The default answers [`StoreError::Unavailable`]: a store without a replay index.
    fn delete_replay_sessions_before(
        &self,
        cutoff: Timestamp,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let _ = cutoff;
        Box::pin(async { Err(no_replay_index()) })
    }

    /// The metric windows of the `metric_window` events (the events that carry a
    /// [`MetricWindow`]) stored at or after `since` and before `until` (when given): the
    /// newest `limit` (clamped to 1–[`MAX_METRIC_WINDOWS`]) of them, returned oldest first
    /// (by event time, then id). What the console's Routes page draws.
    ///
    /// The default reads them with [`Store::events`], newest first in pages of 10 000;
    /// stores override it with a read of their windows alone.
    fn metric_windows(
        &self,
        since: Timestamp,
        until: Option<Timestamp>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MetricWindow>, StoreError>> {
        Box::pin(async move {
            let limit = limit.clamp(1, MAX_METRIC_WINDOWS);
            let mut f = EventFilter::new().kind(Kind::MetricWindow).since(since);
            f.until = until;
            let mut out = Vec::new();
            let mut after = None;
            loop {
                let page = self.events(&f, 10_000, after).await?;
                out.extend(page.events.into_iter().filter_map(|e| e.metric));
                match page.next {
                    Some(c) if out.len() < limit => after = Some(c),
                    _ => break,
                }
            }
            // Newest first, the `limit` newest: keep the newest, return them oldest first.
            out.truncate(limit);
            out.reverse();
            Ok(out)
        })
    }

    /// Page views, unique visitors, the page-view series, top pages and referrers over the
    /// query's range (see [`analytics`] for how events are read), aggregated by the store.
    /// An empty range or too many buckets is [`StoreError::InvalidQuery`].
    ///
    /// The default answers [`StoreError::Unavailable`]: a store without analytics queries.
    fn analytics<'a>(
        &'a self,
        query: &'a AnalyticsQuery,
    ) -> BoxFuture<'a, Result<AnalyticsSummary, StoreError>> {
        let _ = query;
        Box::pin(async { Err(no_analytics()) })
    }

    /// Visitors who reached each step of a funnel in order within the range: step 1 is any
    /// matching event in the range; step *n*+1 counts a visitor whose matching event is at
    /// or after the first time they reached step *n*. One count per step, in order (never
    /// increasing).
    ///
    /// The default answers [`StoreError::Unavailable`]: a store without analytics queries.
    fn funnel<'a>(&'a self, query: &'a FunnelQuery) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        let _ = query;
        Box::pin(async { Err(no_analytics()) })
    }
}

fn no_analytics() -> StoreError {
    StoreError::Unavailable("this store answers no analytics queries".into())
}

/// The most metric windows [`Store::metric_windows`] returns at once: a day of 60 s windows
/// of 138 routes.
pub const MAX_METRIC_WINDOWS: usize = 200_000;

fn no_replay_index() -> StoreError {
    StoreError::Unavailable("this store keeps no replay index".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trip() {
        let c = Cursor::new(1_700_000_000_123_456, Uuid::now_v7());
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        let e = "nope".parse::<Cursor>().unwrap_err();
        assert_eq!(e.to_string(), "invalid query: invalid cursor \"nope\"");
    }

    #[test]
    fn buckets_align_to_2000() {
        let hour = 3_600_000_000;
        assert_eq!(
            bucket_start(HISTOGRAM_EPOCH_MICROS + 5, hour),
            HISTOGRAM_EPOCH_MICROS
        );
        assert_eq!(
            bucket_start(HISTOGRAM_EPOCH_MICROS - 5, hour),
            HISTOGRAM_EPOCH_MICROS - hour
        );
        let filled = fill_histogram(
            vec![(HISTOGRAM_EPOCH_MICROS + hour, 3)],
            HISTOGRAM_EPOCH_MICROS + 10,
            HISTOGRAM_EPOCH_MICROS + 3 * hour,
            hour,
        )
        .unwrap();
        let counts: Vec<u64> = filled.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0, 3, 0]);
        assert!(fill_histogram(vec![], 0, i64::MAX / 2, 1).is_err());
    }
}
