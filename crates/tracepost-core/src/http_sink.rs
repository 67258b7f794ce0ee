//! The plumbing HTTP sinks share (feature `http-sink`; HTTPS with `http-sink-rustls`): a
//! [`reqwest`] client with deadlines, a user agent and the proxy from the environment
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`); `Retry-After` as seconds or an HTTP-date; and
//! the classification of a response or a transport error into a [`SinkError`].
//!
//! ```
//! use std::time::Duration;
//! use tracepost_core::http_sink::{self, HttpClientOptions};
//!
//! let client = http_sink::client(
//!     &HttpClientOptions::new("my-sink/1.0").timeout(Duration::from_secs(10)),
//! )
//! .expect("a client");
//! # drop(client);
//! ```
//!
//! A sink's `send` then posts with the client and hands the outcome to [`check`]:
//!
//! ```no_run
//! # async fn send(client: &tracepost_core::http_sink::reqwest::Client) -> Result<(), tracepost_core::SinkError> {
//! use tracepost_core::http_sink;
//!
//! let response = client.post("https://hooks.example/push").body("[]").send().await;
//! http_sink::check(response).await?; // 2xx: Ok; 401/403/404: refused; 429/5xx: temporary; …
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

pub use reqwest;

use crate::sink::{SinkError, SinkErrorClass, SinkErrorKind};

/// How the shared HTTP client is built.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpClientOptions {
    /// `User-Agent` of every request (`tracepost-loki/0.1.0`).
    pub user_agent: String,
    /// Deadline of one request, from connecting to the end of the response body
    /// (default 10 s).
    pub timeout: Duration,
    /// Deadline of the TCP (and TLS) connect (default 3 s).
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long (default 50 s: under the usual
    /// 60 s of load balancers, so a reused connection is rarely one the server closed).
    pub pool_idle_timeout: Duration,
    /// Use the proxy named by `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (and `NO_PROXY`)
    /// (default true).
    pub proxy_from_env: bool,
}

impl HttpClientOptions {
    /// The defaults, with this user agent.
    pub fn new(user_agent: impl Into<String>) -> Self {
        HttpClientOptions {
            user_agent: user_agent.into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            pool_idle_timeout: Duration::from_secs(50),
            proxy_from_env: true,
        }
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets [`proxy_from_env`](Self::proxy_from_env).
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.proxy_from_env = on;
        self
    }
}

/// True when this build can speak HTTPS (the `http-sink-rustls` feature).
pub const HTTPS: bool = cfg!(feature = "http-sink-rustls");

/// The client: HTTP/1.1, TCP_NODELAY, keep-alive, the deadlines and proxy of `options`;
/// HTTPS through rustls (webpki roots) with `http-sink-rustls`.
pub fn client(options: &HttpClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .user_agent(options.user_agent.clone())
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(4)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(60));
    if !options.proxy_from_env {
        b = b.no_proxy();
    }
    b.build()
}

/// Checks a URL for an HTTP sink: `http://` or `https://` (the latter only with
/// [`HTTPS`]), with a host. The error is one readable line.
pub fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    parse_url_unmasked(url).map_err(|e| e.replace(url, &mask_userinfo(url)))
}

/// `url` with the user-info part (`user:token@`) of its authority masked, for messages.
fn mask_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://[REDACTED]@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn parse_url_unmasked(url: &str) -> Result<reqwest::Url, String> {
    // The URL standard repairs `http:/host` and `http:///host` into `http://host/`: too
    // lenient for a setting, where such a URL is a typo.
    match url.split_once("://") {
        Some((_, rest)) if !rest.is_empty() && !rest.starts_with('/') => {}
        _ => return Err(format!("{url}: expected scheme://host[:port][/path]")),
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    match parsed.scheme() {
        "http" => {}
        "https" if HTTPS => {}
        "https" => {
            return Err(format!(
                "{url}: https needs the rustls feature (tracepost-core's `http-sink-rustls`)"
            ))
        }
        other => {
            return Err(format!(
                "{url}: expected http:// or https://, not {other}://"
            ))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url}: no host"));
    }
    Ok(parsed)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// is zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A failed response: its status, the start of its body and the `Retry-After` it asked for.
#[derive(Debug, Clone)]
pub struct HttpFailure {
    /// The status code.
    pub status: u16,
    /// The body, cut to 16 KiB, as text (lossy).
    pub body: String,
    /// `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
}

impl HttpFailure {
    /// The [`SinkError`] for this response ([`SinkError::from_http_status`], with the
    /// `Retry-After`).
    pub fn to_sink_error(&self) -> SinkError {
        let mut e = SinkError::from_http_status(self.status, &self.body);
        if let Some(after) = self.retry_after {
            e = e.with_retry_after(after);
        }
        e
    }
}

/// The largest part of an error response body kept for the message.
const BODY_LIMIT: usize = 16 * 1024;

/// Reads a response: `Ok` with the (bounded) body on 2xx; otherwise the failure. Reading
/// the body, bounded, lets the connection be reused and errors be explained.
pub async fn read_response(
    response: reqwest::Response,
) -> Result<(u16, String), Result<HttpFailure, reqwest::Error>> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= BODY_LIMIT {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if (200..300).contains(&status) => return Err(Err(e)),
            Err(_) => break, // the status says enough
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    if (200..300).contains(&status) {
        Ok((status, body))
    } else {
        Err(Ok(HttpFailure {
            status,
            body,
            retry_after,
        }))
    }
}

/// Classifies the outcome of `client.….send().await` for a sink: `Ok` on 2xx, else the
/// [`SinkError`] by status ([`SinkError::from_http_status`]) or transport error
/// ([`transport_error`]).
pub async fn check(
    result: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, SinkError> {
    let response = result.map_err(|e| transport_error(&e))?;
    if response.status().is_success() {
        return Ok(response);
    }
    match read_response(response).await {
        Ok(_) => unreachable!("a non-2xx status"),
        Err(Ok(failure)) => Err(failure.to_sink_error()),
        Err(Err(e)) => Err(transport_error(&e)),
    }
}

/// A transport error as a [`SinkError`]: timeouts are temporary (`timeout`), connection
/// failures temporary (`unavailable`), a request that cannot be built permanent; the
/// message is the error with its causes on one line, with the password of a URL carrying
/// credentials (`https://user:token@host/…`, reqwest prints the URL) masked.
pub fn transport_error(e: &reqwest::Error) -> SinkError {
    let mut message = error_chain(e);
    if let Some(password) = e.url().and_then(|u| u.password()).filter(|p| !p.is_empty()) {
        message = message.replace(password, "[REDACTED]");
    }
    let (class, kind) = if e.is_timeout() {
        (SinkErrorClass::Temporary, SinkErrorKind::Timeout)
    } else if e.is_builder() {
        (SinkErrorClass::Permanent, SinkErrorKind::Other)
    } else if e.is_connect() {
        (SinkErrorClass::Temporary, SinkErrorKind::Unavailable)
    } else {
        (SinkErrorClass::Temporary, SinkErrorKind::Io)
    };
    SinkError::new(class, kind, message)
}

/// Adaptive request sizing for HTTP sinks: how many bytes the next request may carry, learned
/// from the destination's answers (additive increase, multiplicative decrease).
///
/// * A `429` or `413` for a request of `n` bytes halves the size to `min(current, n) / 2`,
///   down to one entry (the sink always sends at least one entry, so a size of 1 byte means
///   "one entry per request").
/// * Each accepted request grows the size by `max / 32` (at least 1 KiB) — after a refusal
///   by 1/32 of the refused size (at least 256 bytes) — up to `max` or the learned cap.
/// * When the destination names its limit (Loki: `limit: 10485 bytes/sec`), pass it to
///   [`learn_rate`](Self::learn_rate): requests are capped at 90 % of it and paced by a local
///   token bucket at that rate ([`delay_before`](Self::delay_before)), so the destination's own
///   limiter rarely refuses. A learned limit is forgotten after [`FORGET_AFTER`] without a
///   refusal (the destination's limit may have been raised).
///
/// The sizing lives here, not in the pipeline's batching: a batch is the unit the pipeline
/// retries, spools and acknowledges; how many HTTP requests it takes is a transport concern of
/// each destination (each has its own limits), and only the sink sees the 429 and its body.
///
/// ```
/// use tracepost_core::http_sink::RequestSizer;
///
/// let sizer = RequestSizer::new(120_000);
/// assert_eq!(sizer.request_bytes(), 120_000);
/// sizer.on_refused(120_000);
/// assert_eq!(sizer.request_bytes(), 60_000);
/// sizer.learn_rate(10_485);
/// assert_eq!(sizer.request_bytes(), 9_436); // below the named limit
/// sizer.on_success(9_000);
/// assert!(sizer.request_bytes() <= 9_436);
/// ```
#[derive(Debug)]
pub struct RequestSizer {
    max: usize,
    step: usize,
    state: std::sync::Mutex<SizerState>,
}

/// How long a learned limit is kept without a new refusal (10 minutes).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct SizerState {
    current: usize,
    /// The size of the last refused request: growth after a refusal is in steps of 1/32 of
    /// it, so the size climbs back towards the limit slowly.
    refused: Option<usize>,
    /// The learned rate (bytes per second) and when it was last confirmed.
    rate: Option<(f64, std::time::Instant)>,
    /// The local token bucket mirroring the destination's (bytes; negative is debt).
    tokens: f64,
    refilled: std::time::Instant,
}

impl SizerState {
    fn cap(&self, max: usize) -> usize {
        match self.rate {
            Some((rate, _)) => ((rate * 0.9) as usize).clamp(1, max),
            None => max,
        }
    }

    fn forget_stale(&mut self, now: std::time::Instant) {
        if self
            .rate
            .is_some_and(|(_, at)| now.duration_since(at) > FORGET_AFTER)
        {
            self.rate = None;
        }
    }
}

impl RequestSizer {
    /// A sizer starting at (and never above) `max_bytes` per request.
    pub fn new(max_bytes: usize) -> Self {
        let max = max_bytes.max(1);
        RequestSizer {
            max,
            step: (max / 32).max(1024),
            state: std::sync::Mutex::new(SizerState {
                current: max,
                refused: None,
                rate: None,
                tokens: 0.0,
                refilled: std::time::Instant::now(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SizerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most bytes the next request should carry (at least 1: one entry).
    pub fn request_bytes(&self) -> usize {
        let mut s = self.state();
        s.forget_stale(std::time::Instant::now());
        s.current.min(s.cap(self.max)).max(1)
    }

    /// The rate the destination named, in bytes per second, if one was learned.
    pub fn learned_rate(&self) -> Option<u64> {
        let mut s = self.state();
        s.forget_stale(std::time::Instant::now());
        s.rate.map(|(r, _)| r as u64)
    }

    /// A request of `bytes` was accepted: grow the size additively.
    pub fn on_success(&self, bytes: usize) {
        let _ = bytes;
        let mut s = self.state();
        let cap = s.cap(self.max);
        let step = s.refused.map_or(self.step, |r| (r / 32).max(256));
        s.current = s.current.saturating_add(step).min(cap);
    }

    /// A request of `bytes` was refused for its size or rate (429, 413): halve the size.
    pub fn on_refused(&self, bytes: usize) {
        let mut s = self.state();
        s.current = (s.current.min(bytes.max(1)) / 2).max(1);
        s.refused = Some(bytes.max(1));
        if let Some((_, at)) = &mut s.rate {
            *at = std::time::Instant::now();
        }
    }

    /// The destination named its limit: `bytes_per_sec`. Requests are capped below it and
    /// paced at it from now on (its bucket is assumed empty).
    pub fn learn_rate(&self, bytes_per_sec: u64) {
        let now = std::time::Instant::now();
        let mut s = self.state();
        s.rate = Some(((bytes_per_sec.max(1)) as f64, now));
        s.tokens = 0.0;
        s.refilled = now;
        let cap = s.cap(self.max);
        s.current = s.current.min(cap);
    }

    /// How long to wait before sending a request of `bytes`, so that the requests stay within
    /// the learned rate (zero when none is known). Reserves the bytes: call once per request.
    pub fn delay_before(&self, bytes: usize) -> Duration {
        let now = std::time::Instant::now();
        let mut s = self.state();
        s.forget_stale(now);
        let Some((rate, _)) = s.rate else {
            return Duration::ZERO;
        };
        let burst = s.cap(self.max) as f64;
        let elapsed = now.duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(burst);
        s.refilled = now;
        s.tokens -= (bytes as f64).min(burst);
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / rate)
        }
    }
}

/// Finds a rate limit a server named in a refusal: the number before `bytes/sec`,
/// `bytes/s` or `bytes per second` (Loki: `… (limit: 10485 bytes/sec) while attempting …`).
pub fn named_rate_limit(body: &str) -> Option<u64> {
    for unit in [" bytes/sec", " bytes/s", " bytes per second"] {
        if let Some(at) = body.find(unit) {
            let head = &body[..at];
            let digits = head.bytes().rev().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                return head[head.len() - digits..].parse().ok();
            }
        }
    }
    None
}

/// An error and its causes, `: `-separated, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let next = inner.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
    }

    #[test]
    fn urls_are_checked_with_one_line_errors() {
        assert!(parse_url("http://loki:3100").is_ok());
        for bad in [
            "loki:3100",
            "ftp://loki",
            "http://",
            "http://lo ki",
            "http:/loki",
            "http:///loki",
            "not a url",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(!e.contains('\n') && e.starts_with(bad), "{bad}: {e}");
        }
        assert_eq!(parse_url("https://loki.example").is_ok(), HTTPS);
    }

    #[test]
    fn sizer_halves_on_refusal_grows_additively_and_respects_a_named_limit() {
        let s = RequestSizer::new(120_000);
        s.on_refused(120_000);
        s.on_refused(120_000);
        assert_eq!(s.request_bytes(), 30_000);
        s.on_success(30_000);
        // After a refusal the size grows by 1/32 of the refused size.
        assert_eq!(s.request_bytes(), 30_000 + 120_000 / 32);
        for _ in 0..40 {
            s.on_refused(s.request_bytes());
        }
        assert_eq!(s.request_bytes(), 1, "down to one entry");
        for _ in 0..500 {
            s.on_success(1);
        }
        assert_eq!(s.request_bytes(), 120_000, "never above the maximum");
        s.learn_rate(10_485);
        assert_eq!(s.request_bytes(), 9_436);
        assert_eq!(s.learned_rate(), Some(10_485));
        // The local bucket starts empty: 9 436 bytes wait ~0.9 s, then the next as long.
        let d = s.delay_before(9_436);
        assert!(
            d > Duration::from_millis(850) && d < Duration::from_millis(950),
            "{d:?}"
        );
        let d = s.delay_before(9_436);
        assert!(d > Duration::from_millis(1750), "{d:?}");
    }

    #[test]
    fn rate_limits_named_in_bodies() {
        let loki = "Ingestion rate limit exceeded for user fake (limit: 10485 bytes/sec) while attempting to ingest '30' lines totaling '124188' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased";
        assert_eq!(named_rate_limit(loki), Some(10_485));
        assert_eq!(named_rate_limit("limit 2048 bytes per second"), Some(2048));
        assert_eq!(named_rate_limit("slow down"), None);
        assert_eq!(named_rate_limit("x bytes/sec"), None);
    }

    #[tokio::test]
    async fn connection_refused_is_a_temporary_unavailable_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = client(&HttpClientOptions::new("test").proxy_from_env(false)).unwrap();
        let e = check(c.get(format!("http://{addr}/")).send().await)
            .await
            .unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert_eq!(e.kind(), SinkErrorKind::Unavailable, "{e}");
        assert!(!e.message().contains('\n'));
    }

    #[tokio::test]
    async fn a_transport_error_never_prints_the_urls_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://inst:glc_s3cr3t_token@127.0.0.1:{port}/loki/api/v1/push");
        let e = reqwest::Client::new().post(&url).send().await.unwrap_err();
        let err = transport_error(&e);
        assert!(!err.message().contains("glc_s3cr3t_token"), "{err}");
        assert!(!err.to_string().contains("glc_s3cr3t_token"), "{err}");
    }

    #[test]
    fn a_bad_url_error_never_prints_its_credentials() {
        for bad in [
            "ftp://inst:glc_s3cr3t@host/x",
            "http://inst:glc_s3cr3t@/x",
            "http://inst:glc_s3cr3t@host:99999/x",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(!e.contains("glc_s3cr3t"), "{e}");
            assert!(e.contains("[REDACTED]@"), "{e}");
        }
    }
}
