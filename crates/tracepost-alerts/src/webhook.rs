//! Two more destinations on the same engine (feature `webhook`): [`JsonWebhook`] posts the
//! alerts as JSON, optionally signed with HMAC-SHA256; [`SlackWebhook`] posts them in the
//! format of Slack's incoming webhooks (Block Kit).
//!
//! Both classify answers like every HTTP sink (`tracepost_core::http_sink`): 2xx delivered;
//! 401, 403, 404 and 410 refused for good (the engine stops calling the webhook); 429 and
//! 5xx temporary, retried by the engine after `Retry-After`. URLs and secrets are never in
//! `Debug`, logs or errors.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use tracepost_core::http_sink::{self, reqwest, HttpClientOptions};
use tracepost_core::sinks::serde_duration;
use tracepost_core::SinkError;

use crate::alert::{truncate_chars, Alert};
use crate::config::ConfigError;
use crate::engine::Notifier;

/// The header carrying the signature: `sha256=<hex of HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "x-tracepost-signature";
/// The header carrying the Unix time (seconds) the signature covers; reject old ones to stop
/// replays.
pub const TIMESTAMP_HEADER: &str = "x-tracepost-timestamp";

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/[REDACTED]", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => "[REDACTED]".into(),
    }
}

fn client(timeout: Duration, field: &'static str) -> Result<reqwest::Client, ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::new("timeout", "must be longer than 0"));
    }
    http_sink::client(
        &HttpClientOptions::new(concat!("tracepost-alerts/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout),
    )
    .map_err(|e| {
        ConfigError::new(
            field,
            format!("cannot build the HTTP client: {}", e.without_url()),
        )
    })
}

fn parse(url: &str, field: &'static str) -> Result<reqwest::Url, ConfigError> {
    http_sink::parse_url(url).map_err(|_| {
        ConfigError::new(
            field,
            format!(
                "{} is not a usable URL: expected http(s)://host/path{}",
                masked(url),
                if http_sink::HTTPS {
                    ""
                } else {
                    " (https needs the `rustls` feature)"
                }
            ),
        )
    })
}

async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: String,
    headers: Vec<(&'static str, String)>,
) -> Result<(), SinkError> {
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let result = request.body(body).send().await.map_err(|e| e.without_url());
    match result {
        Ok(response) => match http_sink::read_response(response).await {
            Ok(_) => Ok(()),
            Err(Ok(failure)) => Err(failure.to_sink_error()),
            Err(Err(e)) => Err(http_sink::transport_error(&e.without_url())),
        },
        Err(e) => Err(http_sink::transport_error(&e)),
    }
}

/// A generic JSON webhook's settings (unknown fields rejected).
///
/// ```
/// let c: tracepost_alerts::webhook::JsonWebhookConfig = toml::from_str(r#"
///     url = "http://hooks.internal/tracepost"
///     secret = "s3cr3t-shared"
/// "#).unwrap();
/// assert!(!format!("{c:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JsonWebhookConfig {
    /// Where to post (a secret if it carries a token: never printed).
    pub url: String,
    /// Signs each request with HMAC-SHA256 ([`SIGNATURE_HEADER`], [`TIMESTAMP_HEADER`])
    /// (default: unsigned).
    #[serde(default)]
    pub secret: Option<String>,
    /// Deadline of one request (default 10 s).
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
}

impl JsonWebhookConfig {
    /// The settings for `url`, unsigned.
    pub fn new(url: impl Into<String>) -> Self {
        JsonWebhookConfig {
            url: url.into(),
            secret: None,
            timeout: default_timeout(),
        }
    }

    /// Signs requests with this shared secret.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

impl fmt::Debug for JsonWebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonWebhookConfig")
            .field("url", &masked(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Posts `{"alerts": [<Alert>, …]}` (the [`Alert`] serialisation: `kind`, `level`, `title`,
/// `description`, `fingerprint`, `count`, `first_seen`, …) to a URL, up to 50 alerts per
/// request. With a secret, the receiver checks
/// `X-Tracepost-Signature: sha256=<hex HMAC-SHA256(secret, "{X-Tracepost-Timestamp}.{body}")>`
/// in constant time and rejects timestamps older than a few minutes.
pub struct JsonWebhook {
    url: reqwest::Url,
    config: JsonWebhookConfig,
    client: reqwest::Client,
}

impl fmt::Debug for JsonWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonWebhook")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JsonWebhook {
    /// An unsigned webhook to `url`.
    pub fn new(url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::from_config(JsonWebhookConfig::new(url))
    }

    /// A webhook from settings (checked, nothing contacted).
    pub fn from_config(config: JsonWebhookConfig) -> Result<Self, ConfigError> {
        let url = parse(&config.url, "url")?;
        if config.secret.as_deref() == Some("") {
            return Err(ConfigError::new(
                "secret",
                "is empty; leave it out to send unsigned",
            ));
        }
        let client = client(config.timeout, "url")?;
        Ok(JsonWebhook {
            url,
            config,
            client,
        })
    }

    /// The signature header value for `body` at `timestamp` (Unix seconds), as the receiver
    /// recomputes it.
    pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl Notifier for JsonWebhook {
    fn name(&self) -> &str {
        "webhook"
    }

    fn max_alerts_per_call(&self) -> usize {
        50
    }

    fn notify<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let body = json!({ "alerts": alerts }).to_string();
            let mut headers = Vec::new();
            if let Some(secret) = &self.config.secret {
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                headers.push((SIGNATURE_HEADER, Self::signature(secret, ts, &body)));
                headers.push((TIMESTAMP_HEADER, ts.to_string()));
            }
            post(&self.client, &self.url, body, headers).await
        })
    }
}

/// A Slack incoming webhook's settings (unknown fields rejected).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlackConfig {
    /// `https://hooks.slack.com/services/…` (a secret: never printed).
    pub webhook_url: String,
    /// Deadline of one request (default 10 s).
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("webhook_url", &masked(&self.webhook_url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Slack Block Kit limits used here (api.slack.com/reference/block-kit/blocks): a header's
/// text 150 characters, a section's 3 000, a context element's 2 000 (10 elements), 50
/// blocks per message.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_SECTION_MAX: usize = 3000;
const SLACK_CONTEXT_MAX: usize = 2000;

/// Posts alerts in Slack's incoming-webhook format: per alert a header (the title), a
/// section (the description, and the link), a context line (count, environment, release,
/// users, fingerprint); 10 alerts (30 blocks) per message, each text cut to Block Kit's
/// limits with "…", and `&`, `<`, `>` escaped so an error message can't mention `@channel`.
pub struct SlackWebhook {
    url: reqwest::Url,
    config: SlackConfig,
    client: reqwest::Client,
}

impl fmt::Debug for SlackWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackWebhook")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SlackWebhook {
    /// A notifier for this incoming-webhook URL.
    pub fn new(webhook_url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::from_config(SlackConfig {
            webhook_url: webhook_url.into(),
            timeout: default_timeout(),
        })
    }

    /// A notifier from settings (checked, nothing contacted).
    pub fn from_config(config: SlackConfig) -> Result<Self, ConfigError> {
        let url = parse(&config.webhook_url, "webhook_url")?;
        let client = client(config.timeout, "webhook_url")?;
        Ok(SlackWebhook {
            url,
            config,
            client,
        })
    }

    /// The message `alerts` become: `{"text": <fallback>, "blocks": [...]}`.
    pub fn message(alerts: &[Alert]) -> Value {
        let mut blocks = Vec::new();
        for a in alerts {
            blocks.push(json!({
                "type": "header",
                "text": {"type": "plain_text", "text": truncate_chars(&escape(&a.title), SLACK_HEADER_MAX), "emoji": false},
            }));
            let mut text = escape(&a.description);
            if let Some(link) = &a.link {
                text = format!("{text}\n<{}|Open>", escape(link));
            }
            if !text.trim().is_empty() {
                blocks.push(json!({
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": truncate_chars(&text, SLACK_SECTION_MAX)},
                }));
            }
            let mut context = vec![format!("*{}*", a.kind)];
            if a.count > 0 {
                context.push(format!("count: {}", a.count));
            }
            if let Some(e) = &a.environment {
                context.push(format!("env: {}", escape(e)));
            }
            if let Some(r) = &a.release {
                context.push(format!("release: {}", escape(r)));
            }
            if let Some(u) = a.users_affected {
                context.push(format!("users: {u}"));
            }
            if let Some(fp) = &a.fingerprint {
                context.push(format!("`{}`", escape(fp)));
            }
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": truncate_chars(&context.join(" · "), SLACK_CONTEXT_MAX)}],
            }));
        }
        let fallback = match alerts {
            [one] => truncate_chars(&escape(&one.title), SLACK_SECTION_MAX),
            many => format!("{} alerts", many.len()),
        };
        json!({ "text": fallback, "blocks": blocks })
    }
}

/// Slack's mrkdwn control characters (api.slack.com/reference/surfaces/formatting#escaping).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Notifier for SlackWebhook {
    fn name(&self) -> &str {
        "slack"
    }

    fn notify<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let body = Self::message(alerts).to_string();
            post(&self.client, &self.url, body, Vec::new()).await
        })
    }
}
