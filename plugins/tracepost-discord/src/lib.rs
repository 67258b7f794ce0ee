#![doc = include_str!("../docs.md")]

mod embed;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use tracepost_alerts::{truncate_chars, Alert, Notifier};
use tracepost_core::http_sink::{self, reqwest, HttpClientOptions};
use tracepost_core::{SinkError, SinkErrorKind};

pub use embed::{
    CONTENT_MAX, DESCRIPTION_MAX, EMBEDS_MAX, FIELDS_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX,
    FOOTER_MAX, TITLE_MAX, TOTAL_MAX,
};

/// How many 429s in a row one message may meet before the alerts are handed back to the
/// engine as a temporary failure (Discord bans an IP after 10 000 401/403/429 responses in
/// 10 minutes: never loop on them).
const MAX_RATE_LIMITED: u32 = 3;
/// The longest wait a 429 or an exhausted bucket may impose on one message.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Added to every wait Discord asks for, so a timer firing a hair early (or a clock a hair
/// apart) doesn't meet the same exhausted bucket again.
const WAIT_MARGIN: Duration = Duration::from_millis(50);

/// A Discord webhook's settings, from code or a config file (unknown fields rejected). The
/// URL is a secret: `Debug` shows only its host.
///
/// ```
/// let config: tracepost_discord::DiscordConfig = toml::from_str(r#"
///     webhook_url = "https://discord.com/api/webhooks/123/secret-token"
///     username = "shop alerts"
/// "#).unwrap();
/// assert!(!format!("{config:?}").contains("secret-token"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DiscordConfig {
    /// `https://discord.com/api/webhooks/{id}/{token}` (Server Settings → Integrations →
    /// Webhooks → Copy Webhook URL). A secret: never in `Debug`, logs or metrics.
    pub webhook_url: String,
    /// The name the messages are posted under (default: the webhook's own).
    #[serde(default)]
    pub username: Option<String>,
    /// The avatar image URL of the messages (default: the webhook's own).
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Text above the embeds, cut to 2 000 characters (default none). Mentions in it are
    /// not pinged (`allowed_mentions` is empty), so an error message can never ping.
    #[serde(default)]
    pub content: Option<String>,
    /// Deadline of one request (default 10 s).
    #[serde(
        default = "default_timeout",
        with = "tracepost_core::sinks::serde_duration"
    )]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl DiscordConfig {
    /// The settings for this webhook URL, everything else default.
    pub fn new(webhook_url: impl Into<String>) -> Self {
        DiscordConfig {
            webhook_url: webhook_url.into(),
            username: None,
            avatar_url: None,
            content: None,
            timeout: default_timeout(),
        }
    }
}

impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("webhook_url", &masked(&self.webhook_url))
            .field("username", &self.username)
            .field("avatar_url", &self.avatar_url)
            .field("content", &self.content)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `scheme://host/[REDACTED]`: the webhook's id and token never show.
fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/[REDACTED]", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => "[REDACTED]".into(),
    }
}

/// A webhook setting that can't work: which one and why (never quoting the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Discord setting `{field}`: {reason}")]
pub struct DiscordConfigError {
    /// The setting (`webhook_url`, …).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// What the last response said about the webhook's rate-limit bucket.
#[derive(Debug, Default)]
struct Bucket {
    remaining: Option<u64>,
    reset_at: Option<Instant>,
}

/// Posts alerts to one Discord webhook as embeds: several alerts per message (up to 10
/// embeds and 6 000 characters), every text within Discord's limits, cut with "…"; waits
/// when `X-RateLimit-Remaining` reaches 0 until `X-RateLimit-Reset-After`; on a 429 waits
/// `retry_after` (fractional seconds from the JSON body, else `Retry-After`) and tries again
/// (3 times at most); a 401, 403 or 404 means the webhook is gone: it is never called again
/// (the engine reports it, and the pipeline's health shows the alert sink `down` once every
/// notifier is gone).
pub struct DiscordWebhook {
    url: reqwest::Url,
    config: DiscordConfig,
    client: reqwest::Client,
    bucket: tokio::sync::Mutex<Bucket>,
    gone: AtomicBool,
    requests: AtomicU64,
}

impl fmt::Debug for DiscordWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordWebhook")
            .field("config", &self.config)
            .field("gone", &self.gone.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl DiscordWebhook {
    /// A notifier for this webhook URL with the default settings.
    pub fn new(webhook_url: impl Into<String>) -> Result<Self, DiscordConfigError> {
        Self::from_config(DiscordConfig::new(webhook_url))
    }

    /// A notifier from settings. Checks the URL (http or https with a host and a path; https
    /// needs the `rustls` feature) without contacting Discord.
    pub fn from_config(config: DiscordConfig) -> Result<Self, DiscordConfigError> {
        let url = http_sink::parse_url(&config.webhook_url).map_err(|_| DiscordConfigError {
            field: "webhook_url",
            reason: format!(
                "{} is not a usable webhook URL: expected https://discord.com/api/webhooks/{{id}}/{{token}}{}",
                masked(&config.webhook_url),
                if http_sink::HTTPS { "" } else { " (https needs the `rustls` feature)" }
            ),
        })?;
        if url.path().trim_matches('/').is_empty() {
            return Err(DiscordConfigError {
                field: "webhook_url",
                reason: "no path: expected …/api/webhooks/{id}/{token}".into(),
            });
        }
        if config.timeout.is_zero() {
            return Err(DiscordConfigError {
                field: "timeout",
                reason: "must be longer than 0".into(),
            });
        }
        let client = http_sink::client(
            &HttpClientOptions::new(concat!("tracepost-discord/", env!("CARGO_PKG_VERSION")))
                .timeout(config.timeout),
        )
        .map_err(|e| DiscordConfigError {
            field: "webhook_url",
            reason: format!("cannot build the HTTP client: {}", e.without_url()),
        })?;
        Ok(DiscordWebhook {
            url,
            config,
            client,
            bucket: tokio::sync::Mutex::new(Bucket::default()),
            gone: AtomicBool::new(false),
            requests: AtomicU64::new(0),
        })
    }

    /// True once Discord said the webhook is gone (401, 403, 404).
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// HTTP requests sent to the webhook so far (429s and retries included).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The messages `alerts` become: `{"content"?, "username"?, "avatar_url"?, "embeds": [..],
    /// "allowed_mentions": {"parse": []}}`, each within Discord's limits.
    pub fn messages(&self, alerts: &[Alert]) -> Vec<Value> {
        let embeds = alerts.iter().map(embed::embed).collect();
        embed::pack(embeds)
            .into_iter()
            .map(|embeds| {
                let mut m = json!({ "embeds": embeds, "allowed_mentions": { "parse": [] } });
                if let Some(c) = &self.config.content {
                    m["content"] = json!(truncate_chars(c, CONTENT_MAX));
                }
                if let Some(u) = &self.config.username {
                    m["username"] = json!(truncate_chars(u, 80));
                }
                if let Some(a) = &self.config.avatar_url {
                    m["avatar_url"] = json!(a);
                }
                m
            })
            .collect()
    }

    fn gone_error(status: u16) -> SinkError {
        let kind = match status {
            401 => SinkErrorKind::Unauthenticated,
            403 => SinkErrorKind::PermissionDenied,
            _ => SinkErrorKind::NotFound,
        };
        SinkError::refused(format!(
            "Discord answered HTTP {status}: the webhook was deleted or its token is wrong; it will not be called again"
        ))
        .with_kind(kind)
    }

    /// Posts one message, honouring the bucket and 429s.
    async fn post(&self, message: &Value) -> Result<(), SinkError> {
        let mut bucket = self.bucket.lock().await;
        let mut limited = 0;
        loop {
            if self.is_gone() {
                return Err(Self::gone_error(404));
            }
            if bucket.remaining == Some(0) {
                if let Some(at) = bucket.reset_at {
                    let wait =
                        (at.saturating_duration_since(Instant::now()) + WAIT_MARGIN).min(MAX_WAIT);
                    tokio::time::sleep(wait).await;
                }
                bucket.remaining = None;
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(message.to_string())
                .send()
                .await
                .map_err(|e| http_sink::transport_error(&e.without_url()))?;
            let headers = response.headers();
            let header = |name: &str| -> Option<String> {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            if let Some(r) = header("x-ratelimit-remaining").and_then(|v| v.parse().ok()) {
                bucket.remaining = Some(r);
            }
            if let Some(after) = header("x-ratelimit-reset-after").and_then(|v: String| seconds(&v))
            {
                bucket.reset_at = Some(Instant::now() + after);
            }
            let retry_after_header = header("retry-after")
                .and_then(|v: String| http_sink::parse_retry_after(&v, SystemTime::now()));
            match http_sink::read_response(response).await {
                Ok(_) => return Ok(()),
                Err(Err(e)) => return Err(http_sink::transport_error(&e.without_url())),
                Err(Ok(failure)) => match failure.status {
                    429 => {
                        let body: Option<RateLimited> = serde_json::from_str(&failure.body).ok();
                        let wait = body
                            .and_then(|b| b.retry_after)
                            .and_then(|s| Duration::try_from_secs_f64(s).ok())
                            .or(retry_after_header)
                            .unwrap_or(Duration::from_secs(1))
                            .saturating_add(WAIT_MARGIN)
                            .min(MAX_WAIT);
                        limited += 1;
                        if limited > MAX_RATE_LIMITED {
                            return Err(SinkError::temporary(format!(
                                "Discord rate-limited {limited} attempts in a row"
                            ))
                            .with_kind(SinkErrorKind::RateLimited)
                            .with_retry_after(wait));
                        }
                        tracing::debug!(target: "tracepost::alerts", wait_ms = wait.as_millis() as u64,
                            "Discord answered 429; waiting retry_after");
                        tokio::time::sleep(wait).await;
                    }
                    401 | 403 | 404 => {
                        self.gone.store(true, Ordering::SeqCst);
                        return Err(Self::gone_error(failure.status));
                    }
                    _ => return Err(failure.to_sink_error()),
                },
            }
        }
    }
}

/// The JSON body of a Discord 429.
#[derive(Deserialize)]
struct RateLimited {
    retry_after: Option<f64>,
}

/// Seconds, possibly fractional (`X-RateLimit-Reset-After: 1.234`).
fn seconds(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

impl Notifier for DiscordWebhook {
    fn name(&self) -> &str {
        "discord"
    }

    fn max_alerts_per_call(&self) -> usize {
        EMBEDS_MAX
    }

    fn notify<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            for message in self.messages(alerts) {
                self.post(&message).await?;
            }
            Ok(())
        })
    }
}
