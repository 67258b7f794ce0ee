//! [`IngestConfig`]: the settings of the ingest routes, from code (setters) or a file (serde,
//! unknown fields rejected). [`IngestConfig::validate`] checks them.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracepost_core::sinks::serde_duration;

/// The ingest routes' settings. Every field has a default; `keys` must name at least one
/// public key for any batch to be accepted.
///
/// ```toml
/// project = "shop"
/// keys = ["pk_live_3f9a"]
/// allowed_origins = ["https://shop.example.com"]
/// token_secrets = ["a long random string", "the previous one, during rotation"]
/// require_token = true
/// trusted_proxies = ["10.0.0.0/8"]
/// country_headers = ["cf-ipcountry"]
/// source_maps_dir = "dist"
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct IngestConfig {
    /// Where the routes are mounted (default `/tracepost`): `{prefix}/tp.js`,
    /// `{prefix}/v1/events`, `{prefix}/v1/token`.
    pub prefix: String,
    /// The project name signed into upload tokens (default `default`).
    pub project: String,
    /// The public project keys (`pk_…`) a batch may name (`?key=` or `x-tracepost-key`).
    /// Public by design: they identify, they do not authenticate (see `require_token`).
    pub keys: Vec<String>,
    /// Origins (`https://shop.example.com`, scheme + host + port) whose pages may send; `*`
    /// allows any. A page served by the same host as the routes is always allowed.
    pub allowed_origins: Vec<String>,
    /// Secrets of the upload tokens (HMAC-SHA256), at most two: the first signs new tokens,
    /// both verify (keep the old one second while rotating). Each at least 32 bytes.
    pub token_secrets: Vec<Secret>,
    /// Refuse batches without a valid upload token (`401 missing_token`), so that a scraped
    /// public key alone is useless (default false). Needs `token_secrets`.
    pub require_token: bool,
    /// How long a minted token stays valid (default 1 h).
    #[serde(with = "serde_duration")]
    pub token_ttl: Duration,
    /// The largest request body accepted, as sent (default 256 KiB) → `413 body_too_large`.
    pub max_body_bytes: usize,
    /// The largest body after gzip decoding (default 1 MiB) → `413 decompressed_too_large`.
    pub max_decompressed_bytes: usize,
    /// How long the whole request body may take to arrive, from the first read to the last
    /// byte (default 10 s, [`DEFAULT_BODY_READ_TIMEOUT`](crate::body::DEFAULT_BODY_READ_TIMEOUT))
    /// → `408 body_timeout`: a client trickling its upload holds a connection no longer.
    #[serde(with = "serde_duration")]
    pub body_read_timeout: Duration,
    /// Requests per second allowed per client address (default 20), refilled continuously.
    pub per_client_rate: u32,
    /// Requests allowed at once per client address above the rate (default 40).
    pub per_client_burst: u32,
    /// Requests per second allowed per public key (default 1 000).
    pub per_key_rate: u32,
    /// Requests allowed at once per public key (default 2 000).
    pub per_key_burst: u32,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed. Empty (the
    /// default): the client address is the peer address and `X-Forwarded-For` is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Headers a trusted CDN sets to the client's ISO 3166-1 country code, read in order
    /// (e.g. `cf-ipcountry`, `cloudfront-viewer-country`, `x-vercel-ip-country`). Empty (the
    /// default): no country is recorded (a client could set these headers itself).
    pub country_headers: Vec<String>,
    /// A directory with the source maps of the scripts: a frame in
    /// `https://host/assets/app.js` is resolved with `{dir}/assets/app.js.map`, else
    /// `{dir}/app.js.map` (default: none).
    pub source_maps_dir: Option<PathBuf>,
    /// How many batch ids are remembered to drop duplicates (default 10 000).
    pub dedup_capacity: usize,
    /// How long a batch id is remembered (default 10 min).
    #[serde(with = "serde_duration")]
    pub dedup_ttl: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            prefix: "/tracepost".into(),
            project: "default".into(),
            keys: Vec::new(),
            allowed_origins: Vec::new(),
            token_secrets: Vec::new(),
            require_token: false,
            token_ttl: Duration::from_secs(3600),
            max_body_bytes: 256 * 1024,
            max_decompressed_bytes: 1024 * 1024,
            body_read_timeout: crate::body::DEFAULT_BODY_READ_TIMEOUT,
            per_client_rate: 20,
            per_client_burst: 40,
            per_key_rate: 1000,
            per_key_burst: 2000,
            trusted_proxies: Vec::new(),
            country_headers: Vec::new(),
            source_maps_dir: None,
            dedup_capacity: 10_000,
            dedup_ttl: Duration::from_secs(600),
        }
    }
}

impl fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestConfig")
            .field("prefix", &self.prefix)
            .field("project", &self.project)
            .field("keys", &self.keys)
            .field("allowed_origins", &self.allowed_origins)
            .field("token_secrets", &self.token_secrets)
            .field("require_token", &self.require_token)
            .field("token_ttl", &self.token_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_decompressed_bytes", &self.max_decompressed_bytes)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("per_client_rate", &self.per_client_rate)
            .field("per_key_rate", &self.per_key_rate)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("country_headers", &self.country_headers)
            .field("source_maps_dir", &self.source_maps_dir)
            .finish_non_exhaustive()
    }
}

/// A secret string: hidden in `Debug`, never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.into())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Why an [`IngestConfig`] is invalid: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ingest setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The setting.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

impl IngestConfig {
    /// The default settings (no key: every batch is refused until one is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts the routes under `prefix` (default `/tracepost`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The project name signed into upload tokens.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = project.into();
        self
    }

    /// Accepts the public key `key` (`pk_…`); call again for more.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Allows pages of `origin` (`https://shop.example.com`, or `*` for any); call again for
    /// more.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Adds an upload-token secret: the first added signs, a second one (the previous secret,
    /// during rotation) only verifies.
    pub fn token_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.token_secrets.push(secret.into());
        self
    }

    /// Refuses batches without a valid upload token.
    pub fn require_token(mut self, required: bool) -> Self {
        self.require_token = required;
        self
    }

    /// How long minted tokens stay valid.
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// The largest body accepted as sent, in bytes.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The largest body after gzip decoding, in bytes.
    pub fn max_decompressed_bytes(mut self, bytes: usize) -> Self {
        self.max_decompressed_bytes = bytes;
        self
    }

    /// How long a whole request body may take to arrive (`408 body_timeout` after).
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Requests per second and burst allowed per client address.
    pub fn per_client_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.per_client_rate = per_second;
        self.per_client_burst = burst;
        self
    }

    /// Requests per second and burst allowed per public key.
    pub fn per_key_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.per_key_rate = per_second;
        self.per_key_burst = burst;
        self
    }

    /// Believes `X-Forwarded-For` from this proxy (an address or CIDR block); call again for
    /// more.
    pub fn trusted_proxy(mut self, net: impl Into<IpNet>) -> Self {
        self.trusted_proxies.push(net.into());
        self
    }

    /// Reads the client's country from this CDN header (`cf-ipcountry`, …); call again for
    /// more. Only set it when the CDN overwrites the header on every request.
    pub fn country_header(mut self, header: impl Into<String>) -> Self {
        self.country_headers.push(header.into());
        self
    }

    /// Resolves frames with the source maps in `dir`.
    pub fn source_maps_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.source_maps_dir = Some(dir.into());
        self
    }

    /// How many batch ids are remembered, and for how long, to drop duplicates.
    pub fn dedup(mut self, capacity: usize, ttl: Duration) -> Self {
        self.dedup_capacity = capacity;
        self.dedup_ttl = ttl;
        self
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.prefix.is_empty() && (!self.prefix.starts_with('/') || self.prefix.ends_with('/'))
        {
            return Err(invalid(
                "prefix",
                "must start with `/` and not end with one (or be empty)",
            ));
        }
        if self.project.is_empty() || self.project.len() > 128 {
            return Err(invalid("project", "must be 1 to 128 bytes"));
        }
        for k in &self.keys {
            if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "keys",
                    "each key must be 1 to 128 printable ASCII bytes",
                ));
            }
        }
        for o in &self.allowed_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
                || o.ends_with('/')
            {
                return Err(invalid(
                    "allowed_origins",
                    format!("{o:?} is not an origin like https://shop.example.com (no path, no trailing /) or *"),
                ));
            }
        }
        if self.token_secrets.len() > 2 {
            return Err(invalid(
                "token_secrets",
                "at most two (the current one, and the previous one during rotation)",
            ));
        }
        if self.token_secrets.iter().any(|s| s.expose().len() < 32) {
            return Err(invalid(
                "token_secrets",
                "each secret must be at least 32 bytes",
            ));
        }
        if self.require_token && self.token_secrets.is_empty() {
            return Err(invalid("require_token", "needs at least one token secret"));
        }
        if self.token_ttl < Duration::from_secs(1) {
            return Err(invalid("token_ttl", "must be at least 1 s"));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be at least 1"));
        }
        if self.max_decompressed_bytes < self.max_body_bytes {
            return Err(invalid(
                "max_decompressed_bytes",
                "must be at least max_body_bytes",
            ));
        }
        if self.body_read_timeout < Duration::from_millis(1) {
            return Err(invalid("body_read_timeout", "must be at least 1 ms"));
        }
        for (field, v) in [
            ("per_client_rate", self.per_client_rate),
            ("per_client_burst", self.per_client_burst),
            ("per_key_rate", self.per_key_rate),
            ("per_key_burst", self.per_key_burst),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        for h in &self.country_headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    "country_headers",
                    format!("{h:?} is not a header name"),
                ));
            }
        }
        if self.dedup_capacity == 0 {
            return Err(invalid("dedup_capacity", "must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_rejected_and_secrets_hidden() {
        let err = serde_json::from_str::<IngestConfig>(r#"{"keyz": ["pk"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `keyz`"), "{err}");
        let c: IngestConfig = serde_json::from_str(
            r#"{"keys":["pk_1"],"token_secrets":["0123456789abcdef0123456789abcdef"],"token_ttl":"5m","trusted_proxies":["10.0.0.0/8"]}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(300));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let bad = IngestConfig::new().require_token(true);
        assert_eq!(bad.validate().unwrap_err().field, "require_token");
        let bad = IngestConfig::new().token_secret("short");
        assert_eq!(bad.validate().unwrap_err().field, "token_secrets");
        let bad = IngestConfig::new().allowed_origin("https://a.example/");
        assert_eq!(bad.validate().unwrap_err().field, "allowed_origins");
    }
}
