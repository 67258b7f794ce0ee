//! [`SqliteStore`]: the database file, its schema, the write path, retention and queries.
//!
//! One writer connection (behind a mutex, used from `spawn_blocking`) and a small pool of
//! reader connections; WAL mode lets readers run while the writer writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde_json::Value;
use tracepost_core::object_store::Day;
use tracepost_core::replay_index::{
    ts_to_ms, ReplayFilter, ReplayIndexEntry, ReplaySession, MAX_SESSIONS_PER_QUERY, MAX_URLS,
};
use tracepost_core::store::analytics::{
    AnalyticsFacts, AnalyticsQuery, AnalyticsSummary, FunnelQuery, FunnelStep, TopRow, MAX_TOP_ROWS,
};
use tracepost_core::store::{
    bucket_start, fill_histogram, micros_to_ts, ts_to_micros, width_micros, Cursor, EventFilter,
    EventPage, HistogramBucket, Issue, IssueStatus, StoreError, MAX_ATTRIBUTE_FILTERS,
    MAX_METRIC_WINDOWS,
};
use tracepost_core::{
    Batch, Event, Kind, MetricWindow, Rejection, SinkError, SinkErrorKind, SinkOutcome, Timestamp,
};
use uuid::Uuid;

use crate::limits::{OutOfRange, TimeRange, Window, ORIGINAL_TIMESTAMP_ATTRIBUTE};

/// The database file's name under the sink's directory.
pub const DB_FILE: &str = "tracepost.sqlite3";

/// The schema of version 4, applied on every open (idempotent); later versions are
/// [`STEPS`] on top. `PRAGMA user_version` records the version a file is at.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id BLOB PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT,
    release TEXT,
    host TEXT,
    trace_id TEXT,
    span_id TEXT,
    request_id TEXT,
    session_id TEXT,
    user_id TEXT,
    message TEXT NOT NULL,
    fingerprint TEXT,
    error_type TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_us, id);
CREATE INDEX IF NOT EXISTS events_service_ts ON events (service, ts_us);
CREATE INDEX IF NOT EXISTS events_fingerprint_ts ON events (fingerprint, ts_us) WHERE fingerprint IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_trace ON events (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_issue_users ON events (fingerprint, user_id)
    WHERE fingerprint IS NOT NULL AND kind = 'error';
CREATE INDEX IF NOT EXISTS events_request ON events (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_session ON events (session_id) WHERE session_id IS NOT NULL;

CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    message, content='events', content_rowid='rowid', tokenize='trigram');
-- No insert trigger: the write path indexes each batch's rows itself (schema step 5, which
-- drops the trigger of older files). The base schema runs again on every upgrade, so a
-- trigger here would come back in a file that had already passed step 5.
CREATE TRIGGER IF NOT EXISTS events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, message) VALUES ('delete', old.rowid, old.message);
END;

CREATE TABLE IF NOT EXISTS request_snapshots (
    event_id BLOB PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    service TEXT NOT NULL,
    user_id TEXT,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS request_snapshots_ts ON request_snapshots (ts_us);
CREATE INDEX IF NOT EXISTS request_snapshots_route ON request_snapshots (route, ts_us);

CREATE TABLE IF NOT EXISTS metric_windows (
    event_id BLOB PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
    service TEXT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    p50_ms REAL NOT NULL,
    p95_ms REAL NOT NULL,
    p99_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_windows_ts ON metric_windows (ts_us);

CREATE TABLE IF NOT EXISTS issues (
    fingerprint TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    error_type TEXT,
    title TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL,
    last_event_id BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'unresolved',
    updated_at INTEGER NOT NULL,
    regressed_at INTEGER
);
CREATE INDEX IF NOT EXISTS issues_count ON issues (count DESC, last_seen DESC);

CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key_hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    require_signature INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS replay_sessions (
    session_id TEXT PRIMARY KEY,
    visitor_id TEXT,
    user_id TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    first_url TEXT,
    first_url_at INTEGER,
    urls TEXT NOT NULL DEFAULT '[]',
    page_count INTEGER NOT NULL,
    segment_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    missing_segments INTEGER NOT NULL,
    session_day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replay_sessions_started ON replay_sessions (started_at DESC, session_id);
CREATE INDEX IF NOT EXISTS replay_sessions_ended ON replay_sessions (ended_at);
CREATE INDEX IF NOT EXISTS replay_sessions_user ON replay_sessions (user_id, started_at)
    WHERE user_id IS NOT NULL;
";

/// The version [`SCHEMA`] (with [`ADDED_COLUMNS`]) brings a file to.
const BASE_VERSION: i64 = 4;

/// Schema steps after [`BASE_VERSION`]: (version, SQL). A file below a step's version runs
/// it once, in a transaction that also records the version, so an existing database
/// upgrades in place on open and a crash mid-step leaves it at the previous version.
const STEPS: &[(i64, &str)] = &[
    (
        5,
        // Event counts per minute, kind, level and service: the histogram of a time range
        // (filtered by kind, level or service at most) sums these instead of counting every
        // event (1 440 rows a day per combination instead of every event). Kept by the write
        // path (one upsert per combination and batch) and by a trigger on delete (retention);
        // filled from the events already stored.
        "CREATE TABLE IF NOT EXISTS event_counts (
        minute_us INTEGER NOT NULL,
        kind TEXT NOT NULL,
        level TEXT NOT NULL,
        service TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (minute_us, kind, level, service)
    ) WITHOUT ROWID;
    DELETE FROM event_counts;
    INSERT INTO event_counts (minute_us, kind, level, service, n)
        SELECT ts_us - (ts_us % 60000000 + 60000000) % 60000000, kind, level, service, count(*)
        FROM events GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER IF NOT EXISTS events_counts_delete AFTER DELETE ON events BEGIN
        UPDATE event_counts SET n = n - 1
        WHERE minute_us = old.ts_us - (old.ts_us % 60000000 + 60000000) % 60000000
            AND kind = old.kind AND level = old.level AND service = old.service;
    END;
    -- The search index is written once per batch by the write path (one INSERT … SELECT of
    -- the batch's rows), not by a trigger per event: FTS5 flushes its pending terms to a new
    -- segment at every statement savepoint, so a trigger made one segment (and merges) per
    -- event — two thirds of the write path's instructions.
    DROP TRIGGER IF EXISTS events_fts_insert;",
    ),
    (
        6,
        // What the analytics queries read from each `analytics` event (see below); the step then
        // fills it from the events already stored (`backfill_analytics`).
        "-- What the analytics queries read from each `analytics` event
    -- (tracepost_core::store::analytics::AnalyticsFacts), clustered by time so a range of
    -- days is one sequential read; filled on insert, and from the stored events when a file
    -- of an older version is opened.
    CREATE TABLE IF NOT EXISTS analytics (
        ts_us INTEGER NOT NULL,
        event_id BLOB NOT NULL,
        event TEXT,
        visitor TEXT,
        path TEXT,
        host TEXT,
        referrer_host TEXT,
        name TEXT,
        PRIMARY KEY (ts_us, event_id)
    ) WITHOUT ROWID;
    -- Funnel steps: one page's views, one track's events, in a time range, with the visitor.
    CREATE INDEX IF NOT EXISTS analytics_page ON analytics (path, ts_us, visitor)
        WHERE event = 'pageview';
    CREATE INDEX IF NOT EXISTS analytics_track ON analytics (name, ts_us, visitor)
        WHERE event = 'track';",
    ),
];

/// The schema version (`PRAGMA user_version`) this build brings a file to when it opens it:
/// 5 adds the per-minute event counts and writes the search index once per batch; 6 adds the
/// `analytics` table.
pub const SCHEMA_VERSION: i64 = STEPS[STEPS.len() - 1].0;

/// The schema version whose files have the `analytics` table filled on insert.
const ANALYTICS_VERSION: i64 = 6;

/// Columns added after version 1, for files created before them: (table, column, type).
const ADDED_COLUMNS: [(&str, &str, &str); 1] = [("issues", "regressed_at", "INTEGER")];

/// Counters since the store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestStats {
    /// Batches written.
    pub batches: u64,
    /// Events stored.
    pub inserted: u64,
    /// Events whose id was already stored (redeliveries, absorbed).
    pub duplicates: u64,
    /// Events stored under the time they were received ([`OutOfRange::Restamp`]).
    pub restamped: u64,
    /// Events rejected as too old.
    pub too_old: u64,
    /// Events rejected as too far in the future.
    pub too_far_in_future: u64,
}

/// What one retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Events deleted (with their request snapshots and metric windows).
    pub deleted_events: u64,
    /// Issues whose last event is older than the limit, deleted.
    pub deleted_issues: u64,
    /// Replay index rows of sessions that ended before the limit, deleted (the segments
    /// themselves are the replay store's to delete).
    pub deleted_replay_sessions: u64,
}

/// The store behind [`SqliteSink`](crate::SqliteSink): write, query, retain. Cheap to clone
/// (clones share the connections). Opening is lazy: the file is created on first use.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    window: Window,
    retention: Option<Duration>,
    writer: Mutex<Option<Writer>>,
    readers: Mutex<Vec<Connection>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    inserted: AtomicU64,
    duplicates: AtomicU64,
    restamped: AtomicU64,
    too_old: AtomicU64,
    too_far_in_future: AtomicU64,
}

/// The writer connection and the identity of the file it opened, to notice the file being
/// deleted or replaced under it (writes to an unlinked file would be lost silently).
struct Writer {
    conn: Connection,
    identity: Option<FileId>,
}

type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("retention", &self.inner.retention)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_us() -> i64 {
    ts_to_micros(Timestamp::now())
}

/// Opens (creating the directory, the file and the schema if needed) a connection in WAL
/// mode with a 5 s busy timeout.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = open_at(path)?;
    upgrade(&mut conn, path)?;
    Ok(conn)
}

/// Opens a connection in WAL mode with a 5 s busy timeout, creating the directory and the
/// file if needed; no schema.
fn open_at(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            // A missing directory is created; a file in its place makes the open fail below.
            let _ = std::fs::create_dir_all(dir);
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Brings the file's schema to [`SCHEMA_VERSION`]: [`SCHEMA`] and [`ADDED_COLUMNS`], then
/// each of [`STEPS`] the file has not had. Nothing to do (one pragma read) when it is
/// current. A file of a newer version (written by a newer tracepost) is refused, naming
/// both versions: this build would write rows its schema does not know how to keep (a
/// newer step's tables and triggers left unfilled).
fn upgrade(conn: &mut Connection, path: &Path) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(newer_version(path, version));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch(SCHEMA)?;
    for (table, column, ty) in ADDED_COLUMNS {
        let has: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )?;
        if has == 0 {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
        }
    }
    if version < BASE_VERSION {
        conn.pragma_update(None, "user_version", BASE_VERSION)?;
    }
    for (to, sql) in STEPS {
        // Another connection may have upgraded the file meanwhile: read the version again
        // inside the step's (write) transaction.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if now < *to {
            tracing::info!(path = %path.display(), from = now, to, "upgrading the SQLite schema");
            tx.execute_batch(sql)?;
            if *to == ANALYTICS_VERSION {
                backfill_analytics(&tx)?;
            }
            tx.pragma_update(None, "user_version", to)?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// The refusal of a file at schema `version`, newer than this build's (classified as a
/// refusal of the destination: the sink keeps its events).
fn newer_version(path: &Path, version: i64) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
        Some(format!(
            "the store {} is at schema version {version}, newer than this build's \
             {SCHEMA_VERSION}: a newer tracepost wrote it; open it with that version, or give \
             this one another file",
            path.display()
        )),
    )
}

/// Fills the `analytics` table from the `analytics` events of a file written before it
/// existed, inside the schema step's transaction (idempotent: `INSERT OR IGNORE`).
fn backfill_analytics(tx: &Connection) -> rusqlite::Result<()> {
    {
        let mut read = tx.prepare(
            "SELECT ts_us, id, session_id, attributes FROM events WHERE kind = 'analytics'",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let attributes: String = r.get(3)?;
            let attributes = serde_json::from_str(&attributes).unwrap_or_default();
            let session: Option<String> = r.get(2)?;
            let facts = AnalyticsFacts::from_parts(&attributes, session.as_deref());
            insert_analytics(tx, r.get(0)?, r.get::<_, Vec<u8>>(1)?, &facts)?;
        }
    }
    Ok(())
}

fn insert_analytics(
    tx: &Connection,
    ts_us: i64,
    id: Vec<u8>,
    f: &AnalyticsFacts,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO analytics (ts_us, event_id, event, visitor, path, host,
            referrer_host, name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        ts_us,
        id,
        f.event,
        f.visitor,
        f.path,
        f.host,
        f.referrer_host,
        f.name
    ])?;
    Ok(())
}

/// Classifies a SQLite error for the pipeline.
pub(crate) fn sink_error(e: rusqlite::Error) -> SinkError {
    let message = format!("sqlite: {e}");
    let Some(code) = e.sqlite_error_code() else {
        return SinkError::temporary(message)
            .with_kind(SinkErrorKind::Other)
            .with_source(e);
    };
    let err = match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            SinkError::temporary(message).with_kind(SinkErrorKind::Unavailable)
        }
        ErrorCode::DiskFull => SinkError::temporary(message)
            .with_kind(SinkErrorKind::Io)
            .with_retry_after(Duration::from_secs(10)),
        ErrorCode::CannotOpen | ErrorCode::SystemIoFailure => {
            SinkError::temporary(message).with_kind(SinkErrorKind::Io)
        }
        ErrorCode::ReadOnly
        | ErrorCode::PermissionDenied
        | ErrorCode::AuthorizationForStatementDenied => {
            SinkError::refused(message).with_kind(SinkErrorKind::PermissionDenied)
        }
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
            SinkError::refused(message).with_kind(SinkErrorKind::Other)
        }
        ErrorCode::TooBig => {
            SinkError::permanent(message).with_kind(SinkErrorKind::PayloadTooLarge)
        }
        _ => SinkError::temporary(message).with_kind(SinkErrorKind::Other),
    };
    err.with_source(e)
}

pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("sqlite: {e}"))
        }
        _ => StoreError::Other(format!("sqlite: {e}")),
    }
}

/// A per-event error that is the event's fault (bigger than SQLite's 1 GB value limit, a
/// constraint): the event alone is rejected (`too_big`, `invalid_data`); SQLite rolls back
/// only that statement, so the rest of the batch is written.
fn is_data_error(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::TooBig | ErrorCode::ConstraintViolation)
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(f).await
}

fn opt(s: &Option<String>) -> Sql {
    s.clone().map_or(Sql::Null, Sql::Text)
}

impl SqliteStore {
    /// A store for the database at `path` (the file; its directory is created on first
    /// use). No I/O happens here.
    pub fn new(path: impl Into<PathBuf>, range: TimeRange, retention: Option<Duration>) -> Self {
        SqliteStore {
            inner: Arc::new(Inner {
                path: path.into(),
                window: range.resolve(retention),
                retention,
                writer: Mutex::new(None),
                readers: Mutex::new(Vec::new()),
                stats: Stats::default(),
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The retention, if any.
    pub fn retention(&self) -> Option<Duration> {
        self.inner.retention
    }

    /// Counters since the store was created.
    pub fn stats(&self) -> IngestStats {
        let s = &self.inner.stats;
        IngestStats {
            batches: s.batches.load(Ordering::Relaxed),
            inserted: s.inserted.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            restamped: s.restamped.load(Ordering::Relaxed),
            too_old: s.too_old.load(Ordering::Relaxed),
            too_far_in_future: s.too_far_in_future.load(Ordering::Relaxed),
        }
    }

    /// Writes a batch (on a blocking thread): idempotent on the event id; events outside the
    /// accepted time range are rejected (`too_old`, `too_far_in_future`) or restamped.
    pub async fn write(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let inner = self.inner.clone();
        blocking(move || inner.write(&batch))
            .await
            .map_err(|e| SinkError::temporary(format!("sqlite writer: {e}")))?
    }

    /// Deletes events (and their snapshots and windows) older than the retention, and issues
    /// not seen since. Does nothing without a retention.
    pub async fn retain(&self) -> Result<RetentionReport, StoreError> {
        let Some(retention) = self.inner.retention else {
            return Ok(RetentionReport::default());
        };
        let cutoff = now_us() - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX / 4);
        self.delete_before(cutoff).await
    }

    /// Deletes events older than `cutoff_us` (Unix microseconds), in chunks of 10 000 rows so
    /// that writers are never held up for long, and the issues not seen since.
    pub async fn delete_before(&self, cutoff_us: i64) -> Result<RetentionReport, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.delete_before(cutoff_us))
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?
    }

    /// Runs `f` on a reader connection, on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let conn = match lock(&inner.readers).pop() {
                Some(c) => c,
                None => open(&inner.path).map_err(store_error)?,
            };
            let out = f(&conn);
            let mut idle = lock(&inner.readers);
            if idle.len() < 4 {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }

    /// Runs `f` on the writer connection, on the blocking pool.
    #[cfg(feature = "ingest")]
    pub(crate) async fn write_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.with_writer(f).map_err(store_error))
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?
    }

    /// Events matching `filter`, newest first (see [`Store::events`](tracepost_core::store::Store::events)).
    pub async fn events(
        &self,
        filter: &EventFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<EventPage, StoreError> {
        let filter = filter.clone();
        self.read(move |c| query_events(c, &filter, limit, after))
            .await
    }

    /// One event by id.
    pub async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {EVENT_SELECT} FROM {EVENT_FROM} WHERE e.id = ?1");
            let mut stmt = c.prepare_cached(&sql).map_err(store_error)?;
            let row = stmt
                .query_row([id.as_bytes().to_vec()], read_row)
                .optional()
                .map_err(store_error)?;
            row.map(decode).transpose()
        })
        .await
    }

    /// Counts per bucket of `width` (see [`Store::histogram`](tracepost_core::store::Store::histogram)).
    pub async fn histogram(
        &self,
        filter: &EventFilter,
        width: Duration,
    ) -> Result<Vec<HistogramBucket>, StoreError> {
        let filter = filter.clone();
        self.read(move |c| query_histogram(c, &filter, width)).await
    }

    /// The issues with the most events, since `since` or all time.
    pub async fn top_issues(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<Issue>, StoreError> {
        self.read(move |c| query_top_issues(c, since, limit)).await
    }

    /// Page views, visitors, top pages and referrers (see
    /// [`Store::analytics`](tracepost_core::store::Store::analytics)).
    pub async fn analytics(&self, query: &AnalyticsQuery) -> Result<AnalyticsSummary, StoreError> {
        query.check()?;
        let q = query.clone();
        self.read(move |c| query_analytics(c, &q)).await
    }

    /// Visitors reaching each funnel step (see
    /// [`Store::funnel`](tracepost_core::store::Store::funnel)).
    pub async fn funnel(&self, query: &FunnelQuery) -> Result<Vec<u64>, StoreError> {
        query.check()?;
        let q = query.clone();
        self.read(move |c| query_funnel(c, &q)).await
    }

    /// One issue by fingerprint.
    pub async fn issue(&self, fingerprint: &str) -> Result<Option<Issue>, StoreError> {
        let fingerprint = fingerprint.to_owned();
        self.read(move |c| {
            let sql = format!(
                "SELECT {ISSUE_COLS}, NULL, {ISSUE_EXTRA} FROM issues i WHERE i.fingerprint = ?1"
            );
            c.query_row(&sql, [fingerprint], issue_from_row)
                .optional()
                .map_err(store_error)
        })
        .await
    }

    /// Recorded sessions (see [`Store::replay_sessions`](tracepost_core::store::Store::replay_sessions)).
    pub async fn replay_sessions(
        &self,
        filter: &ReplayFilter,
        limit: usize,
    ) -> Result<Vec<ReplaySession>, StoreError> {
        let filter = filter.clone();
        self.read(move |c| query_replay_sessions(c, &filter, limit))
            .await
    }

    /// One recorded session by id.
    pub async fn replay_session(
        &self,
        session_id: &str,
    ) -> Result<Option<ReplaySession>, StoreError> {
        let id = session_id.to_owned();
        self.read(move |c| {
            let sql =
                format!("SELECT {REPLAY_COLS} FROM replay_sessions r WHERE r.session_id = ?1");
            c.query_row(&sql, [id], replay_from_row)
                .optional()
                .map_err(store_error)
        })
        .await
    }

    /// Deletes the index rows of sessions that ended before `cutoff`; returns how many.
    pub async fn delete_replay_sessions_before(
        &self,
        cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        let cutoff = ts_to_ms(cutoff);
        blocking(move || {
            inner
                .with_writer(|c| {
                    c.execute("DELETE FROM replay_sessions WHERE ended_at < ?1", [cutoff])
                })
                .map(|n| n as u64)
                .map_err(store_error)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }

    /// Metric windows (see [`Store::metric_windows`](tracepost_core::store::Store::metric_windows)),
    /// read from `metric_windows` alone (its time index; no event is decoded).
    pub async fn metric_windows(
        &self,
        since: Timestamp,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<MetricWindow>, StoreError> {
        let limit = limit.clamp(1, MAX_METRIC_WINDOWS) as i64;
        let (since, until) = (ts_to_micros(since), until.map(ts_to_micros));
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT data FROM metric_windows
                     WHERE ts_us >= ?1 AND (?2 IS NULL OR ts_us < ?2)
                     ORDER BY ts_us DESC, event_id DESC LIMIT ?3",
                )
                .map_err(store_error)?;
            let mut rows = stmt
                .query(params![since, until, limit])
                .map_err(store_error)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(store_error)? {
                let data: String = r.get(0).map_err(store_error)?;
                out.push(
                    serde_json::from_str::<MetricWindow>(&data)
                        .map_err(|e| StoreError::Other(format!("stored JSON: {e}")))?,
                );
            }
            out.reverse();
            Ok(out)
        })
        .await
    }

    /// Sets an issue's status; false when there is no such issue.
    pub async fn set_issue_status(
        &self,
        fingerprint: &str,
        status: IssueStatus,
    ) -> Result<bool, StoreError> {
        let fingerprint = fingerprint.to_owned();
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .with_writer(|c| {
                    c.execute(
                        "UPDATE issues SET status = ?2, updated_at = ?3, regressed_at = NULL
                         WHERE fingerprint = ?1",
                        params![fingerprint, status.as_str(), now_us()],
                    )
                })
                .map(|n| n > 0)
                .map_err(store_error)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }
}

impl Inner {
    /// Runs `f` on the writer connection, (re)opening it when it is missing or its file was
    /// deleted or replaced.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut w = lock(&self.writer);
        let current = file_id(&self.path);
        if let Some(old) = w.as_ref() {
            if current.is_none() || current != old.identity {
                tracing::warn!(
                    path = %self.path.display(),
                    "the SQLite file was deleted or replaced; reopening"
                );
                *w = None;
                lock(&self.readers).clear();
            }
        }
        if w.is_none() {
            let conn = open(&self.path)?;
            *w = Some(Writer {
                conn,
                identity: file_id(&self.path),
            });
        }
        let writer = w.as_mut().expect("opened above");
        // Another process may have upgraded the file since this one opened it (a newer
        // tracepost in a rolling upgrade): refuse, as opening it now would. One pragma read
        // per batch.
        let version: i64 = writer
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            *w = None;
            lock(&self.readers).clear();
            return Err(newer_version(&self.path, version));
        }
        f(&mut writer.conn)
    }

    fn write(&self, batch: &Batch) -> Result<SinkOutcome, SinkError> {
        let now = now_us();
        let mut outcome = SinkOutcome::default();
        let mut counts = (0u64, 0u64, 0u64); // inserted, duplicates, restamped
                                             // The rowid of the batch's first stored event: the batch's rows are indexed for search
                                             // after the loop (one statement).
        let mut first_rowid: Option<i64> = None;
        // Events stored per (minute, kind, level, service), for `event_counts`.
        let mut minutes: std::collections::HashMap<(i64, &str, &str, &str), i64> =
            std::collections::HashMap::new();
        let result = self.with_writer(|conn| {
            let tx = conn.transaction()?;
            for event in batch {
                let ts_us = ts_to_micros(event.timestamp);
                let mut restamp = None;
                if let Err(reason) = self.window.check(ts_us, now) {
                    match self.window.outside {
                        OutOfRange::Reject => {
                            outcome.rejected.push(Rejection {
                                id: event.id,
                                reason: reason.into(),
                                detail: format!(
                                    "timestamp {} is outside the accepted range",
                                    event.timestamp
                                ),
                            });
                            continue;
                        }
                        _ => restamp = Some(Timestamp::now()),
                    }
                }
                match insert(&tx, event, restamp, now) {
                    Ok(Some((ts_us, rowid))) => {
                        first_rowid.get_or_insert(rowid);
                        counts.0 += 1;
                        if restamp.is_some() {
                            counts.2 += 1;
                        }
                        *minutes
                            .entry((
                                bucket_start(ts_us, MINUTE_US),
                                event.kind.as_str(),
                                event.level.as_str(),
                                event.resource.service.as_str(),
                            ))
                            .or_default() += 1;
                    }
                    Ok(None) => counts.1 += 1,
                    Err(e) if is_data_error(&e) => outcome.rejected.push(Rejection {
                        id: event.id,
                        reason: if e.sqlite_error_code() == Some(ErrorCode::TooBig) {
                            "too_big".into()
                        } else {
                            "invalid_data".into()
                        },
                        detail: format!("sqlite: {e}"),
                    }),
                    Err(e) => return Err(e),
                }
            }
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO event_counts (minute_us, kind, level, service, n)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (minute_us, kind, level, service) DO UPDATE SET n = n + excluded.n",
                )?;
                for ((minute, kind, level, service), n) in &minutes {
                    up.execute(params![minute, kind, level, service, n])?;
                }
            }
            if let Some(first) = first_rowid {
                // Last: FTS5 keeps the terms in memory until the statement ends (or the next
                // savepoint), then writes them as one segment. The writer holds the write
                // lock, so every row from `first` on is this batch's.
                tx.prepare_cached(
                    "INSERT INTO events_fts (rowid, message)
                     SELECT rowid, message FROM events WHERE rowid >= ?1",
                )?
                .execute([first])?;
            }
            tx.commit()
        });
        result.map_err(sink_error)?;
        let s = &self.stats;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.inserted.fetch_add(counts.0, Ordering::Relaxed);
        s.duplicates.fetch_add(counts.1, Ordering::Relaxed);
        s.restamped.fetch_add(counts.2, Ordering::Relaxed);
        for r in &outcome.rejected {
            match r.reason.as_ref() {
                "too_old" => s.too_old.fetch_add(1, Ordering::Relaxed),
                "too_far_in_future" => s.too_far_in_future.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        Ok(outcome)
    }

    fn delete_before(&self, cutoff_us: i64) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        loop {
            let n = self
                .with_writer(|c| {
                    let tx = c.transaction()?;
                    let ids = "SELECT id FROM events WHERE ts_us < ?1 ORDER BY ts_us LIMIT 10000";
                    tx.execute(
                        &format!("DELETE FROM request_snapshots WHERE event_id IN ({ids})"),
                        [cutoff_us],
                    )?;
                    tx.execute(
                        &format!("DELETE FROM metric_windows WHERE event_id IN ({ids})"),
                        [cutoff_us],
                    )?;
                    // Clustered by time: the rows up to this chunk's newest event.
                    tx.execute(
                        "DELETE FROM analytics WHERE ts_us < ?1 AND ts_us <= (SELECT max(ts_us)
                            FROM (SELECT ts_us FROM events WHERE ts_us < ?1 ORDER BY ts_us
                            LIMIT 10000))",
                        [cutoff_us],
                    )?;
                    let n = tx.execute(
                        &format!("DELETE FROM events WHERE id IN ({ids})"),
                        [cutoff_us],
                    )?;
                    tx.commit()?;
                    Ok(n)
                })
                .map_err(store_error)?;
            report.deleted_events += n as u64;
            if n < 10_000 {
                break;
            }
        }
        report.deleted_issues = self
            .with_writer(|c| c.execute("DELETE FROM issues WHERE last_seen < ?1", [cutoff_us]))
            .map_err(store_error)? as u64;
        // Replay sessions whose last segment is older than the events kept.
        report.deleted_replay_sessions = self
            .with_writer(|c| {
                c.execute(
                    "DELETE FROM replay_sessions WHERE ended_at < ?1",
                    [cutoff_us.div_euclid(1000)],
                )
            })
            .map_err(store_error)? as u64;
        Ok(report)
    }
}

/// Inserts one event (not into the search index: the caller does, per batch); its stored
/// time (Unix µs) and rowid, or `None` when its id is already stored.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    event: &Event,
    restamp: Option<Timestamp>,
    now_us: i64,
) -> rusqlite::Result<Option<(i64, i64)>> {
    let mut stored;
    let e: &Event = match restamp {
        Some(t) => {
            stored = event.clone();
            stored.attributes.insert(
                ORIGINAL_TIMESTAMP_ATTRIBUTE.into(),
                Value::String(event.timestamp.to_string()),
            );
            stored.timestamp = t;
            &stored
        }
        None => event,
    };
    let ts_us = ts_to_micros(e.timestamp);
    let ts_ns = (e.timestamp.unix_nanos() % 1000) as i64;
    // The message, the request and the metric window live in their own columns and tables.
    let mut rest = e.clone();
    rest.message = String::new();
    rest.request = None;
    rest.metric = None;
    let data = serde_json::to_string(&rest)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let attributes = serde_json::to_string(&e.attributes)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let id = e.id.as_bytes().to_vec();
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events (id, ts_us, ts_ns, kind, level, service, environment,
                release, host, trace_id, span_id, request_id, session_id, user_id, message,
                fingerprint, error_type, attributes, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19)",
        )?
        .execute(params![
            id,
            ts_us,
            ts_ns,
            e.kind.as_str(),
            e.level.as_str(),
            e.resource.service,
            e.resource.environment,
            e.resource.release,
            e.resource.host,
            e.trace_id,
            e.span_id,
            e.request_id,
            e.session_id,
            e.user_id,
            e.message,
            e.fingerprint,
            e.error.as_ref().map(|x| x.error_type.as_str()),
            attributes,
            data,
        ])?;
    if n == 0 {
        return Ok(None);
    }
    let rowid = tx.last_insert_rowid();
    if let Some(r) = &e.request {
        let data = serde_json::to_string(r)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO request_snapshots (event_id, ts_us, service, user_id, method,
                route, path, status, duration_ms, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            id,
            ts_us,
            e.resource.service,
            e.user_id,
            r.method,
            r.route,
            r.path,
            r.status,
            r.duration_ms,
            data
        ])?;
    }
    if let Some(m) = &e.metric {
        let data = serde_json::to_string(m)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO metric_windows (event_id, ts_us, start_us, seconds, service,
                method, route, count, errors, p50_ms, p95_ms, p99_ms, max_ms, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            id,
            ts_us,
            ts_to_micros(m.start),
            m.seconds,
            e.resource.service,
            m.method,
            m.route,
            i64::try_from(m.count).unwrap_or(i64::MAX),
            i64::try_from(m.errors).unwrap_or(i64::MAX),
            m.p50_ms,
            m.p95_ms,
            m.p99_ms,
            m.max_ms,
            data
        ])?;
    }
    if let Some(entry) = ReplayIndexEntry::from_event(e) {
        upsert_replay(tx, &entry)?;
    }
    if let Some(facts) = AnalyticsFacts::of(e) {
        insert_analytics(tx, ts_us, id.clone(), &facts)?;
    }
    if let (Kind::Error, Some(fp)) = (e.kind, &e.fingerprint) {
        // As the Postgres sink's fold: the latest event (by time, then id) names the issue;
        // a resolved issue that happens again is unresolved again.
        tx.prepare_cached(
            "INSERT INTO issues (fingerprint, service, error_type, title, first_seen, last_seen,
                count, last_event_id, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1, ?6, ?7)
             ON CONFLICT (fingerprint) DO UPDATE SET
                count = count + 1,
                first_seen = min(first_seen, excluded.first_seen),
                last_event_id = CASE WHEN (excluded.last_seen, excluded.last_event_id)
                    >= (last_seen, last_event_id) THEN excluded.last_event_id ELSE last_event_id END,
                title = CASE WHEN (excluded.last_seen, excluded.last_event_id)
                    >= (last_seen, last_event_id) THEN excluded.title ELSE title END,
                error_type = CASE WHEN (excluded.last_seen, excluded.last_event_id)
                    >= (last_seen, last_event_id) THEN excluded.error_type ELSE error_type END,
                service = CASE WHEN (excluded.last_seen, excluded.last_event_id)
                    >= (last_seen, last_event_id) THEN excluded.service ELSE service END,
                last_seen = max(last_seen, excluded.last_seen),
                status = CASE WHEN status = 'resolved' THEN 'unresolved' ELSE status END,
                regressed_at = CASE WHEN status = 'resolved' THEN excluded.last_seen
                    ELSE regressed_at END,
                updated_at = excluded.updated_at",
        )?
        .execute(params![
            fp,
            e.resource.service,
            e.error.as_ref().map(|x| x.error_type.as_str()),
            e.message,
            ts_us,
            id,
            now_us
        ])?;
    }
    Ok(Some((ts_us, rowid)))
}

/// Folds one replay event into its session's row (the rules of
/// [`tracepost_core::replay_index`]; SQLite evaluates every `SET` against the old row).
fn upsert_replay(tx: &rusqlite::Transaction<'_>, e: &ReplayIndexEntry) -> rusqlite::Result<()> {
    let old: Option<String> = tx
        .prepare_cached("SELECT urls FROM replay_sessions WHERE session_id = ?1")?
        .query_row([&e.session_id], |r| r.get(0))
        .optional()?;
    let mut urls: Vec<String> = old
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    if let Some(u) = &e.first_url {
        if !urls.contains(u) && urls.len() < MAX_URLS {
            urls.push(u.clone());
        }
    }
    let urls_json = serde_json::to_string(&urls)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    tx.prepare_cached(
        "INSERT INTO replay_sessions (session_id, visitor_id, user_id, started_at, ended_at,
            duration_ms, first_url, first_url_at, urls, page_count, segment_count, error_count,
            bytes, missing_segments, session_day)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5 - ?4, ?6, CASE WHEN ?6 IS NULL THEN NULL ELSE ?4 END,
            ?7, ?8, 1, ?9, ?10, ?11, ?12)
         ON CONFLICT (session_id) DO UPDATE SET
            visitor_id = coalesce(excluded.visitor_id, visitor_id),
            user_id = coalesce(excluded.user_id, user_id),
            started_at = min(started_at, excluded.started_at),
            ended_at = max(ended_at, excluded.ended_at),
            duration_ms = max(ended_at, excluded.ended_at) - min(started_at, excluded.started_at),
            first_url = CASE WHEN excluded.first_url IS NOT NULL
                AND (first_url IS NULL OR excluded.first_url_at < first_url_at)
                THEN excluded.first_url ELSE first_url END,
            first_url_at = CASE WHEN excluded.first_url IS NOT NULL
                AND (first_url IS NULL OR excluded.first_url_at < first_url_at)
                THEN excluded.first_url_at ELSE first_url_at END,
            urls = excluded.urls,
            page_count = excluded.page_count,
            segment_count = segment_count + 1,
            error_count = error_count + excluded.error_count,
            bytes = bytes + excluded.bytes,
            missing_segments = max(missing_segments, excluded.missing_segments),
            session_day = min(session_day, excluded.session_day)",
    )?
    .execute(params![
        e.session_id,
        e.visitor_id,
        e.user_id,
        e.start_ms,
        e.end_ms,
        e.first_url,
        urls_json,
        urls.len() as i64,
        e.errors,
        e.bytes,
        e.missing_segments,
        e.session_day.to_string(),
    ])?;
    Ok(())
}

const REPLAY_COLS: &str = "r.session_id, r.visitor_id, r.user_id, r.started_at, r.ended_at,
    r.first_url, r.page_count, r.segment_count, r.error_count, r.bytes, r.missing_segments,
    r.session_day";

fn replay_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReplaySession> {
    let day: String = r.get(11)?;
    let day = Day::parse_iso(&day).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            11,
            rusqlite::types::Type::Text,
            format!("session_day {day:?} is not yyyy-mm-dd").into(),
        )
    })?;
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    Ok(ReplaySession::new(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        n(6)? as u32,
        n(7)? as u32,
        n(8)?,
        n(9)?,
        n(10)? as u32,
        day,
    ))
}

fn query_replay_sessions(
    c: &Connection,
    f: &ReplayFilter,
    limit: usize,
) -> Result<Vec<ReplaySession>, StoreError> {
    let mut w = Vec::new();
    let mut p: Vec<Sql> = Vec::new();
    let push = |p: &mut Vec<Sql>, v: Sql| {
        p.push(v);
        format!("?{}", p.len())
    };
    if let Some(u) = &f.user_id {
        w.push(format!(
            "r.user_id = {}",
            push(&mut p, Sql::Text(u.clone()))
        ));
    }
    if let Some(u) = &f.url_contains {
        w.push(format!(
            "EXISTS (SELECT 1 FROM json_each(r.urls) j WHERE instr(lower(j.value), lower({})) > 0)",
            push(&mut p, Sql::Text(u.clone()))
        ));
    }
    if let Some(t) = f.since {
        w.push(format!(
            "r.ended_at >= {}",
            push(&mut p, Sql::Integer(ts_to_ms(t)))
        ));
    }
    if let Some(t) = f.until {
        w.push(format!(
            "r.started_at < {}",
            push(&mut p, Sql::Integer(ts_to_ms(t)))
        ));
    }
    if let Some(fp) = &f.fingerprint {
        w.push(format!(
            "EXISTS (SELECT 1 FROM events e WHERE e.session_id = r.session_id AND e.fingerprint = {})",
            push(&mut p, Sql::Text(fp.clone()))
        ));
    }
    let limit = push(
        &mut p,
        Sql::Integer(limit.clamp(1, MAX_SESSIONS_PER_QUERY) as i64),
    );
    let sql = format!(
        "SELECT {REPLAY_COLS} FROM replay_sessions r {} ORDER BY r.started_at DESC, r.session_id
         LIMIT {limit}",
        where_sql(&w)
    );
    let mut stmt = c.prepare(&sql).map_err(store_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(p), replay_from_row)
        .map_err(store_error)?
        .collect::<Result<Vec<_>, _>>();
    rows.map_err(store_error)
}

const EVENT_SELECT: &str = "e.id, e.ts_us, e.message, e.data, r.data, m.data";
const EVENT_FROM: &str = "events e
    LEFT JOIN request_snapshots r ON r.event_id = e.id
    LEFT JOIN metric_windows m ON m.event_id = e.id";

type RawRow = (Vec<u8>, i64, String, String, Option<String>, Option<String>);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode(row: RawRow) -> Result<Event, StoreError> {
    let (_, _, message, data, request, metric) = row;
    let bad = |e: serde_json::Error| StoreError::Other(format!("stored JSON: {e}"));
    let mut e: Event = serde_json::from_str(&data).map_err(bad)?;
    e.message = message;
    e.request = request
        .map(|r| serde_json::from_str(&r))
        .transpose()
        .map_err(bad)?;
    e.metric = metric
        .map(|m| serde_json::from_str(&m))
        .transpose()
        .map_err(bad)?;
    Ok(e)
}

/// SQL conditions (on `events e`) and their parameters for a filter.
fn where_clause(f: &EventFilter, p: &mut Vec<Sql>) -> Result<Vec<String>, StoreError> {
    fn push(p: &mut Vec<Sql>, v: Sql) -> String {
        p.push(v);
        format!("?{}", p.len())
    }
    let mut w = Vec::new();
    if !f.kinds.is_empty() {
        let list: Vec<String> = f
            .kinds
            .iter()
            .map(|k| push(p, Sql::Text(k.as_str().into())))
            .collect();
        w.push(format!("e.kind IN ({})", list.join(", ")));
    }
    if !f.levels.is_empty() {
        let list: Vec<String> = f
            .levels
            .iter()
            .map(|l| push(p, Sql::Text(l.as_str().into())))
            .collect();
        w.push(format!("e.level IN ({})", list.join(", ")));
    }
    if let Some(s) = &f.service {
        w.push(format!("e.service = {}", push(p, Sql::Text(s.clone()))));
    }
    if let Some(t) = f.since {
        w.push(format!(
            "e.ts_us >= {}",
            push(p, Sql::Integer(ts_to_micros(t)))
        ));
    }
    if let Some(t) = f.until {
        w.push(format!(
            "e.ts_us < {}",
            push(p, Sql::Integer(ts_to_micros(t)))
        ));
    }
    if let Some(text) = &f.message_contains {
        if text.chars().count() >= 3 {
            // The trigram index finds substrings, ignoring case: a phrase of the text's
            // trigrams.
            let phrase = format!("\"{}\"", text.replace('"', "\"\""));
            w.push(format!(
                "e.rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {})",
                push(p, Sql::Text(phrase))
            ));
        } else if !text.is_empty() {
            // Too short for trigrams: a scan (LIKE ignores ASCII case only).
            let mut pattern = String::from("%");
            for c in text.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            w.push(format!(
                "e.message LIKE {} ESCAPE '\\'",
                push(p, Sql::Text(pattern))
            ));
        }
    }
    if f.attributes.len() > MAX_ATTRIBUTE_FILTERS {
        return Err(StoreError::InvalidQuery(format!(
            "at most {MAX_ATTRIBUTE_FILTERS} attribute conditions, not {}",
            f.attributes.len()
        )));
    }
    for (key, value) in &f.attributes {
        let k = push(p, Sql::Text(key.clone()));
        let cond = match value {
            Value::Null => "j.type = 'null'".to_owned(),
            Value::Bool(true) => "j.type = 'true'".to_owned(),
            Value::Bool(false) => "j.type = 'false'".to_owned(),
            Value::Number(n) => {
                let v = match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Sql::Integer(i),
                    (None, Some(x)) => Sql::Real(x),
                    _ => {
                        return Err(StoreError::InvalidQuery(format!(
                            "attribute {key:?}: number out of range"
                        )))
                    }
                };
                format!("j.type IN ('integer', 'real') AND j.value = {}", push(p, v))
            }
            Value::String(s) => format!(
                "j.type = 'text' AND j.value = {}",
                push(p, Sql::Text(s.clone()))
            ),
            Value::Array(_) | Value::Object(_) => {
                let kind = if value.is_array() { "array" } else { "object" };
                format!(
                    "j.type = '{kind}' AND j.value = json({})",
                    push(p, Sql::Text(value.to_string()))
                )
            }
        };
        w.push(format!(
            "EXISTS (SELECT 1 FROM json_each(e.attributes) j WHERE j.key = {k} AND {cond})"
        ));
    }
    for (col, v) in [
        ("fingerprint", &f.fingerprint),
        ("trace_id", &f.trace_id),
        ("user_id", &f.user_id),
        ("request_id", &f.request_id),
        ("session_id", &f.session_id),
    ] {
        if v.is_some() {
            w.push(format!("e.{col} = {}", push(p, opt(v))));
        }
    }
    Ok(w)
}

fn where_sql(w: &[String]) -> String {
    if w.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", w.join(" AND "))
    }
}

fn query_events(
    c: &Connection,
    filter: &EventFilter,
    limit: usize,
    after: Option<Cursor>,
) -> Result<EventPage, StoreError> {
    let limit = limit.clamp(1, 10_000);
    let mut p = Vec::new();
    let bounded;
    let mut filter = filter;
    if let Some(cur) = after {
        // The cursor's time becomes the range's upper bound (in place of a looser one):
        // SQLite ranges an index on one plain upper bound, never on the row value below,
        // so without it a next page scanned the index from `until` (or the newest event).
        let to = cur.unix_micros().saturating_add(1);
        if filter.until.is_none_or(|u| ts_to_micros(u) > to) {
            let mut f = filter.clone();
            f.until = Some(micros_to_ts(to));
            bounded = f;
            filter = &bounded;
        }
    }
    let mut w = where_clause(filter, &mut p)?;
    if let Some(cur) = after {
        p.push(Sql::Integer(cur.unix_micros()));
        p.push(Sql::Blob(cur.id().as_bytes().to_vec()));
        w.push(format!(
            "(e.ts_us, e.id) < (?{}, ?{})",
            p.len() - 1,
            p.len()
        ));
    }
    let sql = format!(
        "SELECT {EVENT_SELECT} FROM {EVENT_FROM} {} ORDER BY e.ts_us DESC, e.id DESC LIMIT {}",
        where_sql(&w),
        limit + 1
    );
    let mut stmt = c.prepare(&sql).map_err(store_error)?;
    let rows: Vec<RawRow> = stmt
        .query_map(rusqlite::params_from_iter(p), read_row)
        .map_err(store_error)?
        .collect::<Result<_, _>>()
        .map_err(store_error)?;
    let more = rows.len() > limit;
    let mut events = Vec::with_capacity(rows.len().min(limit));
    let mut next = None;
    for row in rows.into_iter().take(limit) {
        let id = Uuid::from_slice(&row.0).map_err(|e| StoreError::Other(e.to_string()))?;
        next = Some(Cursor::new(row.1, id));
        events.push(decode(row)?);
    }
    Ok(EventPage::new(events, if more { next } else { None }))
}

/// One minute in microseconds: the grain of `event_counts`.
const MINUTE_US: i64 = 60_000_000;

/// The bucket of `ts` (a SQL expression in Unix µs) for buckets of `w_us` aligned to
/// [`HISTOGRAM_EPOCH_MICROS`](tracepost_core::store::HISTOGRAM_EPOCH_MICROS): floor division
/// (SQLite's `/` truncates toward zero).
fn bucket_sql(ts: &str, w_us: i64) -> String {
    let epoch = tracepost_core::store::HISTOGRAM_EPOCH_MICROS;
    format!("{epoch} + (({ts} - {epoch}) - ((({ts} - {epoch}) % {w_us}) + {w_us}) % {w_us})")
}

/// Whether `event_counts` can answer the histogram: conditions on kind, level, service and
/// time only, buckets of whole minutes.
fn counts_answer(f: &EventFilter, w_us: i64) -> bool {
    w_us % MINUTE_US == 0
        && f.message_contains.as_deref().is_none_or(str::is_empty)
        && f.attributes.is_empty()
        && f.fingerprint.is_none()
        && f.trace_id.is_none()
        && f.user_id.is_none()
        && f.request_id.is_none()
        && f.session_id.is_none()
}

/// Counts of the events matching `filter` per bucket, by counting the events.
fn count_events(
    c: &Connection,
    filter: &EventFilter,
    w_us: i64,
    into: &mut std::collections::BTreeMap<i64, u64>,
) -> Result<(), StoreError> {
    let mut p = Vec::new();
    let w = where_clause(filter, &mut p)?;
    let sql = format!(
        "SELECT b, count(*) FROM (SELECT {} AS b FROM events e {}) GROUP BY b",
        bucket_sql("e.ts_us", w_us),
        where_sql(&w)
    );
    add_counts(c, &sql, p, into)
}

/// Adds the `(bucket, count)` rows of `sql` into `into` (a zero count adds no bucket).
fn add_counts(
    c: &Connection,
    sql: &str,
    p: Vec<Sql>,
    into: &mut std::collections::BTreeMap<i64, u64>,
) -> Result<(), StoreError> {
    let mut stmt = c.prepare(sql).map_err(store_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(p))
        .map_err(store_error)?;
    while let Some(r) = rows.next().map_err(store_error)? {
        let (b, n): (i64, i64) = (
            r.get(0).map_err(store_error)?,
            r.get(1).map_err(store_error)?,
        );
        if n > 0 {
            *into.entry(b).or_default() += n as u64;
        }
    }
    Ok(())
}

/// Counts per bucket of the whole minutes in `[lo, hi)` from `event_counts`.
fn count_minutes(
    c: &Connection,
    filter: &EventFilter,
    lo: Option<i64>,
    hi: Option<i64>,
    w_us: i64,
    into: &mut std::collections::BTreeMap<i64, u64>,
) -> Result<(), StoreError> {
    let mut p: Vec<Sql> = Vec::new();
    let mut w = Vec::new();
    let mut list = |col: &str, values: Vec<&str>, p: &mut Vec<Sql>| {
        if !values.is_empty() {
            let marks: Vec<String> = values
                .into_iter()
                .map(|v| {
                    p.push(Sql::Text(v.to_owned()));
                    format!("?{}", p.len())
                })
                .collect();
            w.push(format!("{col} IN ({})", marks.join(", ")));
        }
    };
    list(
        "kind",
        filter.kinds.iter().map(|k| k.as_str()).collect(),
        &mut p,
    );
    list(
        "level",
        filter.levels.iter().map(|l| l.as_str()).collect(),
        &mut p,
    );
    list(
        "service",
        filter.service.iter().map(String::as_str).collect(),
        &mut p,
    );
    for (cond, v) in [(">=", lo), ("<", hi)] {
        if let Some(v) = v {
            p.push(Sql::Integer(v));
            w.push(format!("minute_us {cond} ?{}", p.len()));
        }
    }
    let sql = format!(
        "SELECT {} AS b, sum(n) FROM event_counts {} GROUP BY b",
        bucket_sql("minute_us", w_us),
        where_sql(&w)
    );
    add_counts(c, &sql, p, into)
}

fn query_histogram(
    c: &Connection,
    filter: &EventFilter,
    width: Duration,
) -> Result<Vec<HistogramBucket>, StoreError> {
    let w_us = width_micros(width);
    let since = filter.since.map(ts_to_micros);
    let until = filter.until.map(ts_to_micros);
    let mut found = std::collections::BTreeMap::new();
    // The whole minutes of the range come from the per-minute counts; the part minutes at
    // either end (and every filter the counts don't keep) from the events.
    let lo = since.map(|t| bucket_start(t + MINUTE_US - 1, MINUTE_US));
    let hi = until.map(|t| bucket_start(t, MINUTE_US));
    let within_a_minute = matches!((lo, hi), (Some(lo), Some(hi)) if lo >= hi);
    if counts_answer(filter, w_us) && !within_a_minute {
        count_minutes(c, filter, lo, hi, w_us, &mut found)?;
        // The ends replace the range's bounds (not add to them: SQLite ranges an index on
        // one upper bound, not necessarily the tighter one).
        if let (Some(since), Some(lo)) = (since, lo) {
            if since < lo {
                let mut head = filter.clone();
                head.until = Some(micros_to_ts(lo));
                count_events(c, &head, w_us, &mut found)?;
            }
        }
        if let (Some(until), Some(hi)) = (until, hi) {
            if hi < until {
                let mut tail = filter.clone();
                tail.since = Some(micros_to_ts(hi));
                count_events(c, &tail, w_us, &mut found)?;
            }
        }
    } else {
        count_events(c, filter, w_us, &mut found)?;
    }
    let found: Vec<(i64, u64)> = found.into_iter().collect();
    debug_assert!(found.iter().all(|(b, _)| bucket_start(*b, w_us) == *b));
    match (since, until) {
        (Some(since), Some(until)) => fill_histogram(found, since, until, w_us),
        _ => Ok(found
            .into_iter()
            .map(|(b, n)| HistogramBucket::new(micros_to_ts(b), n))
            .collect()),
    }
}

/// The analytics summary from one read of the range's `analytics` rows (the table is
/// clustered by time: one sequential scan), aggregated here. Four `GROUP BY`/`count(DISTINCT)`
/// queries read the range four times and sorted it three times — 210 ms of CPU for 100 000
/// rows against ~40 ms for this; the answers are the same (the query suite compares both
/// stores with a reference).
///
/// Visitors are interned to dense numbers as they are read, and each distinct count is a
/// sort and dedup of `(group, visitor)` pairs. Memory: one entry per distinct visitor, page
/// and referrer host, and eight bytes per page view (pairs), for the range asked.
fn query_analytics(c: &Connection, q: &AnalyticsQuery) -> Result<AnalyticsSummary, StoreError> {
    use std::collections::HashMap;

    /// Interns strings to dense indices, allocating only for a string not seen yet.
    #[derive(Default)]
    struct Names {
        index: HashMap<String, u32>,
        names: Vec<String>,
    }
    impl Names {
        fn id(&mut self, s: &str) -> u32 {
            if let Some(&i) = self.index.get(s) {
                return i;
            }
            let i = self.names.len() as u32;
            self.index.insert(s.to_owned(), i);
            self.names.push(s.to_owned());
            i
        }
    }

    let (since, until) = (ts_to_micros(q.since), ts_to_micros(q.until));
    let limit = q.limit.clamp(1, MAX_TOP_ROWS);
    let w = width_micros(q.bucket);
    let mut out = AnalyticsSummary::new();
    let (mut visitors, mut pages, mut referrers) =
        (Names::default(), Names::default(), Names::default());
    // (group, visitor) pairs: all page views; per bucket; per page; per external referrer.
    let mut seen: Vec<u32> = Vec::new();
    let mut by_bucket: Vec<(i64, u32)> = Vec::new();
    let mut by_page: Vec<(u32, u32)> = Vec::new();
    let mut by_referrer: Vec<(u32, u32)> = Vec::new();
    let mut bucket_views: Vec<(i64, u64)> = Vec::new();
    let (mut page_views, mut referrer_views) = (Vec::<u64>::new(), Vec::<u64>::new());
    const NO_VISITOR: u32 = u32::MAX;
    let mut stmt = c
        .prepare_cached(
            "SELECT ts_us, event, visitor, path, host, referrer_host FROM analytics
             WHERE ts_us >= ?1 AND ts_us < ?2 AND event IN ('pageview', 'track')
             ORDER BY ts_us",
        )
        .map_err(store_error)?;
    let mut rows = stmt.query([since, until]).map_err(store_error)?;
    while let Some(r) = rows.next().map_err(store_error)? {
        let ts: i64 = r.get(0).map_err(store_error)?;
        let event = r
            .get_ref(1)
            .and_then(|v| Ok(v.as_str_or_null()?))
            .map_err(store_error)?;
        match event {
            Some("track") => {
                out.tracks += 1;
                continue;
            }
            Some("pageview") => {}
            _ => continue,
        }
        out.pageviews += 1;
        let str_at = |i: usize| -> Result<Option<&str>, StoreError> {
            r.get_ref(i)
                .and_then(|v| Ok(v.as_str_or_null()?))
                .map_err(store_error)
        };
        let visitor = str_at(2)?.map_or(NO_VISITOR, |v| visitors.id(v));
        let bucket = bucket_start(ts, w);
        match bucket_views.last_mut() {
            Some((b, n)) if *b == bucket => *n += 1,
            _ => bucket_views.push((bucket, 1)),
        }
        if visitor != NO_VISITOR {
            seen.push(visitor);
            by_bucket.push((bucket, visitor));
        }
        if let Some(path) = str_at(3)? {
            let p = pages.id(path);
            if p as usize == page_views.len() {
                page_views.push(0);
            }
            page_views[p as usize] += 1;
            if visitor != NO_VISITOR {
                by_page.push((p, visitor));
            }
        }
        let host = str_at(4)?;
        match str_at(5)? {
            None => out.direct_views += 1,
            Some(referrer) if Some(referrer) == host => out.internal_views += 1,
            Some(referrer) => {
                let i = referrers.id(referrer);
                if i as usize == referrer_views.len() {
                    referrer_views.push(0);
                }
                referrer_views[i as usize] += 1;
                if visitor != NO_VISITOR {
                    by_referrer.push((i, visitor));
                }
            }
        }
    }
    fn distinct_per<K: Ord + Copy>(mut pairs: Vec<(K, u32)>) -> Vec<(K, u64)> {
        pairs.sort_unstable();
        pairs.dedup();
        let mut out: Vec<(K, u64)> = Vec::new();
        for (k, _) in pairs {
            match out.last_mut() {
                Some((last, n)) if *last == k => *n += 1,
                _ => out.push((k, 1)),
            }
        }
        out
    }
    seen.sort_unstable();
    seen.dedup();
    out.visitors = seen.len() as u64;
    // Rows come in time order (the primary key's), so a bucket's views are contiguous.
    let bucket_visitors: HashMap<i64, u64> = distinct_per(by_bucket).into_iter().collect();
    let found = bucket_views
        .into_iter()
        .map(|(b, n)| (b, n, bucket_visitors.get(&b).copied().unwrap_or(0)))
        .collect();
    out.series = AnalyticsSummary::fill_series(q, found)?;
    let top = |names: Names, views: Vec<u64>, pairs: Vec<(u32, u32)>| -> Vec<TopRow> {
        let mut uniques = vec![0u64; views.len()];
        for (k, n) in distinct_per(pairs) {
            uniques[k as usize] = n;
        }
        let mut rows: Vec<TopRow> = names
            .names
            .into_iter()
            .zip(views)
            .zip(uniques)
            .map(|((key, v), u)| TopRow::new(key, v, u))
            .collect();
        // As `ORDER BY views DESC, key LIMIT n`.
        rows.sort_unstable_by(|a, b| b.views.cmp(&a.views).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(limit);
        rows
    };
    out.top_pages = top(pages, page_views, by_page);
    out.referrers = top(referrers, referrer_views, by_referrer);
    Ok(out)
}

/// One CTE per step: each visitor's first time at the step, at or after their time at the
/// step before.
fn query_funnel(c: &Connection, q: &FunnelQuery) -> Result<Vec<u64>, StoreError> {
    let mut p: Vec<Sql> = vec![
        Sql::Integer(ts_to_micros(q.since)),
        Sql::Integer(ts_to_micros(q.until)),
    ];
    let mut ctes = Vec::new();
    let mut counts = Vec::new();
    for (i, step) in q.steps.iter().enumerate() {
        p.push(Sql::Text(step.value().to_owned()));
        let m = match step {
            FunnelStep::Page(_) => format!("a.event = 'pageview' AND a.path = ?{}", p.len()),
            FunnelStep::Event(_) => format!("a.event = 'track' AND a.name = ?{}", p.len()),
        };
        let (join, after) = if i == 0 {
            (String::new(), String::new())
        } else {
            (
                format!(" JOIN s{i} ON s{i}.visitor = a.visitor"),
                format!(" AND a.ts_us >= s{i}.t"),
            )
        };
        ctes.push(format!(
            "s{n} AS (SELECT a.visitor, min(a.ts_us) AS t FROM analytics a{join}
                WHERE a.ts_us >= ?1 AND a.ts_us < ?2 AND a.visitor IS NOT NULL AND {m}{after}
                GROUP BY a.visitor)",
            n = i + 1
        ));
        counts.push(format!("(SELECT count(*) FROM s{})", i + 1));
    }
    let sql = format!("WITH {} SELECT {}", ctes.join(",\n"), counts.join(", "));
    let mut stmt = c.prepare(&sql).map_err(store_error)?;
    stmt.query_row(rusqlite::params_from_iter(p), |r| {
        (0..q.steps.len())
            .map(|i| r.get::<_, i64>(i).map(|n| n as u64))
            .collect()
    })
    .map_err(store_error)
}

const ISSUE_COLS: &str = "i.fingerprint, i.service, i.error_type, i.title, i.first_seen, \
    i.last_seen, i.count, i.last_event_id, i.status";

/// After the window count: the regression time and the users affected (distinct user ids of
/// the issue's events; `count(DISTINCT)` skips NULLs).
const ISSUE_EXTRA: &str = "i.regressed_at, (SELECT count(DISTINCT e.user_id) FROM events e \
    WHERE e.fingerprint = i.fingerprint AND e.kind = 'error')";

fn issue_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Issue> {
    let count = r.get::<_, i64>(6)? as u64;
    let id: Vec<u8> = r.get(7)?;
    Ok(Issue::new(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        micros_to_ts(r.get(4)?),
        micros_to_ts(r.get(5)?),
        count,
        r.get::<_, Option<i64>>(9)?.map_or(count, |n| n as u64),
        Uuid::from_slice(&id).unwrap_or_default(),
        IssueStatus::parse(&r.get::<_, String>(8)?),
    )
    .with_regressed_at(r.get::<_, Option<i64>>(10)?.map(micros_to_ts))
    .with_users(r.get::<_, i64>(11)? as u64))
}

fn query_top_issues(
    c: &Connection,
    since: Option<Timestamp>,
    limit: usize,
) -> Result<Vec<Issue>, StoreError> {
    let limit = limit.clamp(1, 10_000) as i64;
    let rows = match since {
        Some(t) => {
            let sql = format!(
                "SELECT {ISSUE_COLS}, w.n, {ISSUE_EXTRA} FROM (
                    SELECT fingerprint, count(*) AS n FROM events
                    WHERE kind = 'error' AND fingerprint IS NOT NULL AND ts_us >= ?1
                    GROUP BY fingerprint) w
                 JOIN issues i ON i.fingerprint = w.fingerprint
                 ORDER BY w.n DESC, i.last_seen DESC, i.fingerprint LIMIT ?2"
            );
            let mut stmt = c.prepare_cached(&sql).map_err(store_error)?;
            let rows = stmt
                .query_map(params![ts_to_micros(t), limit], issue_from_row)
                .map_err(store_error)?
                .collect::<Result<Vec<_>, _>>();
            rows
        }
        None => {
            let sql = format!(
                "SELECT {ISSUE_COLS}, NULL, {ISSUE_EXTRA} FROM issues i
                 ORDER BY i.count DESC, i.last_seen DESC, i.fingerprint LIMIT ?1"
            );
            let mut stmt = c.prepare_cached(&sql).map_err(store_error)?;
            let rows = stmt
                .query_map([limit], issue_from_row)
                .map_err(store_error)?
                .collect::<Result<Vec<_>, _>>();
            rows
        }
    };
    rows.map_err(store_error)
}
