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
/// batches, retries [temporary](SinkErrorClass::Temporary) errors with backoff, splits a
/// batch that failed [permanently](SinkErrorClass::Permanent) to find the offending events,
/// and keeps a batch the destination [refused whole](SinkErrorClass::Refused) until it
/// accepts again. Delivery is at-least-once: a sink should write idempotently on
/// [`Event::id`] (or say in its docs that it is append-only).
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
    /// A short, stable name used in metric labels, logs and the spool directory (`postgres`,
    /// `loki`, …). `Builder::sink_named` overrides it, so two sinks of one kind can run side
    /// by side.
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

    /// Called once by `Builder::build`, with the handle of the pipeline the sink was added
    /// to: for a sink that watches the pipeline itself (the alert engine reads
    /// [`health`](crate::TracepostHandle::health) and
    /// [`sink_counts`](crate::TracepostHandle::sink_counts)). Keep the handle only until
    /// [`shutdown`](Self::shutdown). Default: nothing.
    fn attach(&self, pipeline: &crate::TracepostHandle) {
        let _ = pipeline;
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

/// Whether and how retrying can help: the pipeline's three ways of handling a failed batch.
///
/// The model is OpenDAL's error *status* (temporary / permanent / persistent); the *what* is
/// [`SinkErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SinkErrorClass {
    /// I/O, timeouts, 408, 429, 5xx, connection loss: the batch is retried with backoff
    /// ([`RetryOptions`](crate::RetryOptions)), then spooled or dropped.
    Temporary,
    /// Something in the batch is bad (400, a constraint violation, …): retrying the same
    /// data won't help. The pipeline splits the batch to find the offending events, drops
    /// only those and counts them (`rejected`).
    Permanent,
    /// The destination refuses everything, whatever the data (401, 403, 404, a revoked grant,
    /// a missing database): no event is at fault, so there is no splitting and nothing is
    /// dropped. The batch is kept (spooled with a data dir, else held in memory up to the
    /// queue bound), the sink's health goes `down` with this error, retries slow to
    /// [`RetryOptions::refused_interval`](crate::RetryOptions::refused_interval), and
    /// delivery resumes by itself once the destination accepts again (a grant restored, a key
    /// rotated).
    Refused,
}

impl SinkErrorClass {
    /// `temporary`, `permanent` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkErrorClass::Temporary => "temporary",
            SinkErrorClass::Permanent => "permanent",
            SinkErrorClass::Refused => "refused",
        }
    }
}

impl std::fmt::Display for SinkErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, independently of whether retrying helps ([`SinkErrorClass`]).
///
/// Modelled on OpenDAL's `ErrorKind`: one value per cause a user acts on differently
/// (fix the credentials, the grant, the URL; wait; shrink the batch; …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum SinkErrorKind {
    /// No or wrong credentials (HTTP 401, Postgres 28P01/28000).
    Unauthenticated,
    /// The credentials are valid but not allowed (HTTP 403, Postgres 42501).
    PermissionDenied,
    /// The destination does not exist (HTTP 404/410, Postgres 3D000, a missing table).
    NotFound,
    /// The destination asked to slow down (HTTP 429).
    RateLimited,
    /// The request or an event is too large (HTTP 413, Postgres class 54).
    PayloadTooLarge,
    /// The data was refused (HTTP 400/422, Postgres classes 22/23, unserialisable events).
    InvalidData,
    /// No answer in time (a send timeout, HTTP 408/504).
    Timeout,
    /// The destination is down or overloaded (connection refused, HTTP 5xx, Postgres 57P01).
    Unavailable,
    /// A local I/O error (file system, socket).
    Io,
    /// The sink panicked; the pipeline caught it.
    Panicked,
    /// Anything else.
    #[default]
    Other,
}

impl SinkErrorKind {
    /// A short snake_case name (`permission_denied`, …), usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkErrorKind::Unauthenticated => "unauthenticated",
            SinkErrorKind::PermissionDenied => "permission_denied",
            SinkErrorKind::NotFound => "not_found",
            SinkErrorKind::RateLimited => "rate_limited",
            SinkErrorKind::PayloadTooLarge => "payload_too_large",
            SinkErrorKind::InvalidData => "invalid_data",
            SinkErrorKind::Timeout => "timeout",
            SinkErrorKind::Unavailable => "unavailable",
            SinkErrorKind::Io => "io",
            SinkErrorKind::Panicked => "panicked",
            SinkErrorKind::Other => "other",
        }
    }
}

impl std::fmt::Display for SinkErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a sink: what went wrong ([`SinkErrorKind`]) and whether retrying can help
/// ([`SinkErrorClass`]), with a message, an optional server-requested delay and the
/// underlying error.
///
/// Displayed as `refused (permission_denied): permission denied for table events`.
///
/// ```
/// use tracepost_core::{SinkError, SinkErrorClass, SinkErrorKind};
///
/// let e = SinkError::refused("HTTP 403: tenant disabled").with_kind(SinkErrorKind::PermissionDenied);
/// assert_eq!(e.class(), SinkErrorClass::Refused);
/// assert_eq!(e.to_string(), "refused (permission_denied): HTTP 403: tenant disabled");
///
/// let e = SinkError::from_http_status(429, "slow down");
/// assert!(e.is_temporary());
/// assert_eq!(e.kind(), SinkErrorKind::RateLimited);
/// ```
#[derive(Debug, thiserror::Error)]
// The message often quotes a remote answer (which may echo event text): printed with its
// control characters escaped, so it cannot forge lines in tracepost's own log output.
#[error("{class} ({kind}): {}", crate::escape_control(.message))]
pub struct SinkError {
    class: SinkErrorClass,
    kind: SinkErrorKind,
    message: String,
    retry_after: Option<Duration>,
    settled: Option<Box<Settled>>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The part of a batch a failed [`Sink::send`] did settle before it failed: events the
/// destination stored, and events it refused for good. Attached with
/// [`SinkError::with_settled`]; the pipeline counts these as sent / rejected and retries,
/// spools or drops only the rest, so a send that failed half-way never counts stored events
/// as dropped nor sends them again.
#[derive(Debug, Default, Clone)]
pub struct Settled {
    /// Ids of events the destination stored.
    pub delivered: Vec<Uuid>,
    /// Events it refused for good, with the reason.
    pub rejected: Vec<Rejection>,
}

impl SinkError {
    /// An error of this class and kind.
    pub fn new(class: SinkErrorClass, kind: SinkErrorKind, message: impl Into<String>) -> Self {
        SinkError {
            class,
            kind,
            message: message.into(),
            retry_after: None,
            settled: None,
            source: None,
        }
    }

    /// A temporary error (kind [`Unavailable`](SinkErrorKind::Unavailable) unless set with
    /// [`with_kind`](Self::with_kind)): the batch will be retried.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::new(
            SinkErrorClass::Temporary,
            SinkErrorKind::Unavailable,
            message,
        )
    }

    /// A permanent error (kind [`InvalidData`](SinkErrorKind::InvalidData) unless set): the
    /// batch is split to find the bad events, which are dropped and counted.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(
            SinkErrorClass::Permanent,
            SinkErrorKind::InvalidData,
            message,
        )
    }

    /// The destination refuses everything (kind [`PermissionDenied`](SinkErrorKind::PermissionDenied)
    /// unless set): nothing is dropped, the batch waits and is retried slowly until accepted.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(
            SinkErrorClass::Refused,
            SinkErrorKind::PermissionDenied,
            message,
        )
    }

    /// Sets what went wrong.
    pub fn with_kind(mut self, kind: SinkErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The server asked to wait this long before retrying (`Retry-After`).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Says which events of the batch this send settled before it failed (see [`Settled`]).
    /// Ids that are not in the batch are ignored.
    pub fn with_settled(mut self, settled: Settled) -> Self {
        if !settled.delivered.is_empty() || !settled.rejected.is_empty() {
            self.settled = Some(Box::new(settled));
        }
        self
    }

    /// The events this send settled before it failed, if it said.
    pub fn settled(&self) -> Option<&Settled> {
        self.settled.as_deref()
    }

    /// Takes the settled part out of the error.
    pub fn take_settled(&mut self) -> Option<Settled> {
        self.settled.take().map(|s| *s)
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }

    /// Temporary, permanent or refused.
    pub fn class(&self) -> SinkErrorClass {
        self.class
    }

    /// True for temporary errors.
    pub fn is_temporary(&self) -> bool {
        self.class == SinkErrorClass::Temporary
    }

    /// True for permanent (bad data) errors.
    pub fn is_permanent(&self) -> bool {
        self.class == SinkErrorClass::Permanent
    }

    /// True when the destination refuses everything.
    pub fn is_refused(&self) -> bool {
        self.class == SinkErrorClass::Refused
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Classifies an HTTP status (the body, cut to 512 bytes, goes into the message):
    ///
    /// | status | class | kind |
    /// |---|---|---|
    /// | 401 | refused | unauthenticated |
    /// | 403 | refused | permission_denied |
    /// | 404, 410 | refused | not_found |
    /// | 408 | temporary | timeout |
    /// | 429 | temporary | rate_limited |
    /// | 5xx (504: timeout) | temporary | unavailable |
    /// | 413 | permanent | payload_too_large |
    /// | other | permanent | invalid_data |
    pub fn from_http_status(status: u16, body: &str) -> Self {
        use SinkErrorClass::*;
        use SinkErrorKind::*;
        let message = format!("HTTP {status}: {}", crate::truncate_utf8(body.trim(), 512));
        let (class, kind) = match status {
            401 => (Refused, Unauthenticated),
            403 => (Refused, PermissionDenied),
            404 | 410 => (Refused, NotFound),
            408 | 504 => (Temporary, Timeout),
            429 => (Temporary, RateLimited),
            500..=599 => (Temporary, Unavailable),
            413 => (Permanent, PayloadTooLarge),
            _ => (Permanent, InvalidData),
        };
        SinkError::new(class, kind, message)
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let (class, kind) = match e.kind() {
            Io::PermissionDenied => (SinkErrorClass::Refused, SinkErrorKind::PermissionDenied),
            Io::TimedOut => (SinkErrorClass::Temporary, SinkErrorKind::Timeout),
            Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted => {
                (SinkErrorClass::Temporary, SinkErrorKind::Unavailable)
            }
            _ => (SinkErrorClass::Temporary, SinkErrorKind::Io),
        };
        SinkError::new(class, kind, e.to_string()).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_are_classified() {
        let cases = [
            (401, SinkErrorClass::Refused, SinkErrorKind::Unauthenticated),
            (
                403,
                SinkErrorClass::Refused,
                SinkErrorKind::PermissionDenied,
            ),
            (404, SinkErrorClass::Refused, SinkErrorKind::NotFound),
            (410, SinkErrorClass::Refused, SinkErrorKind::NotFound),
            (408, SinkErrorClass::Temporary, SinkErrorKind::Timeout),
            (429, SinkErrorClass::Temporary, SinkErrorKind::RateLimited),
            (500, SinkErrorClass::Temporary, SinkErrorKind::Unavailable),
            (503, SinkErrorClass::Temporary, SinkErrorKind::Unavailable),
            (504, SinkErrorClass::Temporary, SinkErrorKind::Timeout),
            (400, SinkErrorClass::Permanent, SinkErrorKind::InvalidData),
            (
                413,
                SinkErrorClass::Permanent,
                SinkErrorKind::PayloadTooLarge,
            ),
            (422, SinkErrorClass::Permanent, SinkErrorKind::InvalidData),
        ];
        for (status, class, kind) in cases {
            let e = SinkError::from_http_status(status, " body ");
            assert_eq!((e.class(), e.kind()), (class, kind), "{status}");
            assert_eq!(e.message(), format!("HTTP {status}: body"));
        }
    }

    #[test]
    fn io_errors_are_classified_and_displayed() {
        let denied: SinkError = std::io::Error::from(std::io::ErrorKind::PermissionDenied).into();
        assert!(denied.is_refused());
        let full: SinkError = std::io::Error::other("disk full").into();
        assert!(full.is_temporary());
        assert_eq!(full.kind(), SinkErrorKind::Io);
        assert_eq!(full.to_string(), "temporary (io): disk full");
    }
}
