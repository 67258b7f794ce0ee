//! The store: connection pool, migrations, partitions, retention, and the write path.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracepost_core::{Event, Rejection};

use crate::error::PgError;
use crate::ingest::{self, BatchFailure, IngestMethod, Statements};
use crate::limits::{
    Window, CREATE_BACKOFF, DDL_LOCK_TIMEOUT, NEW_DAYS_PER_MINUTE, NEW_DAYS_PER_WRITE,
    PARTITIONS_PER_TRANSACTION,
};
use crate::types::{day_literal, day_of, day_suffix, days_from_civil};

/// The embedded migrations: version, name, SQL (with `{schema}` placeholders).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "default_partitions",
        include_str!("../migrations/0002_default_partitions.sql"),
    ),
    (
        3,
        "api_keys",
        include_str!("../migrations/0003_api_keys.sql"),
    ),
    (
        4,
        "issue_regressions",
        include_str!("../migrations/0004_issue_regressions.sql"),
    ),
    (
        5,
        "replay_sessions",
        include_str!("../migrations/0005_replay_sessions.sql"),
    ),
    (6, "spans", include_str!("../migrations/0006_spans.sql")),
];

/// The partitioned tables, all partitioned by day on `timestamp`.
pub(crate) const PARTITIONED: [&str; 3] = ["events", "request_snapshots", "metric_windows"];

/// A handle on the tables: writes, queries, retention, API keys. Cheap to clone.
///
/// Get one from [`PostgresSink::store`](crate::PostgresSink::store), or for a process that
/// only reads, from [`PostgresSinkBuilder::connect_store`](crate::PostgresSinkBuilder::connect_store).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<StoreInner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.schema)
            .field("method", &self.inner.method)
            .finish_non_exhaustive()
    }
}

pub(crate) struct StoreInner {
    pub pool: deadpool_postgres::Pool,
    pub schema: String,
    pub statements: Statements,
    pub method: IngestMethod,
    window: Window,
    known_days: Mutex<HashSet<i64>>,
    budget: Mutex<Budget>,
    stats: Stats,
}

/// The partition-creation budget: days created in the current minute, and a pause after a
/// failure.
struct Budget {
    minute: Instant,
    created: u32,
    paused_until: Option<Instant>,
}

impl Budget {
    /// Takes one day from the budget, if any is left (and, for writes, unless paused).
    fn take(&mut self, now: Instant, respect_pause: bool) -> bool {
        if respect_pause && self.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        if now.duration_since(self.minute) >= Duration::from_secs(60) {
            self.minute = now;
            self.created = 0;
        }
        if self.created >= NEW_DAYS_PER_MINUTE {
            return false;
        }
        self.created += 1;
        true
    }
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    inserted: AtomicU64,
    duplicates: AtomicU64,
    restamped: AtomicU64,
    deferred: AtomicU64,
    partition_days: AtomicU64,
    resource_splits: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
}

/// Counters of what this store has written since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestStats {
    /// Batches written successfully.
    pub batches: u64,
    /// Events inserted (new rows in `events`).
    pub inserted: u64,
    /// Events that were already stored (redeliveries), skipped.
    pub duplicates: u64,
    /// Events refused for good, by reason (`nul_byte`, `out_of_range`, `invalid_data`,
    /// `constraint`, `too_large`, and outside the accepted [`TimeRange`](crate::TimeRange):
    /// `too_old`, `too_far_in_future`).
    pub rejected: Vec<(String, u64)>,
    /// Events outside the accepted time range stored under the time they were received
    /// ([`OutOfRange::Restamp`](crate::OutOfRange::Restamp)).
    pub restamped: u64,
    /// Events written to the default partition because their day had no partition yet (the
    /// per-write or per-minute partition budget was used up, or creating it failed); the
    /// background maintenance moves them into their day's partition.
    pub deferred: u64,
    /// Day partitions (one each of `events`, `request_snapshots`, `metric_windows`) created
    /// by this store.
    pub partition_days_created: u64,
    /// Times a batch (or part of one) was written in halves because the server was out of
    /// memory or over a configured limit (SQLSTATE 53200, 53400).
    pub resource_splits: u64,
}

impl IngestStats {
    /// All refused events.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// What one [`PgStore::write`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct WriteReport {
    /// New rows in `events`.
    pub inserted: u64,
    /// Events skipped because they were already stored (or repeated in the batch).
    pub duplicates: u64,
    /// New rows in `request_snapshots`.
    pub requests: u64,
    /// New rows in `metric_windows`.
    pub metric_windows: u64,
    /// Events refused for good, with the reason.
    pub rejected: Vec<Rejection>,
    /// Events outside the accepted time range stored under the time they were received.
    pub restamped: u64,
    /// Events written to the default partition (their day's partition comes later).
    pub deferred: u64,
}

/// What [`PgStore::retain`] removed.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct RetentionReport {
    /// The dropped partitions (`events_p20261101`, …).
    pub dropped_partitions: Vec<String>,
    /// Issues whose last event is older than the limit, deleted.
    pub deleted_issues: u64,
    /// Replay index rows of sessions that ended before the limit, deleted (the segments
    /// themselves are the replay store's to delete).
    pub deleted_replay_sessions: u64,
}

/// A pooled connection that goes back to the pool only when [`Exclusive::done`] is called:
/// if the future using it is cancelled (a send timeout) or fails midway — inside a
/// transaction, holding an advisory lock — the connection is closed instead, which makes the
/// server roll back and release everything.
pub(crate) struct Exclusive(Option<deadpool_postgres::Client>);

impl Exclusive {
    pub fn done(mut self) {
        drop(self.0.take());
    }
}

impl std::ops::Deref for Exclusive {
    type Target = deadpool_postgres::Client;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("connection present until done")
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

pub(crate) fn lock_key(purpose: &str, schema: &str) -> i64 {
    // FNV-1a, 64 bit: stable across builds and processes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "tracepost:"
        .bytes()
        .chain(purpose.bytes())
        .chain(b":".iter().copied())
        .chain(schema.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The day of a partition from its name (`events_p20261123` → day number).
fn partition_day(name: &str) -> Option<i64> {
    let (_, suffix) = name.rsplit_once("_p")?;
    if suffix.len() != 8 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = suffix[..4].parse().ok()?;
    let m: u32 = suffix[4..6].parse().ok()?;
    let d: u32 = suffix[6..].parse().ok()?;
    Some(days_from_civil(y, m, d))
}

impl PgStore {
    pub(crate) fn new(
        pool: deadpool_postgres::Pool,
        schema: String,
        method: IngestMethod,
        window: Window,
    ) -> Self {
        let statements = Statements::new(&schema);
        PgStore {
            inner: Arc::new(StoreInner {
                pool,
                schema,
                statements,
                method,
                window,
                known_days: Mutex::new(HashSet::new()),
                budget: Mutex::new(Budget {
                    minute: Instant::now(),
                    created: 0,
                    paused_until: None,
                }),
                stats: Stats::default(),
            }),
        }
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool, for your own queries.
    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.inner.pool
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, PgError> {
        Ok(self.inner.pool.get().await?)
    }

    pub(crate) async fn exclusive(&self) -> Result<Exclusive, PgError> {
        Ok(Exclusive(Some(self.inner.pool.get().await?)))
    }

    /// Applies the embedded migrations that are not applied yet, under an advisory lock so
    /// that several instances starting at once apply each migration exactly once. Returns
    /// the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i32>, PgError> {
        let s = &self.inner.schema;
        let client = self.exclusive().await?;
        let key = lock_key("migrate", s);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await?;
        let result: Result<Vec<i32>, PgError> = async {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {s};
                     CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                         version integer PRIMARY KEY,
                         name text NOT NULL,
                         applied_at timestamptz NOT NULL DEFAULT now())"
                ))
                .await?;
            let done: HashSet<i32> = client
                .query(&format!("SELECT version FROM {s}.schema_migrations"), &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut applied = Vec::new();
            for (version, name, sql) in MIGRATIONS {
                if done.contains(version) {
                    continue;
                }
                let sql = sql.replace("{schema}", s);
                let run = client
                    .batch_execute(&format!(
                        "BEGIN;\n{sql};\nINSERT INTO {s}.schema_migrations (version, name) \
                         VALUES ({version}, '{name}');\nCOMMIT;"
                    ))
                    .await;
                if let Err(source) = run {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(PgError::Migration {
                        version: *version,
                        source,
                    });
                }
                tracing::info!(target: "tracepost::postgres", schema = %s, version, name, "applied migration");
                applied.push(*version);
            }
            Ok(applied)
        }
        .await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await;
        if result.is_ok() && unlocked.is_ok() {
            client.done();
        }
        result
    }

    /// The schema version: the highest applied migration (0 when none).
    pub async fn schema_version(&self) -> Result<i32, PgError> {
        let client = self.client().await?;
        let s = &self.inner.schema;
        let row = client
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {s}.schema_migrations"),
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The names of the existing partitions of a partitioned table, oldest first.
    pub async fn partitions(&self, table: &str) -> Result<Vec<String>, PgError> {
        let client = self.client().await?;
        self.list_partitions(&client, table).await
    }

    async fn list_partitions(
        &self,
        client: &deadpool_postgres::Client,
        table: &str,
    ) -> Result<Vec<String>, PgError> {
        let parent = format!("{}.{}", self.inner.schema, table);
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = $1::text::regclass ORDER BY 1",
                &[&parent],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Creates the daily partitions covering `days_back` days before today through
    /// `days_ahead` days after it (the sink does this in the background, and on demand
    /// for events of other days).
    pub async fn ensure_partitions(&self, days_back: u32, days_ahead: u32) -> Result<(), PgError> {
        let today = day_of(now_micros());
        let days: Vec<i64> =
            (today - i64::from(days_back)..=today + i64::from(days_ahead)).collect();
        self.ensure_days(&days).await
    }

    /// The days among `days` without known partitions, deduplicated.
    fn missing_days(&self, days: &[i64]) -> Vec<i64> {
        let known = self
            .inner
            .known_days
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut m: Vec<i64> = days
            .iter()
            .copied()
            .filter(|d| !known.contains(d))
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// Creates the partitions of these days, one table per transaction, outside the budget.
    pub(crate) async fn ensure_days(&self, days: &[i64]) -> Result<(), PgError> {
        for day in self.missing_days(days) {
            self.create_day(day).await?;
        }
        Ok(())
    }

    /// Creates partitions for the missing days of a write, nearest to `today` first, within
    /// the budget ([`NEW_DAYS_PER_WRITE`], [`NEW_DAYS_PER_MINUTE`], a pause after a
    /// failure). Returns the days left without a partition: their rows go to the default
    /// partition. A failure here never fails the write.
    async fn ensure_for_write(&self, days: &[i64], today: i64) -> HashSet<i64> {
        let mut missing = self.missing_days(days);
        if missing.is_empty() {
            return HashSet::new();
        }
        // Partitions made by another instance or before a restart are not in the cache yet.
        if let Err(e) = self.learn_partitions().await {
            tracing::warn!(target: "tracepost::postgres", error = %e, "listing partitions failed");
        }
        missing = self.missing_days(&missing);
        missing.sort_by_key(|d| (d - today).abs());
        let mut uncovered = HashSet::new();
        let mut created = 0;
        for day in missing {
            if created >= NEW_DAYS_PER_WRITE || !self.take_budget(true) {
                uncovered.insert(day);
                continue;
            }
            match self.create_day(day).await {
                Ok(()) => created += 1,
                Err(e) => {
                    self.pause_creation();
                    tracing::warn!(target: "tracepost::postgres", error = %e, day = %day_literal(day),
                        "creating a day partition failed; its events go to the default partition");
                    uncovered.insert(day);
                }
            }
        }
        uncovered
    }

    /// Adds the days that have partitions of every partitioned table to the cache.
    async fn learn_partitions(&self) -> Result<(), PgError> {
        let client = self.client().await?;
        let mut complete: Option<HashSet<i64>> = None;
        for table in PARTITIONED {
            let days: HashSet<i64> = self
                .list_partitions(&client, table)
                .await?
                .iter()
                .filter_map(|n| partition_day(n))
                .collect();
            complete = Some(match complete {
                None => days,
                Some(c) => c.intersection(&days).copied().collect(),
            });
        }
        self.inner
            .known_days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(complete.unwrap_or_default());
        Ok(())
    }

    /// One day of the per-minute budget; `for_write`: not while creation is paused after a
    /// failure (the background maintenance may try, it keeps no one waiting).
    fn take_budget(&self, for_write: bool) -> bool {
        self.inner
            .budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now(), for_write)
    }

    fn pause_creation(&self) {
        self.inner
            .budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .paused_until = Some(Instant::now() + CREATE_BACKOFF);
    }

    /// Creates the partitions of one day: each of the [`PARTITIONED`] tables in its own short
    /// transaction (a few dozen locks at most, whatever the batch), moving the day's rows out
    /// of the default partition first.
    async fn create_day(&self, day: i64) -> Result<(), PgError> {
        let client = self.exclusive().await?;
        let mut created = false;
        for table in PARTITIONED {
            created |= self.create_partition(&client, table, day).await?;
        }
        client.done();
        if created {
            self.inner
                .stats
                .partition_days
                .fetch_add(1, Ordering::Relaxed);
        }
        self.inner
            .known_days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(day);
        Ok(())
    }

    /// One transaction: create `{table}_p{day}` as a plain table, move the day's rows from
    /// the default partition into it, and attach it (`ATTACH PARTITION` takes only a
    /// `SHARE UPDATE EXCLUSIVE` lock on the parent, so reads and writes of other days go on).
    /// Returns false when the partition already existed. On error the caller drops the
    /// connection, which rolls the transaction back.
    async fn create_partition(
        &self,
        client: &deadpool_postgres::Client,
        table: &str,
        day: i64,
    ) -> Result<bool, PgError> {
        let s = &self.inner.schema;
        let (suffix, from, to) = (day_suffix(day), day_literal(day), day_literal(day + 1));
        let name = format!("{s}.{table}_p{suffix}");
        let default = format!("{s}.{table}_default");
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"
            ))
            .await?;
        client
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key("partitions", s)],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
                &[&name, &default],
            )
            .await?;
        let (exists, has_default): (bool, bool) = (row.get(0), row.get(1));
        if exists {
            client.batch_execute("COMMIT").await?;
            return Ok(false);
        }
        let mut sql = format!(
            "CREATE TABLE {name} (LIKE {s}.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);\n"
        );
        if has_default {
            // The lock ATTACH takes anyway, taken before the move so that no row of the day
            // lands in the default partition between the move and the attach.
            sql.push_str(&format!(
                "LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE;\n\
                 WITH moved AS (DELETE FROM {default} WHERE timestamp >= '{from}' AND timestamp < '{to}' \
                 RETURNING *) INSERT INTO {name} SELECT * FROM moved;\n"
            ));
        }
        sql.push_str(&format!(
            "ALTER TABLE {s}.{table} ATTACH PARTITION {name} FOR VALUES FROM ('{from}') TO ('{to}');\n\
             COMMIT"
        ));
        client.batch_execute(&sql).await?;
        Ok(true)
    }

    /// Moves rows out of the default partition into partitions of their own day, for up to
    /// `max_days` days (nearest to today first, within the per-minute budget). Returns the
    /// days moved. The background maintenance calls it every run; rows only land in the
    /// default partition when a write could not create their day's partition in time.
    ///
    /// With `retention` (the sink's [`retention`](crate::PostgresSinkBuilder::retention)),
    /// days that [`retain`](Self::retain) would drop are left where they are — for it to
    /// delete — instead of getting a partition of their own: the maintenance once made a
    /// partition for a 90-day-old row while a retention run was listing partitions, and the
    /// row outlived its retention.
    pub async fn drain_default_partition(
        &self,
        max_days: usize,
        retention: Option<Duration>,
    ) -> Result<usize, PgError> {
        let s = &self.inner.schema;
        // Exclusive: a failure inside the transaction below closes the connection instead
        // of returning it to the pool mid-transaction.
        let client = self.exclusive().await?;
        let mut parts = Vec::new();
        for table in PARTITIONED {
            let default = format!("{s}.{table}_default");
            let exists: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&default])
                .await?
                .get(0);
            if exists {
                parts.push(format!(
                    "SELECT DISTINCT floor(extract(epoch FROM timestamp) / 86400)::int8 AS day \
                     FROM {default}"
                ));
            }
        }
        if parts.is_empty() {
            client.done();
            return Ok(0);
        }
        let today = day_of(now_micros());
        // Under the DDL's lock timeout: a session holding a lock on the default partition
        // makes the maintenance give up this run (and the next try again) instead of
        // waiting — the first run is part of connecting, and a wait there held the sink's
        // start for as long as the lock, one more waiting connection per retried send.
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"
            ))
            .await?;
        let mut days: Vec<i64> = client
            .query(&parts.join(" UNION "), &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        client.batch_execute("COMMIT").await?;
        client.done();
        if let Some(max_age) = retention {
            // The same rule as `retain`: whole days that ended before the cutoff go.
            let cutoff = now_micros() - i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX / 2);
            days.retain(|day| (day + 1) * 86_400_000_000 > cutoff);
        }
        days.sort_by_key(|d| (d - today).abs());
        let mut moved = 0;
        for day in days.into_iter().take(max_days) {
            if !self.take_budget(false) {
                break;
            }
            // A known day may have been dropped by another instance: create it regardless.
            self.inner
                .known_days
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&day);
            self.create_day(day).await?;
            moved += 1;
        }
        Ok(moved)
    }

    pub(crate) fn forget_partitions(&self) {
        self.inner
            .known_days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Drops every daily partition that ends more than `max_age` ago (whole partitions:
    /// no row-by-row deletes), and deletes issues not seen since then.
    pub async fn retain(&self, max_age: Duration) -> Result<RetentionReport, PgError> {
        let cutoff = now_micros() - i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX / 2);
        let s = &self.inner.schema;
        let client = self.exclusive().await?;
        let mut report = RetentionReport::default();
        for table in PARTITIONED {
            for name in self.list_partitions(&client, table).await? {
                let Some(day) = partition_day(&name) else {
                    continue;
                };
                if (day + 1) * 86_400_000_000 > cutoff {
                    continue;
                }
                client
                    .batch_execute(&format!(
                        "BEGIN; SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"
                    ))
                    .await?;
                let dropped = async {
                    client
                        .execute(
                            "SELECT pg_advisory_xact_lock($1)",
                            &[&lock_key("partitions", s)],
                        )
                        .await?;
                    client
                        .batch_execute(&format!("DROP TABLE IF EXISTS {s}.{name}; COMMIT"))
                        .await
                }
                .await;
                dropped?; // on error, dropping `client` closes it and the server rolls back
                self.inner
                    .known_days
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&day);
                tracing::info!(target: "tracepost::postgres", partition = %name, "retention dropped partition");
                report.dropped_partitions.push(name);
            }
        }
        // Rows in the default partition go by the same rule: whole days that ended before
        // the cutoff.
        let first_kept = crate::types::PgTs::from_unix_micros(
            cutoff.div_euclid(86_400_000_000) * 86_400_000_000,
        );
        for table in PARTITIONED {
            let default = format!("{s}.{table}_default");
            let exists: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&default])
                .await?
                .get(0);
            if exists {
                // Under the DDL's lock timeout, as the drain (a lock on the default partition
                // fails this run instead of holding it).
                client
                    .batch_execute(&format!(
                        "BEGIN; SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"
                    ))
                    .await?;
                client
                    .execute(
                        &format!("DELETE FROM {default} WHERE timestamp < $1"),
                        &[&first_kept],
                    )
                    .await?;
                client.batch_execute("COMMIT").await?;
            }
        }
        client.execute(&self.inner.statements.fold, &[]).await?;
        let cutoff_ts = crate::types::PgTs::from_unix_micros(cutoff);
        report.deleted_issues = client
            .execute(
                &format!("DELETE FROM {s}.issues WHERE last_seen < $1"),
                &[&cutoff_ts],
            )
            .await?;
        report.deleted_replay_sessions = client
            .execute(
                &format!("DELETE FROM {s}.replay_sessions WHERE ended_at < $1"),
                &[&cutoff_ts],
            )
            .await?;
        client.done();
        Ok(report)
    }

    /// Writes events with the store's ingest method: idempotent on the event id, bad rows
    /// split out and reported in [`WriteReport::rejected`], events outside the accepted
    /// [`TimeRange`](crate::TimeRange) rejected or restamped as it says. An `Err` concerns the whole
    /// batch; retry it when [`PgError::is_temporary`].
    pub async fn write(&self, events: &[Arc<Event>]) -> Result<WriteReport, PgError> {
        self.write_with(events, self.inner.method).await
    }

    /// [`write`](Self::write) with a given ingest method (the benchmark compares them).
    pub async fn write_with(
        &self,
        events: &[Arc<Event>],
        method: IngestMethod,
    ) -> Result<WriteReport, PgError> {
        let mut rejected = Vec::new();
        let now = now_micros();
        // Postgres can't store NUL: an event holding one is stored with U+FFFD in its place
        // (one check per event in the usual batch, which has none).
        let scrubbed: Vec<Arc<Event>>;
        let events = if events.iter().any(|e| ingest::event_has_nul(e)) {
            scrubbed = events
                .iter()
                .filter_map(|e| ingest::nul_free(e).map_err(|r| rejected.push(r)).ok())
                .collect();
            &scrubbed[..]
        } else {
            events
        };
        let (mut rows, restamped) = ingest::stage_rows(
            events.iter().map(|e| &**e),
            &self.inner.window,
            now,
            &mut rejected,
        );
        let mut days: Vec<i64> = rows.iter().map(|r| day_of(r.ts.unix_micros())).collect();
        days.sort_unstable();
        days.dedup();
        let uncovered = self.ensure_for_write(&days, day_of(now)).await;
        // The partition each row goes to (the default partition for the uncovered days), in
        // order, cut into transactions of a few partitions each: the locks one transaction
        // takes grow with the partitions it writes to (each with its indexes).
        let partition = |r: &ingest::StageRow<'_>| {
            let day = day_of(r.ts.unix_micros());
            if uncovered.contains(&day) {
                i64::MIN
            } else {
                day
            }
        };
        rows.sort_by_key(partition);
        let deferred = rows.iter().filter(|r| partition(r) == i64::MIN).count() as u64;
        let mut parts = Vec::new();
        let (mut start, mut in_part) = (0, 0);
        for i in 0..rows.len() {
            if i == 0 || partition(&rows[i]) != partition(&rows[i - 1]) {
                if in_part == PARTITIONS_PER_TRANSACTION {
                    parts.push(start..i);
                    (start, in_part) = (i, 0);
                }
                in_part += 1;
            }
        }
        parts.push(start..rows.len());
        let client = self.exclusive().await?;
        let result =
            ingest::write_splitting(&client, &self.inner.statements, method, &rows, parts).await;
        let stats = &self.inner.stats;
        match result {
            Ok(mut r) => {
                stats
                    .resource_splits
                    .fetch_add(r.resource_splits, Ordering::Relaxed);
                if r.written.issues > 0 {
                    if let Err(e) = client.execute(&self.inner.statements.fold, &[]).await {
                        // The events are committed; the deltas wait for the next fold.
                        tracing::warn!(target: "tracepost::postgres", error = %e, "folding issue counts failed");
                    }
                }
                rejected.append(&mut r.rejected);
                let duplicates = (events.len() as u64)
                    .saturating_sub(r.written.events)
                    .saturating_sub(rejected.len() as u64);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .inserted
                    .fetch_add(r.written.events, Ordering::Relaxed);
                stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                stats.restamped.fetch_add(restamped, Ordering::Relaxed);
                stats.deferred.fetch_add(deferred, Ordering::Relaxed);
                if !rejected.is_empty() {
                    let mut by_reason = stats.rejected.lock().unwrap_or_else(|e| e.into_inner());
                    for rej in &rejected {
                        *by_reason.entry(rej.reason.to_string()).or_default() += 1;
                    }
                }
                client.done();
                Ok(WriteReport {
                    inserted: r.written.events,
                    duplicates,
                    requests: r.written.requests,
                    metric_windows: r.written.metrics,
                    rejected,
                    restamped,
                    deferred,
                })
            }
            Err(BatchFailure::MissingPartition(e)) => {
                // Dropped by retention (maybe another instance's) since we cached it.
                self.forget_partitions();
                Err(PgError::Postgres(e))
            }
            Err(BatchFailure::Encode(e)) => Err(PgError::Config(format!("encoding rows: {e}"))),
            // A failed batch closes its connection (`client` is not `done`): the pool makes
            // a new one, so no half-finished state is ever reused.
            Err(BatchFailure::Temporary(e)) | Err(BatchFailure::Permanent(e)) => {
                Err(PgError::Postgres(e))
            }
        }
    }

    /// Folds pending per-batch issue counts into the `issues` table. The sink does this
    /// after every batch with errors, and the issue queries before they read; call it before
    /// reading `issues` with your own SQL if you need it exact to the last batch.
    pub async fn fold_issues(&self) -> Result<u64, PgError> {
        let client = self.client().await?;
        Ok(client.execute(&self.inner.statements.fold, &[]).await?)
    }

    /// Counters since this store was created.
    pub fn stats(&self) -> IngestStats {
        let s = &self.inner.stats;
        IngestStats {
            batches: s.batches.load(Ordering::Relaxed),
            inserted: s.inserted.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            restamped: s.restamped.load(Ordering::Relaxed),
            deferred: s.deferred.load(Ordering::Relaxed),
            partition_days_created: s.partition_days.load(Ordering::Relaxed),
            resource_splits: s.resource_splits.load(Ordering::Relaxed),
            rejected: s
                .rejected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert_eq!(partition_day("events_p19700102"), Some(1));
        assert_eq!(
            partition_day("request_snapshots_p20261123"),
            Some(days_from_civil(2026, 11, 23))
        );
        assert_eq!(partition_day("events_default"), None);
        assert_eq!(partition_day("events_p2026112"), None);
    }

    #[test]
    fn lock_keys_differ() {
        assert_ne!(lock_key("migrate", "a"), lock_key("migrate", "b"));
        assert_ne!(lock_key("migrate", "a"), lock_key("partitions", "a"));
        assert_eq!(lock_key("migrate", "a"), lock_key("migrate", "a"));
    }
}
