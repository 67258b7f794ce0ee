//! [`AlertEngine`]: a [`Sink`] that runs the rules on the event stream and delivers the
//! alerts they raise to [`Notifier`]s from its own task.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;
use tracepost_core::prometheus_client;
use tracepost_core::store::Store;
use tracepost_core::{
    Batch, Event, Kind, Level, Sink, SinkError, SinkOptions, SinkOutcome, TracepostHandle,
};

use crate::alert::{Alert, AlertKind};
use crate::config::{AlertRules, ConfigError};
use crate::known::KnownIssues;
use crate::rules::{RuleState, TEST_ATTRIBUTE};

/// Where alerts go: Discord, a JSON webhook, Slack, … Called from the engine's own task,
/// never from the request path.
///
/// A notifier splits what it is given into as many messages as its destination needs, waits
/// out its rate limits, and returns the [`SinkError`] of the first message that failed:
/// [refused](tracepost_core::SinkErrorClass::Refused) when the destination is gone for good
/// (the engine then stops using it), temporary otherwise (the engine retries the alerts a few
/// times, then counts them as failed).
pub trait Notifier: Send + Sync + 'static {
    /// A short name for metric labels and logs (`discord`, `webhook`, `slack`).
    fn name(&self) -> &str;

    /// How many alerts to hand over at once (Discord: 10 embeds per message).
    fn max_alerts_per_call(&self) -> usize {
        10
    }

    /// Delivers `alerts` (at most [`max_alerts_per_call`](Self::max_alerts_per_call)).
    fn notify<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// The engine's notion of time for its windows: a monotonic duration since any origin.
/// [`SystemClock`] in production; [`ManualClock`] to test 15-minute windows in milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, since the clock's origin.
    fn now(&self) -> Duration;
}

/// The monotonic clock of the machine ([`std::time::Instant`]).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that only moves when told to ([`advance`](Self::advance)). Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// Why [`AlertEngineBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertsError {
    /// A rule setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The known-issues file in the data dir could not be opened.
    #[error("cannot open the known issues in {dir}: {error}")]
    DataDir {
        /// The data dir.
        dir: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// tracepost's worker runtime, where the engine's task runs, could not start.
    #[error("cannot start the alert engine's task: {0}")]
    Runtime(std::io::Error),
}

/// Counters of one engine, as [`AlertEngine::stats`] reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertStats {
    /// Alerts the rules raised (before the cap).
    pub raised: u64,
    /// Alerts held back by `max_alerts_per_minute`.
    pub capped: u64,
    /// Alerts a notifier accepted (one per notifier).
    pub delivered: u64,
    /// Alerts a notifier failed to deliver after the retries, or skipped because it is gone.
    pub failed: u64,
    /// Occurrences folded into follow-ups instead of alerting.
    pub suppressed: u64,
    /// Fingerprints known (announced or seen before).
    pub known_issues: u64,
}

/// Configures an [`AlertEngine`]. Created by [`AlertEngine::builder`].
#[must_use = "call .build() to start the engine"]
pub struct AlertEngineBuilder {
    name: String,
    rules: AlertRules,
    notifiers: Vec<Arc<dyn Notifier>>,
    data_dir: Option<PathBuf>,
    store: Option<Arc<dyn Store>>,
    link_template: Option<String>,
    clock: Arc<dyn Clock>,
    group_wait: Duration,
    tick: Duration,
}

impl std::fmt::Debug for AlertEngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEngineBuilder")
            .field("name", &self.name)
            .field("rules", &self.rules)
            .field(
                "notifiers",
                &self.notifiers.iter().map(|n| n.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AlertEngineBuilder {
    /// The sink's name in the pipeline (default `alerts`); its own health is not alerted on.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The rules (default [`AlertRules::default`]).
    pub fn rules(mut self, rules: AlertRules) -> Self {
        self.rules = rules;
        self
    }

    /// Adds a destination. Every alert goes to every notifier.
    pub fn notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifiers.push(Arc::new(notifier));
        self
    }

    /// Remembers announced fingerprints in `dir/alerts/known_fingerprints`, so a restart does
    /// not announce known issues again (default: memory only). Use the pipeline's data dir.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Also treats the issues of `store` as known (the Postgres `issues` table, SQLite's),
    /// read once before the first event is judged (up to 100 000 most frequent).
    pub fn known_issues_from(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// A link on every issue alert: `{fingerprint}`, `{service}` and `{environment}` are
    /// replaced (URL-encoded). For example the query API filtered by fingerprint,
    /// `https://ops.example/api/events?fingerprint={fingerprint}`, or Grafana Explore.
    pub fn link_template(mut self, template: impl Into<String>) -> Self {
        self.link_template = Some(template.into());
        self
    }

    /// The clock of the rules' windows (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long the engine waits after an alert for others to go in the same message
    /// (default 2 s).
    pub fn group_wait(mut self, wait: Duration) -> Self {
        self.group_wait = wait;
        self
    }

    /// How often time-based rules (follow-ups, error rate, health) are evaluated (default
    /// 1 s, real time).
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = every;
        self
    }

    /// Validates the rules, loads the known issues and starts the engine's task on
    /// tracepost's worker runtime.
    pub fn build(self) -> Result<AlertEngine, AlertsError> {
        self.rules.validate()?;
        if self.tick.is_zero() {
            return Err(ConfigError::new("tick", "must be longer than 0").into());
        }
        let known = match &self.data_dir {
            Some(dir) => KnownIssues::open(dir).map_err(|error| AlertsError::DataDir {
                dir: dir.display().to_string(),
                error,
            })?,
            None => KnownIssues::in_memory(),
        };
        let metrics = Metrics::default();
        let shared = Arc::new(Shared {
            name: self.name,
            state: Mutex::new(RuleState::new(self.rules.clone(), known)),
            max_per_minute: self.rules.max_alerts_per_minute,
            outbox: Mutex::new(Vec::new()),
            wake: Notify::new(),
            closing: tokio::sync::watch::Sender::new(false),
            clock: self.clock,
            notifiers: self
                .notifiers
                .into_iter()
                .map(|n| (n, AtomicBool::new(false)))
                .collect(),
            handle: Mutex::new(None),
            store: self.store,
            seeded: tokio::sync::OnceCell::new(),
            link_template: self.link_template,
            group_wait: self.group_wait,
            tick: self.tick,
            cap: Mutex::new(Cap::default()),
            metrics,
            stats: Mutex::new(AlertStats::default()),
        });
        let rt = tracepost_core::pipeline::internal_runtime().map_err(AlertsError::Runtime)?;
        let task = rt.spawn(run(shared.clone()));
        Ok(AlertEngine {
            shared,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }
}

/// The alert engine: add it to the pipeline as a sink (it receives events after the redact
/// stage, like every sink, and never slows the request path) and give it notifiers. The
/// pipeline hands it its handle when built (`Sink::attach`), for the health rule.
///
/// ```no_run
/// # fn demo(notifier: impl tracepost_alerts::Notifier) -> Result<(), Box<dyn std::error::Error>> {
/// use tracepost_alerts::AlertEngine;
/// use tracepost_core::Tracepost;
///
/// let alerts = AlertEngine::builder().notifier(notifier).data_dir("/var/lib/shop").build()?;
/// let tp = Tracepost::builder().data_dir("/var/lib/shop").sink(alerts.clone()).build()?;
/// # Ok(()) }
/// ```
///
/// Clones share the engine.
#[derive(Clone)]
pub struct AlertEngine {
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for AlertEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEngine")
            .field("name", &self.shared.name)
            .field(
                "notifiers",
                &self
                    .shared
                    .notifiers
                    .iter()
                    .map(|(n, _)| n.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

struct Shared {
    name: String,
    state: Mutex<RuleState>,
    max_per_minute: u32,
    outbox: Mutex<Vec<Alert>>,
    wake: Notify,
    /// True once the pipeline shuts down (a watch: a waiter arriving late still sees it).
    closing: tokio::sync::watch::Sender<bool>,
    clock: Arc<dyn Clock>,
    /// Each notifier and whether it is gone (refused for good).
    notifiers: Vec<(Arc<dyn Notifier>, AtomicBool)>,
    /// The pipeline, for the health rule: from `Sink::attach` or `watch`, released at shutdown.
    handle: Mutex<Option<TracepostHandle>>,
    store: Option<Arc<dyn Store>>,
    seeded: tokio::sync::OnceCell<()>,
    link_template: Option<String>,
    group_wait: Duration,
    tick: Duration,
    cap: Mutex<Cap>,
    metrics: Metrics,
    stats: Mutex<AlertStats>,
}

#[derive(Default)]
struct Cap {
    minute: u64,
    sent: u32,
    held: u64,
    held_titles: Vec<String>,
}

#[derive(Default)]
struct Metrics {
    raised: Family<Vec<(String, String)>, Counter>,
    delivered: Family<Vec<(String, String)>, Counter>,
    failed: Family<Vec<(String, String)>, Counter>,
    capped: Counter,
    suppressed: Counter,
}

impl AlertEngine {
    /// Starts configuring an engine with the default rules and no notifier.
    pub fn builder() -> AlertEngineBuilder {
        AlertEngineBuilder {
            name: "alerts".into(),
            rules: AlertRules::default(),
            notifiers: Vec::new(),
            data_dir: None,
            store: None,
            link_template: None,
            clock: Arc::new(SystemClock::default()),
            group_wait: Duration::from_secs(2),
            tick: Duration::from_secs(1),
        }
    }

    /// Lets the health rule read the pipeline's sink states and drop counters. The
    /// pipeline's `build()` does this for the pipeline the engine is a sink of; call it only
    /// to watch another one.
    pub fn watch(&self, handle: TracepostHandle) {
        *self.shared.handle.lock() = Some(handle);
    }

    /// The engine's counters.
    pub fn stats(&self) -> AlertStats {
        let mut s = self.shared.stats.lock().clone();
        let state = self.shared.state.lock();
        s.suppressed = state.suppressed_total;
        drop(state);
        s.known_issues = self.shared.state.lock().known_mut().len() as u64;
        s
    }

    /// Queues an alert for delivery as if a rule had raised it (it counts against the cap
    /// unless it is a test alert).
    pub fn raise(&self, alert: Alert) {
        self.shared.enqueue(vec![alert]);
    }
}

/// The event that makes the engine send a test alert: a `Kind::Alert` event with the
/// attribute `alert.rule = "test"`. Capture it ([`send_test_alert`]) so it takes the
/// pipeline's path (and is stored by the other sinks too).
pub fn test_alert_event(message: impl Into<String>) -> Event {
    Event::new(Kind::Alert, Level::Info, message).with_attribute(TEST_ATTRIBUTE, "test")
}

/// Sends a test alert through the pipeline to every notifier of every alert engine in it.
pub fn send_test_alert(handle: &TracepostHandle) {
    handle.capture(test_alert_event(
        "This is a test alert from tracepost: the alert wiring works.",
    ));
}

impl Shared {
    fn enqueue(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        {
            let mut stats = self.stats.lock();
            stats.raised += alerts.len() as u64;
            for a in &alerts {
                self.metrics
                    .raised
                    .get_or_create(&vec![("rule".into(), a.kind.as_str().into())])
                    .inc();
            }
        }
        self.outbox.lock().extend(alerts);
        self.wake.notify_one();
    }

    fn all_gone(&self) -> Option<String> {
        if self.notifiers.is_empty()
            || !self.notifiers.iter().all(|(_, g)| g.load(Ordering::SeqCst))
        {
            return None;
        }
        Some(
            self.notifiers
                .iter()
                .map(|(n, _)| n.name())
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    fn tick(&self) {
        let now = self.clock.now();
        let handle = self.handle.lock().clone();
        let health = handle.map(|h| (h.health(), h.sink_counts()));
        let alerts = {
            let mut state = self.state.lock();
            state.on_tick(
                now,
                health
                    .as_ref()
                    .map(|(r, c)| (r, c.as_slice(), self.name.as_str())),
            )
        };
        self.metrics
            .suppressed
            .inner()
            .store(self.state.lock().suppressed_total, Ordering::Relaxed);
        self.enqueue(alerts);
        self.roll_cap(now);
    }

    /// At a new minute, one alert summing up what the cap held back.
    fn roll_cap(&self, now: Duration) {
        let minute = now.as_secs() / 60;
        let mut cap = self.cap.lock();
        if minute == cap.minute {
            return;
        }
        cap.minute = minute;
        cap.sent = 0;
        if cap.held == 0 {
            return;
        }
        let held = std::mem::take(&mut cap.held);
        let titles = std::mem::take(&mut cap.held_titles);
        drop(cap);
        let mut description = format!(
            "{held} alert{} over the cap of {} per minute were not sent. Some of them:\n",
            if held == 1 { "" } else { "s" },
            self.max_per_minute
        );
        for t in titles {
            description.push_str("• ");
            description.push_str(&t);
            description.push('\n');
        }
        let a = Alert::new(
            AlertKind::CapReached,
            Level::Warn,
            format!("{held} more alerts held back"),
        )
        .with_description(description)
        .with_count(held);
        self.outbox.lock().push(a);
        self.wake.notify_one();
    }

    /// Applies the cap and the link template.
    fn admit(&self, alerts: Vec<Alert>) -> Vec<Alert> {
        let now = self.clock.now();
        self.roll_cap(now);
        let mut cap = self.cap.lock();
        let mut out = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            let exempt = matches!(a.kind, AlertKind::Test | AlertKind::CapReached);
            if !exempt {
                if cap.sent >= self.max_per_minute {
                    cap.held += 1;
                    if cap.held_titles.len() < 10 {
                        cap.held_titles.push(a.title.clone());
                    }
                    self.metrics.capped.inc();
                    self.stats.lock().capped += 1;
                    continue;
                }
                cap.sent += 1;
            }
            if let (Some(t), Some(fp)) = (&self.link_template, &a.fingerprint) {
                a.link = Some(fill_template(t, fp, &a.service, a.environment.as_deref()));
            }
            out.push(a);
        }
        out
    }

    async fn deliver(&self, alerts: Vec<Alert>) {
        let alerts = self.admit(alerts);
        if alerts.is_empty() {
            return;
        }
        for (notifier, gone) in &self.notifiers {
            let label = vec![("notifier".to_owned(), notifier.name().to_owned())];
            for chunk in alerts.chunks(notifier.max_alerts_per_call().max(1)) {
                let n = chunk.len() as u64;
                if gone.load(Ordering::SeqCst) {
                    self.metrics.failed.get_or_create(&label).inc_by(n);
                    self.stats.lock().failed += n;
                    continue;
                }
                match deliver_with_retries(notifier.as_ref(), chunk).await {
                    Ok(()) => {
                        self.metrics.delivered.get_or_create(&label).inc_by(n);
                        self.stats.lock().delivered += n;
                    }
                    Err(e) => {
                        if e.is_refused() {
                            gone.store(true, Ordering::SeqCst);
                            tracing::error!(target: "tracepost::alerts", notifier = notifier.name(),
                                error = %e, "the destination refuses alerts for good; no more requests will be sent to it");
                        } else {
                            tracing::warn!(target: "tracepost::alerts", notifier = notifier.name(),
                                error = %e, alerts = n, "alerts not delivered after retries");
                        }
                        self.metrics.failed.get_or_create(&label).inc_by(n);
                        self.stats.lock().failed += n;
                    }
                }
            }
        }
    }
}

/// Temporary failures are retried 3 times (1, 2, 4 s, or what the destination asked for).
async fn deliver_with_retries(notifier: &dyn Notifier, alerts: &[Alert]) -> Result<(), SinkError> {
    let mut attempt = 0u32;
    loop {
        match notifier.notify(alerts).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_temporary() && attempt < 3 => {
                let wait = e
                    .retry_after()
                    .unwrap_or(Duration::from_secs(1 << attempt))
                    .min(Duration::from_secs(60));
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn fill_template(template: &str, fingerprint: &str, service: &str, env: Option<&str>) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    template
        .replace("{fingerprint}", &enc(fingerprint))
        .replace("{service}", &enc(service))
        .replace("{environment}", &enc(env.unwrap_or("")))
}

/// The engine's task: evaluates the time-based rules every tick and delivers what the rules
/// raised, grouped over `group_wait`.
async fn run(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(shared.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = shared.closing.subscribe();
    loop {
        if !*closing.borrow() {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = ticker.tick() => shared.tick(),
                _ = closing.wait_for(|c| *c) => {}
            }
        }
        let pending = !shared.outbox.lock().is_empty();
        if pending && !*closing.borrow() {
            // Let alerts firing together arrive, so they share a message.
            tokio::select! {
                _ = tokio::time::sleep(shared.group_wait) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
        }
        let alerts = std::mem::take(&mut *shared.outbox.lock());
        if !alerts.is_empty() {
            shared.deliver(alerts).await;
        }
        if *closing.borrow() && shared.outbox.lock().is_empty() {
            return;
        }
    }
}

impl Sink for AlertEngine {
    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Errors, metric windows and test alerts; small batches, little linger: the rules want
    /// events promptly. Memory only: an alert about an hour-old spike helps nobody.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::default()
            .kinds([Kind::Error, Kind::MetricWindow, Kind::Alert])
            .min_level(Level::Trace)
            .batch(tracepost_core::BatchOptions::new(
                1000,
                1 << 20,
                Duration::from_millis(50),
            ))
            .memory_only()
    }

    fn send(
        &self,
        batch: Batch,
    ) -> impl std::future::Future<Output = Result<SinkOutcome, SinkError>> + Send {
        let shared = self.shared.clone();
        async move {
            if let Some(names) = shared.all_gone() {
                return Err(SinkError::refused(format!(
                    "every alert destination refuses for good ({names}); fix the configuration and restart"
                ))
                .with_kind(tracepost_core::SinkErrorKind::NotFound));
            }
            if let Some(store) = shared.store.clone() {
                let state = &shared.state;
                shared
                    .seeded
                    .get_or_try_init(|| async move {
                        let issues = store.top_issues(None, 100_000).await.map_err(|e| {
                            SinkError::temporary(format!(
                                "cannot read the known issues from the store: {e}"
                            ))
                        })?;
                        state
                            .lock()
                            .known_mut()
                            .extend(issues.into_iter().map(|i| i.fingerprint));
                        Ok::<(), SinkError>(())
                    })
                    .await?;
            }
            let now = shared.clock.now();
            let alerts: Vec<Alert> = {
                let mut state = shared.state.lock();
                batch.iter().flat_map(|e| state.on_event(e, now)).collect()
            };
            shared.enqueue(alerts);
            Ok(SinkOutcome::default())
        }
    }

    /// Watches the pipeline's health (see [`AlertEngine::watch`]).
    fn attach(&self, pipeline: &TracepostHandle) {
        self.watch(pipeline.clone());
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let m = &self.shared.metrics;
        registry.register(
            "tracepost_alerts_raised",
            "Alerts raised by the rules, by rule",
            m.raised.clone(),
        );
        registry.register(
            "tracepost_alerts_delivered",
            "Alerts delivered, by notifier",
            m.delivered.clone(),
        );
        registry.register(
            "tracepost_alerts_failed",
            "Alerts not delivered (after retries, or to a destination gone for good), by notifier",
            m.failed.clone(),
        );
        registry.register(
            "tracepost_alerts_capped",
            "Alerts held back by max_alerts_per_minute",
            m.capped.clone(),
        );
        registry.register(
            "tracepost_alerts_suppressed_occurrences",
            "Occurrences folded into follow-ups instead of alerting",
            m.suppressed.clone(),
        );
    }

    /// Delivers what is queued (without waiting for the group window) and stops the task.
    fn shutdown(&self) -> impl std::future::Future<Output = Result<(), SinkError>> + Send {
        let shared = self.shared.clone();
        let task = self.task.lock().take();
        async move {
            shared.closing.send_replace(true);
            if let Some(task) = task {
                let _ = task.await;
            }
            shared.handle.lock().take();
            Ok(())
        }
    }
}
