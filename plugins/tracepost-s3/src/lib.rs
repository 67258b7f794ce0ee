//! Object storage for tracepost on the [AWS SDK for Rust](https://crates.io/crates/aws-sdk-s3):
//! rrweb replay segments ([`ReplayStore`]) and an hourly NDJSON.gz archive of events
//! ([`ArchiveSink`], a sink) in Amazon S3 or an S3-compatible server (MinIO, Ceph, R2, …).
//!
//! ```no_run
//! use tracepost_s3::{ArchiveSink, ReplayStore, S3Config, S3Store};
//!
//! # fn main() -> Result<(), tracepost_s3::ConfigError> {
//! let store = S3Store::new(
//!     S3Config::new("tracepost")
//!         .endpoint("http://127.0.0.1:9000") // MinIO
//!         .force_path_style(true)
//!         .credentials("minio", "minio-secret"),
//! )?;
//! let replays = ReplayStore::new(store.clone());
//! let archive = ArchiveSink::new(store); // add it with `Builder::sink`
//! # let _ = (replays, archive); Ok(()) }
//! ```
//!
//! HTTPS uses rustls with the ring provider and the system's root certificates. Credentials
//! come from [`S3Config::credentials`] or the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
//! `AWS_SESSION_TOKEN` variables; for the full AWS chain (profiles, SSO, instance roles)
//! build a client with `aws-config` and use [`S3Store::from_client`].

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde::Deserialize;
use tracepost_core::{SinkError, SinkErrorKind};

pub use aws_sdk_s3;
pub use tracepost_core::object_store::{
    ArchiveSink, Day, InvalidSessionId, ObjectStore, ReplayStore, SegmentKey,
};

/// A secret (the secret access key, a session token): never printed by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Where and how to reach the bucket. Deserializable (unknown fields are errors), e.g. from
/// TOML:
///
/// ```toml
/// bucket = "tracepost"
/// endpoint = "http://minio:9000"
/// force_path_style = true
/// access_key_id = "minio"
/// secret_access_key = "minio-secret"
/// timeout = "30s"
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket (must exist).
    pub bucket: String,
    /// A key prefix inside the bucket (`tracepost/` → `tracepost/replays/…`). Default none.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The endpoint URL for S3-compatible servers (`http://127.0.0.1:9000`); default AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region. Default `us-east-1` (what MinIO expects unless configured).
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted
    /// (`bucket.endpoint/key`): needed by MinIO and most self-hosted servers. Default false.
    #[serde(default)]
    pub force_path_style: bool,
    /// The access key id; default `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key; default `AWS_SECRET_ACCESS_KEY`. Never printed.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// A session token (temporary credentials); default `AWS_SESSION_TOKEN`. Never printed.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// The longest one operation may take, retries included. Default 60 s.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// The longest a connection may take to open. Default 5 s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// Attempts per operation in the SDK's standard retry mode (temporary errors only).
    /// Default 3; 1 leaves retrying to the pipeline.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_attempts() -> u32 {
    3
}

/// `"30s"`, `"2m"` durations (humantime) in configs.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format_args!("invalid duration {s:?}: {e}")))
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl S3Config {
    /// Defaults for `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: None,
            endpoint: None,
            region: default_region(),
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            max_attempts: default_attempts(),
        }
    }

    /// Sets [`prefix`](Self::prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Sets [`endpoint`](Self::endpoint).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets [`region`](Self::region).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets [`force_path_style`](Self::force_path_style).
    pub fn force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = on;
        self
    }

    /// Sets the access key id and secret access key.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret.into());
        self
    }

    /// Sets [`session_token`](Self::session_token).
    pub fn session_token(mut self, token: impl Into<Secret>) -> Self {
        self.session_token = Some(token.into());
        self
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

    /// Sets [`max_attempts`](Self::max_attempts) (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// A configuration [`S3Store::new`] refuses, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid S3 config: {field}: {message}")]
pub struct ConfigError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// An [`ObjectStore`] in an S3 bucket through `aws-sdk-s3`. Cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store from `config`. Makes no request (an unreachable server is found on first use).
    ///
    /// # Errors
    /// An empty bucket, an endpoint that isn't an `http(s)://` URL, missing credentials (in
    /// the config and the environment), or `max_attempts` of 0.
    pub fn new(config: S3Config) -> Result<S3Store, ConfigError> {
        let bad = |field, message: &str| ConfigError {
            field,
            message: message.to_owned(),
        };
        if config.bucket.is_empty() {
            return Err(bad("bucket", "empty"));
        }
        if let Some(url) = &config.endpoint {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
                return Err(bad("endpoint", "expected an http:// or https:// URL"));
            }
        }
        if config.max_attempts == 0 {
            return Err(bad("max_attempts", "must be at least 1"));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let key_id = config
            .access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .ok_or_else(|| bad("access_key_id", "not set (nor AWS_ACCESS_KEY_ID)"))?;
        let secret = config
            .secret_access_key
            .clone()
            .map(|s| s.0)
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
            .ok_or_else(|| bad("secret_access_key", "not set (nor AWS_SECRET_ACCESS_KEY)"))?;
        let token = config
            .session_token
            .clone()
            .map(|s| s.0)
            .or_else(|| env("AWS_SESSION_TOKEN"));
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(Credentials::new(key_id, secret, token, None, "tracepost"))
            .force_path_style(config.force_path_style)
            .http_client(http)
            // Checksums only where S3 requires them: S3-compatible servers differ in which
            // of the newer (2025) default checksums they accept.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.timeout)
                    .connect_timeout(config.connect_timeout)
                    .build(),
            );
        if let Some(url) = &config.endpoint {
            b = b.endpoint_url(url.trim_end_matches('/'));
        }
        let client = aws_sdk_s3::Client::from_conf(b.build());
        Ok(S3Store::from_client(client, config.bucket)
            .with_prefix(config.prefix.unwrap_or_default()))
    }

    /// A store on a client you configured (e.g. with `aws-config`'s credential chain).
    pub fn from_client(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Store {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: String::new(),
        }
    }

    /// Puts every key under `prefix` (a `/` is added if missing).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> S3Store {
        let mut prefix: String = prefix.into();
        let trimmed = prefix.trim_matches('/').to_owned();
        prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        self.prefix = prefix;
        self
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn relative(&self, key: &str) -> Option<String> {
        key.strip_prefix(&self.prefix).map(str::to_owned)
    }
}

/// Maps an SDK error onto the pipeline's classes: HTTP statuses as
/// [`SinkError::from_http_status`] (401/403/404 refused; 408, 429, 5xx temporary), except
/// that no status is permanent — storage never rejects an event for its content — and
/// timeouts, connection failures and unreadable responses are temporary.
pub fn sink_error<E>(e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let err = service.err();
            let body = format!(
                "{} {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or_default()
            );
            let mapped = SinkError::from_http_status(status, &body);
            let mapped = if mapped.is_permanent() {
                SinkError::temporary(mapped.message()).with_kind(mapped.kind())
            } else {
                mapped
            };
            mapped.with_source(e)
        }
        SdkError::TimeoutError(_) => SinkError::temporary(format!("S3: timeout: {e}"))
            .with_kind(SinkErrorKind::Timeout)
            .with_source(e),
        SdkError::ConstructionFailure(_) => {
            SinkError::refused(format!("S3: cannot build the request: {}", error_chain(&e)))
                .with_kind(SinkErrorKind::Other)
                .with_source(e)
        }
        _ => SinkError::temporary(format!("S3: {}", error_chain(&e))).with_source(e),
    }
}

/// The error and its sources on one line (the SDK's top-level messages are terse:
/// "dispatch failure").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl ObjectStore for S3Store {
    fn name(&self) -> &str {
        "s3"
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &'static str,
    ) -> Result<(), SinkError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(drop)
            .map_err(sink_error)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(sink_error(e)),
        };
        let body =
            out.body.collect().await.map_err(|e| {
                SinkError::temporary(format!("S3: reading {key}: {e}")).with_source(e)
            })?;
        Ok(Some(body.into_bytes()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sink_error)?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter_map(|k| self.relative(k)),
            );
        }
        keys.sort();
        Ok(keys)
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let mut dirs = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sink_error)?;
            dirs.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .filter_map(|k| self.relative(k)),
            );
        }
        dirs.sort();
        Ok(dirs)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), SinkError> {
        // One DeleteObject per key: DeleteObjects needs a Content-MD5 or checksum header
        // that not every S3-compatible server accepts; deleting is retention, not hot.
        for key in keys {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .send()
                .await
                .map_err(sink_error)?;
        }
        Ok(())
    }
}
