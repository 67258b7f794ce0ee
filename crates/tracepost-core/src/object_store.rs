//! Object storage for replay segments and the event archive: the [`ObjectStore`] trait the
//! storage plugins implement (`tracepost-opendal`: a local directory, S3, MinIO, GCS…;
//! `tracepost-s3`: the AWS SDK), the key layout, [`ReplayStore`] for rrweb segments and
//! [`ArchiveSink`], a sink writing events as hourly NDJSON.gz objects.
//!
//! Key layout (every key starts with its UTC date, so a lifecycle rule or
//! [`ReplayStore::delete_before`] can expire by prefix):
//!
//! | what | key |
//! |---|---|
//! | replay segment | `replays/{yyyy}/{mm}/{dd}/{session_id}/{segment:06}.json.gz` (the date is the session's start) |
//! | archived events | `events/{yyyy}/{mm}/{dd}/{hh}/{first_event_id}.{count}.{crc32:08x}.ndjson.gz` (the events' hour) |
//!
//! Errors are [`SinkError`]s, classified as for sinks: an unreachable or overloaded store
//! (connection refused, timeouts, HTTP 5xx, 429) is temporary; bad credentials or a missing
//! bucket (401, 403, 404) are refused.

use std::future::Future;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::event::{Event, Timestamp};
use crate::sink::{Batch, Sink, SinkError, SinkOutcome};

/// A flat key → bytes store: a directory, an S3 bucket (under an optional prefix), ….
///
/// Keys are `/`-separated relative paths (no leading `/`, no `..`). Implementations map
/// their errors onto [`SinkError`] classes: temporary for outages, refused for credentials
/// and permissions, permanent for a request the store will never accept.
pub trait ObjectStore: Send + Sync + 'static {
    /// A short name for logs and the sink's name (`fs`, `s3`, …).
    fn name(&self) -> &str;

    /// Writes `body` at `key`, replacing what was there (so a repeated put is idempotent).
    fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &'static str,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Reads the object at `key`; `None` when there is none.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, SinkError>> + Send;

    /// Every key under `prefix` (at any depth), sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, SinkError>> + Send;

    /// The "directories" one level under `prefix` (which ends with `/`), each ending with
    /// `/`, sorted: `list_dirs("replays/")` → `["replays/2026/"]`.
    fn list_dirs(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, SinkError>> + Send;

    /// Deletes these keys; keys that don't exist are not an error.
    fn delete(&self, keys: &[String]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A UTC calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
}

/// The UTC date and hour of a time: `("2026", "11", "29", "18")`, zero-padded.
fn utc_parts(t: SystemTime) -> [String; 4] {
    // Times before 1970 (a badly set clock) are filed under 1970-01-01.
    let t = t.max(UNIX_EPOCH);
    let s = humantime::format_rfc3339_seconds(t).to_string(); // 2026-11-29T18:46:50Z
    [&s[0..4], &s[5..7], &s[8..10], &s[11..13]].map(str::to_owned)
}

impl Day {
    /// The UTC day of a timestamp.
    pub fn of(t: Timestamp) -> Day {
        let [y, m, d, _] = utc_parts(t.system_time());
        Day {
            year: y.parse().unwrap_or(1970),
            month: m.parse().unwrap_or(1),
            day: d.parse().unwrap_or(1),
        }
    }

    /// `yyyy/mm/dd`, the form used in keys.
    pub fn path(&self) -> String {
        format!("{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }

    /// Reads `yyyy-mm-dd` (the [`Display`](std::fmt::Display) form, as stores keep it).
    pub fn parse_iso(s: &str) -> Option<Day> {
        if s.len() != 10 || s.as_bytes()[4] != b'-' || s.as_bytes()[7] != b'-' {
            return None;
        }
        Day::parse_path(&s.replace('-', "/"))
    }

    pub(crate) fn parse_path(s: &str) -> Option<Day> {
        let mut it = s.split('/');
        let (y, m, d) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        Some(Day {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
            day: d.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Day {
    /// `yyyy-mm-dd`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl serde::Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a session id or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {0:?}: 1 to 128 characters among A-Z a-z 0-9 - _")]
pub struct InvalidSessionId(pub String);

/// Where one replay segment lives: `replays/{yyyy}/{mm}/{dd}/{session_id}/{segment:06}.json.gz`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentKey {
    day: Day,
    session_id: String,
    segment: u32,
}

impl SegmentKey {
    /// The key of segment `segment` of the session `session_id` that started on `day`.
    ///
    /// # Errors
    /// A session id that is empty, longer than 128 characters or has characters other than
    /// ASCII letters, digits, `-` and `_` (it becomes part of a key and of a URL).
    pub fn new(
        session_id: impl Into<String>,
        day: Day,
        segment: u32,
    ) -> Result<Self, InvalidSessionId> {
        let session_id = session_id.into();
        let ok = !session_id.is_empty()
            && session_id.len() <= 128
            && session_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(InvalidSessionId(session_id));
        }
        Ok(SegmentKey {
            day,
            session_id,
            segment,
        })
    }

    /// The session's start day.
    pub fn day(&self) -> Day {
        self.day
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The segment number (0 first).
    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// The object key.
    pub fn key(&self) -> String {
        format!(
            "replays/{}/{}/{:06}.json.gz",
            self.day.path(),
            self.session_id,
            self.segment
        )
    }

    /// Reads a key written by [`key`](Self::key).
    pub fn parse(key: &str) -> Option<SegmentKey> {
        let rest = key.strip_prefix("replays/")?;
        let (day, rest) = rest.split_at_checked(10)?;
        let (session, file) = rest.strip_prefix('/')?.split_once('/')?;
        let number = file.strip_suffix(".json.gz")?;
        if number.len() < 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        SegmentKey::new(session, Day::parse_path(day)?, number.parse().ok()?).ok()
    }
}

/// rrweb replay segments in an [`ObjectStore`]: one gzipped JSON array of events per
/// segment, under [`SegmentKey::key`].
#[derive(Debug, Clone)]
pub struct ReplayStore<S> {
    store: S,
}

impl<S: ObjectStore> ReplayStore<S> {
    /// Segments in `store`.
    pub fn new(store: S) -> Self {
        ReplayStore { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Stores a segment (`gzipped_json`: the gzip of a JSON array of rrweb events, stored
    /// as is). Idempotent on (session, segment): putting the same segment again replaces it.
    pub async fn put_segment(
        &self,
        key: &SegmentKey,
        gzipped_json: Bytes,
    ) -> Result<(), SinkError> {
        self.store
            .put(&key.key(), gzipped_json, "application/gzip")
            .await
    }

    /// Reads a segment back, exactly as stored; `None` if there is none.
    pub async fn get_segment(&self, key: &SegmentKey) -> Result<Option<Bytes>, SinkError> {
        self.store.get(&key.key()).await
    }

    /// The segments stored for a session that started on `day`, in segment order.
    pub async fn list_segments(
        &self,
        session_id: &str,
        day: Day,
    ) -> Result<Vec<SegmentKey>, SinkError> {
        let probe =
            SegmentKey::new(session_id, day, 0).map_err(|e| SinkError::permanent(e.to_string()))?;
        let prefix = format!("replays/{}/{}/", day.path(), probe.session_id);
        let mut keys: Vec<SegmentKey> = self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|k| SegmentKey::parse(k))
            .collect();
        keys.sort_by_key(|k| k.segment);
        Ok(keys)
    }

    /// Deletes every segment of sessions that started before `cutoff` (retention), one
    /// day prefix at a time; returns how many objects were deleted.
    pub async fn delete_before(&self, cutoff: Day) -> Result<usize, SinkError> {
        let mut deleted = 0;
        for year in self.store.list_dirs("replays/").await? {
            for month in self.store.list_dirs(&year).await? {
                for day_dir in self.store.list_dirs(&month).await? {
                    let path = day_dir.trim_start_matches("replays/").trim_end_matches('/');
                    if Day::parse_path(path).is_some_and(|d| d < cutoff) {
                        let keys = self.store.list(&day_dir).await?;
                        for chunk in keys.chunks(1000) {
                            self.store.delete(chunk).await?;
                        }
                        deleted += keys.len();
                    }
                }
            }
        }
        Ok(deleted)
    }
}

/// The key of an archive object: `events/{yyyy}/{mm}/{dd}/{hh}/{first_id}.{count}.{crc32}.ndjson.gz`,
/// derived from the events it holds, so the same batch always gets the same key.
fn archive_key(hour: &[String; 4], events: &[&Event]) -> String {
    let mut crc = crc32fast::Hasher::new();
    for e in events {
        crc.update(e.id.as_bytes());
    }
    format!(
        "events/{}/{}/{}/{}/{}.{}.{:08x}.ndjson.gz",
        hour[0],
        hour[1],
        hour[2],
        hour[3],
        events[0].id,
        events.len(),
        crc.finalize()
    )
}

/// A sink that archives events to an [`ObjectStore`] as gzipped NDJSON (one event per line,
/// the schema of the book's "Event schema" page), one object per batch and UTC hour under
/// `events/{yyyy}/{mm}/{dd}/{hh}/`.
///
/// Idempotent per batch: an object's key is derived from the ids of the events in it, so a
/// batch delivered again replaces its own object. (Events the pipeline re-batches
/// differently after a failure can land in two objects; readers dedupe on `id`.) Cheap
/// long-term storage: query it with DuckDB, Athena or `zcat | jq`.
#[derive(Debug)]
pub struct ArchiveSink<S> {
    store: S,
    name: String,
    level: flate2::Compression,
}

impl<S: ObjectStore> ArchiveSink<S> {
    /// Archives into `store`; the sink is named `archive` unless renamed with
    /// [`name`](Self::name).
    pub fn new(store: S) -> Self {
        ArchiveSink {
            store,
            name: "archive".to_owned(),
            level: flate2::Compression::default(),
        }
    }

    /// The sink's name (metric labels, logs, spool directory). Default `archive`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The gzip level, 0 (none) to 9 (smallest). Default 6.
    pub fn compression_level(mut self, level: u32) -> Self {
        self.level = flate2::Compression::new(level.min(9));
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn encode(&self, events: &[&Event]) -> Result<Bytes, SinkError> {
        let mut ndjson = Vec::with_capacity(events.len() * 512);
        for e in events {
            crate::event::json::write_event(&mut ndjson, e)
                .map_err(|err| SinkError::permanent(err.to_string()))?;
            ndjson.push(b'\n');
        }
        let mut gz =
            flate2::write::GzEncoder::new(Vec::with_capacity(ndjson.len() / 4), self.level);
        gz.write_all(&ndjson)?;
        Ok(Bytes::from(gz.finish()?))
    }
}

impl<S: ObjectStore> Sink for ArchiveSink<S> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        // One object per UTC hour the batch's events fall in, each in batch order.
        let mut hours: Vec<([String; 4], Vec<&Event>)> = Vec::new();
        for e in &batch {
            let hour = utc_parts(e.timestamp.system_time());
            match hours.iter_mut().find(|(h, _)| *h == hour) {
                Some((_, events)) => events.push(e),
                None => hours.push((hour, vec![e])),
            }
        }
        for (hour, events) in &hours {
            let body = self.encode(events)?;
            self.store
                .put(&archive_key(hour, events), body, "application/x-ndjson")
                .await?;
        }
        Ok(SinkOutcome::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_keys_round_trip_and_refuse_unsafe_ids() {
        let day = Day {
            year: 2026,
            month: 3,
            day: 7,
        };
        let k = SegmentKey::new("0193a-b_C", day, 12).unwrap();
        assert_eq!(k.key(), "replays/2026/03/07/0193a-b_C/000012.json.gz");
        assert_eq!(SegmentKey::parse(&k.key()), Some(k));
        let big = SegmentKey::new("s", day, 1_234_567).unwrap();
        assert_eq!(big.key(), "replays/2026/03/07/s/1234567.json.gz");
        assert_eq!(SegmentKey::parse(&big.key()), Some(big));
        for bad in ["", "../etc", "a/b", "a.b", "sp ace", &"x".repeat(129)] {
            assert!(SegmentKey::new(bad, day, 0).is_err(), "{bad}");
        }
        for bad in [
            "replays/2026/03/07/s/12.json.gz",
            "replays/2026/3/07/s/000012.json.gz",
            "events/2026/03/07/s/000012.json.gz",
            "replays/2026/03/07/../000012.json.gz",
        ] {
            assert_eq!(SegmentKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_and_hours_are_utc() {
        // 2024-02-29T23:59:59Z (a leap day), then one second later.
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199);
        assert_eq!(utc_parts(t), ["2024", "02", "29", "23"].map(String::from));
        let d = Day::of(Timestamp::from(t + std::time::Duration::from_secs(1)));
        assert_eq!(d.path(), "2024/03/01");
        assert_eq!(
            Day::of(Timestamp::from(
                UNIX_EPOCH - std::time::Duration::from_secs(5)
            ))
            .path(),
            "1970/01/01"
        );
    }
}
