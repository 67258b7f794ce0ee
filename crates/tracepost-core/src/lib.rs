//! The core of [tracepost](https://docs.rs/tracepost): the event model, the [`Sink`] trait and
//! the delivery pipeline. It has no web framework dependencies; the middleware crates and the
//! sink plugins build on it, and most users depend on the `tracepost` facade instead.

pub mod capture;
pub mod event;
pub mod fingerprint;
#[cfg(feature = "http-sink")]
pub mod http_sink;
pub mod metrics;
pub mod object_store;
pub mod pipeline;
pub mod redact;
pub mod replay_index;
pub mod scope;
pub mod sink;
pub mod sinks;
pub mod store;
pub mod tail;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time_range;
pub mod trace_context;

/// The `prometheus-client` version tracepost's metrics are built on: use this path to register
/// metrics into a [`metrics::MetricsRegistry`] or to implement `Sink::register_metrics`, so
/// that the types match.
pub use prometheus_client;

pub use capture::{in_current_request, spawn};
pub use event::{
    Breadcrumb, CapturedBody, ErrorDetail, Event, Kind, Level, MetricWindow, RequestSnapshot,
    Resource, SpanDetail, SpanStatus, Timestamp,
};
pub use pipeline::{
    BatchOptions, BuildError, Builder, DropReason, FsyncPolicy, Health, HealthReport, RetryOptions,
    ShutdownReport, SinkCounts, SinkHealth, SinkOptions, SpoolFullPolicy, SpoolOptions, Tracepost,
    TracepostHandle,
};
pub use redact::Redactor;
pub use sink::{
    Batch, Rejection, Settled, Sink, SinkError, SinkErrorClass, SinkErrorKind, SinkOutcome,
};

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `c` must not reach a terminal, a line-oriented log or a web page as is: C0
/// controls (line feed, carriage return, ESC…), DEL, C1 controls (8-bit CSI…), the Unicode
/// line and paragraph separators, and the bidirectional overrides, isolates and marks that
/// reorder what a reader sees (Unicode's `Bidi_Control` set: U+061C, U+200E/F, U+202A–E,
/// U+2066–9).
fn is_hostile_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` safe to print on one line of a terminal or a text log: every control character
/// (see above) is written as an escape — `\n`, `\r`, `\t`, else `\x1b`-style for ASCII and
/// `\u{85}`-style above — so that input can neither start a forged line nor send ANSI
/// sequences (colours, cursor moves, title changes). Borrowed when nothing needs escaping.
///
/// ```
/// use tracepost_core::escape_control;
/// assert_eq!(escape_control("ok\n2026 ERROR forged\x1b[31m"), r"ok\n2026 ERROR forged\x1b[31m");
/// assert_eq!(escape_control("plain"), "plain");
/// ```
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    escape_hostile(s, false)
}

/// As [`escape_control`], for text a reader sees as several lines (a `<pre>` block of a web
/// page): line feeds and tabs stay as they are; every other character that
/// [`escape_control`] escapes is escaped the same way. The console runs its HTML pages
/// through it, so that a captured `U+202E` can't turn "txt.exe" around on the page.
///
/// ```
/// use tracepost_core::escape_control_multiline;
/// assert_eq!(escape_control_multiline("a\n\tb\u{202e}c"), "a\n\tb\\u{202e}c");
/// ```
pub fn escape_control_multiline(s: &str) -> std::borrow::Cow<'_, str> {
    escape_hostile(s, true)
}

fn escape_hostile(s: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write;
    let escaped = |c: char| is_hostile_char(c) && !(keep_lines && matches!(c, '\n' | '\t'));
    if !s.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    std::borrow::Cow::Owned(out)
}
