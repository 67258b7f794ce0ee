//! The [`Sink`] trait every destination implements, and the errors it reports.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::event::Event;

/// A batch of events handed to a sink. Events are shared between sinks, never copied.
pub type Batch = Vec<Arc<Event>>;

/// A destination for events: Postgres, Loki, a file, the console, …
///
/// The pipeline gives each sink its own bounded queue and worker, calls [`Sink::send`] with
/// batches, retries [temporary](SinkErrorKind::Temporary) errors with backoff, and splits a
/// batch that failed [permanently](SinkErrorKind::Permanent) to find the offending events.
/// Delivery is at-least-once: a sink should write idempotently on [`Event::id`].
///
/// ```
/// use tracepost_core::{Batch, Sink, SinkError, SinkOutcome};
///
/// struct CountLines;
///
/// impl Sink for CountLines {
///     fn name(&self) -> &str { "count" }
///     async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
///         println!("{} events", batch.len());
///         Ok(SinkOutcome::default())
///     }
/// }
/// ```
pub trait Sink: Send + Sync + 'static {
    /// A short, stable name used in metric labels and logs (`postgres`, `loki`, …).
    fn name(&self) -> &str;

    /// Delivers one batch. Returns which events (if any) were rejected individually.
    fn send(&self, batch: Batch) -> impl Future<Output = Result<SinkOutcome, SinkError>> + Send;

    /// The queue, batching and retry settings this sink works best with, used by
    /// `Builder::sink` (`Builder::sink_with` overrides them).
    fn default_options(&self) -> crate::SinkOptions {
        crate::SinkOptions::default()
    }

    /// Registers the sink's own metrics (metrics or a
    /// [`Collector`](prometheus_client::collector::Collector)), served on `/metrics` after the
    /// pipeline's; called once when the pipeline is built. Names must not collide with other
    /// sinks': prefix them with the sink's kind and label them with its name. Default: none.
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let _ = registry;
    }

    /// Called once when the pipeline shuts down, after the last batch. Flush buffers here.
    fn shutdown(&self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }
}

/// What a successful [`Sink::send`] reports: the events it refused one by one.
///
/// Everything in the batch that is not listed here counts as delivered.
#[derive(Debug, Default)]
pub struct SinkOutcome {
    /// Events the destination refused for good (bad data), with the reason.
    pub rejected: Vec<Rejection>,
}

/// One event a sink refused for good.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The refused event's id.
    pub id: Uuid,
    /// Why (a short reason: used as a metric label, so keep the set small).
    pub reason: Cow<'static, str>,
    /// Details for the log.
    pub detail: String,
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// I/O, timeouts, 408, 429, 5xx, connection loss: retry with backoff.
    Temporary,
    /// The destination refused the data (400, constraint violation, …): retrying won't help.
    Permanent,
}

/// An error from a sink, classified for the retry logic.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?} sink error: {message}")]
pub struct SinkError {
    kind: SinkErrorKind,
    message: String,
    retry_after: Option<Duration>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SinkError {
    /// A temporary error: the batch will be retried.
    pub fn temporary(message: impl Into<String>) -> Self {
        SinkError {
            kind: SinkErrorKind::Temporary,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// A permanent error: the batch is split to find the bad events, which are dropped and counted.
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            kind: SinkErrorKind::Permanent,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// The server asked to wait this long before retrying (`Retry-After`).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Temporary or permanent.
    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }

    /// True for temporary errors.
    pub fn is_temporary(&self) -> bool {
        self.kind == SinkErrorKind::Temporary
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Classifies an HTTP status: 408, 429 and 5xx are temporary, anything else permanent.
    pub fn from_http_status(status: u16, body: &str) -> Self {
        let message = format!("HTTP {status}: {}", crate::truncate_utf8(body, 512));
        if status == 408 || status == 429 || (500..600).contains(&status) {
            SinkError::temporary(message)
        } else {
            SinkError::permanent(message)
        }
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError::temporary(e.to_string()).with_source(e)
    }
}
