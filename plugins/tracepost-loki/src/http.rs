//! The HTTP side: one POST per push, with deadlines, and classification of the outcome.

#[cfg(feature = "rustls")]
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{Auth, ConfigError, LokiConfig};
use crate::encode::Push;

#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;
#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why one push did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Loki (or a proxy) answered with a non-2xx status.
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// Connecting, writing or reading failed.
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// No complete response within the deadline.
    Timeout(Duration),
}

pub(crate) struct Http {
    client: Client<Connector, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
}

impl Http {
    pub fn new(config: &LokiConfig) -> Result<Self, ConfigError> {
        let url = config.push_url();
        let uri: Uri = url
            .parse()
            .map_err(|e| ConfigError::InvalidUrl(format!("{url}: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "rustls") => {}
            Some("https") => {
                return Err(ConfigError::InvalidUrl(format!(
                    "{url}: https needs the `rustls` feature of tracepost-loki"
                )))
            }
            _ => {
                return Err(ConfigError::InvalidUrl(format!(
                    "{url}: expected http:// or https://"
                )))
            }
        }
        if uri.host().is_none() {
            return Err(ConfigError::InvalidUrl(format!("{url}: no host")));
        }

        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("tracepost-loki/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(tenant) = &config.tenant {
            headers.insert(
                "x-scope-orgid",
                HeaderValue::from_str(tenant)
                    .map_err(|_| ConfigError::InvalidHeader("X-Scope-OrgID".into()))?,
            );
        }
        if let Some(auth) = &config.auth {
            let value = match auth {
                Auth::Basic { username, password } => {
                    use base64::Engine as _;
                    let raw = format!("{username}:{password}");
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                }
                Auth::Bearer(token) => format!("Bearer {token}"),
            };
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| ConfigError::InvalidHeader("Authorization".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::InvalidHeader(name.clone()))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| ConfigError::InvalidHeader(name.to_string()))?;
            headers.append(name, value);
        }

        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        #[cfg(feature = "rustls")]
        let connector = {
            http.enforce_http(false);
            // An explicit provider: works whatever other rustls providers the application links.
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| ConfigError::Invalid(format!("TLS setup: {e}")))?
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        #[cfg(not(feature = "rustls"))]
        let connector = http;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Http {
            client,
            uri,
            headers,
            timeout: config.timeout,
        })
    }

    /// POSTs one push; `Ok` on any 2xx (Loki answers 204).
    pub async fn post(&self, push: &Push) -> Result<(), Failure> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, push.content_type)
            .body(Full::new(push.body.clone()))
            .map_err(|e| Failure::Transport(Box::new(e)))?;
        if let Some(enc) = push.content_encoding {
            request
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
        }
        for (name, value) in &self.headers {
            request.headers_mut().append(name, value.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Failure::Transport(Box::new(e)))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            // Read the body (bounded) so the connection can be reused and errors explained.
            let body = Limited::new(response.into_body(), 16 * 1024)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(Failure::Status {
                    status: status.as_u16(),
                    body,
                    retry_after,
                })
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(self.timeout)),
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A short reason (a metric label) for a 4xx Loki returned about the data, from its message.
pub fn rejection_reason(status: u16, body: &str) -> &'static str {
    let b = body.to_ascii_lowercase();
    if status == 413 {
        "too_large"
    } else if b.contains("too old") || b.contains("too far behind") {
        "too_old"
    } else if b.contains("too new") || b.contains("too far in the future") {
        "too_new"
    } else if b.contains("max entry size") || b.contains("line too long") {
        "line_too_long"
    } else if b.contains("structured metadata") {
        "structured_metadata"
    } else if b.contains("out of order") {
        "out_of_order"
    } else if b.contains("label") {
        "invalid_labels"
    } else {
        "bad_request"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_needs_the_rustls_feature() {
        let https = Http::new(&LokiConfig::new("https://logs.example.net"));
        if cfg!(feature = "rustls") {
            assert!(https.is_ok());
        } else {
            let Err(ConfigError::InvalidUrl(msg)) = https else {
                panic!("https accepted without the rustls feature")
            };
            assert!(msg.contains("rustls"), "{msg}");
        }
        for bad in ["loki:3100", "ftp://loki", "http://", "http://lo ki"] {
            assert!(Http::new(&LokiConfig::new(bad)).is_err(), "{bad}");
        }
        let header = LokiConfig::new("http://l").header("bad header", "v");
        assert!(matches!(
            Http::new(&header),
            Err(ConfigError::InvalidHeader(_))
        ));
    }

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
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn loki_messages_map_to_reasons() {
        let cases = [
            (400, "entry for stream '{service=\"a\"}' has timestamp too old: 2020-01-01, oldest acceptable timestamp is: 2026-11-16", "too_old"),
            (400, "entry for stream '{service=\"a\"}' has timestamp too new: 2030-01-01", "too_new"),
            (400, "Max entry size '262144' bytes exceeded for stream '{a=\"b\"}' while adding an entry with length '300000' bytes", "line_too_long"),
            (400, "stream '{a=\"b\"}' has structured metadata too large: '70000' bytes, limit: '65536' bytes", "structured_metadata"),
            (400, "entry has 31 label names; limit 30", "invalid_labels"),
            (413, "request entity too large", "too_large"),
            (400, "something else", "bad_request"),
        ];
        for (status, body, want) in cases {
            assert_eq!(rejection_reason(status, body), want, "{body}");
        }
    }
}
