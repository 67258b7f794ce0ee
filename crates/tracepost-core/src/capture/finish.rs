//! The end of a request: classify it, record its metrics, and — when it failed or the policy
//! keeps it — build its snapshot and emit its event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::body::BodyCapture;
use super::classify::{classify, has_no_body, BodyEnd, Classification, Failure};
use super::head::Header;
use super::request::{self, RequestGuard, RequestState};
use crate::event::{ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp};
use crate::metrics::RequestOutcome;

/// A request whose response head is known, until its response body ends. Returned by
/// [`RequestCapture::respond`](super::RequestCapture::respond).
///
/// Dropping it without [`finish`](Self::finish) finishes the request as
/// [`BodyEnd::Dropped`].
pub struct ResponseCapture {
    state: Arc<RequestState>,
    status: u16,
    /// From the policy at the response head: `Some(true)` keep, `Some(false)` never,
    /// `None` only if slow.
    keep: Option<bool>,
    failure: Option<Failure>,
    /// The response headers as the snapshot keeps them (converted once, when kept).
    headers: Vec<(String, String)>,
    body: Option<BodyCapture>,
    body_len: Option<u64>,
    sent: u64,
    done: bool,
}

impl std::fmt::Debug for ResponseCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCapture")
            .field("status", &self.status)
            .field("keep", &self.keep)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl ResponseCapture {
    pub(crate) fn new(state: Arc<RequestState>, status: u16, failure: Option<Failure>) -> Self {
        let config = &state.config;
        let failed = failure.is_some() || config.classify.is_failure(status);
        let policy = &config.policy;
        // Slow before the response head: keep everything. A request that only turns slow
        // while its body streams is still kept, without the response headers and body.
        let keep = match policy.decide(state.route_label(), failed) {
            None if policy
                .slow_threshold
                .is_some_and(|t| state.start.elapsed() >= t) =>
            {
                Some(true)
            }
            keep => keep,
        };
        let body = (keep == Some(true) && config.body_limit > 0).then(BodyCapture::default);
        ResponseCapture {
            state,
            status,
            keep,
            failure,
            headers: Vec::new(),
            body,
            body_len: None,
            sent: 0,
            done: false,
        }
    }

    /// True when the request keeps its full snapshot: only then are the response headers
    /// read, so an adapter converts them only if this says so ([`set_headers`](Self::set_headers)).
    pub fn keeps_details(&self) -> bool {
        self.keep == Some(true)
    }

    /// The response headers, for the snapshot (and the response body's `Content-Type` and
    /// `Content-Encoding`). Ignored unless [`keeps_details`](Self::keeps_details).
    pub fn set_headers(&mut self, headers: Vec<Header>) {
        self.set_header_pairs(headers.iter().map(|(k, v)| (&k[..], &v[..])));
    }

    /// As [`set_headers`](Self::set_headers), from borrowed name/value pairs: the adapter
    /// lends its own header map, and each pair is copied once, into the snapshot's strings
    /// (invalid UTF-8 replaced by U+FFFD). Ignored unless [`keeps_details`](Self::keeps_details).
    pub fn set_header_pairs<'a>(
        &mut self,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) {
        if self.keeps_details() {
            self.headers = header_strings(headers.into_iter());
        }
    }

    /// The body's exact length, when known in advance (`Content-Length`, an exact size hint):
    /// a body dropped after sending that many bytes is complete, not aborted.
    pub fn set_body_len(&mut self, len: Option<u64>) {
        self.body_len = len;
    }

    /// Makes the request the thread's current one while the guard lives (logs emitted while
    /// the body streams belong to the request too). See
    /// [`RequestCapture::enter`](super::RequestCapture::enter).
    pub fn enter(&self) -> RequestGuard {
        request::enter(&self.state)
    }

    /// Whether the adapter should catch panics while producing the body.
    pub fn catch_panics(&self) -> bool {
        self.state.config.catch_panics
    }

    /// Records a chunk of the response body as it is sent.
    pub fn response_chunk(&mut self, data: &Bytes) {
        self.sent += data.len() as u64;
        if let Some(c) = &mut self.body {
            c.push(data, self.state.config.body_limit);
        }
    }

    /// The body ended (or failed, or panicked): records the request and emits its event if it
    /// failed or the policy keeps it.
    pub fn finish(mut self, end: BodyEnd) {
        self.finish_once(end);
    }

    fn finish_once(&mut self, end: BodyEnd) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let complete = has_no_body(self.state.head.method(), self.status)
            || self.body_len.is_some_and(|n| self.sent >= n);
        let end = match end {
            BodyEnd::Dropped if complete => BodyEnd::Complete,
            end => end,
        };
        let ending = Ending {
            status: self.status,
            keep: self.keep,
            failure: self.failure.take(),
            end,
            sent: self.sent,
            headers: std::mem::take(&mut self.headers),
            body: self.body.take(),
        };
        finish(&self.state, ending);
    }
}

impl Drop for ResponseCapture {
    fn drop(&mut self) {
        self.finish_once(BodyEnd::Dropped);
    }
}

/// What the finisher knows about how a request ended.
pub(crate) struct Ending {
    pub(crate) status: u16,
    pub(crate) keep: Option<bool>,
    pub(crate) failure: Option<Failure>,
    pub(crate) end: BodyEnd,
    pub(crate) sent: u64,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<BodyCapture>,
}

impl Ending {
    pub(crate) fn new(status: u16, keep: Option<bool>, end: BodyEnd) -> Self {
        Ending {
            status,
            keep,
            failure: None,
            end,
            sent: 0,
            headers: Vec::new(),
            body: None,
        }
    }
}

/// Records the request; emits its event if it failed or the policy keeps it.
pub(crate) fn finish(state: &RequestState, mut ending: Ending) {
    let duration = state.start.elapsed();
    let verdict = classify(
        ending.status,
        ending.failure.as_ref(),
        &ending.end,
        &*state.config.classify,
    );
    let request_bytes = state.request_body.lock().total();
    state.route_metrics.record(&RequestOutcome {
        method: state.method,
        status: verdict.status,
        duration,
        request_bytes,
        response_bytes: ending.sent,
        failed: verdict.failed,
    });
    let slow = state
        .config
        .policy
        .slow_threshold
        .is_some_and(|t| duration >= t);
    let keep = ending.keep.unwrap_or(slow);
    if verdict.failed {
        if let Some(scope) = &state.scope {
            scope.mark_failed(); // the request's trace is kept whole (the `tracing` layer)
        }
    }
    if !verdict.failed && !keep {
        return;
    }
    let keep_request = ending.keep != Some(false) && (keep || verdict.failed);
    let snapshot = snapshot(state, &mut ending, &verdict, duration, keep_request);
    let what = Description::of(state, &ending, &verdict, &snapshot, slow);
    emit(state, what, snapshot, &verdict, duration);
}

/// The request snapshot: always its line (method, route, path, status, sizes, timing);
/// headers and bodies when `details`.
fn snapshot(
    state: &RequestState,
    ending: &mut Ending,
    verdict: &Classification,
    duration: Duration,
    details: bool,
) -> RequestSnapshot {
    let config = &state.config;
    let head = &state.head;
    let request_body = state.request_body.lock();
    let mut snapshot = RequestSnapshot {
        method: head.method().to_owned(),
        route: state.route_label().to_owned(),
        path: head.path().to_owned(),
        query: head.query().map(str::to_owned),
        status: verdict.status,
        duration_ms: (duration.as_secs_f64() * 1e6).round() / 1e3,
        request_bytes: request_body.total(),
        response_bytes: ending.sent,
        client_address: head.client().map(|ip| ip.to_string()),
        http_version: head.http_version().map(str::to_owned),
        ..Default::default()
    };
    if details {
        let limit = config.body_limit;
        snapshot.request_headers = header_strings(head.iter_headers());
        snapshot.request_body = request_body.to_captured(
            head.get_str("content-type"),
            head.get_str("content-encoding"),
            limit,
        );
        let res = std::mem::take(&mut ending.headers);
        snapshot.response_body = ending.body.as_ref().and_then(|b| {
            b.to_captured(
                find(&res, "content-type"),
                find(&res, "content-encoding"),
                limit,
            )
        });
        snapshot.response_headers = res;
    }
    snapshot
}

/// The first value of the header `name` (case-insensitive), unless it was not valid UTF-8
/// (then it holds U+FFFD, and is not used as a content type or encoding, as before the
/// headers were kept as strings).
fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        // U+FFFD is EF BF BD in UTF-8: one byte search rules it out for the usual value.
        .filter(|v| memchr::memchr(0xEF, v.as_bytes()).is_none() || !v.contains('\u{FFFD}'))
}

/// Headers as strings, unredacted: the pipeline's redact stage masks them (by name and by
/// credential-shaped value) before any sink sees the event.
fn header_strings<'a>(
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<(String, String)> {
    headers.map(|(k, v)| (lossy(k), lossy(v))).collect()
}

/// `bytes` as an owned string, invalid UTF-8 replaced by U+FFFD (one validation pass and one
/// copy for the usual valid header).
fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `METHOD route`, as messages name a request (written into the message, not allocated on
/// its own).
struct What<'a> {
    method: &'a str,
    route: &'a str,
}

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method)?;
        f.write_str(" ")?;
        f.write_str(self.route)
    }
}

/// An event's kind, level, message and error detail.
struct Description {
    kind: Kind,
    level: Level,
    message: String,
    error: Option<ErrorDetail>,
}

impl Description {
    fn of(
        state: &RequestState,
        ending: &Ending,
        verdict: &Classification,
        snapshot: &RequestSnapshot,
        slow: bool,
    ) -> Self {
        let what = What {
            method: state.head.method(),
            route: state.route_label(),
        };
        let error = |message: String, error: ErrorDetail| Description {
            kind: Kind::Error,
            level: Level::Error,
            message,
            error: Some(error),
        };
        match (&ending.failure, &ending.end) {
            (Some(Failure::Panic(p)), _) => error(
                format!("panic in {what}: {}", p.message),
                p.clone().into_error(),
            ),
            (Some(Failure::Service(e)), _) => error(
                format!("service error in {what}: {e}"),
                ErrorDetail {
                    error_type: "service_error".into(),
                    message: e.clone(),
                    ..Default::default()
                },
            ),
            (None, BodyEnd::Panic(p)) => error(
                format!(
                    "panic while streaming the response of {what}: {}",
                    p.message
                ),
                p.clone().into_error(),
            ),
            (None, BodyEnd::Error(e)) => error(
                format!(
                    "response body failed in {what} after {} bytes: {e}",
                    ending.sent
                ),
                ErrorDetail {
                    error_type: "body_error".into(),
                    message: e.clone(),
                    ..Default::default()
                },
            ),
            _ if verdict.failed => {
                let message = format!("HTTP {} server error", verdict.status);
                error(
                    format!("{message} in {what}"),
                    ErrorDetail {
                        error_type: format!("http_{}", verdict.status),
                        message,
                        ..Default::default()
                    },
                )
            }
            (None, BodyEnd::Dropped) => Description {
                kind: Kind::Request,
                level: Level::Warn,
                message: format!(
                    "{what} aborted by the client after {} bytes in {} ms",
                    ending.sent, snapshot.duration_ms
                ),
                error: None,
            },
            (None, BodyEnd::Complete) => {
                let why = if slow { "slow" } else { "sampled" };
                Description {
                    kind: Kind::Request,
                    level: if slow { Level::Warn } else { Level::Info },
                    message: sampled_message(&what, verdict.status, snapshot.duration_ms, why),
                    error: None,
                }
            }
        }
    }
}

/// `{what} {status} in {duration_ms} ms ({why})`, the message of every kept request in
/// access-log mode: the same text as `format!` gives, written piece by piece into one buffer
/// of the right size (the formatting machinery cost ~2,800 instructions per request).
fn sampled_message(what: &What<'_>, status: u16, duration_ms: f64, why: &str) -> String {
    let mut m = String::with_capacity(what.method.len() + what.route.len() + 40);
    m.push_str(what.method);
    m.push(' ');
    m.push_str(what.route);
    m.push(' ');
    push_u64(&mut m, u64::from(status));
    m.push_str(" in ");
    push_ms(&mut m, duration_ms);
    m.push_str(" ms (");
    m.push_str(why);
    m.push(')');
    m
}

/// Appends `ms` as `f64`'s `Display` writes it (the shortest decimal that reads back as
/// `ms`). A whole number of microseconds below 10^12 ms (a snapshot's `duration_ms`, rounded
/// to the microsecond) is written from its integer digits: its three-decimal form is then
/// that shortest decimal, since the f64's spacing there (< 2^-12) is far below 0.001. Other
/// values go through `Display`.
fn push_ms(m: &mut String, ms: f64) {
    use std::fmt::Write as _;
    let micros = (ms * 1e3).round();
    if (0.0..1e12).contains(&ms) && micros / 1e3 == ms && ms.is_sign_positive() {
        // Exact: `micros` is a whole number below 2^53.
        let micros = micros as u64;
        let (whole, mut frac) = (micros / 1000, micros % 1000);
        push_u64(m, whole);
        if frac != 0 {
            m.push('.');
            let mut digits = 3;
            while frac % 10 == 0 {
                frac /= 10;
                digits -= 1;
            }
            let mut buf = [b'0'; 3];
            for d in buf[..digits].iter_mut().rev() {
                *d = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            m.push_str(std::str::from_utf8(&buf[..digits]).unwrap_or_default());
        }
    } else {
        // `f64`'s `Display`; writing to a `String` cannot fail.
        let _ = write!(m, "{ms}");
    }
}

/// Appends the decimal digits of `n`.
fn push_u64(m: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    m.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

/// Builds the event around the description and snapshot, with the request's ids and
/// breadcrumbs, and hands it to the pipeline.
fn emit(
    state: &RequestState,
    what: Description,
    snapshot: RequestSnapshot,
    verdict: &Classification,
    duration: Duration,
) {
    // Only clock read of wall time for this request: derived when an event is emitted.
    let started_at = Timestamp::from(std::time::SystemTime::now() - duration);
    let mut event = Event::at(started_at, what.kind, what.level, what.message);
    event.trace_id = Some(state.trace.trace_id_hex());
    event.span_id = Some(state.trace.span_id_hex());
    event.request_id = Some(state.request_id_str().to_owned());
    // Read only here, when an event is kept: no cost on requests that keep nothing.
    event.session_id = state
        .head
        .get_str(super::SESSION_HEADER)
        .and_then(super::session_id)
        .map(str::to_owned);
    event.error = what.error;
    if let Some(ty) = &verdict.error_type {
        event
            .attributes
            .insert("error.type".into(), ty.as_ref().into());
    }
    if let Some(scope) = &state.scope {
        let (crumbs, evicted) = scope.take();
        event.breadcrumbs = crumbs;
        if evicted > 0 {
            event
                .attributes
                .insert("breadcrumbs_evicted".into(), evicted.into());
        }
    }
    if state.route_unknown {
        event.attributes.insert("route_unknown".into(), true.into());
    }
    event.request = Some(snapshot);
    state.config.handle.capture(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampled_message_reads_as_format_writes_it() {
        let what = What {
            method: "GET",
            route: "/users/{id}",
        };
        for status in [0, 7, 99, 100, 200, 404, 599, u16::MAX] {
            for ms in [0.0, 0.001, 0.123, 1.5, 12.0, 1234.567, 1e21, f64::NAN] {
                for why in ["slow", "sampled"] {
                    assert_eq!(
                        sampled_message(&what, status, ms, why),
                        format!("{what} {status} in {ms} ms ({why})")
                    );
                }
            }
        }
    }

    /// Durations as the snapshot rounds them (whole microseconds), from 0 to beyond the
    /// integer fast path, and values that are not whole microseconds.
    #[test]
    fn durations_are_written_as_display_writes_them() {
        let mut micros: Vec<u64> = (0..5_000).collect();
        let mut x: u64 = 1;
        while x < u64::MAX / 7 {
            let tens = x.saturating_mul(10);
            micros.extend([x - 1, x, x + 1, tens - 1, tens.saturating_add(1)]);
            x = x * 7 + 3;
        }
        for us in micros {
            let secs = us as f64 / 1e6;
            let ms = (secs * 1e6).round() / 1e3;
            for v in [ms, -ms, ms + 1e-7, ms * 1.000_000_1] {
                let mut ours = String::new();
                push_ms(&mut ours, v);
                assert_eq!(ours, format!("{v}"), "{us} µs");
            }
        }
        for v in [
            0.0,
            -0.0,
            1e-9,
            0.0005,
            0.0015,
            1e12,
            1e15,
            1e21,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut ours = String::new();
            push_ms(&mut ours, v);
            assert_eq!(ours, format!("{v}"));
        }
    }
}
