//! [`LogIngestConfig`]: the settings of the server-to-server log routes.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::config::ConfigError;

/// The settings of [`LogIngest`](super::LogIngest): `POST {prefix}/v1/logs` (OTLP/HTTP) and
/// `POST {prefix}/v1/batch` (JSON batch). Build with the setters, or deserialize (unknown
/// fields refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogIngestConfig {
    /// Path prefix of the routes (default `/tracepost`).
    pub prefix: String,
    /// Whether every request must be signed, whatever its key says (default false).
    pub require_signature: bool,
    /// Largest batch body, as sent and decompressed, in bytes (default 512 KiB).
    pub max_batch_bytes: usize,
    /// Most logs in one batch (default 250).
    pub max_batch_events: usize,
    /// Largest OTLP body, as sent and decompressed, in bytes (default 20 MiB: the
    /// OpenTelemetry Collector's `max_request_body_size`).
    pub max_otlp_bytes: usize,
    /// Most log records in one OTLP request (default 10,000) → `413 too_many_records`.
    /// Real exporters send far fewer (the OTel SDKs' batch processors at most 512, the
    /// Collector's batch processor 8,192 by default); the bytes limits alone are no bound:
    /// an empty record is 2 bytes of protobuf, and gzip shrinks a run of them ~500×.
    pub max_records: usize,
    /// Most attribute values in one OTLP request's events (default 200,000: 20 per record
    /// at `max_records`, ~90 MB decoded) → `413 too_many_attributes`. Every key-value and array
    /// element counts, at any depth; a resource's attributes count once per record.
    pub max_attributes: usize,
    /// How long the whole request body may take to arrive, from the first read to the last
    /// byte (default 10 s) → `408 body_timeout`. Raise it for large OTLP exports over slow
    /// links.
    #[serde(with = "humantime_serde_compat")]
    pub body_read_timeout: Duration,
    /// Requests per second each key may send (default 100).
    pub per_key_rate: u32,
    /// Burst each key may send at once (default 200).
    pub per_key_burst: u32,
    /// Requests per second each client address may send (default 200).
    pub per_client_rate: u32,
    /// Burst each client address may send at once (default 400).
    pub per_client_burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed (default none).
    pub trusted_proxies: Vec<IpNet>,
    /// How long a looked-up key is cached (default 30 s): a revocation takes effect on the
    /// other servers within this time (at once on the server whose admin API revoked it).
    #[serde(with = "humantime_serde_compat")]
    pub key_cache_ttl: Duration,
    /// How long a looked-up key keeps working while the key store errors (default 1 h):
    /// past `key_cache_ttl` the key is looked up again, and when the store is down the
    /// cached answer is used instead of refusing every log with `503`. A key revoked during
    /// the outage stops working once the store answers again. `0` turns this off.
    #[serde(with = "humantime_serde_compat")]
    pub key_stale_ttl: Duration,
    /// How often the background task stores keys' last-used times and forgets idle
    /// rate-limit entries (default 30 s).
    #[serde(with = "humantime_serde_compat")]
    pub maintenance_every: Duration,
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

impl Default for LogIngestConfig {
    fn default() -> Self {
        LogIngestConfig {
            prefix: "/tracepost".into(),
            require_signature: false,
            max_batch_bytes: 512 * 1024,
            max_batch_events: 250,
            max_otlp_bytes: 20 * 1024 * 1024,
            max_records: super::bound::DEFAULT_MAX_RECORDS,
            max_attributes: super::bound::DEFAULT_MAX_ATTRIBUTES,
            body_read_timeout: crate::body::DEFAULT_BODY_READ_TIMEOUT,
            per_key_rate: 100,
            per_key_burst: 200,
            per_client_rate: 200,
            per_client_burst: 400,
            trusted_proxies: Vec::new(),
            key_cache_ttl: Duration::from_secs(30),
            key_stale_ttl: Duration::from_secs(3600),
            maintenance_every: Duration::from_secs(30),
        }
    }
}

impl LogIngestConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Path prefix of the routes (`/tracepost`; `""` for none).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Requires every request to be signed (`401 missing_signature` otherwise).
    pub fn require_signature(mut self, required: bool) -> Self {
        self.require_signature = required;
        self
    }

    /// Largest batch body in bytes, as sent and decompressed (`413` above).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Most logs per batch (`400 too_many_events` above).
    pub fn max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events;
        self
    }

    /// Largest OTLP body in bytes, as sent and decompressed (`413` above).
    pub fn max_otlp_bytes(mut self, bytes: usize) -> Self {
        self.max_otlp_bytes = bytes;
        self
    }

    /// Most log records per OTLP request (`413 too_many_records` above).
    pub fn max_records(mut self, records: usize) -> Self {
        self.max_records = records;
        self
    }

    /// Most attribute values per OTLP request (`413 too_many_attributes` above).
    pub fn max_attributes(mut self, values: usize) -> Self {
        self.max_attributes = values;
        self
    }

    /// The OTLP route's per-request limits.
    pub fn otlp_limits(&self) -> super::OtlpLimits {
        super::OtlpLimits {
            max_records: self.max_records,
            max_attributes: self.max_attributes,
        }
    }

    /// How long a whole request body may take to arrive (`408 body_timeout` after).
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Requests per second and burst per key (`429` with `Retry-After` above).
    pub fn per_key_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.per_key_rate = per_second;
        self.per_key_burst = burst;
        self
    }

    /// Requests per second and burst per client address (IPv6 by /64).
    pub fn per_client_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.per_client_rate = per_second;
        self.per_client_burst = burst;
        self
    }

    /// Believes `X-Forwarded-For` from peers in `net`.
    pub fn trusted_proxy(mut self, net: impl Into<IpNet>) -> Self {
        self.trusted_proxies.push(net.into());
        self
    }

    /// How long a looked-up key is cached.
    pub fn key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.key_cache_ttl = ttl;
        self
    }

    /// How long a looked-up key keeps working while the key store errors (`0`: not at all).
    pub fn key_stale_ttl(mut self, ttl: Duration) -> Self {
        self.key_stale_ttl = ttl;
        self
    }

    /// How often the maintenance task runs.
    pub fn maintenance_every(mut self, every: Duration) -> Self {
        self.maintenance_every = every;
        self
    }

    /// Checks the settings. Errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.into(),
            })
        };
        if !self.prefix.is_empty() && (!self.prefix.starts_with('/') || self.prefix.ends_with('/'))
        {
            return err("prefix", "must be empty or start with / and not end with /");
        }
        if self.max_batch_bytes == 0 || self.max_otlp_bytes == 0 || self.max_batch_events == 0 {
            return err("max_batch_bytes", "limits must be positive");
        }
        if self.max_records == 0 {
            return err("max_records", "must be positive");
        }
        if self.max_attributes == 0 {
            return err("max_attributes", "must be positive");
        }
        if self.per_key_rate == 0 || self.per_client_rate == 0 {
            return err("per_key_rate", "rates must be positive");
        }
        if self.body_read_timeout < Duration::from_millis(1) {
            return err("body_read_timeout", "must be at least 1 ms");
        }
        if self.maintenance_every.is_zero() {
            return err("maintenance_every", "must be positive");
        }
        Ok(())
    }
}
