//! tracepost's [`tracing_subscriber::Layer`]: `tracing` events become tracepost events, and
//! events emitted while a request runs become that request's breadcrumbs.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//! use tracepost_tracing::TracepostTracingLayer;
//!
//! # async fn demo() -> Result<(), tracepost_core::BuildError> {
//! let tp = tracepost_core::Tracepost::builder().service("shop").build()?;
//! tracing_subscriber::registry()
//!     .with(TracepostTracingLayer::new(tp.handle()))
//!     .init();
//! tracing::error!(order = 42, "payment failed"); // an `error` event with a fingerprint
//! # Ok(()) }
//! ```
//!
//! - Events at or above [`TracepostTracingLayer::min_level`] (INFO by default) are captured:
//!   ERROR as `error` events, the rest as `log` events. Like every event, they then pass the
//!   pipeline's stages: redaction (of the message, the fields and the breadcrumbs) and, for
//!   errors, the fingerprint. Their fields
//!   become attributes, after the fields of the spans they are in (the event's fields win).
//! - Inside a request handled by the tracepost HTTP layer, events at or above
//!   [`TracepostTracingLayer::breadcrumb_level`] (DEBUG by default) are also kept as
//!   breadcrumbs, and every captured event carries the request's trace and request ids.
//! - Nothing emitted while tracepost works is captured: not on the pipeline's own threads
//!   (where sinks and the tasks their clients spawn run), not inside `capture`, not while a
//!   sink's send is polled ([`tracepost_core::scope::is_internal`]); nor events whose target
//!   starts with `tracepost` (the pipeline's own diagnostics). tracepost cannot feed back into
//!   itself, at any level.
//! - Breadcrumbs are `message key=value …`, logfmt style (values with spaces quoted).
//! - **Spans** (off by default; [`TracepostTracingLayer::span_level`]): spans at or above the
//!   level become `span` events when they close (name, start, duration, parent, trace id,
//!   fields, status), and events captured inside one carry its trace and span ids. A trace is
//!   kept or dropped whole: its finished spans wait in a bounded buffer until its local root
//!   closes (inside an HTTP request: until the request is over), then the trace is kept if an
//!   ERROR event was recorded in it or the request failed (a 5xx, a panic), else with the
//!   probability [`TracepostTracingLayer::trace_sample_rate`]. The spans of dropped traces
//!   count in `tracepost_events_sampled_out_total`; spans that do not fit the buffer
//!   ([`TracepostTracingLayer::max_spans_per_trace`],
//!   [`TracepostTracingLayer::max_buffered_span_bytes`]) in
//!   `tracepost_spans_overflowed_total`. Kept spans pass the pipeline's stages like every
//!   event (their fields are redacted).

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use serde_json::{Map, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event as TracingEvent, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use tracepost_core::scope::{
    self, RequestScope, ScopeAttachment, REQUEST_SPAN_NAME, REQUEST_SPAN_TARGET,
};
use tracepost_core::trace_context::{hex, new_span_id, TraceContext};
use tracepost_core::{
    Breadcrumb, ErrorDetail, Event, Kind, Level, SpanDetail, SpanStatus, Timestamp, TracepostHandle,
};

/// The default of [`TracepostTracingLayer::max_spans_per_trace`].
pub const DEFAULT_MAX_SPANS_PER_TRACE: usize = 1_000;
/// The default of [`TracepostTracingLayer::max_buffered_span_bytes`]: 16 MiB.
pub const DEFAULT_MAX_BUFFERED_SPAN_BYTES: usize = 16 << 20;

/// The layer. Build it with [`TracepostTracingLayer::new`] and add it to a registry.
#[derive(Debug, Clone)]
pub struct TracepostTracingLayer {
    handle: TracepostHandle,
    min_level: Level,
    breadcrumb_level: Level,
    /// `None`: spans are not captured (the default).
    span_level: Option<Level>,
    spans: Arc<SpanShared>,
}

/// What every trace buffer of one layer shares: the settings and the global byte budget.
#[derive(Debug)]
struct SpanShared {
    handle: TracepostHandle,
    sample_rate: f64,
    max_spans_per_trace: usize,
    max_buffered_bytes: usize,
    /// Bytes (`Event::approx_size`) of the spans buffered now, over all traces.
    buffered: AtomicUsize,
}

impl TracepostTracingLayer {
    /// A layer capturing INFO and above, with DEBUG and above as breadcrumbs.
    pub fn new(handle: TracepostHandle) -> Self {
        scope::mark_layer_installed();
        TracepostTracingLayer {
            spans: Arc::new(SpanShared {
                handle: handle.clone(),
                sample_rate: 1.0,
                max_spans_per_trace: DEFAULT_MAX_SPANS_PER_TRACE,
                max_buffered_bytes: DEFAULT_MAX_BUFFERED_SPAN_BYTES,
                buffered: AtomicUsize::new(0),
            }),
            handle,
            min_level: Level::Info,
            breadcrumb_level: Level::Debug,
            span_level: None,
        }
    }

    /// Captures `tracing` spans at or above `level` as `span` events (off by default: no
    /// span is captured, and the layer's cost per span is one comparison). Takes a
    /// [`tracepost_core::Level`] or a `tracing::Level` (`tracing::Level::INFO`).
    pub fn span_level(mut self, level: impl Into<Level>) -> Self {
        self.span_level = Some(level.into());
        self
    }

    /// The fraction (0..=1, clamped; 1 by default) of traces without an error whose spans
    /// are kept, decided once per trace when it starts here (head sampling). Traces with an
    /// ERROR event inside, or whose request failed (5xx, panic), are always kept.
    pub fn trace_sample_rate(mut self, rate: f64) -> Self {
        let rate = if rate.is_nan() {
            1.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.shared_mut(|s| s.sample_rate = rate);
        self
    }

    /// The most spans one trace buffers before its decision
    /// ([`DEFAULT_MAX_SPANS_PER_TRACE`] by default); further spans of that trace are dropped
    /// and counted in `tracepost_spans_overflowed_total`.
    pub fn max_spans_per_trace(mut self, spans: usize) -> Self {
        self.shared_mut(|s| s.max_spans_per_trace = spans);
        self
    }

    /// The most bytes (estimated as `Event::approx_size`) of spans buffered at once over all
    /// undecided traces ([`DEFAULT_MAX_BUFFERED_SPAN_BYTES`] by default); a span that would
    /// exceed it is dropped and counted in `tracepost_spans_overflowed_total`.
    pub fn max_buffered_span_bytes(mut self, bytes: usize) -> Self {
        self.shared_mut(|s| s.max_buffered_bytes = bytes);
        self
    }

    fn shared_mut(&mut self, f: impl FnOnce(&mut SpanShared)) {
        let s = &*self.spans;
        let mut next = SpanShared {
            handle: s.handle.clone(),
            sample_rate: s.sample_rate,
            max_spans_per_trace: s.max_spans_per_trace,
            max_buffered_bytes: s.max_buffered_bytes,
            buffered: AtomicUsize::new(s.buffered.load(Ordering::Relaxed)),
        };
        f(&mut next);
        self.spans = Arc::new(next);
    }

    /// Captures events at or above `level` as tracepost events. Takes a
    /// [`tracepost_core::Level`] or a `tracing::Level` (`tracing::Level::WARN`).
    pub fn min_level(mut self, level: impl Into<Level>) -> Self {
        self.min_level = level.into();
        self
    }

    /// Keeps events at or above `level` as breadcrumbs of the current request. Takes a
    /// [`tracepost_core::Level`] or a `tracing::Level`.
    pub fn breadcrumb_level(mut self, level: impl Into<Level>) -> Self {
        self.breadcrumb_level = level.into();
        self
    }
}

/// Fields recorded on a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

/// A captured span's identity and timing, kept in its extensions until it closes.
struct SpanRecord {
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    trace: Arc<TraceBuffer>,
    start: Timestamp,
    started: Instant,
    /// The outermost captured span of its trace in this process.
    local_root: bool,
    /// Spans above it in its trace in this process (0: the local root).
    depth: u32,
    /// An ERROR event was recorded inside this span itself.
    error: AtomicBool,
}

/// One trace's finished spans, until the trace is kept or dropped whole.
#[derive(Debug)]
struct TraceBuffer {
    trace_id: [u8; 16],
    request_id: Option<String>,
    route: Option<String>,
    /// Decided when the request is over (by [`ScopeAttachment::request_finished`]), not when
    /// a local root closes.
    in_request: bool,
    head_keep: bool,
    shared: Arc<SpanShared>,
    state: Mutex<TraceState>,
}

#[derive(Debug)]
enum TraceState {
    Open {
        /// The finished spans, each with its depth in the trace.
        spans: Vec<(u32, Event)>,
        bytes: usize,
        error: bool,
        /// Spans left out for the caps (counted in `tracepost_spans_overflowed_total`).
        dropped: u64,
    },
    Kept,
    Dropped,
}

impl TraceBuffer {
    fn new(trace_id: [u8; 16], request: Option<&RequestScope>, shared: &Arc<SpanShared>) -> Self {
        let rate = shared.sample_rate;
        TraceBuffer {
            trace_id,
            request_id: request.map(|r| r.request_id().to_owned()),
            route: request.map(|r| r.route().to_owned()),
            in_request: request.is_some(),
            head_keep: rate >= 1.0 || (rate > 0.0 && rand_unit() < rate),
            shared: shared.clone(),
            state: Mutex::new(TraceState::Open {
                spans: Vec::new(),
                bytes: 0,
                error: false,
                dropped: 0,
            }),
        }
    }

    /// A finished span at `depth` in its trace: buffered while the trace is undecided, else
    /// captured or counted.
    ///
    /// Over a cap, the shallowest spans are the ones kept: spans close children first, so
    /// a full buffer holds the deepest leaves when their ancestors (the local root last)
    /// arrive — each of those takes the place of the deepest span buffered, which is
    /// counted as overflowed instead. A deep trace keeps its top levels, a wide one its root.
    fn push(&self, event: Event, depth: u32) {
        let shared = &*self.shared;
        let mut state = self.state.lock();
        match &mut *state {
            TraceState::Open {
                spans,
                bytes,
                dropped,
                ..
            } => {
                let size = event.approx_size();
                let reserve = |size: usize| {
                    shared
                        .buffered
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                            b.checked_add(size)
                                .filter(|n| *n <= shared.max_buffered_bytes)
                        })
                        .is_ok()
                };
                if spans.len() < shared.max_spans_per_trace && reserve(size) {
                    *bytes += size;
                    spans.push((depth, event));
                    return;
                }
                *dropped += 1;
                shared.handle.stages().sample().count_span_overflow(1);
                // The deepest span buffered (the latest of them), if deeper than this one.
                let deepest = spans
                    .iter()
                    .enumerate()
                    .rev()
                    .max_by_key(|(_, (d, _))| *d)
                    .filter(|(_, (d, _))| *d > depth)
                    .map(|(i, _)| i);
                if let Some(i) = deepest {
                    let old = spans[i].1.approx_size();
                    shared.buffered.fetch_sub(old, Ordering::Relaxed);
                    if reserve(size) {
                        *bytes = *bytes - old + size;
                        spans[i] = (depth, event);
                    } else {
                        // No room even in its place: the old span stays.
                        let _ = reserve(old);
                    }
                }
            }
            TraceState::Kept => {
                drop(state);
                shared.handle.capture(event);
            }
            TraceState::Dropped => shared.handle.stages().sample().count_sampled_out(1),
        }
    }

    /// An error inside the trace: it is kept, so it is decided now — its buffered spans go
    /// out and later ones follow at once. (Waiting for the local root would lose a trace
    /// whose root lives as long as the process, a worker's, with the error inside it.)
    fn mark_error(&self) {
        if let TraceState::Open { error, .. } = &mut *self.state.lock() {
            *error = true;
        } else {
            return;
        }
        self.decide(false);
    }

    /// Keeps the trace (an error inside, a failed request, or the head sample said so) or
    /// drops it whole; spans finishing later follow the decision.
    fn decide(&self, failed: bool) {
        let mut state = self.state.lock();
        let TraceState::Open {
            spans,
            bytes,
            error,
            dropped,
        } = &mut *state
        else {
            return;
        };
        let mut spans = std::mem::take(spans);
        let dropped = *dropped;
        let shared = &*self.shared;
        shared.buffered.fetch_sub(*bytes, Ordering::Relaxed);
        let keep = *error || failed || self.head_keep;
        *state = if keep {
            TraceState::Kept
        } else {
            TraceState::Dropped
        };
        drop(state);
        if keep {
            // A trace cut by the caps says so on its outermost span kept.
            if dropped > 0 {
                if let Some((_, top)) = spans.iter_mut().min_by_key(|(d, _)| *d) {
                    top.attributes
                        .insert("tracepost.spans_dropped".into(), dropped.into());
                }
            }
            for (_, span) in spans {
                shared.handle.capture(span);
            }
        } else {
            shared
                .handle
                .stages()
                .sample()
                .count_sampled_out(spans.len() as u64);
        }
    }
}

impl Drop for TraceBuffer {
    fn drop(&mut self) {
        // A trace whose local root never closed (its spans outlived the subscriber): decide
        // now rather than lose its spans silently.
        self.decide(false);
    }
}

/// The link from a request's scope to its trace buffer.
#[derive(Debug)]
struct RequestTrace(Arc<TraceBuffer>);

impl ScopeAttachment for RequestTrace {
    fn request_finished(&self, failed: bool) {
        self.0.decide(failed);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The trace buffer of a request (made on first use).
fn request_trace(scope: &RequestScope, shared: &Arc<SpanShared>) -> Option<Arc<TraceBuffer>> {
    let attachment = scope.attachment_or_init(|| {
        Arc::new(RequestTrace(Arc::new(TraceBuffer::new(
            scope.trace().trace_id,
            Some(scope),
            shared,
        ))))
    });
    attachment
        .as_any()
        .downcast_ref::<RequestTrace>()
        .map(|t| t.0.clone())
}

fn rand_unit() -> f64 {
    // 53 random bits of one `u64` span id draw: no `rand` dependency here.
    let bytes = new_span_id();
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

thread_local! {
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

impl<S> Layer<S> for TracepostTracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if scope::is_internal() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let meta = attrs.metadata();
        if meta.target() == REQUEST_SPAN_TARGET && meta.name() == REQUEST_SPAN_NAME {
            if let Some(scope) = scope::take_pending() {
                span.extensions_mut().insert(scope);
            }
            return;
        }
        let mut fields = FieldVisitor::default();
        attrs.record(&mut fields);
        if !fields.fields.is_empty() {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
        let Some(span_level) = self.span_level else {
            return;
        };
        if Level::from(*meta.level()) < span_level || meta.target().starts_with("tracepost") {
            return;
        }
        // The parent: the nearest captured span above, else the request (its span id), else
        // none (a new trace).
        let mut request: Option<Arc<RequestScope>> = None;
        let mut parent_record: Option<([u8; 8], Arc<TraceBuffer>, u32)> = None;
        for ancestor in span.scope().skip(1) {
            let ext = ancestor.extensions();
            if let Some(r) = ext.get::<SpanRecord>() {
                parent_record = Some((r.span_id, r.trace.clone(), r.depth + 1));
                break;
            }
            if let Some(r) = ext.get::<Arc<RequestScope>>() {
                request = Some(r.clone());
                break;
            }
        }
        let (trace, parent, local_root, depth) = match parent_record {
            Some((parent, trace, depth)) => (trace, Some(parent), false, depth),
            None => match request.or_else(scope::current) {
                Some(req) => {
                    let trace = request_trace(&req, &self.spans).unwrap_or_else(|| {
                        Arc::new(TraceBuffer::new(req.trace().trace_id, None, &self.spans))
                    });
                    (trace, Some(req.trace().span_id), true, 0)
                }
                None => (
                    Arc::new(TraceBuffer::new(
                        TraceContext::start().trace_id,
                        None,
                        &self.spans,
                    )),
                    None,
                    true,
                    0,
                ),
            },
        };
        span.extensions_mut().insert(SpanRecord {
            span_id: new_span_id(),
            parent,
            trace,
            start: Timestamp::now(),
            started: Instant::now(),
            local_root,
            depth,
            error: AtomicBool::new(false),
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.span_level.is_none() {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let mut ext = span.extensions_mut();
        let Some(record) = ext.remove::<SpanRecord>() else {
            return;
        };
        let fields = ext.remove::<SpanFields>();
        drop(ext);
        let meta = span.metadata();
        let trace = record.trace.clone();
        let duration_ms = record.started.elapsed().as_secs_f64() * 1000.0;
        let mut out = Event::new(Kind::Span, Level::from(*meta.level()), meta.name())
            .with_timestamp(record.start);
        out.trace_id = Some(hex(&trace.trace_id));
        out.span_id = Some(hex(&record.span_id));
        out.request_id = trace.request_id.clone();
        if let Some(fields) = fields {
            out.attributes = fields.0;
        }
        out.attributes.insert("target".into(), meta.target().into());
        if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
            out.attributes
                .insert("code.location".into(), format!("{file}:{line}").into());
        }
        if let Some(route) = &trace.route {
            out.attributes
                .insert("http.route".into(), route.clone().into());
        }
        out.span = Some(SpanDetail {
            name: meta.name().to_owned(),
            parent_span_id: record.parent.map(|p| hex(&p)),
            duration_ms,
            status: if record.error.load(Ordering::Relaxed) {
                SpanStatus::Error
            } else {
                SpanStatus::Unset
            },
        });
        trace.push(out, record.depth);
        if record.local_root && !trace.in_request {
            trace.decide(false);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if scope::is_internal() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldVisitor::default();
        values.record(&mut fields);
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(existing) => existing.0.extend(fields.fields),
            None => ext.insert(SpanFields(fields.fields)),
        }
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: Context<'_, S>) {
        // Nothing tracepost emits, or anything emitted while it works (a sink's HTTP client,
        // its database driver…), is captured: that would feed the pipeline its own output.
        if scope::is_internal() {
            return;
        }
        let meta = event.metadata();
        if meta.target().starts_with("tracepost") {
            return;
        }
        let level = Level::from(*meta.level());
        if level < self.min_level && level < self.breadcrumb_level {
            return;
        }
        if BUSY.with(|b| b.replace(true)) {
            return; // an event emitted while we handle one: never recurse
        }
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                BUSY.with(|b| b.set(false));
            }
        }
        let _clear = Clear;

        // The request: the one being polled on this thread, else one found on the event's spans
        // (work spawned into a request span). Span fields only matter for captured events.
        let mut request: Option<Arc<RequestScope>> = scope::current();
        let mut span_fields: Vec<Map<String, Value>> = Vec::new();
        // The innermost captured span: its trace and span ids go on the event.
        let mut in_span: Option<([u8; 16], [u8; 8])> = None;
        if request.is_none() || level >= self.min_level {
            if let Some(spans) = ctx.event_scope(event) {
                for span in spans {
                    let ext = span.extensions();
                    if request.is_none() {
                        request = ext.get::<Arc<RequestScope>>().cloned();
                    }
                    if in_span.is_none() && level >= self.min_level {
                        if let Some(r) = ext.get::<SpanRecord>() {
                            in_span = Some((r.trace.trace_id, r.span_id));
                            if level == Level::Error {
                                r.error.store(true, Ordering::Relaxed);
                                r.trace.mark_error();
                            }
                        }
                    }
                    if level >= self.min_level {
                        if let Some(f) = ext.get::<SpanFields>() {
                            span_fields.push(f.0.clone());
                        }
                    }
                }
            }
        }
        let in_request_crumb = request.is_some() && level >= self.breadcrumb_level;
        if level < self.min_level && !in_request_crumb {
            return;
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let message = visitor.message.take().unwrap_or_default();
        let timestamp = Timestamp::now();

        if let (true, Some(scope)) = (in_request_crumb, &request) {
            let mut text = message.clone();
            for (k, v) in &visitor.fields {
                let _ = write!(text, " {k}={}", display_value(v));
            }
            scope.push(Breadcrumb {
                timestamp,
                level,
                target: meta.target().to_owned(),
                message: text,
            });
        }
        if level < self.min_level {
            return;
        }

        let kind = if level == Level::Error {
            Kind::Error
        } else {
            Kind::Log
        };
        let mut out = Event::new(kind, level, message.clone()).with_timestamp(timestamp);
        // Outer spans first, so that inner spans and then the event's own fields win.
        for fields in span_fields.into_iter().rev() {
            out.attributes.extend(fields);
        }
        out.attributes.extend(visitor.fields);
        out.attributes.insert("target".into(), meta.target().into());
        if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
            out.attributes
                .insert("code.location".into(), format!("{file}:{line}").into());
        }
        if let Some(scope) = &request {
            out.trace_id = Some(scope.trace().trace_id_hex());
            out.span_id = Some(scope.trace().span_id_hex());
            out.request_id = Some(scope.request_id().to_owned());
            out.attributes
                .insert("http.route".into(), scope.route().into());
            if kind == Kind::Error && in_span.is_none() && self.span_level.is_some() {
                // An error in the request outside any captured span still keeps its trace.
                if let Some(trace) = request_trace(scope, &self.spans) {
                    trace.mark_error();
                }
            }
        }
        if let Some((trace_id, span_id)) = in_span {
            out.trace_id = Some(hex(&trace_id));
            out.span_id = Some(hex(&span_id));
        }
        if kind == Kind::Error {
            let error_type = out
                .attributes
                .get("error.type")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| meta.target().to_owned());
            let detail_message = match out.attributes.get("error").and_then(Value::as_str) {
                Some(e) if message.is_empty() => e.to_owned(),
                Some(e) => format!("{message}: {e}"),
                None => message,
            };
            out.error = Some(ErrorDetail {
                error_type,
                message: detail_message,
                backtrace: None,
                location: out
                    .attributes
                    .get("code.location")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        self.handle.capture(out);
    }
}

/// A field value as breadcrumb text, logfmt style: strings as they are unless they contain a
/// space, `=` or `"` (or are empty), then double-quoted, so that the redact stage can tell
/// where each value ends.
fn display_value(v: &Value) -> String {
    match v {
        Value::String(s)
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '=' || c == '"') =>
        {
            format!("{s:?}")
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::String(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(text, ": {s}");
            source = s.source();
        }
        self.fields
            .insert(field.name().to_owned(), Value::String(text));
    }
}
