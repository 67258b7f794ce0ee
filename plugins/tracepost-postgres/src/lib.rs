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
//! * **Errors**: connection loss, pool timeout, serialization failure, deadlock, shutdown →
//!   temporary (the pipeline retries); bad data → that row only.
//! * **Retention**: [`PostgresSinkBuilder::retention`] drops whole day partitions in the
//!   background; [`PgStore::retain`] does it on demand.
//! * **Queries**: [`PgStore::events`], [`PgStore::histogram`], [`PgStore::top_issues`]; an
//!   axum router behind the `http` feature.

mod error;
#[cfg(feature = "http")]
pub mod http;
mod ingest;
mod keys;
mod query;
mod store;
mod types;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tracepost_core::{Batch, BatchOptions, Sink, SinkError, SinkOptions, SinkOutcome};

pub use error::PgError;
pub use ingest::IngestMethod;
pub use keys::{ApiKey, Project};
pub use query::{Cursor, EventFilter, EventPage, HistogramBucket, Issue, IssueStatus};
pub use store::{IngestStats, PgStore, RetentionReport, WriteReport};

/// The default schema holding the tables.
pub const DEFAULT_SCHEMA: &str = "tracepost";

/// Stores tracepost events in PostgreSQL. See the [crate docs](crate).
///
/// Dropping the sink stops its background maintenance (partitions ahead, retention).
pub struct PostgresSink {
    store: PgStore,
    maintenance: Option<tokio::task::JoinHandle<()>>,
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
        if let Some(task) = self.maintenance.take() {
            task.abort();
        }
    }
}

impl PostgresSink {
    /// Connects with the default settings: migrations applied, no retention.
    pub async fn connect(url: &str) -> Result<Self, PgError> {
        Self::builder(url).connect().await
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
}

impl Sink for PostgresSink {
    fn name(&self) -> &str {
        "postgres"
    }

    fn default_options(&self) -> SinkOptions {
        Self::sink_options()
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        match self.store.write(&batch).await {
            Ok(report) => Ok(SinkOutcome {
                rejected: report.rejected,
            }),
            Err(e) => Err(e.into_sink_error()),
        }
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        if let Some(task) = &self.maintenance {
            task.abort();
        }
        Ok(())
    }
}

/// Settings for [`PostgresSink`]; finish with [`connect`](Self::connect).
#[derive(Debug)]
#[must_use]
pub struct PostgresSinkBuilder {
    url: String,
    schema: String,
    migrate: bool,
    pool_size: usize,
    pool_timeout: Duration,
    connect_timeout: Duration,
    retention: Option<Duration>,
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

    /// Day partitions created ahead of today (default 3).
    pub fn partitions_ahead(mut self, days: u32) -> Self {
        self.partitions_ahead = days;
        self
    }

    /// How often the background task creates partitions ahead and applies retention
    /// (default 1 h; it also runs once on connect).
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

    /// A store without the sink's background task: for processes that only query.
    pub async fn connect_store(self) -> Result<PgStore, PgError> {
        let (store, _) = self.open().await?;
        Ok(store)
    }

    /// Creates the pool, checks that the server answers, applies migrations, creates the
    /// partitions for yesterday through the days ahead, and starts the background task.
    ///
    /// This runs on tracepost's own runtime, so that the pool's connection tasks and the
    /// background task live there and what the driver logs is never captured by tracepost.
    pub async fn connect(self) -> Result<PostgresSink, PgError> {
        tracepost_core::pipeline::run_internal(self.connect_here()).await
    }

    async fn connect_here(self) -> Result<PostgresSink, PgError> {
        let (store, this) = self.open().await?;
        store.ensure_partitions(1, this.partitions_ahead).await?;
        let task = {
            let store = store.clone();
            let (every, ahead, retention) = (
                this.maintenance_interval,
                this.partitions_ahead,
                this.retention,
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    maintain(&store, ahead, retention).await;
                }
            })
        };
        Ok(PostgresSink {
            store,
            maintenance: Some(task),
        })
    }

    async fn open(self) -> Result<(PgStore, Self), PgError> {
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
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| PgError::Config(format!("database URL: {e}")))?;
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
        let store = PgStore::new(pool, schema, self.method);
        // Fail fast on a wrong URL or a server that is down.
        drop(store.client().await?);
        if self.migrate {
            store.migrate().await?;
        }
        Ok((store, self))
    }
}

async fn maintain(store: &PgStore, ahead: u32, retention: Option<Duration>) {
    if let Err(e) = store.ensure_partitions(1, ahead).await {
        tracing::warn!(target: "tracepost::postgres", error = %e, "creating partitions ahead failed");
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
