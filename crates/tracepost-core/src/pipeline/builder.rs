//! [`Builder`]: the pipeline's settings, validated and started by [`Builder::build`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::handle::{flush_windows, Extensions, Inner, SinkSlot, TracepostHandle};
use super::lifecycle::{Done, Tracepost};
use super::returns::Returns;
use super::runtime::{internal_runtime, WorkerRuntime};
use super::stages::{Enrich, Redact, Sample, Stages};
use super::{worker, SinkOptions, SinkStats, Spool, SpoolOptions};
use crate::event::{Kind, Resource};
use crate::metrics::{HttpMetrics, MetricsRegistry};
use crate::redact::Redactor;
use crate::sink::Sink;

/// Why [`Builder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// With [`WorkerRuntime::Current`], `build()` spawns the sink workers on the current Tokio
    /// runtime, and there is none.
    #[error("Tracepost::build() with WorkerRuntime::Current must be called inside a Tokio runtime (e.g. in #[tokio::main])")]
    NoRuntime,
    /// tracepost's own worker runtime could not be started (threads could not be created).
    #[error("cannot start tracepost's worker runtime: {0}")]
    Runtime(std::io::Error),
    /// Two sinks share a name, which would merge their metrics.
    #[error("two sinks are named {0:?}; sink names label metrics and must be unique")]
    DuplicateSink(String),
    /// A sink's disk spool could not be opened.
    #[error("cannot open the spool of sink {sink:?} in {dir}: {error}")]
    Spool {
        /// The sink.
        sink: String,
        /// The spool directory.
        dir: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid setting `{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

type AttachFn = Box<dyn FnOnce(&TracepostHandle) + Send>;

type SpawnFn = Box<
    dyn FnOnce(
            worker::Closing,
            Option<&PathBuf>,
            Arc<Returns>,
        ) -> Result<(SinkSlot, JoinHandle<()>), BuildError>
        + Send,
>;

/// Configures and starts a [`Tracepost`] pipeline. Created by [`Tracepost::builder`].
#[must_use = "call .build() to start the pipeline"]
pub struct Builder {
    resource: Resource,
    sinks: Vec<(String, SpawnFn)>,
    /// Each sink's [`Sink::attach`], called once the pipeline's handle exists.
    attach: Vec<AttachFn>,
    redactor: Redactor,
    sampling: Vec<(Kind, f64)>,
    analytics_sampling: Vec<(String, f64)>,
    extensions: Extensions,
    metric_window: Duration,
    max_routes: usize,
    data_dir: Option<PathBuf>,
    app_metrics: MetricsRegistry,
    worker_runtime: WorkerRuntime,
    replay_links: Option<super::stages::ReplayLinks>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("resource", &self.resource)
            .field(
                "sinks",
                &self.sinks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("sampling", &self.sampling)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder {
            resource: Resource {
                service: std::env::var("OTEL_SERVICE_NAME")
                    .unwrap_or_else(|_| "unknown_service".into()),
                environment: std::env::var("TRACEPOST_ENVIRONMENT").ok(),
                release: std::env::var("TRACEPOST_RELEASE").ok(),
                host: hostname(),
            },
            sinks: Vec::new(),
            attach: Vec::new(),
            redactor: Redactor::default(),
            sampling: Vec::new(),
            analytics_sampling: Vec::new(),
            extensions: Extensions::default(),
            metric_window: Duration::from_secs(60),
            max_routes: 1000,
            data_dir: None,
            app_metrics: MetricsRegistry::default(),
            worker_runtime: WorkerRuntime::default(),
            replay_links: None,
        }
    }

    /// Links backend `request` and `error` events that carry a browser session id to the
    /// moment of that session's replay: attribute `replay.url` =
    /// `{console_url}/replays/{session_id}?t={offset_ms}` (see
    /// [`ReplayLinks`](super::stages::ReplayLinks)). `console_url` is the console's public
    /// base, e.g. `https://ops.example.com/tracepost/console`. Off by default.
    pub fn replay_console_url(mut self, console_url: impl Into<String>) -> Self {
        self.replay_links = Some(super::stages::ReplayLinks::new(console_url));
        self
    }

    /// Where the sink workers run (default: tracepost's own runtime, whose logs are never
    /// captured; see [`WorkerRuntime`]).
    pub fn worker_runtime(mut self, runtime: WorkerRuntime) -> Self {
        self.worker_runtime = runtime;
        self
    }

    /// A directory for tracepost's own data: each sink gets a disk spool under
    /// `spool/<sink name>/` unless its options say `memory_only()` (default: none, memory only).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The service name on every event (default: `$OTEL_SERVICE_NAME`, else `unknown_service`).
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.resource.service = name.into();
        self
    }

    /// The deployment environment (default: `$TRACEPOST_ENVIRONMENT`).
    pub fn environment(mut self, env: impl Into<String>) -> Self {
        self.resource.environment = Some(env.into());
        self
    }

    /// The release (default: `$TRACEPOST_RELEASE`).
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.resource.release = Some(release.into());
        self
    }

    /// The host name (default: the machine's).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.resource.host = Some(host.into());
        self
    }

    /// Adds a sink with its [default options](Sink::default_options).
    pub fn sink<S: Sink>(self, sink: S) -> Self {
        let options = sink.default_options();
        self.sink_with(sink, options)
    }

    /// Adds a sink with its own queue, batching and retry settings.
    pub fn sink_with<S: Sink>(self, sink: S, options: SinkOptions) -> Self {
        let name = sink.name().to_owned();
        self.sink_named_with(name, sink, options)
    }

    /// Adds a sink under `name`, with its [default options](Sink::default_options).
    ///
    /// The name replaces [`Sink::name`] in the pipeline's metrics (`sink="archive"`), logs,
    /// health report and spool directory (`spool/<name>/`), so two sinks of one kind can run
    /// side by side:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tracepost_core::{sinks::JsonlFile, Tracepost};
    ///
    /// let dir = std::env::temp_dir().join("tracepost-doc-named");
    /// let tp = Tracepost::builder()
    ///     .sink_named("recent", JsonlFile::new(dir.join("recent")))
    ///     .sink_named("archive", JsonlFile::new(dir.join("archive")).max_files(100))
    ///     .build()
    ///     .expect("distinct names");
    /// assert_eq!(tp.handle().health().sinks.len(), 2);
    /// # }
    /// ```
    ///
    /// Names must be unique ([`BuildError::DuplicateSink`]) and non-empty, of at most 64
    /// letters, digits, `_`, `-` and `.` (they name a directory) ([`BuildError::Invalid`]).
    pub fn sink_named<S: Sink>(self, name: impl Into<String>, sink: S) -> Self {
        let options = sink.default_options();
        self.sink_named_with(name, sink, options)
    }

    /// Adds a sink under `name` with its own queue, batching and retry settings (see
    /// [`sink_named`](Self::sink_named)).
    pub fn sink_named_with<S: Sink>(
        mut self,
        name: impl Into<String>,
        sink: S,
        options: SinkOptions,
    ) -> Self {
        let name = name.into();
        let spawn_name = name.clone();
        let sink = Arc::new(sink);
        let attached = sink.clone();
        self.attach
            .push(Box::new(move |handle| attached.attach(handle)));
        let spawn: SpawnFn = Box::new(move |closing, data_dir, returns| {
            validate_sink_name(&spawn_name)?;
            let mut spool_options = options.spool.clone();
            if spool_options.is_none() && !options.memory_only {
                spool_options =
                    data_dir.map(|d| SpoolOptions::new(d.join("spool").join(&spawn_name)));
            }
            let spool = match spool_options {
                Some(o) => {
                    let dir = o.dir.display().to_string();
                    let spool = Spool::open(o).map_err(|error| BuildError::Spool {
                        sink: spawn_name.clone(),
                        dir,
                        error,
                    })?;
                    Some(worker::SpoolHandle::new(spool))
                }
                None => None,
            };
            let (tx, rx) = mpsc::channel(options.queue_capacity);
            let stats = Arc::new(SinkStats::new(
                spawn_name,
                options.queue_capacity,
                spool.is_some(),
            ));
            let mut metrics = prometheus_client::registry::Registry::default();
            sink.register_metrics(&mut metrics);
            let task = tokio::spawn(worker::run(
                sink,
                options.clone(),
                rx,
                stats.clone(),
                closing,
                spool,
                returns,
            ));
            Ok((
                SinkSlot {
                    tx,
                    stats,
                    options,
                    metrics,
                },
                task,
            ))
        });
        self.sinks.push((name, spawn));
        self
    }

    /// The redaction rules of the redact stage, applied to every event (default:
    /// [`Redactor::default`]).
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Keeps only this fraction (0..=1) of events of `kind`. Errors are kept whole by default;
    /// every event sampled out is counted in `tracepost_events_sampled_out_total`.
    pub fn sample(mut self, kind: Kind, rate: f64) -> Self {
        self.sampling.retain(|(k, _)| *k != kind);
        self.sampling.push((kind, rate));
        self
    }

    /// Keeps only this fraction (0..=1) of the `analytics` events whose `analytics.event`
    /// attribute is `event` (`"pageview"`, `"track"`, `"identify"` from the browser ingest
    /// routes). Wins over [`Builder::sample`]`(Kind::Analytics, ..)` for those events.
    pub fn sample_analytics(mut self, event: impl Into<String>, rate: f64) -> Self {
        let event = event.into();
        self.analytics_sampling.retain(|(e, _)| *e != event);
        self.analytics_sampling.push((event, rate));
        self
    }

    /// Stores a value of type `T` that integrations read back with
    /// [`TracepostHandle::extension`] (one per type; a second call replaces the first). The
    /// facade's `browser(..)` setter stores the ingest routes' settings this way.
    pub fn extension<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// The length of metric-window events (default 60 s).
    pub fn metric_window(mut self, window: Duration) -> Self {
        self.metric_window = window;
        self
    }

    /// The most distinct route labels kept in metrics (default 1 000).
    pub fn max_routes(mut self, n: usize) -> Self {
        self.max_routes = n;
        self
    }

    /// The registry of the application's own metrics, served on `/metrics` after tracepost's
    /// (default: an empty one, reachable with `TracepostHandle::metrics_registry`). Pass a
    /// `prometheus_client::registry::Registry` the application already fills, or a
    /// [`MetricsRegistry`] it keeps a clone of.
    pub fn metrics_registry(mut self, registry: impl Into<MetricsRegistry>) -> Self {
        self.app_metrics = registry.into();
        self
    }

    /// Validates the settings and starts one worker per sink, on tracepost's own runtime (or
    /// the current one, see [`Builder::worker_runtime`]).
    pub fn build(self) -> Result<Tracepost, BuildError> {
        let own = match self.worker_runtime {
            WorkerRuntime::Current => None,
            _ => Some(internal_runtime().map_err(BuildError::Runtime)?),
        };
        let runtime = match &own {
            Some(rt) => rt.clone(),
            None => tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        for (i, (name, _)) in self.sinks.iter().enumerate() {
            if self.sinks[..i].iter().any(|(n, _)| n == name) {
                return Err(BuildError::DuplicateSink(name.clone()));
            }
        }
        if let Some(rate) = self
            .sampling
            .iter()
            .map(|(_, r)| r)
            .chain(self.analytics_sampling.iter().map(|(_, r)| r))
            .find(|r| !(0.0..=1.0).contains(*r))
        {
            return Err(BuildError::Invalid {
                field: "sample",
                reason: format!("rate {rate} is not within 0..=1"),
            });
        }
        if self.metric_window < Duration::from_secs(1) {
            return Err(BuildError::Invalid {
                field: "metric_window",
                reason: "must be at least 1 s".into(),
            });
        }
        let _enter = runtime.enter();
        let (closing_tx, closing_rx) = watch::channel(None);
        let done = Arc::new(Done::default());
        let returns = Arc::new(Returns::default());
        let mut slots = Vec::new();
        let mut workers = Vec::new();
        for (_, spawn) in self.sinks {
            let (slot, task) = spawn(closing_rx.clone(), self.data_dir.as_ref(), returns.clone())?;
            let done = done.clone();
            done.running.fetch_add(1, Ordering::SeqCst);
            workers.push(tokio::spawn(async move {
                let _ = task.await;
                done.finished();
            }));
            slots.push(slot);
        }
        let inner = Arc::new(Inner {
            sinks: slots,
            closing: closing_tx,
            closed: AtomicBool::new(false),
            http: Arc::new(HttpMetrics::new(self.max_routes, self.metric_window)),
            app_metrics: self.app_metrics,
            stages: Stages::new(
                Enrich::new(self.resource).with_replay_links(self.replay_links),
                Redact::new(self.redactor),
                Sample::new(self.sampling).with_analytics(self.analytics_sampling),
            ),
            extensions: self.extensions,
            data_dir: self.data_dir.clone(),
            returns,
        });
        let handle = TracepostHandle { inner };
        for attach in self.attach {
            attach(&handle);
        }
        let window_task = tokio::spawn(flush_windows(handle.clone()));
        Ok(Tracepost {
            handle,
            workers,
            window_task: Some(window_task),
            done,
            shut: false,
            runtime: own,
        })
    }
}

/// A sink name labels metrics and names the spool directory: keep it short and path-safe.
fn validate_sink_name(name: &str) -> Result<(), BuildError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(BuildError::Invalid {
            field: "sink name",
            reason: format!(
                "{name:?}: use 1 to 64 letters, digits, '_', '-' or '.' (it names the spool directory)"
            ),
        })
    }
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
