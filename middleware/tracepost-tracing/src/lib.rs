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

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event as TracingEvent, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use tracepost_core::scope::{self, RequestScope, REQUEST_SPAN_NAME, REQUEST_SPAN_TARGET};
use tracepost_core::{Breadcrumb, ErrorDetail, Event, Kind, Level, Timestamp, TracepostHandle};

/// The layer. Build it with [`TracepostTracingLayer::new`] and add it to a registry.
#[derive(Debug, Clone)]
pub struct TracepostTracingLayer {
    handle: TracepostHandle,
    min_level: Level,
    breadcrumb_level: Level,
}

impl TracepostTracingLayer {
    /// A layer capturing INFO and above, with DEBUG and above as breadcrumbs.
    pub fn new(handle: TracepostHandle) -> Self {
        scope::mark_layer_installed();
        TracepostTracingLayer {
            handle,
            min_level: Level::Info,
            breadcrumb_level: Level::Debug,
        }
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
        if request.is_none() || level >= self.min_level {
            if let Some(spans) = ctx.event_scope(event) {
                for span in spans {
                    let ext = span.extensions();
                    if request.is_none() {
                        request = ext.get::<Arc<RequestScope>>().cloned();
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
