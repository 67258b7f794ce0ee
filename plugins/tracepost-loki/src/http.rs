//! The HTTP side: one POST per push on core's shared HTTP sink client (timeouts, TLS,
//! proxy from the environment), and the classification of the outcome.

use tracepost_core::http_sink::reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
};
use tracepost_core::http_sink::{self, reqwest, HttpClientOptions, HttpFailure};
use tracepost_core::SinkError;

use crate::config::{Auth, ConfigError, LokiConfig};
use crate::encode::Push;

pub use tracepost_core::http_sink::parse_retry_after;

/// Why one push did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Loki (or a proxy) answered with a non-2xx status.
    Status(HttpFailure),
    /// Connecting, writing or reading failed, or no complete response within the deadline.
    Transport(SinkError),
}

pub(crate) struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
}

impl Http {
    pub fn new(config: &LokiConfig) -> Result<Self, ConfigError> {
        let invalid = |e: String| {
            ConfigError::InvalidUrl(e.replace(
                "tracepost-core's `http-sink-rustls`",
                "the `rustls` feature of tracepost-loki",
            ))
        };
        http_sink::parse_url(&config.url).map_err(invalid)?;
        let url = http_sink::parse_url(&config.push_url()).map_err(invalid)?;
        let mut headers = HeaderMap::new();
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
        let options = HttpClientOptions::new(concat!("tracepost-loki/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout);
        let client = http_sink::client(&options).map_err(|e| {
            ConfigError::Invalid(format!("HTTP client: {}", http_sink::error_chain(&e)))
        })?;
        Ok(Http {
            client,
            url,
            headers,
        })
    }

    /// POSTs one push; `Ok` on any 2xx (Loki answers 204).
    pub async fn post(&self, push: &Push) -> Result<(), Failure> {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, push.content_type)
            .body(push.body.clone());
        if let Some(enc) = push.content_encoding {
            request = request.header(CONTENT_ENCODING, enc);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transport(transport(&e)))?;
        match http_sink::read_response(response).await {
            Ok(_) => Ok(()),
            Err(Ok(failure)) => Err(Failure::Status(failure)),
            Err(Err(e)) => Err(Failure::Transport(transport(&e))),
        }
    }
}

/// Whether an error body is an HTML page (a proxy's), which Loki never sends.
pub(crate) fn is_html(body: &str) -> bool {
    let head = body.trim_start().as_bytes();
    head.first() == Some(&b'<')
}

/// The text of an HTML error page, tags dropped, spaces collapsed, cut to 200 bytes.
pub(crate) fn html_text(body: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            '>' => in_tag = false,
            _ if in_tag => {}
            c if c.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
        if out.len() >= 200 {
            break;
        }
    }
    out.trim().to_owned()
}

fn transport(e: &reqwest::Error) -> SinkError {
    let error = http_sink::transport_error(e);
    let message = format!("push to Loki failed: {}", error.message());
    SinkError::new(error.class(), error.kind(), message)
}

/// A short reason (a metric label) for a 4xx Loki returned about the data, from its message.
pub fn rejection_reason(status: u16, body: &str) -> &'static str {
    let b = body.to_ascii_lowercase();
    if status == 413 {
        "too_large"
    } else if b.contains("too far behind") {
        "too_far_behind"
    } else if b.contains("too old") {
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
        } else if let Err(e) = https {
            // Without TLS compiled in (another crate of the build may enable it in the shared
            // HTTP client: then https is accepted), the error names the feature.
            let ConfigError::InvalidUrl(msg) = e else {
                panic!("{e:?}")
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
    fn loki_messages_map_to_reasons() {
        let cases = [
            (400, "entry for stream '{service=\"a\"}' has timestamp too old: 2020-01-01, oldest acceptable timestamp is: 2026-11-16", "too_old"),
            (400, "entry for stream '{service=\"a\"}' has timestamp too new: 2030-01-01", "too_new"),
            (400, "Max entry size '262144' bytes exceeded for stream '{a=\"b\"}' while adding an entry with length '300000' bytes", "line_too_long"),
            (400, "stream '{a=\"b\"}' has structured metadata too large: '70000' bytes, limit: '65536' bytes", "structured_metadata"),
            (400, "entry has 31 label names; limit 30", "invalid_labels"),
            (400, "entry with timestamp 2026-10-07 01:35:32.405 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-10-07T01:35:32Z, oldest acceptable timestamp is: 2026-10-07T03:23:59Z',\nuser 'u', total ignored: 1 out of 1 for stream: {a=\"b\"}", "too_far_behind"),
            (400, "entry with timestamp 2026-10-07 01:35:32.405 +0000 UTC ignored, reason: 'entry out of order',\nuser 'u', total ignored: 1 out of 1 for stream: {a=\"b\"}", "out_of_order"),
            (413, "request entity too large", "too_large"),
            (400, "something else", "bad_request"),
        ];
        for (status, body, want) in cases {
            assert_eq!(rejection_reason(status, body), want, "{body}");
        }
    }
}
