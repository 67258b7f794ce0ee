use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::escape_control;
use crate::event::{Event, Kind};
use crate::sink::{Batch, Sink, SinkError, SinkOutcome};

/// Where [`Console`] writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleTarget {
    /// Standard error (default: keeps stdout for the application).
    #[default]
    Stderr,
    /// Standard output.
    Stdout,
}

/// How [`Console`] writes each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsoleFormat {
    /// Readable lines for a person at a terminal (the default; see [`Console::format`]).
    #[default]
    Text,
    /// One JSON object per line, the schema of the book's "Event schema" page: for a
    /// container platform that collects stdout.
    Json,
}

type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// Prints events as readable lines: one line per event, and for errors the backtrace's
/// application frames, the request and the breadcrumbs, indented below it — or, with
/// [`ConsoleFormat::Json`], one JSON object per line.
///
/// Append-only: an event delivered twice (at-least-once delivery) is printed twice.
#[derive(Clone, Default)]
pub struct Console {
    target: ConsoleTarget,
    metric_windows: bool,
    format: ConsoleFormat,
    writer: Option<SharedWriter>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("target", &self.target)
            .field("metric_windows", &self.metric_windows)
            .field("format", &self.format)
            .field("custom_writer", &self.writer.is_some())
            .finish()
    }
}

impl Console {
    /// Writes to standard output instead of standard error.
    pub fn stdout(mut self) -> Self {
        self.target = ConsoleTarget::Stdout;
        self
    }

    /// Writes to `writer` instead of stderr or stdout (a test capturing the output, a log
    /// file handle).
    pub fn writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.writer = Some(Arc::new(Mutex::new(Box::new(writer))));
        self
    }

    /// Text lines (default) or JSON lines.
    pub fn output_format(mut self, format: ConsoleFormat) -> Self {
        self.format = format;
        self
    }

    /// Also prints metric-window events (off by default: one line per route per minute).
    pub fn with_metric_windows(mut self, on: bool) -> Self {
        self.metric_windows = on;
        self
    }

    /// Formats one event the way this sink prints it. Every field that input can set is
    /// printed with its control characters escaped ([`escape_control`]): a message with a
    /// line feed or an ANSI sequence can neither forge a line nor colour the terminal. The
    /// only line breaks are the ones this format adds (the indented detail lines).
    pub fn format(event: &Event) -> String {
        let mut s = format!(
            "{} {:<5} {} {}",
            event.timestamp,
            event.level.as_str().to_uppercase(),
            event.kind,
            escape_control(&event.message)
        );
        if let Some(fp) = &event.fingerprint {
            s.push_str(&format!(" fingerprint={}", escape_control(fp)));
        }
        if let Some(t) = &event.trace_id {
            s.push_str(&format!(" trace_id={}", escape_control(t)));
        }
        if let Some(r) = &event.request_id {
            s.push_str(&format!(" request_id={}", escape_control(r)));
        }
        for (k, v) in &event.attributes {
            // JSON escapes C0 controls in strings, not DEL, C1 or U+2028: escape the text too.
            s.push_str(&format!(
                " {}={}",
                escape_control(k),
                escape_control(&v.to_string())
            ));
        }
        if let Some(req) = &event.request {
            s.push_str(&format!(
                "\n    request: {} {} -> {} in {:.1} ms ({} B in, {} B out)",
                escape_control(&req.method),
                escape_control(&req.path),
                req.status,
                req.duration_ms,
                req.request_bytes,
                req.response_bytes
            ));
            for (k, v) in &req.request_headers {
                s.push_str(&format!(
                    "\n      {}: {}",
                    escape_control(k),
                    escape_control(v)
                ));
            }
        }
        if let Some(e) = &event.error {
            if let Some(bt) = &e.backtrace {
                let frames = crate::fingerprint::in_app_frames(bt, 5);
                if !frames.is_empty() {
                    s.push_str("\n    backtrace (application frames):");
                    for f in frames {
                        s.push_str(&format!("\n      at {}", escape_control(&f)));
                    }
                }
            }
        }
        if !event.breadcrumbs.is_empty() {
            s.push_str("\n    breadcrumbs:");
            for b in &event.breadcrumbs {
                s.push_str(&format!(
                    "\n      {} {:<5} {}: {}",
                    b.timestamp,
                    b.level.as_str().to_uppercase(),
                    escape_control(&b.target),
                    escape_control(&b.message)
                ));
            }
        }
        s.push('\n');
        s
    }
}

impl Sink for Console {
    fn name(&self) -> &str {
        "console"
    }

    /// WARN and above: errors, panics and slow requests. The application's own log output
    /// already shows its INFO lines; `sink_with` overrides this.
    fn default_options(&self) -> crate::SinkOptions {
        crate::SinkOptions::default().min_level(crate::Level::Warn)
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let mut out = Vec::new();
        for e in batch
            .iter()
            .filter(|e| self.metric_windows || e.kind != Kind::MetricWindow)
        {
            match self.format {
                ConsoleFormat::Text => out.extend_from_slice(Console::format(e).as_bytes()),
                ConsoleFormat::Json => {
                    crate::event::json::write_event(&mut out, e)
                        .map_err(|err| SinkError::permanent(format!("event {}: {err}", e.id)))?;
                    out.push(b'\n');
                }
            }
        }
        let res = match (&self.writer, self.target) {
            (Some(w), _) => {
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.write_all(&out).and_then(|()| w.flush())
            }
            (None, ConsoleTarget::Stderr) => std::io::stderr().lock().write_all(&out),
            (None, ConsoleTarget::Stdout) => std::io::stdout().lock().write_all(&out),
        };
        res?;
        Ok(SinkOutcome::default())
    }
}
