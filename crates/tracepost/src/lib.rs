#![doc = include_str!("../docs.md")]

// The README's code blocks, compiled and run as doctests: its integration snippet is the same
// as the one on this front page (`tests/readme.rs` checks that), and both must compile.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub use tracepost_core::{
    capture, event, fingerprint, in_current_request, metrics, object_store, pipeline, redact,
    replay_index, scope, sink, spawn, store, trace_context, Batch, BatchOptions, Breadcrumb,
    BuildError, Builder, CapturedBody, DropReason, ErrorDetail, Event, FsyncPolicy, Health,
    HealthReport, Kind, Level, MetricWindow, Redactor, Rejection, RequestSnapshot, Resource,
    RetryOptions, ShutdownReport, Sink, SinkCounts, SinkError, SinkErrorClass, SinkErrorKind,
    SinkHealth, SinkOptions, SinkOutcome, SpoolFullPolicy, SpoolOptions, Timestamp, Tracepost,
    TracepostHandle,
};

/// The `prometheus-client` crate tracepost's metrics registry is built on: register the
/// application's own metrics with these types (see `Tracepost::metrics_registry`).
pub use tracepost_core::prometheus_client;

/// The sinks. The embedded ones ([`Console`](sinks::Console), [`JsonlFile`](sinks::JsonlFile),
/// and `sqlite` with its feature) need no external service; the others come with their
/// features.
pub mod sinks {
    pub use tracepost_core::sinks::*;

    /// The Postgres sink (feature `postgres`): see the `tracepost-postgres` crate.
    #[cfg(feature = "postgres")]
    pub mod postgres {
        pub use tracepost_postgres::*;
    }

    /// The embedded SQLite sink and store (feature `sqlite`): see the `tracepost-sqlite`
    /// crate.
    #[cfg(feature = "sqlite")]
    pub mod sqlite {
        pub use tracepost_sqlite::*;
    }

    /// The Grafana Loki sink (feature `loki`): see the `tracepost-loki` crate.
    #[cfg(feature = "loki")]
    pub mod loki {
        pub use tracepost_loki::*;
    }

    /// Object storage through Apache OpenDAL (feature `opendal`): replay segments and the
    /// NDJSON.gz archive sink in a local directory, S3, MinIO or GCS; see the
    /// `tracepost-opendal` crate.
    #[cfg(feature = "opendal")]
    pub mod opendal {
        pub use tracepost_opendal::*;
    }

    /// Object storage on `aws-sdk-s3` (feature `s3`): replay segments and the NDJSON.gz
    /// archive sink in S3 or MinIO; see the `tracepost-s3` crate.
    #[cfg(feature = "s3")]
    pub mod s3 {
        pub use tracepost_s3::*;
    }
}

/// The alert engine (feature `alerts`): see the `tracepost-alerts` crate. Discord (feature
/// `discord`) is in [`alerts::discord`], the JSON and Slack webhooks (feature `webhooks`) in
/// `alerts::webhook`.
#[cfg(feature = "alerts")]
pub mod alerts {
    pub use tracepost_alerts::*;

    /// Discord webhooks (feature `discord`): see the `tracepost-discord` crate.
    #[cfg(feature = "discord")]
    pub mod discord {
        pub use tracepost_discord::*;
    }
}

/// The query API (feature `api`): see the `tracepost-api` crate. Serve it with
/// `tracepost::api::router(store, tracepost::api::ApiConfig::new(token))?`.
#[cfg(feature = "api")]
pub mod api {
    pub use tracepost_api::*;
}

/// The built-in console (feature `console`): see the `tracepost-console` crate and
/// [`TracepostConsoleExt::console`].
#[cfg(feature = "console")]
pub mod console {
    pub use tracepost_console::*;
}

/// The tower/axum layer (features `axum` or `tower`).
#[cfg(any(feature = "axum", feature = "tower"))]
pub mod tower {
    pub use tracepost_tower::*;
}

/// The actix-web middleware (feature `actix`).
#[cfg(feature = "actix")]
pub mod actix {
    pub use tracepost_actix::*;
}

/// Browser capture (feature `browser`): the ingest routes, their settings and errors.
#[cfg(feature = "browser")]
pub mod ingest {
    pub use tracepost_ingest::*;
}

/// The tracing-subscriber layer (feature `tracing`).
#[cfg(feature = "tracing")]
pub mod tracing {
    pub use tracepost_tracing::*;
}

/// `use tracepost::prelude::*;` adds `layer()`, `tracing_layer()`, `metrics_router()`, (feature
/// `actix`) `actix()`, `actix_metrics()` and `actix_health()`, (feature `browser`)
/// `ingest_router()`, `token_router()` and `browser_token()`, and (feature `alerts`) `send_test_alert()` and
/// `alerts_admin_router()` to [`Tracepost`] and [`TracepostHandle`], and (feature `browser`)
/// `browser(..)` to [`Builder`].
pub mod prelude {
    #[cfg(feature = "actix")]
    pub use crate::TracepostActixExt as _;
    #[cfg(feature = "alerts")]
    pub use crate::TracepostAlertsExt as _;
    #[cfg(feature = "console")]
    pub use crate::TracepostConsoleExt as _;
    #[cfg(any(feature = "axum", feature = "tower"))]
    pub use crate::TracepostLayerExt as _;
    #[cfg(feature = "tracing")]
    pub use crate::TracepostTracingExt as _;
    #[cfg(feature = "browser")]
    pub use crate::{BuilderBrowserExt as _, TracepostBrowserExt as _};
}

/// Something that can hand out a [`TracepostHandle`]: the [`Tracepost`] owner or a handle.
pub trait AsHandle {
    /// A handle to the pipeline.
    fn as_handle(&self) -> TracepostHandle;
}

impl AsHandle for Tracepost {
    fn as_handle(&self) -> TracepostHandle {
        self.handle()
    }
}

impl AsHandle for TracepostHandle {
    fn as_handle(&self) -> TracepostHandle {
        self.clone()
    }
}

/// Adds the HTTP layer and the `/metrics` router to [`Tracepost`].
#[cfg(any(feature = "axum", feature = "tower"))]
pub trait TracepostLayerExt: AsHandle {
    /// The tower layer with default settings (see [`tower::TracepostLayer`]).
    fn layer(&self) -> tracepost_tower::TracepostLayer {
        tracepost_tower::TracepostLayer::new(self.as_handle())
    }

    /// A router serving `GET /metrics`: tracepost's metrics and the application's own
    /// registry, in OpenMetrics or the Prometheus text format as the scraper asks.
    #[cfg(feature = "axum")]
    fn metrics_router<S: Clone + Send + Sync + 'static>(
        &self,
    ) -> tracepost_tower::axum_router::Router<S> {
        tracepost_tower::metrics_router(self.as_handle())
    }

    /// A router serving `GET /health`: each sink's state as JSON; 503 while one is down.
    #[cfg(feature = "axum")]
    fn health_router<S: Clone + Send + Sync + 'static>(
        &self,
    ) -> tracepost_tower::axum_router::Router<S> {
        tracepost_tower::health_router(self.as_handle())
    }
}

#[cfg(any(feature = "axum", feature = "tower"))]
impl<T: AsHandle> TracepostLayerExt for T {}

/// Adds the console to [`Tracepost`] (feature `console`).
#[cfg(feature = "console")]
pub trait TracepostConsoleExt: AsHandle {
    /// A console builder reading from `store`, its Health page showing this pipeline's
    /// sinks. Choose its authentication, then
    /// `.build()?.router()` serves it under `/tracepost/console`:
    ///
    /// ```no_run
    /// # fn run(tp: tracepost::Tracepost, store: std::sync::Arc<dyn tracepost::store::Store>)
    /// # -> Result<axum::Router, Box<dyn std::error::Error>> {
    /// use tracepost::prelude::*;
    /// let console = tp
    ///     .console(store)
    ///     .admin_token(std::env::var("TRACEPOST_CONSOLE_TOKEN")?)
    ///     .build()?;
    /// Ok(axum::Router::new().merge(console.router()))
    /// # }
    /// ```
    fn console(
        &self,
        store: std::sync::Arc<dyn tracepost_core::store::Store>,
    ) -> tracepost_console::ConsoleBuilder {
        tracepost_console::Console::builder(store).pipeline(self.as_handle())
    }
}

#[cfg(feature = "console")]
impl<T: AsHandle> TracepostConsoleExt for T {}

/// Adds the tracing-subscriber layer to [`Tracepost`].
#[cfg(feature = "tracing")]
pub trait TracepostTracingExt: AsHandle {
    /// The tracing layer with default settings (see [`tracing::TracepostTracingLayer`]).
    fn tracing_layer(&self) -> tracepost_tracing::TracepostTracingLayer {
        tracepost_tracing::TracepostTracingLayer::new(self.as_handle())
    }
}

#[cfg(feature = "tracing")]
impl<T: AsHandle> TracepostTracingExt for T {}

/// Adds the actix-web middleware and the `/metrics` and `/health` resources to [`Tracepost`].
#[cfg(feature = "actix")]
pub trait TracepostActixExt: AsHandle {
    /// The actix-web middleware with default settings, for `App::wrap` (see
    /// [`actix::TracepostMiddleware`]).
    fn actix(&self) -> tracepost_actix::TracepostMiddleware {
        tracepost_actix::TracepostMiddleware::new(self.as_handle())
    }

    /// A resource serving `GET /metrics` (OpenMetrics or the Prometheus text format as the
    /// scraper asks), for `App::service`.
    fn actix_metrics(&self) -> tracepost_actix::Resource {
        tracepost_actix::metrics_service(self.as_handle())
    }

    /// A resource serving `GET /health`: each sink's state as JSON; 503 while one is down.
    fn actix_health(&self) -> tracepost_actix::Resource {
        tracepost_actix::health_service(self.as_handle())
    }
}

#[cfg(feature = "actix")]
impl<T: AsHandle> TracepostActixExt for T {}

/// The browser ingest settings stored by [`BuilderBrowserExt::browser`].
#[cfg(feature = "browser")]
struct BrowserSettings(tracepost_ingest::IngestConfig);

/// The replay settings stored by [`BuilderBrowserExt::replay_to`] (and `replay`).
#[cfg(feature = "browser")]
struct ReplaySettings {
    /// `None`: the OpenDAL `fs` store under `{data_dir}/objects` (feature `replay`).
    store: Option<std::sync::Arc<dyn tracepost_ingest::SegmentStore>>,
    config: tracepost_ingest::ReplayConfig,
}

/// Adds `browser(config)` and the replay settings to the [`Builder`] (feature `browser`).
#[cfg(feature = "browser")]
pub trait BuilderBrowserExt {
    /// The settings of the browser ingest routes that `tp.ingest_router()` serves (keys,
    /// origins, token secrets, limits; see [`ingest::IngestConfig`]). Checked by
    /// `ingest_router()`.
    fn browser(self, config: tracepost_ingest::IngestConfig) -> Builder;

    /// Session replay into `store`: `tp.ingest_router()` also serves `GET
    /// {prefix}/tp-replay.js` and `POST {prefix}/v1/replay` (see [`ingest::replay`]), with
    /// the browser settings' keys, origins and tokens.
    fn replay_to<S: tracepost_core::object_store::ObjectStore>(
        self,
        store: tracepost_core::object_store::ReplayStore<S>,
        config: tracepost_ingest::ReplayConfig,
    ) -> Builder;

    /// Session replay into the local directory `{data_dir}/objects` (OpenDAL's `fs`
    /// service; feature `replay`): as [`replay_to`](Self::replay_to). `ingest_router()`
    /// fails (field `replay`) without a `data_dir`.
    #[cfg(feature = "replay")]
    fn replay(self, config: tracepost_ingest::ReplayConfig) -> Builder;
}

#[cfg(feature = "browser")]
impl BuilderBrowserExt for Builder {
    fn browser(self, config: tracepost_ingest::IngestConfig) -> Builder {
        self.extension(BrowserSettings(config))
    }

    fn replay_to<S: tracepost_core::object_store::ObjectStore>(
        self,
        store: tracepost_core::object_store::ReplayStore<S>,
        config: tracepost_ingest::ReplayConfig,
    ) -> Builder {
        self.extension(ReplaySettings {
            store: Some(std::sync::Arc::new(store)),
            config,
        })
    }

    #[cfg(feature = "replay")]
    fn replay(self, config: tracepost_ingest::ReplayConfig) -> Builder {
        self.extension(ReplaySettings {
            store: None,
            config,
        })
    }
}

/// Adds the browser ingest routes and upload tokens to [`Tracepost`] (feature `browser`).
#[cfg(feature = "browser")]
pub trait TracepostBrowserExt: AsHandle {
    /// The routes behind `tp.js`, under the configured prefix (default `/tracepost`):
    /// `GET /tracepost/tp.js`, `GET /tracepost/tp-vitals.js` and `POST /tracepost/v1/events`
    /// (see [`ingest::router`]), with the settings given to `Builder::browser`. Not the token
    /// route: mount [`token_router`](Self::token_router) behind your own authentication if
    /// single-page apps need fresh tokens. Call it once: each call has its own rate limits
    /// and duplicate filter. Errors: settings missing or invalid (the field is named).
    fn ingest_router<S: Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<tracepost_ingest::axum_router::Router<S>, tracepost_ingest::ConfigError> {
        let ingest = self.ingest()?;
        let router = tracepost_ingest::router(ingest.clone());
        Ok(match self.replay_ingest(ingest)? {
            Some(replay) => router.merge(tracepost_ingest::replay_router(replay)),
            None => router,
        })
    }

    /// The replay upload route for `ingest`, when `Builder::replay_to` (or `replay`) was
    /// called; `None` otherwise. Errors: invalid replay settings, or (feature `replay`) no
    /// data dir for the default store, or a data dir where it cannot be created.
    fn replay_ingest(
        &self,
        ingest: tracepost_ingest::Ingest,
    ) -> Result<Option<tracepost_ingest::ReplayIngest>, tracepost_ingest::ConfigError> {
        let handle = self.as_handle();
        let Some(settings) = handle.extension::<ReplaySettings>() else {
            return Ok(None);
        };
        let store = match &settings.store {
            Some(s) => s.clone(),
            None => default_replay_store(&handle)?,
        };
        tracepost_ingest::ReplayIngest::with_store(ingest, store, settings.config.clone()).map(Some)
    }

    /// `GET /tracepost/v1/token` (under the configured prefix), guarded by `guard`: it gets
    /// each request's head and returns whether the caller is signed in to the host (a refused
    /// request gets `401 unauthorized`). Whoever can call the route can send events, so it is
    /// never public. See [`ingest::token_router`].
    fn token_router<S, G>(
        &self,
        guard: G,
    ) -> Result<tracepost_ingest::axum_router::Router<S>, tracepost_ingest::ConfigError>
    where
        S: Clone + Send + Sync + 'static,
        G: Fn(&http::request::Parts) -> bool + Clone + Send + Sync + 'static,
    {
        Ok(tracepost_ingest::token_router(self.ingest()?, guard))
    }

    /// The framework-neutral [`ingest::Ingest`] with the settings given to
    /// `Builder::browser`, for other frameworks or to split the token route off.
    fn ingest(&self) -> Result<tracepost_ingest::Ingest, tracepost_ingest::ConfigError> {
        let handle = self.as_handle();
        let config = handle
            .extension::<BrowserSettings>()
            .map(|s| s.0.clone())
            .ok_or(tracepost_ingest::ConfigError {
                field: "browser",
                reason: "no settings: call Tracepost::builder().browser(IngestConfig::new()...)"
                    .into(),
            })?;
        tracepost_ingest::Ingest::new(handle, config)
    }

    /// An upload token for a page served by the same host as the routes, for the script
    /// tag's `data-token` (valid for the configured `token_ttl`). `None` without settings or
    /// token secret.
    fn browser_token(&self) -> Option<tracepost_ingest::UploadToken> {
        self.browser_token_for("")
    }

    /// An upload token for pages of `origin` (`https://shop.example`) served by another host
    /// (empty: the same host). `None` without settings or token secret.
    fn browser_token_for(&self, origin: &str) -> Option<tracepost_ingest::UploadToken> {
        let handle = self.as_handle();
        let c = &handle.extension::<BrowserSettings>()?.0;
        tracepost_ingest::TokenSigner::new(c.project.clone(), c.token_secrets.clone(), c.token_ttl)
            .mint(origin)
    }
}

#[cfg(feature = "browser")]
impl<T: AsHandle> TracepostBrowserExt for T {}

/// The default replay store: OpenDAL's `fs` service in `{data_dir}/objects`.
#[cfg(all(feature = "browser", feature = "replay"))]
fn default_replay_store(
    handle: &TracepostHandle,
) -> Result<std::sync::Arc<dyn tracepost_ingest::SegmentStore>, tracepost_ingest::ConfigError> {
    let dir = handle
        .data_dir()
        .ok_or(tracepost_ingest::ConfigError {
            field: "replay",
            reason: "the default replay store lives under the data dir: call .data_dir(..) or give a store with .replay_to(..)".into(),
        })?
        .join("objects");
    let store =
        tracepost_opendal::OpendalStore::fs(&dir).map_err(|e| tracepost_ingest::ConfigError {
            field: "replay",
            reason: format!("cannot open the replay store in {}: {e}", dir.display()),
        })?;
    Ok(std::sync::Arc::new(tracepost_opendal::ReplayStore::new(
        store,
    )))
}

#[cfg(all(feature = "browser", not(feature = "replay")))]
fn default_replay_store(
    _: &TracepostHandle,
) -> Result<std::sync::Arc<dyn tracepost_ingest::SegmentStore>, tracepost_ingest::ConfigError> {
    Err(tracepost_ingest::ConfigError {
        field: "replay",
        reason: "no replay store (the default one needs the `replay` feature)".into(),
    })
}

/// Adds the alert engine's test alert and admin route to [`Tracepost`] (feature `alerts`).
#[cfg(feature = "alerts")]
pub trait TracepostAlertsExt: AsHandle {
    /// Sends a test alert through the pipeline to every notifier of every alert engine in it
    /// (see [`alerts::send_test_alert`]).
    fn send_test_alert(&self) {
        tracepost_alerts::send_test_alert(&self.as_handle())
    }

    /// A router serving `POST /admin/alerts/test` behind `Authorization: Bearer <token>`
    /// (see [`alerts::admin_router`]; features `alerts` and `axum`).
    #[cfg(feature = "axum")]
    fn alerts_admin_router<S: Clone + Send + Sync + 'static>(
        &self,
        token: impl Into<String>,
    ) -> tracepost_tower::axum_router::Router<S> {
        tracepost_alerts::admin_router(self.as_handle(), token)
    }
}

#[cfg(feature = "alerts")]
impl<T: AsHandle> TracepostAlertsExt for T {}
