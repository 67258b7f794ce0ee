use std::io::Write as _;

use crate::event::{Event, Kind};
use crate::sink::{Batch, Sink, SinkError, SinkOutcome};

/// Where [`Console`] writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsoleTarget {
    /// Standard error (default: keeps stdout for the application).
    #[default]
    Stderr,
    /// Standard output.
    Stdout,
}

/// Prints events as readable lines: one line per event, and for errors the backtrace's
/// application frames, the request and the breadcrumbs, indented below it.
#[derive(Debug, Clone, Default)]
pub struct Console {
    target: ConsoleTarget,
    metric_windows: bool,
}

impl Console {
    /// Writes to standard output instead of standard error.
    pub fn stdout(mut self) -> Self {
        self.target = ConsoleTarget::Stdout;
        self
    }

    /// Also prints metric-window events (off by default: one line per route per minute).
    pub fn with_metric_windows(mut self, on: bool) -> Self {
        self.metric_windows = on;
        self
    }

    /// Formats one event the way this sink prints it.
    pub fn format(event: &Event) -> String {
        let mut s = format!(
            "{} {:<5} {} {}",
            event.timestamp,
            event.level.as_str().to_uppercase(),
            event.kind,
            event.message
        );
        if let Some(fp) = &event.fingerprint {
            s.push_str(&format!(" fingerprint={fp}"));
        }
        if let Some(t) = &event.trace_id {
            s.push_str(&format!(" trace_id={t}"));
        }
        if let Some(r) = &event.request_id {
            s.push_str(&format!(" request_id={r}"));
        }
        for (k, v) in &event.attributes {
            s.push_str(&format!(" {k}={v}"));
        }
        if let Some(req) = &event.request {
            s.push_str(&format!(
                "\n    request: {} {} -> {} in {:.1} ms ({} B in, {} B out)",
                req.method,
                req.path,
                req.status,
                req.duration_ms,
                req.request_bytes,
                req.response_bytes
            ));
            for (k, v) in &req.request_headers {
                s.push_str(&format!("\n      {k}: {v}"));
            }
        }
        if let Some(e) = &event.error {
            if let Some(bt) = &e.backtrace {
                let frames = crate::fingerprint::in_app_frames(bt, 5);
                if !frames.is_empty() {
                    s.push_str("\n    backtrace (application frames):");
                    for f in frames {
                        s.push_str(&format!("\n      at {f}"));
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
                    b.target,
                    b.message
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
        let mut out = String::new();
        for e in batch
            .iter()
            .filter(|e| self.metric_windows || e.kind != Kind::MetricWindow)
        {
            out.push_str(&Console::format(e));
        }
        let res = match self.target {
            ConsoleTarget::Stderr => std::io::stderr().lock().write_all(out.as_bytes()),
            ConsoleTarget::Stdout => std::io::stdout().lock().write_all(out.as_bytes()),
        };
        res?;
        Ok(SinkOutcome::default())
    }
}
