//! The live tail: a sink that the pipeline feeds after redaction, fanned out to Server-Sent
//! Events clients through one bounded broadcast ring. Shared by the console's live tail
//! page and the query API's `GET /tracepost/api/tail` (one hub can serve both).
//!
//! * **Never blocks**: [`TailSink::send`] hands each event to a
//!   [`tokio::sync::broadcast`] channel, which overwrites its oldest slot when full; the
//!   pipeline's queue for this sink is memory-only and small, and a full queue drops (counted
//!   by the pipeline as `queue_full`) rather than waiting.
//! * **Bounded memory**: the ring holds `capacity` events whatever the clients do; at most
//!   `max_clients` streams at once (more get `503`).
//! * **Slow clients**: a client that falls more than `capacity` events behind is told
//!   (`event: missed`, `data: {"missed": N}`), the events it missed are counted in
//!   [`TailStats::missed`], and it continues from the oldest event still in the ring; the
//!   pipeline and the other clients never wait for it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::{Batch, BatchOptions, Event, RetryOptions, Sink, SinkError, SinkOptions, SinkOutcome};

/// Default ring size of [`LiveTail::new`]: events kept for clients that fall behind.
pub const DEFAULT_TAIL_CAPACITY: usize = 1024;

/// Default limit of concurrent tail clients.
pub const DEFAULT_MAX_CLIENTS: usize = 32;

/// The live tail's hub: add [`LiveTail::sink`] to the pipeline, hand the hub to the
/// console (`ConsoleBuilder::live_tail`) and/or the query API (`ApiConfig::live_tail` of
/// `tracepost-api`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveTail {
    inner: Arc<TailInner>,
}

#[derive(Debug)]
struct TailInner {
    tx: broadcast::Sender<Arc<Event>>,
    max_clients: usize,
    clients: AtomicUsize,
    missed: AtomicU64,
    published: AtomicU64,
    refused: AtomicU64,
}

/// The live tail's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailStats {
    /// Clients streaming now.
    pub clients: usize,
    /// Events handed to the ring since start.
    pub published: u64,
    /// Events slow clients missed (summed over clients).
    pub missed: u64,
    /// Streams refused because `max_clients` were connected.
    pub refused: u64,
}

impl Default for LiveTail {
    fn default() -> Self {
        Self::new(DEFAULT_TAIL_CAPACITY)
    }
}

impl LiveTail {
    /// A hub whose ring keeps the last `capacity` events (at least 16) for clients that fall
    /// behind, with at most [`DEFAULT_MAX_CLIENTS`] clients.
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, DEFAULT_MAX_CLIENTS)
    }

    /// A hub keeping `capacity` events (at least 16) for at most `max_clients` concurrent
    /// clients (at least 1; more are refused with `503`).
    pub fn with_limits(capacity: usize, max_clients: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        LiveTail {
            inner: Arc::new(TailInner {
                tx,
                max_clients: max_clients.max(1),
                clients: AtomicUsize::new(0),
                missed: AtomicU64::new(0),
                published: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// The sink to add to the pipeline (`Tracepost::builder().sink(tail.sink())`): it sees
    /// every event after enrichment, redaction, fingerprinting and sampling, like any sink.
    pub fn sink(&self) -> TailSink {
        TailSink { tail: self.clone() }
    }

    /// The counters.
    pub fn stats(&self) -> TailStats {
        let i = &self.inner;
        TailStats {
            clients: i.clients.load(Ordering::Relaxed),
            published: i.published.load(Ordering::Relaxed),
            missed: i.missed.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
        }
    }

    /// A new client's subscription, or `None` when `max_clients` are connected (counted in
    /// [`TailStats::refused`]). The client slot is released when the subscription drops.
    pub fn subscribe(&self) -> Option<TailSubscription> {
        let i = &self.inner;
        let taken = i
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < i.max_clients).then_some(n + 1)
            });
        if taken.is_err() {
            i.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(TailSubscription {
            rx: i.tx.subscribe(),
            tail: self.clone(),
        })
    }

    fn publish(&self, event: Arc<Event>) {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        // No receivers is not an error: nobody is watching.
        let _ = self.inner.tx.send(event);
    }
}

/// What a subscription yields next.
#[derive(Debug)]
pub enum TailItem {
    /// The next event.
    Event(Arc<Event>),
    /// The client fell behind and missed this many events.
    Missed(u64),
}

/// One client's place in the ring. Releases its client slot when dropped.
#[derive(Debug)]
pub struct TailSubscription {
    rx: broadcast::Receiver<Arc<Event>>,
    tail: LiveTail,
}

impl TailSubscription {
    /// Waits for the next event (or the news that some were missed); `None` once the hub is
    /// gone.
    pub async fn next(&mut self) -> Option<TailItem> {
        match self.rx.recv().await {
            Ok(e) => Some(TailItem::Event(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.tail.inner.missed.fetch_add(n, Ordering::Relaxed);
                Some(TailItem::Missed(n))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for TailSubscription {
    fn drop(&mut self) {
        self.tail.inner.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The pipeline side of [`LiveTail`]: named `live_tail`.
#[derive(Debug, Clone)]
pub struct TailSink {
    tail: LiveTail,
}

impl Sink for TailSink {
    fn name(&self) -> &str {
        "live_tail"
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        for event in batch {
            self.tail.publish(event);
        }
        Ok(SinkOutcome::default())
    }

    /// Small batches flushed every 50 ms, a 1 024-event queue, no retries and no spool:
    /// a live view has no use for old events, and must never hold the pipeline.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::default()
            .queue_capacity(1024)
            .batch(BatchOptions::new(256, 1 << 20, Duration::from_millis(50)))
            .retry(RetryOptions::new(
                0,
                Duration::from_millis(10),
                Duration::from_millis(10),
            ))
            .memory_only()
    }
}
