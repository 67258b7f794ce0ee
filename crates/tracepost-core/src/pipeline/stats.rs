//! The pipeline's self-metrics, per sink.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::metrics::{Histogram, TextWriter, BATCH_BUCKETS};

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
    /// The event was sampled out.
    Sampled,
}

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::Rejected,
        DropReason::RetriesExhausted,
        DropReason::Shutdown,
        DropReason::Sampled,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Rejected => "rejected",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Shutdown => "shutdown",
            DropReason::Sampled => "sampled",
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
    pub(crate) fn new(name: String, queue_capacity: usize) -> Self {
        SinkStats {
            name,
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: Default::default(),
            batch_latency: Histogram::new(BATCH_BUCKETS),
            queue_capacity,
            last_error: Mutex::new(None),
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
        }
    }

    /// The last delivery error, if the last attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

/// Writes the self-metrics of every sink; `depths` gives each sink's current queue length.
pub(crate) fn render(w: &mut TextWriter, sinks: &[(&SinkStats, usize)]) {
    w.family(
        "tracepost_events_queued_total",
        "counter",
        "Events accepted into a sink's queue.",
    );
    for (s, _) in sinks {
        w.sample(
            "tracepost_events_queued_total",
            &[("sink", &s.name)],
            s.queued.load(Ordering::Relaxed) as f64,
        );
    }
    w.family(
        "tracepost_events_sent_total",
        "counter",
        "Events a sink confirmed as delivered.",
    );
    for (s, _) in sinks {
        w.sample(
            "tracepost_events_sent_total",
            &[("sink", &s.name)],
            s.sent.load(Ordering::Relaxed) as f64,
        );
    }
    w.family(
        "tracepost_batches_retried_total",
        "counter",
        "Batch deliveries retried after a temporary error.",
    );
    for (s, _) in sinks {
        w.sample(
            "tracepost_batches_retried_total",
            &[("sink", &s.name)],
            s.retried.load(Ordering::Relaxed) as f64,
        );
    }
    w.family(
        "tracepost_events_dropped_total",
        "counter",
        "Events not delivered, by sink and reason.",
    );
    for (s, _) in sinks {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            let n = s.dropped[i].load(Ordering::Relaxed) as f64;
            w.sample(
                "tracepost_events_dropped_total",
                &[("sink", &s.name), ("reason", r.as_str())],
                n,
            );
        }
    }
    w.family(
        "tracepost_queue_events",
        "gauge",
        "Events waiting in a sink's queue.",
    );
    for (s, depth) in sinks {
        w.sample(
            "tracepost_queue_events",
            &[("sink", &s.name)],
            *depth as f64,
        );
    }
    w.family(
        "tracepost_queue_capacity_events",
        "gauge",
        "Capacity of a sink's queue.",
    );
    for (s, _) in sinks {
        w.sample(
            "tracepost_queue_capacity_events",
            &[("sink", &s.name)],
            s.queue_capacity as f64,
        );
    }
    w.family(
        "tracepost_batch_duration_seconds",
        "histogram",
        "Time to deliver one batch, retries included.",
    );
    for (s, _) in sinks {
        s.batch_latency
            .write(w, "tracepost_batch_duration_seconds", &[("sink", &s.name)]);
    }
}
