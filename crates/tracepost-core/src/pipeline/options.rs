//! Per-sink delivery settings.

use std::time::Duration;

use super::spool::SpoolOptions;
use crate::event::{Kind, Level};

/// How one sink's queue, batches and retries behave. `SinkOptions::default()` suits most sinks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Events the sink's queue holds before new ones are dropped (and counted). Default 10 000.
    pub queue_capacity: usize,
    /// When a batch is sent.
    pub batch: BatchOptions,
    /// How temporary failures are retried.
    pub retry: RetryOptions,
    /// Batches in flight at once. Default 2.
    pub max_in_flight: usize,
    /// A send that takes longer fails as temporary. Default 30 s.
    pub send_timeout: Duration,
    /// Only events at or above this level go to the sink. Default: all.
    pub min_level: Level,
    /// Only these kinds go to the sink (empty: all). Default: all.
    pub kinds: Vec<Kind>,
    /// The disk spool for what cannot be delivered. Default: none, or the builder's
    /// `data_dir`, under `spool/<sink name>`.
    pub spool: Option<SpoolOptions>,
    /// Turns the spool off for this sink even when the builder has a `data_dir`.
    pub memory_only: bool,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            queue_capacity: 10_000,
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
            max_in_flight: 2,
            send_timeout: Duration::from_secs(30),
            min_level: Level::Trace,
            kinds: Vec::new(),
            spool: None,
            memory_only: false,
        }
    }
}

impl SinkOptions {
    /// Sets the queue capacity.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Sets the batching rules.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Sets the retry rules.
    pub fn retry(mut self, retry: RetryOptions) -> Self {
        self.retry = retry;
        self
    }

    /// Sets how many batches may be in flight at once.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets the per-send timeout.
    pub fn send_timeout(mut self, d: Duration) -> Self {
        self.send_timeout = d;
        self
    }

    /// Only sends events at or above `level` (a [`Level`] or a `tracing::Level`).
    pub fn min_level(mut self, level: impl Into<Level>) -> Self {
        self.min_level = level.into();
        self
    }

    /// Only sends events of these kinds.
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    /// Spools undeliverable batches to disk with these settings.
    pub fn spool(mut self, spool: SpoolOptions) -> Self {
        self.spool = Some(spool);
        self.memory_only = false;
        self
    }

    /// Never spools: what cannot be delivered is dropped and counted.
    pub fn memory_only(mut self) -> Self {
        self.spool = None;
        self.memory_only = true;
        self
    }

    pub(crate) fn accepts(&self, kind: Kind, level: Level) -> bool {
        level >= self.min_level && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

/// A batch is sent when it reaches `max_events` or `max_bytes`, or `linger` after its first
/// event arrived — whichever comes first.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BatchOptions {
    /// Default 1 000 events.
    pub max_events: usize,
    /// Default 1 MiB (estimated serialised size).
    pub max_bytes: usize,
    /// Default 200 ms.
    pub linger: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_events: 1000,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(200),
        }
    }
}

impl BatchOptions {
    /// Batches of at most `max_events` events, `max_bytes` bytes, held at most `linger`.
    pub fn new(max_events: usize, max_bytes: usize, linger: Duration) -> Self {
        BatchOptions {
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            linger,
        }
    }
}

/// Exponential backoff with full jitter: attempt `n` waits a random time in
/// `[0, min(max_backoff, initial × 2ⁿ)]`, or exactly the server's `Retry-After` when given
/// (up to 5 minutes). After `max_retries` retries the batch is given up and counted (or
/// spooled, with a spool).
///
/// A destination that [refuses everything](crate::SinkErrorClass::Refused) is not retried
/// on this schedule: its batch is kept and tried again every `refused_interval`, for as long
/// as it takes (until shutdown), since no amount of quick retrying fixes a revoked grant.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Default 10.
    pub max_retries: u32,
    /// Default 100 ms.
    pub initial_backoff: Duration,
    /// Default 30 s.
    pub max_backoff: Duration,
    /// The wait between attempts while the destination refuses everything (±10 % jitter; a
    /// `Retry-After` overrides it). Default 60 s.
    pub refused_interval: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            refused_interval: Duration::from_secs(60),
        }
    }
}

impl RetryOptions {
    /// Retry up to `max_retries` times, backing off from `initial` up to `max`.
    pub fn new(max_retries: u32, initial: Duration, max: Duration) -> Self {
        RetryOptions {
            max_retries,
            initial_backoff: initial,
            max_backoff: max,
            ..RetryOptions::default()
        }
    }

    /// Sets the wait between attempts while the destination refuses everything.
    pub fn refused_interval(mut self, every: Duration) -> Self {
        self.refused_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The delay before the next attempt after `error`: the refused interval (±10 %) for a
    /// refusal, the exponential backoff of retry number `attempt` otherwise; a server's
    /// `Retry-After` wins over both.
    pub(crate) fn delay_after(&self, attempt: u32, error: &crate::SinkError) -> Duration {
        if error.is_refused() && error.retry_after().is_none() {
            return self
                .refused_interval
                .mul_f64(0.9 + 0.2 * rand::random::<f64>());
        }
        self.backoff(attempt, error.retry_after())
    }

    /// The delay before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            // The server knows best, even past our own cap; but never wait more than 5 min.
            return after.min(Duration::from_secs(300));
        }
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        ceiling.mul_f64(rand::random::<f64>())
    }
}
