//! The session-replay index: one row per recorded browser session, folded from the
//! [`Kind::Replay`] events the replay upload route submits (one per stored segment), kept by
//! the SQLite and PostgreSQL stores in a `replay_sessions` table and read back through
//! [`Store::replay_sessions`](crate::store::Store::replay_sessions).
//!
//! A replay event carries these attributes (the contract between the upload route and the
//! stores; all times Unix milliseconds):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `replay.segment` | int | the segment number (0 first) |
//! | `replay.day` | `yyyy/mm/dd` string | the UTC day the session started: the segments' key prefix |
//! | `replay.session_start` | RFC 3339 string | when the session started (masked by the default redactor, whose key rules cover "session"; `replay.day` is read first) |
//! | `replay.start_ms` / `replay.end_ms` | int | first and last rrweb event of the segment |
//! | `replay.events` | int | rrweb events in the segment |
//! | `replay.bytes` | int | stored (gzip) bytes |
//! | `replay.first_url` | string | the URL of the segment's first Meta event, if it has one |
//! | `replay.missing_segments` | int | segments the client could not upload so far |
//! | `replay.errors` | int | browser errors the client saw during the segment |
//! | `visitor.id` | string | the browser's visitor id |
//!
//! The envelope's `session_id` names the session and `user_id` the signed-in user, if any.
//!
//! Folding (the same in every store): the session starts at the smallest `start_ms` and ends
//! at the largest `end_ms`; segments, errors and bytes are summed; `missing_segments` is the
//! largest count reported (the client's counter only grows); `first_url` is the URL of the
//! earliest segment that has one; `page_count` counts the distinct URLs seen (at most
//! [`MAX_URLS`] are kept); the latest non-empty user and visitor ids win.

use std::time::Duration;

use serde::Serialize;

use crate::event::{Event, Kind, Timestamp};
use crate::object_store::{Day, SegmentKey};

/// Distinct page URLs kept per session (for `page_count` and the URL filter).
pub const MAX_URLS: usize = 100;

/// Sessions returned at most by one [`Store::replay_sessions`](crate::store::Store::replay_sessions) call.
pub const MAX_SESSIONS_PER_QUERY: usize = 1000;

/// What one replay event adds to its session's index row (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayIndexEntry {
    /// The session id (a valid [`SegmentKey`] session id).
    pub session_id: String,
    /// `visitor.id`.
    pub visitor_id: Option<String>,
    /// The envelope's user id.
    pub user_id: Option<String>,
    /// `replay.start_ms`, Unix ms.
    pub start_ms: i64,
    /// `replay.end_ms`, Unix ms (at least `start_ms`).
    pub end_ms: i64,
    /// `replay.first_url`.
    pub first_url: Option<String>,
    /// `replay.errors`.
    pub errors: i64,
    /// `replay.bytes`.
    pub bytes: i64,
    /// `replay.missing_segments`.
    pub missing_segments: i64,
    /// The UTC day of `replay.session_start` (of `start_ms` when that is missing).
    pub session_day: Day,
}

fn int(e: &Event, key: &str) -> Option<i64> {
    let v = e.attributes.get(key)?;
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

fn text(e: &Event, key: &str) -> Option<String> {
    e.attributes
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A Unix-ms count as a [`Timestamp`] (negative values clamp to the epoch).
pub fn ms_to_ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_nanos(u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000))
}

/// A [`Timestamp`]'s Unix ms.
pub fn ts_to_ms(t: Timestamp) -> i64 {
    i64::try_from(t.unix_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl ReplayIndexEntry {
    /// The entry of a [`Kind::Replay`] event; `None` for other kinds and for replay events
    /// without a valid session id or `replay.start_ms` (they are stored as events but not
    /// indexed). Negative counts read as 0; an `end_ms` before `start_ms` as `start_ms`.
    pub fn from_event(e: &Event) -> Option<Self> {
        if e.kind != Kind::Replay {
            return None;
        }
        let session_id = e.session_id.clone()?;
        // Only ids that can name segments: the index links to them.
        SegmentKey::new(session_id.as_str(), Day::of(e.timestamp), 0).ok()?;
        let start_ms = int(e, "replay.start_ms")?.max(0);
        let end_ms = int(e, "replay.end_ms").unwrap_or(start_ms).max(start_ms);
        // `replay.day` first: the default redactor masks keys containing "session", so
        // `replay.session_start` reaches the sinks as "[REDACTED]" unless the host unmasks it.
        let session_day = text(e, "replay.day")
            .and_then(|d| Day::parse_path(&d))
            .or_else(|| {
                text(e, "replay.session_start")
                    .and_then(|s| humantime::parse_rfc3339_weak(&s).ok())
                    .map(|t| Day::of(Timestamp::from(t)))
            })
            .unwrap_or_else(|| Day::of(ms_to_ts(start_ms)));
        Some(ReplayIndexEntry {
            session_id,
            visitor_id: text(e, "visitor.id"),
            user_id: e.user_id.clone().filter(|u| !u.is_empty()),
            start_ms,
            end_ms,
            first_url: text(e, "replay.first_url"),
            errors: int(e, "replay.errors").unwrap_or(0).max(0),
            bytes: int(e, "replay.bytes").unwrap_or(0).max(0),
            missing_segments: int(e, "replay.missing_segments").unwrap_or(0).max(0),
            session_day,
        })
    }
}

/// One recorded session, as the index keeps it. Times have millisecond precision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReplaySession {
    /// The session id.
    pub session_id: String,
    /// The browser's visitor id.
    pub visitor_id: Option<String>,
    /// The signed-in user, if the page identified one.
    pub user_id: Option<String>,
    /// The first recorded rrweb event.
    pub started_at: Timestamp,
    /// The last recorded rrweb event.
    pub ended_at: Timestamp,
    /// `ended_at - started_at`, ms.
    pub duration_ms: i64,
    /// The URL of the first page recorded.
    pub first_url: Option<String>,
    /// Distinct page URLs seen (at most [`MAX_URLS`]).
    pub page_count: u32,
    /// Segments stored.
    pub segment_count: u32,
    /// Browser errors seen during the recorded time.
    pub error_count: u64,
    /// Stored (gzip) bytes.
    pub bytes: u64,
    /// Segments the browser could not upload.
    pub missing_segments: u32,
    /// The UTC day the session started: the segments' key prefix.
    pub session_day: Day,
}

impl ReplaySession {
    /// A session with every field given (stores build them from their rows).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session_id: String,
        visitor_id: Option<String>,
        user_id: Option<String>,
        started_ms: i64,
        ended_ms: i64,
        first_url: Option<String>,
        page_count: u32,
        segment_count: u32,
        error_count: u64,
        bytes: u64,
        missing_segments: u32,
        session_day: Day,
    ) -> Self {
        ReplaySession {
            session_id,
            visitor_id,
            user_id,
            started_at: ms_to_ts(started_ms),
            ended_at: ms_to_ts(ended_ms),
            duration_ms: ended_ms.saturating_sub(started_ms).max(0),
            first_url,
            page_count,
            segment_count,
            error_count,
            bytes,
            missing_segments,
            session_day,
        }
    }
}

/// Which sessions to list. All conditions must hold; empty fields don't filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayFilter {
    /// This user id.
    pub user_id: Option<String>,
    /// A page URL of the session contains this text, ignoring case.
    pub url_contains: Option<String>,
    /// Sessions still recording at or after this time (`ended_at >= since`).
    pub since: Option<Timestamp>,
    /// Sessions started before this time (`started_at < until`).
    pub until: Option<Timestamp>,
    /// Sessions in which an error with this fingerprint was stored (any event with the
    /// session's id: browser errors and backend errors carrying the session header).
    pub fingerprint: Option<String>,
}

impl ReplayFilter {
    /// No conditions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this user.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }

    /// Only sessions that visited a URL containing `text`.
    pub fn url_contains(mut self, text: impl Into<String>) -> Self {
        self.url_contains = Some(text.into());
        self
    }

    /// Only sessions recording at or after `t`.
    pub fn since(mut self, t: Timestamp) -> Self {
        self.since = Some(t);
        self
    }

    /// Only sessions started before `t`.
    pub fn until(mut self, t: Timestamp) -> Self {
        self.until = Some(t);
        self
    }

    /// Only sessions with an error of this fingerprint.
    pub fn fingerprint(mut self, fp: impl Into<String>) -> Self {
        self.fingerprint = Some(fp.into());
        self
    }
}

/// A batch's replay events for one session, merged (see [`fold_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FoldedEntry {
    /// The merged entry (smallest start, largest end, sums, the latest ids).
    pub entry: ReplayIndexEntry,
    /// How many segments were merged.
    pub segments: u32,
    /// The distinct URLs, in the order seen (at most [`MAX_URLS`]).
    pub urls: Vec<String>,
    /// The `start_ms` of the segment `entry.first_url` comes from.
    pub first_url_ms: i64,
}

/// Merges a batch's entries into one per session (in first-seen order), so a store upserts
/// each session once per batch.
pub fn fold_entries(entries: &[ReplayIndexEntry]) -> Vec<FoldedEntry> {
    let mut out: Vec<FoldedEntry> = Vec::new();
    for e in entries {
        let Some(f) = out.iter_mut().find(|f| f.entry.session_id == e.session_id) else {
            out.push(FoldedEntry {
                entry: e.clone(),
                segments: 1,
                urls: e.first_url.iter().cloned().collect(),
                first_url_ms: e.start_ms,
            });
            continue;
        };
        let s = &mut f.entry;
        f.segments += 1;
        s.start_ms = s.start_ms.min(e.start_ms);
        s.end_ms = s.end_ms.max(e.end_ms);
        s.errors = s.errors.saturating_add(e.errors);
        s.bytes = s.bytes.saturating_add(e.bytes);
        s.missing_segments = s.missing_segments.max(e.missing_segments);
        s.session_day = s.session_day.min(e.session_day);
        if e.user_id.is_some() {
            s.user_id.clone_from(&e.user_id);
        }
        if e.visitor_id.is_some() {
            s.visitor_id.clone_from(&e.visitor_id);
        }
        if let Some(u) = &e.first_url {
            if s.first_url.is_none() || e.start_ms < f.first_url_ms {
                s.first_url = Some(u.clone());
                f.first_url_ms = e.start_ms;
            }
            if !f.urls.contains(u) && f.urls.len() < MAX_URLS {
                f.urls.push(u.clone());
            }
        }
    }
    out
}

/// The link from an event to the moment of its session's replay:
/// `{console_base}/replays/{session_id}?t={offset_ms}`, `offset_ms` counted from the
/// session's first recorded event (0 when the event is earlier).
pub fn replay_url(console_base: &str, session: &ReplaySession, at: Timestamp) -> String {
    let offset = (ts_to_ms(at) - ts_to_ms(session.started_at)).max(0);
    format!(
        "{}/replays/{}?t={offset}",
        console_base.trim_end_matches('/'),
        session.session_id
    )
}

/// What one replay retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayRetentionReport {
    /// Segment objects deleted (whole days of sessions that started before the cutoff day).
    pub segments: usize,
    /// Index rows deleted (sessions that ended before the cutoff).
    pub sessions: u64,
}

/// Why a retention run failed (the next run tries again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayRetentionError {
    /// Listing or deleting segments failed.
    #[error("replay segments: {0}")]
    Segments(#[from] crate::sink::SinkError),
    /// Deleting index rows failed.
    #[error("replay index: {0}")]
    Index(#[from] crate::store::StoreError),
}

/// One retention run: deletes the segments of sessions that started before the UTC day of
/// `now - max_age` ([`ReplayStore::delete_before`](crate::object_store::ReplayStore::delete_before), whole day prefixes, so a segment lives
/// between `max_age` and `max_age` + 1 day), then the index rows of sessions that ended
/// before `now - max_age`. A store without a replay index (the default
/// [`Store::delete_replay_sessions_before`](crate::store::Store::delete_replay_sessions_before))
/// only has its segments deleted.
pub async fn retain_replays<S: crate::object_store::ObjectStore>(
    replays: &crate::object_store::ReplayStore<S>,
    index: &dyn crate::store::Store,
    max_age: Duration,
) -> Result<ReplayRetentionReport, ReplayRetentionError> {
    let cutoff = Timestamp::from(
        std::time::SystemTime::now()
            .checked_sub(max_age)
            .unwrap_or(std::time::UNIX_EPOCH),
    );
    let segments = replays.delete_before(Day::of(cutoff)).await?;
    let sessions = match index.delete_replay_sessions_before(cutoff).await {
        Ok(n) => n,
        Err(crate::store::StoreError::Unavailable(m)) if m.contains("no replay index") => 0,
        Err(e) => return Err(e.into()),
    };
    Ok(ReplayRetentionReport { segments, sessions })
}

/// Runs [`retain_replays`] now and then every `every` (at least 1 s) on the current tokio
/// runtime, logging what it deleted and any failure (retried at the next run); retention
/// without cron. Abort the returned handle to stop it.
pub fn spawn_replay_retention<S: crate::object_store::ObjectStore>(
    replays: crate::object_store::ReplayStore<S>,
    index: std::sync::Arc<dyn crate::store::Store>,
    max_age: Duration,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match retain_replays(&replays, index.as_ref(), max_age).await {
                Ok(r) if r.segments > 0 || r.sessions > 0 => tracing::info!(
                    target: "tracepost::replay",
                    segments = r.segments,
                    sessions = r.sessions,
                    "replay retention deleted old recordings"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    target: "tracepost::replay",
                    error = %e,
                    "replay retention failed; retried at the next run"
                ),
            }
        }
    })
}

/// `m:ss` (or `h:mm:ss`) for an offset in ms: `42000` → `0:42`.
pub fn format_offset(ms: i64) -> String {
    let s = Duration::from_millis(u64::try_from(ms).unwrap_or(0)).as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn replay_event(session: &str, start: i64, end: i64, url: Option<&str>) -> Event {
        let mut e = Event::new(Kind::Replay, crate::Level::Info, "replay segment");
        e.session_id = Some(session.into());
        e.attributes.insert("replay.start_ms".into(), json!(start));
        e.attributes.insert("replay.end_ms".into(), json!(end));
        e.attributes.insert("replay.errors".into(), json!(1));
        e.attributes.insert("replay.bytes".into(), json!(100));
        e.attributes
            .insert("replay.session_start".into(), json!("2026-03-07T23:59:59Z"));
        if let Some(u) = url {
            e.attributes.insert("replay.first_url".into(), json!(u));
        }
        e
    }

    #[test]
    fn entries_read_the_contract_and_fold() {
        let a = ReplayIndexEntry::from_event(&replay_event("s1", 2000, 3000, Some("/b"))).unwrap();
        assert_eq!(a.session_day.path(), "2026/03/07");
        let b = ReplayIndexEntry::from_event(&replay_event("s1", 1000, 1500, Some("/a"))).unwrap();
        let c = ReplayIndexEntry::from_event(&replay_event("s2", 5, 1, None)).unwrap();
        assert_eq!(c.end_ms, 5, "end before start reads as start");
        let folded = fold_entries(&[a, b, c]);
        assert_eq!(folded.len(), 2);
        let f = &folded[0];
        let s1 = &f.entry;
        assert_eq!((s1.start_ms, s1.end_ms, f.segments), (1000, 3000, 2));
        assert_eq!(s1.first_url.as_deref(), Some("/a"));
        assert_eq!(f.first_url_ms, 1000);
        assert_eq!(f.urls, ["/b", "/a"]);
        assert_eq!((s1.errors, s1.bytes), (2, 200));
        // Not indexed: other kinds, unsafe ids, no start.
        let mut bad = replay_event("../x", 1, 2, None);
        assert_eq!(ReplayIndexEntry::from_event(&bad), None);
        bad.session_id = Some("ok".into());
        bad.attributes.remove("replay.start_ms");
        assert_eq!(ReplayIndexEntry::from_event(&bad), None);
        let log = Event::new(Kind::Log, crate::Level::Info, "x");
        assert_eq!(ReplayIndexEntry::from_event(&log), None);
    }

    /// What the upload route sends reaches the index through the default redactor, which
    /// masks `replay.session_start` (its key holds "session"): the day comes from `replay.day`,
    /// so a segment recorded after midnight still names the session's first day.
    #[test]
    fn the_day_survives_the_default_redactor() {
        let mut e = replay_event("s1", 1_772_928_000_500, 1_772_928_001_000, None);
        e.attributes
            .insert("replay.day".into(), json!("2026/03/07"));
        crate::Redactor::default().event(&mut e);
        assert_eq!(e.attributes["replay.session_start"], json!("[REDACTED]"));
        let entry = ReplayIndexEntry::from_event(&e).unwrap();
        assert_eq!(entry.session_day.path(), "2026/03/07");
        assert_eq!(Day::of(ms_to_ts(entry.start_ms)).path(), "2026/03/08");
    }

    #[test]
    fn links_and_offsets() {
        let s = ReplaySession::new(
            "s1".into(),
            None,
            None,
            1_000,
            60_000,
            None,
            0,
            1,
            0,
            0,
            0,
            Day::of(ms_to_ts(1_000)),
        );
        assert_eq!(
            replay_url("https://h/tracepost/console/", &s, ms_to_ts(43_000)),
            "https://h/tracepost/console/replays/s1?t=42000"
        );
        assert_eq!(replay_url("", &s, ms_to_ts(0)), "/replays/s1?t=0");
        assert_eq!(format_offset(42_000), "0:42");
        assert_eq!(format_offset(3_723_000), "1:02:03");
    }
}
