//! A [tracepost](https://docs.rs/tracepost) sink that stores every event in PostgreSQL, in
//! tables a person can query by hand and point Grafana at.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tracepost_core::Tracepost;
//! use tracepost_postgres::PostgresSink;
//!
//! let sink = PostgresSink::builder("postgres://postgres@127.0.0.1/app")
//!     .retention(Duration::from_secs(14 * 86_400))
//!     .connect()
//!     .await?;
//! let store = sink.store().clone(); // for queries
//! let tp = Tracepost::builder().service("checkout").sink(sink).build()?;
//! # let _ = (store, tp);
//! # Ok(()) }
//! ```
//!
//! * **Tables** (schema `tracepost` by default): `events` (partitioned by day, primary key
//!   `(timestamp, id)`, GIN index on `attributes`), `request_snapshots`, `metric_windows`
//!   (both partitioned the same way and linked by `event_id`), `issues` (one row per error
//!   fingerprint, kept current by the sink), `projects` and `api_keys` (SHA-256 hashes).
//! * **Migrations** are embedded and applied on connect (turn off with
//!   [`PostgresSinkBuilder::migrate`]) under an advisory lock.
//! * **Ingest**: binary `COPY` into a per-connection temporary table, then one statement
//!   that inserts with `ON CONFLICT DO NOTHING` — a redelivered batch adds nothing — and
//!   updates issues from the rows actually inserted. A row the server refuses is split out
//!   and reported in [`SinkOutcome::rejected`](tracepost_core::SinkOutcome); the rest is
//!   stored.
//! * **Time range**: events from the retention (or 30 days) back to 10 minutes ahead are
//!   accepted; the rest is rejected with a counted reason or restamped ([`TimeRange`]).
//!   Each write creates at most 8 day partitions, one table per transaction, and 60 days a
//!   minute at most; rows of other days wait in a default partition.
//! * **Errors**: connection loss, pool timeout, serialization failure, deadlock, shutdown →
//!   temporary (the pipeline retries); bad data → that row only; out of memory or over a
//!   configured limit → the batch is written in halves; disk full, too many connections, a
//!   lock not available → temporary with a longer wait.
//! * **Retention**: [`PostgresSinkBuilder::retention`] drops whole day partitions in the
//!   background; [`PgStore::retain`] does it on demand.
//! * **Queries**: [`PgStore::events`], [`PgStore::histogram`], [`PgStore::top_issues`]; an
//!   axum router behind the `http` feature.

#[cfg(feature = "admin")]
pub mod admin;
mod config;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod ingest;
mod keys;
mod limits;
mod query;
mod store;
mod types;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tracepost_core::{Batch, BatchOptions, Sink, SinkError, SinkOptions, SinkOutcome};

pub use config::{IngestMethodConfig, PostgresConfig};
pub use error::PgError;
pub use ingest::IngestMethod;
pub use keys::{ApiKey, ApiKeyInfo, Project, StoredKey};
pub use limits::{
    OutOfRange, TimeRange, DEFAULT_MAX_AGE, DEFAULT_MAX_AHEAD, ORIGINAL_TIMESTAMP_ATTRIBUTE,
};
pub use store::{IngestStats, PgStore, RetentionReport, WriteReport};
/// The query types, shared with every store ([`tracepost_core::store`]).
pub use tracepost_core::store::{
    Cursor, EventFilter, EventPage, HistogramBucket, Issue, IssueStatus, Store, StoreError,
};

/// The default schema holding the tables.
pub const DEFAULT_SCHEMA: &str = "tracepost";

/// Stores tracepost events in PostgreSQL. See the [crate docs](crate).
///
/// Made without I/O by [`PostgresSinkBuilder::build`]: the first delivery connects, applies
/// the migrations and creates the partitions, and a server that is down or refuses the
/// sink leaves the application running with this sink `down` until it can (see
/// [`PostgresSinkBuilder::build`]). Dropping the sink stops its background maintenance
/// (partitions ahead, retention).
pub struct PostgresSink {
    store: PgStore,
    startup: Startup,
    maintenance: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the first successful delivery does before writing.
struct Startup {
    migrate: bool,
    partitions_ahead: u32,
    maintenance_interval: Duration,
    retention: Option<Duration>,
    ready: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        self.stop_maintenance();
    }
}

impl PostgresSink {
    /// Connects with the default settings: migrations applied, no retention. Fails when the
    /// server is unreachable; [`PostgresSink::new`] doesn't wait for it.
    pub async fn connect(url: &str) -> Result<Self, PgError> {
        Self::builder(url).connect().await
    }

    /// A sink with the default settings, made without connecting (see
    /// [`PostgresSinkBuilder::build`]); fails only on a malformed URL.
    pub fn new(url: &str) -> Result<Self, PgError> {
        Self::builder(url).build()
    }

    /// Starts configuring a sink for the database at `url`
    /// (`postgres://user:password@host:port/db?sslmode=…`, or `host=… user=…`).
    pub fn builder(url: impl Into<String>) -> PostgresSinkBuilder {
        PostgresSinkBuilder {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            migrate: true,
            pool_size: 4,
            pool_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            retention: None,
            time_range: TimeRange::default(),
            partitions_ahead: 3,
            maintenance_interval: Duration::from_secs(3600),
            method: IngestMethod::Copy,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Pipeline options that suit this sink: batches of up to 5 000 events (8 MiB), sent
    /// within 200 ms, two in flight (two writers suit a 2-core server; see the book).
    /// `Tracepost::builder().sink(sink)` uses them; start from them to change some with
    /// `sink_with(sink, PostgresSink::sink_options().…)`.
    pub fn sink_options() -> SinkOptions {
        SinkOptions::default()
            .batch(BatchOptions::new(5000, 8 << 20, Duration::from_millis(200)))
            .max_in_flight(2)
            .queue_capacity(50_000)
    }

    /// The store behind the sink, for queries, retention and API keys.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// Drops partitions older than `max_age` now (see [`PgStore::retain`]).
    pub async fn retain(&self, max_age: Duration) -> Result<RetentionReport, PgError> {
        self.store.retain(max_age).await
    }

    /// Counters since the sink was created.
    pub fn stats(&self) -> IngestStats {
        self.store.stats()
    }

    /// Connects, applies the migrations and creates the partitions, once; until that has
    /// succeeded every call tries again (the pipeline's retries pace it).
    async fn ready(&self) -> Result<(), PgError> {
        let s = &self.startup;
        s.ready
            .get_or_try_init(|| async {
                if s.migrate {
                    self.store.migrate().await?;
                } else {
                    drop(self.store.client().await?);
                }
                self.store.ensure_partitions(1, s.partitions_ahead).await?;
                // The first maintenance run (the default partition drained, retention
                // applied) is part of starting: once `connect` returns — or the first
                // delivery goes ahead — it is done, rather than racing the writes and reads
                // that follow. The background task runs the next one an interval later.
                maintain(&self.store, s.partitions_ahead, s.retention).await;
                self.start_maintenance();
                tracing::info!(target: "tracepost::postgres", schema = %self.store.schema(),
                    "connected to PostgreSQL; schema ready");
                Ok::<(), PgError>(())
            })
            .await
            .map(|_| ())
    }

    fn start_maintenance(&self) {
        let store = self.store.clone();
        let (every, ahead, retention) = (
            self.startup.maintenance_interval,
            self.startup.partitions_ahead,
            self.startup.retention,
        );
        let task = tokio::spawn(async move {
            // `ready` ran the first one.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                maintain(&store, ahead, retention).await;
            }
        });
        let mut slot = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }

    fn stop_maintenance(&self) {
        let mut slot = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = slot.take() {
            task.abort();
        }
    }
}

impl Sink for PostgresSink {
    fn name(&self) -> &str {
        "postgres"
    }

    fn default_options(&self) -> SinkOptions {
        Self::sink_options()
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.ready().await.map_err(PgError::into_sink_error)?;
        match self.store.write(&batch).await {
            Ok(report) => Ok(SinkOutcome {
                rejected: report.rejected,
            }),
            Err(e) => {
                // Short of disk or connections, or a lock held: ask the pipeline to wait.
                let wait = e.code().and_then(limits::retry_after);
                let err = e.into_sink_error();
                Err(match wait {
                    Some(wait) => err.with_retry_after(wait),
                    None => err,
                })
            }
        }
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        self.stop_maintenance();
        Ok(())
    }
}

/// Settings for [`PostgresSink`]; finish with [`build`](Self::build) (no I/O: the sink
/// connects on its first delivery) or [`connect`](Self::connect) (connects now). `Debug`
/// hides the password in the URL. From a configuration file: [`PostgresConfig`].
#[must_use]
pub struct PostgresSinkBuilder {
    url: String,
    schema: String,
    migrate: bool,
    pool_size: usize,
    pool_timeout: Duration,
    connect_timeout: Duration,
    retention: Option<Duration>,
    time_range: TimeRange,
    partitions_ahead: u32,
    maintenance_interval: Duration,
    method: IngestMethod,
    #[cfg(feature = "tls")]
    tls: Option<native_tls::TlsConnector>,
}

impl PostgresSinkBuilder {
    /// The schema for the tables (default `tracepost`): lowercase letters, digits, `_`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether to apply migrations on connect (default true). Turn off when migrations are
    /// applied by a deploy step ([`PgStore::migrate`]).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Connections in the pool (default 4).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// How long to wait for a pooled connection before failing temporarily (default 5 s).
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.pool_timeout = d;
        self
    }

    /// How long to wait for a new connection (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Keep events this long: older day partitions are dropped in the background, every
    /// [`maintenance_interval`](Self::maintenance_interval). Default: keep everything.
    pub fn retention(mut self, max_age: Duration) -> Self {
        self.retention = Some(max_age);
        self
    }

    /// The event timestamps the store accepts, and what happens to events outside them
    /// (default: back to the retention or 30 days, 10 minutes ahead, the rest rejected
    /// with the reason `too_old` or `too_far_in_future`). See [`TimeRange`].
    pub fn time_range(mut self, range: TimeRange) -> Self {
        self.time_range = range;
        self
    }

    /// Day partitions created ahead of today (default 3).
    pub fn partitions_ahead(mut self, days: u32) -> Self {
        self.partitions_ahead = days;
        self
    }

    /// How often the background task creates partitions ahead and applies retention
    /// (default 1 h). The first run is part of connecting: [`connect`](Self::connect), or the
    /// first delivery of a [`build`](Self::build) sink, returns once it is done.
    pub fn maintenance_interval(mut self, every: Duration) -> Self {
        self.maintenance_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Binary COPY (default) or multi-row INSERT.
    pub fn ingest_method(mut self, method: IngestMethod) -> Self {
        self.method = method;
        self
    }

    /// Connects over TLS with this connector (the URL's `sslmode` decides whether TLS is
    /// required or only preferred).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, connector: native_tls::TlsConnector) -> Self {
        self.tls = Some(connector);
        self
    }

    /// A store without the sink's background task: for processes that only query. Connects
    /// now (and applies the migrations unless turned off).
    pub async fn connect_store(self) -> Result<PgStore, PgError> {
        let migrate = self.migrate;
        let store = self.pool()?;
        drop(store.client().await?);
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// The sink, without connecting: a malformed URL or schema name fails here, with one
    /// line; everything that needs the server waits for the first delivery. While the server
    /// is unreachable or refuses the sink (wrong password, missing database, revoked grant)
    /// the application runs, the sink's health is `down` with the error, events wait in
    /// the queue or the spool, and the first delivery that gets through connects, applies
    /// the migrations and writes them.
    pub fn build(self) -> Result<PostgresSink, PgError> {
        let startup = Startup {
            migrate: self.migrate,
            partitions_ahead: self.partitions_ahead,
            maintenance_interval: self.maintenance_interval,
            retention: self.retention,
            ready: tokio::sync::OnceCell::new(),
        };
        Ok(PostgresSink {
            store: self.pool()?,
            startup,
            maintenance: std::sync::Mutex::new(None),
        })
    }

    /// Builds the sink and connects now: checks that the server answers, applies
    /// migrations, creates the partitions for yesterday through the days ahead, and starts
    /// the background task. Fails when the server is unreachable — prefer
    /// [`build`](Self::build) in an application, so that its start never waits on the
    /// database.
    ///
    /// The connection runs on tracepost's own runtime, so that the pool's connection tasks
    /// and the background task live there and what the driver logs is never captured.
    pub async fn connect(self) -> Result<PostgresSink, PgError> {
        let sink = self.build()?;
        tracepost_core::pipeline::run_internal(async move {
            let r = sink.ready().await;
            r.map(|()| sink)
        })
        .await
    }

    /// Validates the settings and makes the pool (deadpool connects lazily).
    fn pool(&self) -> Result<PgStore, PgError> {
        let schema = self.schema.clone();
        let valid = !schema.is_empty()
            && schema.len() <= 48
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(PgError::Config(format!(
                "schema name {schema:?}: use lowercase letters, digits and _"
            )));
        }
        let mut config = tokio_postgres::Config::from_str(&self.url).map_err(|e| {
            PgError::Config(format!(
                "database URL {}: {e}",
                config::redact_url(&self.url)
            ))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("tracepost");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        #[cfg(feature = "tls")]
        let manager = match &self.tls {
            Some(c) => Manager::from_config(
                config,
                postgres_native_tls::MakeTlsConnector::new(c.clone()),
                manager_config,
            ),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        #[cfg(not(feature = "tls"))]
        let manager = Manager::from_config(config, tokio_postgres::NoTls, manager_config);
        let ddl = Arc::new(ingest::stage_ddl());
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.pool_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.pool_timeout))
            .post_create(Hook::async_fn(move |client, _| {
                let ddl = ddl.clone();
                Box::pin(
                    async move { client.batch_execute(&ddl).await.map_err(HookError::Backend) },
                )
            }))
            .build()
            .map_err(|e| PgError::Config(e.to_string()))?;
        let window = self.time_range.resolve(self.retention);
        Ok(PgStore::new(pool, schema, self.method, window))
    }
}

async fn maintain(store: &PgStore, ahead: u32, retention: Option<Duration>) {
    if let Err(e) = store.ensure_partitions(1, ahead).await {
        tracing::warn!(target: "tracepost::postgres", error = %e, "creating partitions ahead failed");
    }
    match store
        .drain_default_partition(limits::DRAIN_DAYS_PER_RUN, retention)
        .await
    {
        Ok(0) => {}
        Ok(days) => {
            tracing::info!(target: "tracepost::postgres", days, "moved events out of the default partition")
        }
        Err(e) => {
            tracing::warn!(target: "tracepost::postgres", error = %e, "draining the default partition failed")
        }
    }
    if let Some(max_age) = retention {
        match store.retain(max_age).await {
            Ok(r) if !r.dropped_partitions.is_empty() || r.deleted_issues > 0 => {
                tracing::info!(target: "tracepost::postgres",
                    dropped = r.dropped_partitions.len(), issues = r.deleted_issues, "retention");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "tracepost::postgres", error = %e, "retention failed")
            }
        }
    }
}
