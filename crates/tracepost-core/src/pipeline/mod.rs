//! The delivery pipeline: enrich → fingerprint → sample → one bounded queue and worker per sink.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tracepost_core::BuildError> {
//! use std::time::Duration;
//! use tracepost_core::{sinks::Console, Event, Kind, Level, Tracepost};
//!
//! let tp = Tracepost::builder().service("shop-api").sink(Console::default()).build()?;
//! tp.handle().capture(Event::new(Kind::Log, Level::Info, "hello"));
//! let report = tp.shutdown(Duration::from_secs(5)).await;
//! assert!(report.completed);
//! # Ok(()) }
//! ```

mod options;
mod spool;
mod stats;
mod worker;

pub use options::{BatchOptions, RetryOptions, SinkOptions};
pub use spool::{FsyncPolicy, PushOutcome, Spool, SpoolFullPolicy, SpoolOptions};
pub use stats::{DropReason, Health, SinkCounts, SinkStats};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::event::{Event, Kind, Level, Resource};
use crate::fingerprint::fingerprint;
use crate::metrics::{HttpMetrics, TextWriter};
use crate::redact::Redactor;
use crate::sink::Sink;

/// Why [`Builder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `build()` spawns the sink workers on the current Tokio runtime.
    #[error("Tracepost::build() must be called inside a Tokio runtime (e.g. in #[tokio::main])")]
    NoRuntime,
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

type SpawnFn = Box<
    dyn FnOnce(worker::Closing, Option<&PathBuf>) -> Result<(SinkSlot, JoinHandle<()>), BuildError>
        + Send,
>;

/// Configures and starts a [`Tracepost`] pipeline. Created by [`Tracepost::builder`].
#[must_use = "call .build() to start the pipeline"]
pub struct Builder {
    resource: Resource,
    sinks: Vec<(String, SpawnFn)>,
    redactor: Redactor,
    sampling: Vec<(Kind, f64)>,
    metric_window: Duration,
    max_routes: usize,
    data_dir: Option<PathBuf>,
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
    fn new() -> Self {
        Builder {
            resource: Resource {
                service: std::env::var("OTEL_SERVICE_NAME")
                    .unwrap_or_else(|_| "unknown_service".into()),
                environment: std::env::var("TRACEPOST_ENVIRONMENT").ok(),
                release: std::env::var("TRACEPOST_RELEASE").ok(),
                host: hostname(),
            },
            sinks: Vec::new(),
            redactor: Redactor::default(),
            sampling: Vec::new(),
            metric_window: Duration::from_secs(60),
            max_routes: 1000,
            data_dir: None,
        }
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
    pub fn sink_with<S: Sink>(mut self, sink: S, options: SinkOptions) -> Self {
        let name = sink.name().to_owned();
        let spawn_name = name.clone();
        let spawn: SpawnFn = Box::new(move |closing, data_dir| {
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
            let sink = Arc::new(sink);
            let metrics: MetricsFn = {
                let sink = sink.clone();
                Box::new(move || sink.render_metrics())
            };
            let task = tokio::spawn(worker::run(
                sink,
                options.clone(),
                rx,
                stats.clone(),
                closing,
                spool,
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

    /// The redaction rules used by the middleware (default: [`Redactor::default`]).
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

    /// Validates the settings and starts one worker per sink on the current Tokio runtime.
    pub fn build(self) -> Result<Tracepost, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        for (i, (name, _)) in self.sinks.iter().enumerate() {
            if self.sinks[..i].iter().any(|(n, _)| n == name) {
                return Err(BuildError::DuplicateSink(name.clone()));
            }
        }
        if let Some((_, rate)) = self.sampling.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
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
        let mut slots = Vec::new();
        let mut workers = Vec::new();
        for (_, spawn) in self.sinks {
            let (slot, task) = spawn(closing_rx.clone(), self.data_dir.as_ref())?;
            let done = done.clone();
            done.running.fetch_add(1, Ordering::SeqCst);
            workers.push(tokio::spawn(async move {
                let _ = task.await;
                done.finished();
            }));
            slots.push(slot);
        }
        let inner = Arc::new(Inner {
            resource: self.resource,
            sinks: slots,
            closing: closing_tx,
            closed: AtomicBool::new(false),
            http: Arc::new(HttpMetrics::new(self.max_routes, self.metric_window)),
            redactor: self.redactor,
            sampling: self.sampling,
            sampled_out: AtomicU64::new(0),
        });
        let handle = TracepostHandle { inner };
        let window_task = tokio::spawn(flush_windows(handle.clone()));
        Ok(Tracepost {
            handle,
            workers,
            window_task: Some(window_task),
            done,
            shut: false,
        })
    }
}

type MetricsFn = Box<dyn Fn() -> String + Send + Sync>;

struct SinkSlot {
    tx: mpsc::Sender<Arc<Event>>,
    stats: Arc<SinkStats>,
    options: SinkOptions,
    /// The sink's own metrics (`Sink::render_metrics`).
    metrics: MetricsFn,
}

struct Inner {
    resource: Resource,
    sinks: Vec<SinkSlot>,
    closing: watch::Sender<Option<tokio::time::Instant>>,
    closed: AtomicBool,
    http: Arc<HttpMetrics>,
    redactor: Redactor,
    sampling: Vec<(Kind, f64)>,
    sampled_out: AtomicU64,
}

/// Counts running workers so a synchronous `Drop` can wait for them.
#[derive(Default)]
struct Done {
    running: AtomicU64,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Done {
    fn finished(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.cv.notify_all();
    }

    fn wait(&self, deadline: Duration) -> bool {
        let start = Instant::now();
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.running.load(Ordering::SeqCst) > 0 {
            let Some(left) = deadline.checked_sub(start.elapsed()) else {
                return false;
            };
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// A cheap, cloneable handle to capture events into the pipeline. Capture never blocks and
/// never fails: when a sink's queue is full, the event is dropped for that sink and counted.
#[derive(Clone)]
pub struct TracepostHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TracepostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracepostHandle")
            .field("service", &self.inner.resource.service)
            .finish_non_exhaustive()
    }
}

impl TracepostHandle {
    /// Enriches the event with the resource fields, fingerprints errors, samples, and enqueues
    /// it for every sink that accepts its kind and level. Never waits.
    pub fn capture(&self, mut event: Event) {
        let inner = &*self.inner;
        if let Some((_, rate)) = inner.sampling.iter().find(|(k, _)| *k == event.kind) {
            if *rate < 1.0 && rand::random::<f64>() >= *rate {
                inner.sampled_out.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if event.resource.service.is_empty() {
            event.resource.service.clone_from(&inner.resource.service);
        }
        if event.resource.environment.is_none() {
            event
                .resource
                .environment
                .clone_from(&inner.resource.environment);
        }
        if event.resource.release.is_none() {
            event.resource.release.clone_from(&inner.resource.release);
        }
        if event.resource.host.is_none() {
            event.resource.host.clone_from(&inner.resource.host);
        }
        if event.kind == Kind::Error && event.fingerprint.is_none() {
            let (ty, msg, bt) = match &event.error {
                Some(e) => (
                    e.error_type.as_str(),
                    e.message.as_str(),
                    e.backtrace.as_deref(),
                ),
                None => ("error", event.message.as_str(), None),
            };
            let route = event
                .request
                .as_ref()
                .map(|r| format!("{} {}", r.method, r.route));
            event.fingerprint = Some(fingerprint(ty, msg, bt, route.as_deref()));
        }
        let event = Arc::new(event);
        let closed = inner.closed.load(Ordering::Relaxed);
        for slot in &inner.sinks {
            if !slot.options.accepts(event.kind, event.level) {
                continue;
            }
            if closed {
                slot.stats.dropped(DropReason::Shutdown, 1);
                continue;
            }
            match slot.tx.try_send(event.clone()) {
                Ok(()) => slot.stats.queued(),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.stats.dropped(DropReason::QueueFull, 1);
                    warn_throttled(
                        &slot.stats.name,
                        "queue full; dropping events (see tracepost_events_dropped_total)",
                    );
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    slot.stats.dropped(DropReason::Shutdown, 1)
                }
            }
        }
    }

    /// The resource fields put on every event.
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }

    /// The HTTP metrics registry the middleware records into.
    pub fn http_metrics(&self) -> &Arc<HttpMetrics> {
        &self.inner.http
    }

    /// The redaction rules.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// Each sink's name and counters.
    pub fn sink_counts(&self) -> Vec<(String, SinkCounts)> {
        self.inner
            .sinks
            .iter()
            .map(|s| (s.stats.name.clone(), s.stats.counts()))
            .collect()
    }

    /// Each sink's state, for a health endpoint.
    pub fn health(&self) -> HealthReport {
        let sinks: Vec<SinkHealth> = self
            .inner
            .sinks
            .iter()
            .map(|s| SinkHealth {
                name: s.stats.name.clone(),
                state: s.stats.health(),
                last_error: s.stats.last_error(),
                queued_events: s.stats.queue_capacity - s.tx.capacity(),
                spool_bytes: s.stats.spool_bytes(),
                oldest_spooled_age: s.stats.spool_oldest_age(),
            })
            .collect();
        let state = sinks
            .iter()
            .map(|s| s.state)
            .max_by_key(|h| *h as u8)
            .unwrap_or(Health::Up);
        HealthReport { state, sinks }
    }

    /// True once shutdown has begun.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// The HTTP metrics and the pipeline's self-metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut w = TextWriter::new();
        self.inner.http.render(&mut w);
        let sinks: Vec<_> = self
            .inner
            .sinks
            .iter()
            .map(|s| (&*s.stats, s.stats.queue_capacity - s.tx.capacity()))
            .collect();
        stats::render(&mut w, &sinks);
        w.family(
            "tracepost_events_sampled_out_total",
            "counter",
            "Events dropped by sampling.",
        );
        w.sample(
            "tracepost_events_sampled_out_total",
            &[],
            self.inner.sampled_out.load(Ordering::Relaxed) as f64,
        );
        let mut out = w.finish();
        for slot in &self.inner.sinks {
            out.push_str(&(slot.metrics)());
        }
        out
    }

    fn flush_windows_now(&self, start: SystemTime) {
        for window in self.inner.http.take_windows(start) {
            let message = format!(
                "{} {}: {} requests, {} errors, p99 {} ms",
                window.method, window.route, window.count, window.errors, window.p99_ms
            );
            let mut event = Event::new(Kind::MetricWindow, Level::Info, message);
            event.metric = Some(window);
            self.capture(event);
        }
    }
}

async fn flush_windows(handle: TracepostHandle) {
    let window = handle.inner.http.window();
    loop {
        let start = SystemTime::now();
        // Sleep to the next window boundary so windows align to wall-clock minutes.
        let since_epoch = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let into = Duration::from_nanos((since_epoch.as_nanos() % window.as_nanos()) as u64);
        tokio::time::sleep(window - into).await;
        handle.flush_windows_now(start);
    }
}

fn warn_throttled(sink: &str, message: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(target: "tracepost::pipeline", sink, "{message}");
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

/// The running pipeline. Keep it alive for as long as the application runs; call
/// [`Tracepost::shutdown`] at the end (dropping it instead flushes best-effort for 5 s).
#[must_use = "dropping the Tracepost shuts the pipeline down; keep it until the app exits"]
pub struct Tracepost {
    handle: TracepostHandle,
    workers: Vec<JoinHandle<()>>,
    window_task: Option<JoinHandle<()>>,
    done: Arc<Done>,
    shut: bool,
}

impl std::fmt::Debug for Tracepost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracepost")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// The pipeline's health: the worst state of any sink, and each sink's.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// `down` if any sink is down, else `degraded` if any is, else `up`.
    pub state: Health,
    /// Per sink.
    pub sinks: Vec<SinkHealth>,
}

impl HealthReport {
    /// The report as JSON (`{"status": "up", "sinks": [...]}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.state.as_str(),
            "sinks": self.sinks.iter().map(|s| serde_json::json!({
                "name": s.name,
                "state": s.state.as_str(),
                "last_error": s.last_error,
                "queued_events": s.queued_events,
                "spool_bytes": s.spool_bytes,
                "oldest_spooled_age_seconds": s.oldest_spooled_age.map(|d| d.as_secs()),
            })).collect::<Vec<_>>(),
        })
    }
}

/// One sink's health.
#[derive(Debug, Clone)]
pub struct SinkHealth {
    /// The sink's name.
    pub name: String,
    /// Up, degraded or down.
    pub state: Health,
    /// The last delivery error, while failing.
    pub last_error: Option<String>,
    /// Events waiting in memory.
    pub queued_events: usize,
    /// Bytes waiting in the disk spool.
    pub spool_bytes: u64,
    /// Age of the oldest spooled event.
    pub oldest_spooled_age: Option<Duration>,
}

/// What [`Tracepost::shutdown`] achieved.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    /// True if every sink drained before the deadline.
    pub completed: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// Final counters per sink.
    pub sinks: Vec<(String, SinkCounts)>,
}

impl Tracepost {
    /// Starts configuring a pipeline.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A cloneable handle for capturing events.
    pub fn handle(&self) -> TracepostHandle {
        self.handle.clone()
    }

    /// Stops accepting events; deliveries must stop by `deadline` minus a margin kept for
    /// parking what is left in the spools.
    fn begin_close(&mut self, deadline: Duration) {
        if self.shut {
            return;
        }
        let margin = (deadline / 5).min(Duration::from_secs(1));
        self.shut = true;
        if let Some(t) = self.window_task.take() {
            t.abort();
        }
        // The last, partial metric windows go out before the queues close.
        self.handle.flush_windows_now(SystemTime::now());
        self.handle.inner.closed.store(true, Ordering::SeqCst);
        let _ = self
            .handle
            .inner
            .closing
            .send(Some(tokio::time::Instant::now() + deadline - margin));
    }

    /// Stops accepting events, delivers everything queued, and returns by `deadline` even if
    /// a sink hangs: whatever is still undelivered then is counted as dropped (`shutdown`).
    /// Never blocks a runtime thread.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        self.begin_close(deadline);
        let workers = std::mem::take(&mut self.workers);
        let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
        let completed = tokio::time::timeout(deadline, async {
            for w in workers {
                let _ = w.await;
            }
        })
        .await
        .is_ok();
        if !completed {
            for a in aborts {
                a.abort();
            }
            self.count_abandoned();
        }
        ShutdownReport {
            completed,
            elapsed: started.elapsed(),
            sinks: self.handle.sink_counts(),
        }
    }

    /// Counts accepted events that were neither delivered nor dropped as dropped for `shutdown`.
    fn count_abandoned(&self) {
        for slot in &self.handle.inner.sinks {
            let c = slot.stats.counts();
            // Spooled events are kept, not lost; replayed ones count in `sent` as well.
            let settled = (c.sent - c.replayed.min(c.sent))
                + c.spooled
                + c.dropped(DropReason::Rejected)
                + c.dropped(DropReason::RetriesExhausted)
                + c.dropped(DropReason::Shutdown)
                + c.dropped(DropReason::SpoolFull);
            let abandoned = c.queued.saturating_sub(settled);
            if abandoned > 0 {
                tracing::warn!(target: "tracepost::pipeline", sink = %slot.stats.name, abandoned,
                    "shutdown deadline passed; undelivered events dropped");
                slot.stats.dropped(DropReason::Shutdown, abandoned);
            }
        }
    }
}

impl Drop for Tracepost {
    fn drop(&mut self) {
        if self.shut && self.workers.is_empty() {
            return;
        }
        let deadline = Duration::from_secs(5);
        self.begin_close(deadline);
        // Best effort: wait for the workers without ever blocking a current-thread runtime.
        let finished = match tokio::runtime::Handle::try_current() {
            Err(_) => self.done.wait(deadline),
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.done.wait(deadline))
            }
            Ok(_) => false,
        };
        if !finished {
            self.count_abandoned();
        }
    }
}
