//! The event envelope: one shape for every kind of thing tracepost captures.
//!
//! Its JSON form (see the book's "Event schema" page) is a stable contract: every sink
//! writes it, and users query it. Fields are only ever added, never renamed or retyped;
//! optional fields are omitted when empty.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub mod json;

/// The version of the JSON schema written by this crate, in every event as `schema`.
pub const SCHEMA_VERSION: u32 = 1;

/// What an event records. Serialised in `snake_case` (`"error"`, `"metric_window"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// A log line (a `tracing` event below ERROR, or a batch log from a server).
    Log,
    /// An error: a 5xx, a panic, an ERROR-level `tracing` event, a browser exception.
    Error,
    /// A kept request snapshot that is not an error (slow or sampled).
    Request,
    /// A product-analytics event (page view, custom event).
    Analytics,
    /// A reference to a stored session-replay chunk.
    Replay,
    /// One aggregation window of HTTP metrics for one route.
    MetricWindow,
    /// An alert raised by an alert rule.
    Alert,
    /// One measured value that is not an HTTP window: a browser web vital (LCP, INP, CLS,
    /// TTFB, FCP). The attributes `metric.name`, `metric.value`, `metric.unit` and
    /// `metric.rating` carry it.
    Metric,
    /// One finished `tracing` span of a kept trace (OpenTelemetry's span): `timestamp` is its
    /// start, `message` its name, `trace_id`/`span_id` its ids, `span` its parent, duration
    /// and status, `attributes` its fields. See the book's "Traces" page.
    Span,
}

impl Kind {
    /// The name used in JSON and in sink labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::Error => "error",
            Kind::Request => "request",
            Kind::Analytics => "analytics",
            Kind::Replay => "replay",
            Kind::MetricWindow => "metric_window",
            Kind::Alert => "alert",
            Kind::Metric => "metric",
            Kind::Span => "span",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity, ordered from least to most severe. Serialised in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Very fine-grained diagnostics.
    Trace,
    /// Diagnostics for developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that did not fail.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    /// The lowercase name used in JSON and in sink labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<tracing::Level> for Level {
    fn from(level: tracing::Level) -> Self {
        match level {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        }
    }
}

/// A point in time with nanosecond precision, UTC.
///
/// Serialised as RFC 3339 with nanoseconds (`"2026-11-23T12:00:00.123456789Z"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(SystemTime::now())
    }

    /// From nanoseconds since the Unix epoch.
    pub fn from_unix_nanos(nanos: u64) -> Self {
        Timestamp(UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    /// Nanoseconds since the Unix epoch (0 for times before it).
    pub fn unix_nanos(self) -> u64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }

    /// The underlying system time.
    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_nanos(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s)
            .map(Timestamp)
            .map_err(serde::de::Error::custom)
    }
}

/// Where an event comes from: filled in by the pipeline from the builder's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The service name (`Tracepost::builder().service(..)`).
    pub service: String,
    /// Deployment environment (`production`, `staging`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Release or version of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Host name of the machine that captured the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One event. Construct with [`Event::new`] and the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Schema version ([`SCHEMA_VERSION`]).
    #[serde(default = "schema_version")]
    pub schema: u32,
    /// UUIDv7: time-ordered, and the idempotency key every sink honours.
    pub id: Uuid,
    /// When it happened (UTC, ns).
    pub timestamp: Timestamp,
    /// What it records.
    pub kind: Kind,
    /// How severe it is.
    pub level: Level,
    /// One human-readable line.
    pub message: String,
    /// Service, environment, release, host.
    #[serde(flatten)]
    pub resource: Resource,
    /// W3C trace id (32 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// W3C span id (16 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The request id (`x-request-id`), when captured during a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Browser session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The user, as the application identifies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Grouping key of errors: the same bug gets the same fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Structured fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// For `error` events: what failed and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// For `request` and HTTP `error` events: the request snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSnapshot>,
    /// Log lines emitted while the request ran, oldest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breadcrumbs: Vec<Breadcrumb>,
    /// For `metric_window` events: one window of HTTP metrics for one route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricWindow>,
    /// For `span` events: the parent span, the duration and the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<SpanDetail>,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

impl Event {
    /// A new event of `kind` with a fresh UUIDv7 and the current time.
    pub fn new(kind: Kind, level: Level, message: impl Into<String>) -> Self {
        Event::at(Timestamp::now(), kind, level, message.into())
    }

    /// As [`Event::new`] with `timestamp` (and an id derived from it): the same event as
    /// `Event::new(..).with_timestamp(timestamp)`, without reading the clock and drawing an
    /// id that is replaced at once.
    pub(crate) fn at(timestamp: Timestamp, kind: Kind, level: Level, message: String) -> Self {
        Event {
            schema: SCHEMA_VERSION,
            id: new_id(timestamp),
            timestamp,
            kind,
            level,
            message,
            resource: Resource::default(),
            trace_id: None,
            span_id: None,
            request_id: None,
            session_id: None,
            user_id: None,
            fingerprint: None,
            attributes: Map::new(),
            error: None,
            request: None,
            breadcrumbs: Vec::new(),
            metric: None,
            span: None,
        }
    }

    /// Sets the timestamp (and re-derives the id so that ids stay time-ordered).
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self.id = new_id(timestamp);
        self
    }

    /// Sets the trace and span ids.
    pub fn with_trace(mut self, trace_id: impl Into<String>, span_id: Option<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self.span_id = span_id;
        self
    }

    /// Adds one attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Sets the error detail.
    pub fn with_error(mut self, error: ErrorDetail) -> Self {
        self.error = Some(error);
        self
    }

    /// Sets the request snapshot.
    pub fn with_request(mut self, request: RequestSnapshot) -> Self {
        self.request = Some(request);
        self
    }

    /// A cheap estimate of the event's serialised size in bytes, used for batching by bytes.
    pub fn approx_size(&self) -> usize {
        fn value_size(v: &Value) -> usize {
            match v {
                Value::Null | Value::Bool(_) | Value::Number(_) => 8,
                Value::String(s) => s.len() + 2,
                Value::Array(a) => a.iter().map(value_size).sum::<usize>() + 2,
                Value::Object(o) => o.iter().map(|(k, v)| k.len() + 4 + value_size(v)).sum(),
            }
        }
        let mut n = 256 + self.message.len() + self.resource.service.len();
        n += self
            .attributes
            .iter()
            .map(|(k, v)| k.len() + 4 + value_size(v))
            .sum::<usize>();
        if let Some(e) = &self.error {
            n += e.message.len() + e.backtrace.as_ref().map_or(0, |b| b.len()) + 64;
        }
        if let Some(r) = &self.request {
            n += r.approx_size();
        }
        n += self
            .breadcrumbs
            .iter()
            .map(|b| b.message.len() + 64)
            .sum::<usize>();
        if self.metric.is_some() {
            n += 200;
        }
        if let Some(s) = &self.span {
            n += 96 + s.name.len();
        }
        n
    }
}

/// A fresh UUIDv7 for an event at `timestamp`: 48 bits of Unix milliseconds, then 74 random
/// bits from the thread-local generator (no system call per id, unlike `Uuid::now_v7`
/// without uuid's `fast-rng` feature).
pub fn new_id(timestamp: Timestamp) -> Uuid {
    new_id_with(timestamp, &mut rand::thread_rng())
}

/// As [`new_id`], drawing from `rng`.
pub(crate) fn new_id_with(timestamp: Timestamp, rng: &mut impl rand::Rng) -> Uuid {
    let millis = timestamp.unix_nanos() / 1_000_000;
    let mut random = [0u8; 10];
    rng.fill(&mut random[..]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// What failed and where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The error's type: a Rust type name, `panic`, `http_5xx`, a JS error name, …
    #[serde(rename = "type")]
    pub error_type: String,
    /// The error message (unnormalised).
    pub message: String,
    /// The backtrace or stack, as captured (one frame per line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// Source location (`file:line`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// An HTTP request and its response, as captured by the middleware.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSnapshot {
    /// HTTP method (`GET`, …; `_OTHER` for unknown methods).
    pub method: String,
    /// The matched route template (`/users/{id}`), or `_unmatched`.
    pub route: String,
    /// The path as requested (no query string).
    pub path: String,
    /// The query string, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The response status (500 for a panic).
    pub status: u16,
    /// From request start to the end of the response body, in milliseconds.
    pub duration_ms: f64,
    /// Request headers, redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<(String, String)>,
    /// Response headers, redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    /// The captured request body (capped, redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<CapturedBody>,
    /// The captured response body (capped, redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<CapturedBody>,
    /// Request body bytes seen in total.
    pub request_bytes: u64,
    /// Response body bytes sent in total.
    pub response_bytes: u64,
    /// The client address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    /// The HTTP version (`HTTP/1.1`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
}

impl RequestSnapshot {
    fn approx_size(&self) -> usize {
        let headers: usize = self
            .request_headers
            .iter()
            .chain(&self.response_headers)
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum();
        128 + self.path.len()
            + self.route.len()
            + self.query.as_ref().map_or(0, |q| q.len())
            + headers
            + self.request_body.as_ref().map_or(0, |b| b.text.len())
            + self.response_body.as_ref().map_or(0, |b| b.text.len())
    }
}

/// A body as captured: text (UTF-8, or base64 when binary), possibly truncated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedBody {
    /// The captured bytes as text; see `encoding`.
    pub text: String,
    /// `utf8` or `base64`.
    pub encoding: String,
    /// True when the body was longer than the capture cap.
    pub truncated: bool,
    /// The content type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A log line recorded while a request ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breadcrumb {
    /// When it was logged.
    pub timestamp: Timestamp,
    /// Its level.
    pub level: Level,
    /// The `tracing` target (module path).
    pub target: String,
    /// The message, with fields appended as `key=value`.
    pub message: String,
}

/// One aggregation window of HTTP metrics for one route and method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricWindow {
    /// Window start (inclusive).
    pub start: Timestamp,
    /// Window length in seconds.
    pub seconds: u32,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Requests completed in the window.
    pub count: u64,
    /// Of those, how many failed (5xx or panic).
    pub errors: u64,
    /// Latency percentiles in milliseconds (relative error ≤ 2 %).
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Largest latency in the window, ms.
    pub max_ms: f64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
}

/// What a `span` event adds to the envelope, named as OpenTelemetry's span model names it.
/// The span's start is the event's `timestamp`, its ids are the event's `trace_id` and
/// `span_id`, its fields are the event's `attributes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanDetail {
    /// The span's name (`tracing`'s span name; for `#[instrument]`, the function's name).
    pub name: String,
    /// The parent span's id (16 lowercase hex digits): a span of the same trace, or the
    /// request's own span id when the span is the outermost one inside an HTTP request.
    /// Absent for the root of a trace started in this process outside any request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// From the span's creation to its close, in milliseconds (wall time, idle time
    /// included, as OpenTelemetry measures a span).
    pub duration_ms: f64,
    /// OpenTelemetry's span status: `error` when an ERROR-level event was recorded inside
    /// the span itself, else `unset`.
    #[serde(default)]
    pub status: SpanStatus,
}

/// OpenTelemetry's span status code. Serialised in lowercase (`"unset"`, `"ok"`, `"error"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    /// Nothing said (the default).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// The span's operation failed.
    Error,
}

impl SpanStatus {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Unset => "unset",
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
        }
    }
}
