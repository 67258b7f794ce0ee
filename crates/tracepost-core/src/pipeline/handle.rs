//! [`TracepostHandle`]: how events enter the pipeline (the stages enrich → redact →
//! fingerprint → sample, then one queue per sink), plus health and `/metrics` rendering.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::health::{HealthReport, SinkHealth};
use super::stages::{Stages, Verdict};
use super::{DropReason, Health, SinkCounts, SinkOptions, SinkStats};
use crate::event::{Event, Kind, Level, Resource};
use crate::metrics::{HttpMetrics, MetricsRegistry};
use crate::redact::Redactor;
use crate::scope;

pub(super) struct SinkSlot {
    pub(super) tx: mpsc::Sender<Arc<Event>>,
    pub(super) stats: Arc<SinkStats>,
    pub(super) options: SinkOptions,
    /// The sink's own metrics (`Sink::register_metrics`).
    pub(super) metrics: prometheus_client::registry::Registry,
}

pub(super) struct Inner {
    pub(super) sinks: Vec<SinkSlot>,
    pub(super) closing: watch::Sender<Option<tokio::time::Instant>>,
    pub(super) closed: AtomicBool,
    pub(super) http: Arc<HttpMetrics>,
    pub(super) stages: Stages,
    /// The application's own metrics, written after tracepost's.
    pub(super) app_metrics: MetricsRegistry,
    /// Values stored with `Builder::extension`.
    pub(super) extensions: Extensions,
    /// `Builder::data_dir`.
    pub(super) data_dir: Option<std::path::PathBuf>,
    /// Delivered events, dropped one per capture on the capturing thread.
    pub(super) returns: Arc<super::returns::Returns>,
}

/// Values of any type, at most one per type (`Builder::extension`).
#[derive(Default)]
pub(super) struct Extensions(
    std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>,
);

impl Extensions {
    pub(super) fn insert<T: std::any::Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(std::any::TypeId::of::<T>(), Box::new(value));
    }

    fn get<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|v| v.downcast_ref())
    }
}

/// A cheap, cloneable handle to capture events into the pipeline. Capture never blocks and
/// never fails: when a sink's queue is full, the event is dropped for that sink and counted.
#[derive(Clone)]
pub struct TracepostHandle {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for TracepostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracepostHandle")
            .field("service", &self.resource().service)
            .finish_non_exhaustive()
    }
}

impl TracepostHandle {
    /// Runs the event through the [stages](super::stages) — enrich → redact → fingerprint →
    /// sample — and enqueues it for every sink that accepts its kind and level. Never waits.
    /// Whatever is logged while this runs is not captured again (see [`scope::is_internal`]).
    pub fn capture(&self, mut event: Event) {
        let _internal = scope::enter_internal();
        let inner = &*self.inner;
        if inner.stages.run(&mut event) == Verdict::Drop {
            return;
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
        // One delivered event freed here for the one captured (see `returns`).
        inner.returns.release();
    }

    /// Whether every sink's queue has room for `events` more events right now: `Err` names
    /// the first sink that hasn't (its queue holds more than capacity − `events`). Ingest
    /// routes ask before accepting a batch, so a client that is told `202` is not silently
    /// dropped by a full queue a moment later; they answer a retryable `503` instead. (A
    /// check, not a reservation: concurrent requests may still fill a queue, and what is
    /// dropped then is counted as `queue_full`.) After shutdown began: `Err` too.
    pub fn has_room_for(&self, events: usize) -> Result<(), QueueFull> {
        if self.is_closed() {
            return Err(QueueFull {
                sink: String::new(),
                free: 0,
            });
        }
        match self
            .inner
            .sinks
            .iter()
            .find(|slot| slot.tx.capacity() < events)
        {
            Some(slot) => Err(QueueFull {
                sink: slot.stats.name.clone(),
                free: slot.tx.capacity(),
            }),
            None => Ok(()),
        }
    }

    /// [`capture`](Self::capture) for a whole batch, all or nothing: runs the stages on every
    /// event, then reserves room for the kept ones in every sink's queue at once (tokio's
    /// `try_reserve_many`) and enqueues them only if every reservation succeeded. `Err` names
    /// the sink without room and nothing was enqueued — the ingest routes answer a retryable
    /// `503` then, so an event they acknowledged is never dropped for a full queue (a check
    /// before capturing raced concurrent batches: a tester saw 950 acknowledged events
    /// dropped). Returns how many events were kept by the stages.
    pub fn capture_all(&self, events: Vec<Event>) -> Result<usize, QueueFull> {
        let _internal = scope::enter_internal();
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            return Err(QueueFull {
                sink: String::new(),
                free: 0,
            });
        }
        let kept: Vec<Arc<Event>> = events
            .into_iter()
            .filter_map(|mut e| (inner.stages.run(&mut e) != Verdict::Drop).then(|| Arc::new(e)))
            .collect();
        let mut permits = Vec::with_capacity(inner.sinks.len());
        for slot in &inner.sinks {
            let n = kept
                .iter()
                .filter(|e| slot.options.accepts(e.kind, e.level))
                .count();
            if n == 0 {
                permits.push(None);
                continue;
            }
            match slot.tx.try_reserve_many(n) {
                Ok(p) => permits.push(Some(p)),
                // The permits taken so far are released as `permits` drops.
                Err(_) => {
                    return Err(QueueFull {
                        sink: slot.stats.name.clone(),
                        free: slot.tx.capacity(),
                    })
                }
            }
        }
        for (slot, permit) in inner.sinks.iter().zip(permits) {
            let Some(mut permit) = permit else { continue };
            for e in kept
                .iter()
                .filter(|e| slot.options.accepts(e.kind, e.level))
            {
                if let Some(p) = permit.next() {
                    p.send(e.clone());
                    slot.stats.queued();
                }
            }
        }
        Ok(kept.len())
    }

    /// The value of type `T` stored with `Builder::extension`, if any.
    pub fn extension<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.inner.extensions.get()
    }

    /// The directory given to `Builder::data_dir`, if any (plugins keep their own data
    /// under it: the replay segments of the facade's `replay` feature in `objects/`).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.inner.data_dir.as_deref()
    }

    /// The resource fields put on every event.
    pub fn resource(&self) -> &Resource {
        self.inner.stages.enrich().resource()
    }

    /// The HTTP metrics registry the middleware records into.
    pub fn http_metrics(&self) -> &Arc<HttpMetrics> {
        &self.inner.http
    }

    /// The processing stages every captured event passes.
    pub fn stages(&self) -> &Stages {
        &self.inner.stages
    }

    /// The redaction rules (the redact stage's).
    pub fn redactor(&self) -> &Redactor {
        self.inner.stages.redact().redactor()
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

    pub(super) fn flush_windows_now(&self, start: SystemTime) {
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

pub(super) async fn flush_windows(handle: TracepostHandle) {
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
        let message = crate::escape_control(message);
        tracing::warn!(target: "tracepost::pipeline", sink, "{message}");
    }
}

/// [`TracepostHandle::has_room_for`]'s answer when a sink's queue is too full (`sink` is
/// empty once shutdown has begun).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull {
    /// The sink whose queue has no room.
    pub sink: String,
    /// The events its queue could still take.
    pub free: usize,
}

impl std::fmt::Display for QueueFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sink.is_empty() {
            f.write_str("the pipeline is shutting down")
        } else {
            write!(
                f,
                "the queue of sink {:?} is full ({} free)",
                self.sink, self.free
            )
        }
    }
}
