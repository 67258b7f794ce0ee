//! A [tracepost](https://docs.rs/tracepost) sink and store in one SQLite file: the embedded
//! default, queryable with nothing installed (SQLite is compiled in, `rusqlite`'s `bundled`
//! feature).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tracepost_core::store::{EventFilter, Store};
//! use tracepost_core::{Kind, Tracepost};
//! use tracepost_sqlite::SqliteSink;
//!
//! let sink = SqliteSink::builder("./tracepost-data")
//!     .retention(Duration::from_secs(7 * 86_400))
//!     .build();
//! let store = sink.store().clone(); // for queries, as `Arc<dyn Store>` or directly
//! let tp = Tracepost::builder().service("checkout").sink(sink).build()?;
//! let errors = store.events(&EventFilter::new().kind(Kind::Error), 50, None).await?;
//! # let _ = (errors, tp);
//! # Ok(()) }
//! ```
//!
//! * **File**: `<dir>/tracepost.sqlite3` ([`DB_FILE`]), WAL mode, created with its schema on
//!   the first delivery — building the sink does no I/O, so a missing or unwritable directory
//!   never blocks startup: the sink reports `down` and the pipeline keeps the events until
//!   it can write.
//! * **Tables**: `events` (primary key `id`: a redelivered event is stored once),
//!   `events_fts` (FTS5, trigram tokenizer: substring search on messages, ignoring case;
//!   written once per batch), `event_counts` (events per minute, kind, level and service:
//!   what histograms sum),
//!   `request_snapshots`, `metric_windows` and `issues` (one row per error fingerprint,
//!   updated in the same transaction as the events), `replay_sessions` (one row per
//!   recorded browser session, folded from replay events in the same transaction; times in
//!   Unix ms; see [`tracepost_core::replay_index`]), `analytics` (what the analytics
//!   queries read from each `analytics` event, clustered by time, filled in the same
//!   transaction; see [`tracepost_core::store::analytics`]), and (feature `ingest`) `projects` and
//!   `api_keys`: the project API keys of the log routes, hashed (module `keys`).
//! * **Threads**: SQLite calls run on tokio's blocking pool (`spawn_blocking`): one writer
//!   connection, up to four idle readers. The async runtime is never blocked.
//! * **Time range**: as the Postgres sink — events older than the retention (or 30 days) or
//!   more than 10 minutes ahead are rejected (`too_old`, `too_far_in_future`) or restamped
//!   ([`TimeRange`]).
//! * **Retention**: deleted in the background in chunks of 10 000 events
//!   ([`SqliteSinkBuilder::retention`]); [`SqliteStore::retain`] on demand.
//! * **Queries**: [`SqliteStore`] implements [`tracepost_core::store::Store`], the query API
//!   shared with PostgreSQL.
//! * **Schema**: versioned ([`SCHEMA_VERSION`], `PRAGMA user_version`); a file of an older
//!   version is upgraded in place when opened, one step per transaction; a file of a newer
//!   version is refused (an error naming both versions).
//! * **Speed**: `examples/sqlite_write_bench.rs` (events/s) and `examples/sqlite_query_bench.rs`
//!   (query p50/p99 over a million events); numbers in the book's SQLite page.
//! * **A deleted or replaced file** is noticed before each batch: the sink reopens the path
//!   (a new file, or a temporary error while the directory is gone) instead of writing into
//!   an unlinked file.

#[cfg(feature = "ingest")]
pub mod keys;
mod limits;
mod store;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use tracepost_core::replay_index::{ReplayFilter, ReplaySession};
use tracepost_core::sinks::serde_duration;
use tracepost_core::store::analytics::{AnalyticsQuery, AnalyticsSummary, FunnelQuery};
use tracepost_core::store::{
    Cursor, EventFilter, EventPage, HistogramBucket, Issue, IssueStatus, Store, StoreError,
};
use tracepost_core::{
    Batch, BatchOptions, Event, MetricWindow, Sink, SinkError, SinkOptions, SinkOutcome, Timestamp,
};
use uuid::Uuid;

pub use limits::{
    OutOfRange, TimeRange, DEFAULT_MAX_AGE, DEFAULT_MAX_AHEAD, ORIGINAL_TIMESTAMP_ATTRIBUTE,
};
pub use store::{IngestStats, RetentionReport, SqliteStore, DB_FILE, SCHEMA_VERSION};

/// Stores tracepost events in a SQLite file. See the [crate docs](crate).
pub struct SqliteSink {
    store: SqliteStore,
    maintenance_interval: Duration,
    maintenance: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSink")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        if let Some(h) = self
            .maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

impl SqliteSink {
    /// A sink writing `<dir>/tracepost.sqlite3` with the default settings (no retention).
    /// No I/O happens until the first delivery.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::builder(dir).build()
    }

    /// A builder for a sink writing under `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> SqliteSinkBuilder {
        SqliteSinkBuilder {
            dir: dir.into(),
            retention: None,
            time_range: TimeRange::default(),
            maintenance_interval: Duration::from_secs(3600),
        }
    }

    /// The store, for queries.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The pipeline options this sink works best with: batches of up to 1 000 events or
    /// 4 MiB, flushed every 200 ms (one transaction per batch).
    pub fn sink_options() -> SinkOptions {
        SinkOptions::default().batch(BatchOptions::new(
            1_000,
            4 << 20,
            Duration::from_millis(200),
        ))
    }

    fn start_maintenance(&self) {
        if self.store.retention().is_none() {
            return;
        }
        let mut slot = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return;
        }
        let store = self.store.clone();
        let every = self.maintenance_interval.max(Duration::from_secs(1));
        *slot = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match store.retain().await {
                    Ok(r) if r.deleted_events > 0 => {
                        tracing::info!(
                            deleted = r.deleted_events,
                            issues = r.deleted_issues,
                            "sqlite retention"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "sqlite retention failed; retried next run")
                    }
                }
            }
        }));
    }
}

impl Sink for SqliteSink {
    fn name(&self) -> &str {
        "sqlite"
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let out = self.store.write(batch).await?;
        self.start_maintenance();
        Ok(out)
    }

    fn default_options(&self) -> SinkOptions {
        Self::sink_options()
    }
}

/// Settings for a [`SqliteSink`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteSinkBuilder {
    dir: PathBuf,
    retention: Option<Duration>,
    time_range: TimeRange,
    maintenance_interval: Duration,
}

impl SqliteSinkBuilder {
    /// Delete events older than this, in the background (default: keep everything). Also
    /// bounds the accepted time range.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// The range of timestamps accepted (default [`TimeRange::new`]).
    pub fn time_range(mut self, range: TimeRange) -> Self {
        self.time_range = range;
        self
    }

    /// How often retention runs (default 1 h).
    pub fn maintenance_interval(mut self, every: Duration) -> Self {
        self.maintenance_interval = every;
        self
    }

    /// The sink. No I/O: the file is opened on the first delivery.
    pub fn build(self) -> SqliteSink {
        SqliteSink {
            store: SqliteStore::new(self.dir.join(DB_FILE), self.time_range, self.retention),
            maintenance_interval: self.maintenance_interval,
            maintenance: Mutex::new(None),
        }
    }
}

/// The SQLite sink's settings, for a configuration file. Unknown fields are refused by name;
/// durations are strings like `"7days"`.
///
/// ```
/// use tracepost_sqlite::SqliteConfig;
///
/// let c: SqliteConfig = serde_json::from_str(r#"{"dir": "./tracepost-data", "retention": "7days"}"#).unwrap();
/// let sink = c.build(); // no I/O
/// assert!(sink.store().path().ends_with("tracepost.sqlite3"));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The directory holding `tracepost.sqlite3`. Required.
    pub dir: PathBuf,
    /// Keep events this long (default: keep everything).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    pub retention: Option<Duration>,
    /// Accept events up to this old (default: the retention, else 30 days).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    pub max_age: Option<Duration>,
    /// Accept events up to this far ahead (default 10 minutes).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    pub max_ahead: Option<Duration>,
    /// `reject` (default) or `restamp` events outside the range.
    #[serde(default)]
    pub out_of_range: OutOfRangeConfig,
    /// How often retention runs (default `"1h"`).
    #[serde(default = "one_hour", with = "serde_duration")]
    pub maintenance_interval: Duration,
}

/// [`OutOfRange`] as spelled in a configuration file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutOfRangeConfig {
    /// [`OutOfRange::Reject`].
    #[default]
    Reject,
    /// [`OutOfRange::Restamp`].
    Restamp,
}

fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

impl SqliteConfig {
    /// Settings for `dir` with every default.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            dir: dir.into(),
            retention: None,
            max_age: None,
            max_ahead: None,
            out_of_range: OutOfRangeConfig::Reject,
            maintenance_interval: one_hour(),
        }
    }

    /// The builder these settings describe.
    pub fn builder(&self) -> SqliteSinkBuilder {
        let mut range = TimeRange::new().outside(match self.out_of_range {
            OutOfRangeConfig::Reject => OutOfRange::Reject,
            OutOfRangeConfig::Restamp => OutOfRange::Restamp,
        });
        if let Some(a) = self.max_age {
            range = range.max_age(a);
        }
        if let Some(a) = self.max_ahead {
            range = range.max_ahead(a);
        }
        let mut b = SqliteSink::builder(&self.dir)
            .time_range(range)
            .maintenance_interval(self.maintenance_interval);
        if let Some(r) = self.retention {
            b = b.retention(r);
        }
        b
    }

    /// The sink (no I/O).
    pub fn build(&self) -> SqliteSink {
        self.builder().build()
    }
}

impl Store for SqliteStore {
    fn events<'a>(
        &'a self,
        filter: &'a EventFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>> {
        SqliteStore::events(self, filter, limit, after).boxed()
    }

    fn event(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Event>, StoreError>> {
        SqliteStore::event(self, id).boxed()
    }

    fn histogram<'a>(
        &'a self,
        filter: &'a EventFilter,
        width: Duration,
    ) -> BoxFuture<'a, Result<Vec<HistogramBucket>, StoreError>> {
        SqliteStore::histogram(self, filter, width).boxed()
    }

    fn top_issues(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Issue>, StoreError>> {
        SqliteStore::top_issues(self, since, limit).boxed()
    }

    fn issue<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<Issue>, StoreError>> {
        SqliteStore::issue(self, fingerprint).boxed()
    }

    fn set_issue_status<'a>(
        &'a self,
        fingerprint: &'a str,
        status: IssueStatus,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        SqliteStore::set_issue_status(self, fingerprint, status).boxed()
    }

    fn replay_sessions<'a>(
        &'a self,
        filter: &'a ReplayFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ReplaySession>, StoreError>> {
        SqliteStore::replay_sessions(self, filter, limit).boxed()
    }

    fn replay_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ReplaySession>, StoreError>> {
        SqliteStore::replay_session(self, session_id).boxed()
    }

    fn delete_replay_sessions_before(
        &self,
        cutoff: Timestamp,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        SqliteStore::delete_replay_sessions_before(self, cutoff).boxed()
    }

    fn metric_windows(
        &self,
        since: Timestamp,
        until: Option<Timestamp>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MetricWindow>, StoreError>> {
        SqliteStore::metric_windows(self, since, until, limit).boxed()
    }

    fn analytics<'a>(
        &'a self,
        query: &'a AnalyticsQuery,
    ) -> BoxFuture<'a, Result<AnalyticsSummary, StoreError>> {
        SqliteStore::analytics(self, query).boxed()
    }

    fn funnel<'a>(&'a self, query: &'a FunnelQuery) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        SqliteStore::funnel(self, query).boxed()
    }
}
