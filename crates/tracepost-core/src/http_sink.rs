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
/// message is the error with its causes on one line.
pub fn transport_error(e: &reqwest::Error) -> SinkError {
    let message = error_chain(e);
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
}
