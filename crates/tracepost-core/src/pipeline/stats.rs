//! The pipeline's self-metrics, per sink.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::metrics::{Histogram, BATCH_BUCKETS};
use crate::sink::{SinkError, SinkErrorClass, SinkErrorKind};

/// Why an event was dropped; each is a `reason` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The sink's queue was full.
    QueueFull,
    /// The sink refused the event for good.
    Rejected,
    /// Temporary failures outlasted the retries.
    RetriesExhausted,
    /// The pipeline was shut down (or its deadline passed) before delivery.
    Shutdown,
    /// The disk spool was full (or could not be written).
    SpoolFull,
}

/// A sink's state, as `/metrics` and the health endpoint report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The last delivery succeeded.
    Up,
    /// Retrying a temporary failure.
    Degraded,
    /// Deliveries are failing past their retries, or the destination refuses everything
    /// (events are kept in the spool or in memory, or dropped and counted).
    Down,
}

impl Health {
    /// The label value: `up`, `degraded` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::Rejected,
        DropReason::RetriesExhausted,
        DropReason::Shutdown,
        DropReason::SpoolFull,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Rejected => "rejected",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Shutdown => "shutdown",
            DropReason::SpoolFull => "spool_full",
        }
    }
}

/// Counters of one sink.
#[derive(Debug)]
pub struct SinkStats {
    pub(crate) name: String,
    queued: AtomicU64,
    sent: AtomicU64,
    retried: AtomicU64,
    dropped: [AtomicU64; 5],
    batch_latency: Histogram,
    pub(crate) queue_capacity: usize,
    last_error: Mutex<Option<String>>,
    health: AtomicU8,
    spooled: AtomicU64,
    replayed: AtomicU64,
    panics: AtomicU64,
    spool_bytes: AtomicU64,
    /// Unix seconds of the oldest spooled event (0: none).
    spool_oldest: AtomicU64,
    spool_corrupt: AtomicU64,
    pub(crate) spool_enabled: bool,
    /// Rejected events by the sink's reason (a small set by contract).
    rejected_by_reason: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Failed sends by error class and kind (both small closed sets).
    errors: Mutex<std::collections::BTreeMap<(SinkErrorClass, SinkErrorKind), u64>>,
}

/// A copy of one sink's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events the sink confirmed.
    pub sent: u64,
    /// Batch retries.
    pub retried: u64,
    /// Dropped events by reason label.
    pub dropped: Vec<(&'static str, u64)>,
    /// Events written to the disk spool.
    pub spooled: u64,
    /// Spooled events delivered later.
    pub replayed: u64,
    /// Panics caught in the sink's code.
    pub panics: u64,
}

impl SinkCounts {
    /// Dropped events for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason.as_str())
            .map_or(0, |(_, n)| *n)
    }

    /// All dropped events.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

impl SinkStats {
    pub(crate) fn new(name: String, queue_capacity: usize, spool_enabled: bool) -> Self {
        SinkStats {
            name,
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: Default::default(),
            batch_latency: Histogram::new(BATCH_BUCKETS, 1e6),
            queue_capacity,
            last_error: Mutex::new(None),
            health: AtomicU8::new(0),
            spooled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(0),
            spool_oldest: AtomicU64::new(0),
            spool_corrupt: AtomicU64::new(0),
            spool_enabled,
            rejected_by_reason: Mutex::new(std::collections::BTreeMap::new()),
            errors: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deliveries fail past their retries, or the destination refuses everything: the
    /// sink is `down` with this error. Said once in the log, when the state changes.
    pub(crate) fn set_down(&self, error: &SinkError) {
        self.set_last_error(Some(error.to_string()));
        let before = self.health.swap(Health::Down as u8, Ordering::Relaxed);
        if before != Health::Down as u8 {
            if error.is_refused() {
                tracing::warn!(target: "tracepost::pipeline", sink = %self.name, error = %error,
                    class = error.class().as_str(), kind = error.kind().as_str(),
                    "the destination refuses every event; keeping them and retrying slowly until it accepts again");
            } else {
                tracing::warn!(target: "tracepost::pipeline", sink = %self.name, error = %error,
                    class = error.class().as_str(), kind = error.kind().as_str(),
                    "sink is down; keeping events and retrying");
            }
        }
    }

    /// A delivery succeeded: `up`, and the recovery said once in the log.
    pub(crate) fn set_up(&self) {
        let before = self.health.swap(Health::Up as u8, Ordering::Relaxed);
        if before == Health::Down as u8 {
            tracing::info!(target: "tracepost::pipeline", sink = %self.name, "sink is delivering again");
        }
        if self.last_error.lock().is_some() {
            self.set_last_error(None);
        }
    }

    /// Counts one failed send by class and kind (`tracepost_sink_errors_total`).
    pub(crate) fn error(&self, e: &SinkError) {
        *self.errors.lock().entry((e.class(), e.kind())).or_default() += 1;
    }

    /// Failed sends so far, by error class and kind.
    pub fn errors(&self) -> Vec<(SinkErrorClass, SinkErrorKind, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|((c, k), n)| (*c, *k, *n))
            .collect()
    }

    /// A delivery is being retried: `up` becomes `degraded`; `down` stays down until a
    /// delivery succeeds.
    pub(crate) fn mark_retrying(&self) {
        let _ = self.health.compare_exchange(
            Health::Up as u8,
            Health::Degraded as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The sink's current state.
    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            0 => Health::Up,
            1 => Health::Degraded,
            _ => Health::Down,
        }
    }

    pub(crate) fn spooled(&self, n: u64) {
        self.spooled.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn replayed(&self, n: u64) {
        // `sent` was counted on delivery; this only tells how much of it came from the spool.
        self.replayed.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts one event refused for `reason` (also counted as dropped, `rejected`).
    pub(crate) fn rejected(&self, reason: &str) {
        self.dropped(DropReason::Rejected, 1);
        let mut map = self.rejected_by_reason.lock();
        // A sink with unbounded reasons must not grow this without limit.
        let key = if map.contains_key(reason) || map.len() < 64 {
            reason
        } else {
            "other"
        };
        *map.entry(key.to_owned()).or_default() += 1;
    }

    pub(crate) fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_spool(&self, bytes: u64, oldest_age: Option<Duration>, corrupt: u64) {
        self.spool_bytes.store(bytes, Ordering::Relaxed);
        let oldest = oldest_age
            .and_then(|age| SystemTime::now().checked_sub(age))
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs().max(1));
        self.spool_oldest.store(oldest, Ordering::Relaxed);
        self.spool_corrupt.store(corrupt, Ordering::Relaxed);
    }

    /// Bytes in the sink's spool.
    pub fn spool_bytes(&self) -> u64 {
        self.spool_bytes.load(Ordering::Relaxed)
    }

    /// Age of the oldest spooled event.
    pub fn spool_oldest_age(&self) -> Option<Duration> {
        match self.spool_oldest.load(Ordering::Relaxed) {
            0 => None,
            secs => {
                let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                Some(SystemTime::now().duration_since(t).unwrap_or_default())
            }
        }
    }

    pub(crate) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.dropped[i].fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn batch_latency(&self, secs: f64) {
        self.batch_latency.record(secs);
    }
    pub(crate) fn set_last_error(&self, e: Option<String>) {
        *self.last_error.lock() = e;
    }

    /// The counters now.
    pub fn counts(&self) -> SinkCounts {
        SinkCounts {
            queued: self.queued.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: DropReason::ALL
                .iter()
                .enumerate()
                .map(|(i, r)| (r.as_str(), self.dropped[i].load(Ordering::Relaxed)))
                .collect(),
            spooled: self.spooled.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
        }
    }

    /// The last delivery error, if the last attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

/// Encodes the self-metrics of every sink; `sinks` pairs each with its current queue length.
pub(crate) fn encode(
    e: &mut DescriptorEncoder<'_>,
    sinks: &[(&SinkStats, usize)],
) -> Result<(), std::fmt::Error> {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    // One family with one sample per sink (per spooling sink when `spool_only`). Counter
    // families are named without `_total`: the encoder appends it to the samples.
    let mut family = |name: &str,
                      kind: MetricType,
                      help: &str,
                      spool_only: bool,
                      value: &dyn Fn(&SinkStats, usize) -> u64|
     -> Result<(), std::fmt::Error> {
        let mut f = e.encode_descriptor(name, help, None, kind)?;
        for (s, depth) in sinks.iter().filter(|(s, _)| !spool_only || s.spool_enabled) {
            let labels = [("sink", s.name.as_str())];
            let mut m = f.encode_family(&labels)?;
            let v = value(s, *depth);
            match kind {
                MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&v, None)?,
                _ => m.encode_gauge(&v)?,
            }
        }
        Ok(())
    };
    use MetricType::{Counter, Gauge};
    family(
        "tracepost_events_queued",
        Counter,
        "Events accepted into a sink's queue.",
        false,
        &|s, _| load(&s.queued),
    )?;
    family(
        "tracepost_events_sent",
        Counter,
        "Events a sink confirmed as delivered.",
        false,
        &|s, _| load(&s.sent),
    )?;
    family(
        "tracepost_batches_retried",
        Counter,
        "Batch deliveries retried after a temporary error.",
        false,
        &|s, _| load(&s.retried),
    )?;
    family(
        "tracepost_queue_events",
        Gauge,
        "Events waiting in a sink's queue.",
        false,
        &|_, depth| depth as u64,
    )?;
    family(
        "tracepost_queue_capacity_events",
        Gauge,
        "Capacity of a sink's queue.",
        false,
        &|s, _| s.queue_capacity as u64,
    )?;
    family(
        "tracepost_sink_panics",
        Counter,
        "Panics caught in a sink's code.",
        false,
        &|s, _| load(&s.panics),
    )?;
    family(
        "tracepost_spool_bytes",
        Gauge,
        "Bytes waiting in a sink's disk spool.",
        true,
        &|s, _| s.spool_bytes(),
    )?;
    family(
        "tracepost_spool_oldest_event_age_seconds",
        Gauge,
        "Age of the oldest event in a sink's spool (0: empty).",
        true,
        &|s, _| s.spool_oldest_age().map_or(0, |d| d.as_secs()),
    )?;
    family(
        "tracepost_spool_events_written",
        Counter,
        "Events written to a sink's spool.",
        true,
        &|s, _| load(&s.spooled),
    )?;
    family(
        "tracepost_spool_events_replayed",
        Counter,
        "Spooled events delivered.",
        true,
        &|s, _| load(&s.replayed),
    )?;
    family(
        "tracepost_spool_corrupt_records",
        Counter,
        "Damaged spool records found and skipped.",
        true,
        &|s, _| load(&s.spool_corrupt),
    )?;

    let mut f = e.encode_descriptor(
        "tracepost_events_dropped",
        "Events not delivered, by sink and reason.",
        None,
        Counter,
    )?;
    for (s, _) in sinks {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            f.encode_family(&[("sink", s.name.as_str()), ("reason", r.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&load(&s.dropped[i]), None)?;
        }
    }
    let mut f = e.encode_descriptor(
        "tracepost_events_rejected",
        "Events a sink refused for good, by the sink's reason.",
        None,
        Counter,
    )?;
    for (s, _) in sinks {
        for (reason, n) in s.rejected_by_reason.lock().iter() {
            f.encode_family(&[("sink", s.name.as_str()), ("reason", reason.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
    }
    let mut f = e.encode_descriptor(
        "tracepost_sink_errors",
        "Failed sends, by sink, error class (temporary, permanent, refused) and kind.",
        None,
        Counter,
    )?;
    for (s, _) in sinks {
        for (class, kind, n) in s.errors() {
            f.encode_family(&[
                ("sink", s.name.as_str()),
                ("class", class.as_str()),
                ("kind", kind.as_str()),
            ])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
    }
    let mut f = e.encode_descriptor(
        "tracepost_sink_health",
        "1 for the sink's current state (up, degraded, down).",
        None,
        Gauge,
    )?;
    for (s, _) in sinks {
        let current = s.health();
        for h in [Health::Up, Health::Degraded, Health::Down] {
            f.encode_family(&[("sink", s.name.as_str()), ("state", h.as_str())])?
                .encode_gauge(&u64::from(h == current))?;
        }
    }
    let mut f = e.encode_descriptor(
        "tracepost_batch_duration_seconds",
        "Time to deliver one batch, retries included.",
        None,
        MetricType::Histogram,
    )?;
    for (s, _) in sinks {
        s.batch_latency
            .encode(&mut f, &[("sink", s.name.as_str())])?;
    }
    Ok(())
}
