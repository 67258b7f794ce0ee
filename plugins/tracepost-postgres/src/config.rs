//! [`PostgresConfig`]: the sink's settings from a configuration file, and the `Debug` that
//! never prints the database password.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tracepost_core::sinks::serde_duration;

use crate::{IngestMethod, PgError, PostgresSink, PostgresSinkBuilder, DEFAULT_SCHEMA};

/// The Postgres sink's settings, for a configuration file (TOML, JSON, YAML, … via serde).
/// Unknown fields are refused, by name; durations are strings like `"5s"` or `"14days"`.
///
/// ```
/// use tracepost_postgres::PostgresConfig;
///
/// let config: PostgresConfig = serde_json::from_str(r#"{
///     "url": "postgres://tracepost:s3cret@db.internal/observability",
///     "schema": "tracepost",
///     "retention": "14days",
///     "pool_size": 8
/// }"#).unwrap();
/// assert!(!format!("{config:?}").contains("s3cret"));
/// let sink = config.build().unwrap(); // no I/O: connects on the first delivery
/// # drop(sink);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db?sslmode=…` or `host=… user=…`. Required.
    pub url: String,
    /// The schema for the tables (default `tracepost`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Apply the migrations on the first connection (default true).
    #[serde(default = "yes")]
    pub migrate: bool,
    /// Connections in the pool (default 4).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Wait for a pooled connection (default `"5s"`).
    #[serde(default = "five_seconds", with = "serde_duration")]
    pub pool_timeout: Duration,
    /// Wait for a new connection (default `"5s"`).
    #[serde(default = "five_seconds", with = "serde_duration")]
    pub connect_timeout: Duration,
    /// Keep events this long (default: keep everything).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    pub retention: Option<Duration>,
    /// Day partitions created ahead of today (default 3).
    #[serde(default = "default_partitions_ahead")]
    pub partitions_ahead: u32,
    /// How often partitions ahead and retention are seen to (default `"1h"`).
    #[serde(default = "one_hour", with = "serde_duration")]
    pub maintenance_interval: Duration,
    /// `copy` (default), `copy_merge` or `multi_row_insert`.
    #[serde(default)]
    pub ingest_method: IngestMethodConfig,
}

/// [`IngestMethod`] as spelled in a configuration file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IngestMethodConfig {
    /// [`IngestMethod::Copy`].
    #[default]
    Copy,
    /// [`IngestMethod::CopyMerge`].
    CopyMerge,
    /// [`IngestMethod::MultiRowInsert`].
    MultiRowInsert,
}

impl From<IngestMethodConfig> for IngestMethod {
    fn from(m: IngestMethodConfig) -> Self {
        match m {
            IngestMethodConfig::Copy => IngestMethod::Copy,
            IngestMethodConfig::CopyMerge => IngestMethod::CopyMerge,
            IngestMethodConfig::MultiRowInsert => IngestMethod::MultiRowInsert,
        }
    }
}

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_owned()
}
fn yes() -> bool {
    true
}
fn default_pool_size() -> usize {
    4
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn default_partitions_ahead() -> u32 {
    3
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

impl PostgresConfig {
    /// The defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: default_schema(),
            migrate: true,
            pool_size: default_pool_size(),
            pool_timeout: five_seconds(),
            connect_timeout: five_seconds(),
            retention: None,
            partitions_ahead: default_partitions_ahead(),
            maintenance_interval: one_hour(),
            ingest_method: IngestMethodConfig::default(),
        }
    }

    /// The builder with these settings (to add what a file can't hold, such as a TLS
    /// connector).
    pub fn builder(&self) -> PostgresSinkBuilder {
        let mut b = PostgresSink::builder(self.url.clone())
            .schema(self.schema.clone())
            .migrate(self.migrate)
            .pool_size(self.pool_size)
            .pool_timeout(self.pool_timeout)
            .connect_timeout(self.connect_timeout)
            .partitions_ahead(self.partitions_ahead)
            .maintenance_interval(self.maintenance_interval)
            .ingest_method(self.ingest_method.into());
        if let Some(r) = self.retention {
            b = b.retention(r);
        }
        b
    }

    /// The sink, without connecting ([`PostgresSinkBuilder::build`]); fails on a malformed
    /// URL, schema name or a zero pool size.
    pub fn build(&self) -> Result<PostgresSink, PgError> {
        if self.pool_size == 0 {
            return Err(PgError::Config("pool_size: must be at least 1".into()));
        }
        self.builder().build()
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("migrate", &self.migrate)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retention", &self.retention)
            .field("partitions_ahead", &self.partitions_ahead)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("ingest_method", &self.ingest_method)
            .finish()
    }
}

impl fmt::Debug for PostgresSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PostgresSinkBuilder");
        d.field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("migrate", &self.migrate)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retention", &self.retention)
            .field("partitions_ahead", &self.partitions_ahead)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("method", &self.method);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish()
    }
}

/// The URL with its password replaced by `***`: in URL form (`postgres://user:pw@host`, and
/// a `password=` query parameter) and in key-value form (`password=pw`, `password='p w'`).
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    // URL form: the userinfo before the last '@' of the authority.
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    // `password=…` as a query parameter or a key-value pair.
    let lower = out.to_ascii_lowercase();
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password") {
        let key_start = i + found;
        let after_key = key_start + "password".len();
        let boundary = key_start == 0
            || matches!(
                out.as_bytes()[key_start - 1],
                b' ' | b'?' | b'&' | b'\t' | b'\n'
            );
        let eq = lower[after_key..]
            .find(|c: char| c != ' ')
            .map(|o| after_key + o)
            .filter(|&p| lower.as_bytes()[p] == b'=');
        match (boundary, eq) {
            (true, Some(eq)) => {
                let mut v = eq + 1;
                while out.as_bytes().get(v) == Some(&b' ') {
                    v += 1;
                }
                let end = if out.as_bytes().get(v) == Some(&b'\'') {
                    // A quoted value ends at the next unescaped quote.
                    let mut j = v + 1;
                    while j < out.len() {
                        match out.as_bytes()[j] {
                            b'\\' => j += 2,
                            b'\'' => {
                                j += 1;
                                break;
                            }
                            _ => j += 1,
                        }
                    }
                    j.min(out.len())
                } else {
                    out[v..]
                        .find([' ', '&', '\t', '\n'])
                        .map_or(out.len(), |o| v + o)
                };
                result.push_str(&out[i..v]);
                result.push_str("***");
                i = end;
            }
            _ => {
                result.push_str(&out[i..after_key]);
                i = after_key;
            }
        }
    }
    result.push_str(&out[i..]);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_url_form() {
        let cases = [
            (
                "postgres://app:hunter2@db:5432/x",
                "postgres://app:***@db:5432/x",
            ),
            ("postgresql://app:p%40ss@db/x", "postgresql://app:***@db/x"),
            ("postgres://app@db/x", "postgres://app@db/x"),
            (
                "postgres://db/x?user=app&password=hunter2&sslmode=require",
                "postgres://db/x?user=app&password=***&sslmode=require",
            ),
            (
                "host=db user=app password=hunter2 dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "host=db password = 'hun ter\\'2' user=app",
                "host=db password = *** user=app",
            ),
            ("password=hunter2", "password=***"),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("hunter2"));
        }
    }
}
