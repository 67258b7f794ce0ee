//! Log ingest for services in any language: [`LogIngest`] serves
//!
//! - `POST {prefix}/v1/logs`: OTLP/HTTP logs, protobuf (`application/x-protobuf`) or JSON
//!   (`application/json`), optionally gzip. Answers `200` with an
//!   `ExportLogsServiceResponse` in the request's encoding, carrying `partial_success` when
//!   records were rejected ([`otlp`] has the mapping onto events).
//! - `POST {prefix}/v1/batch`: the JSON batch of the copy-paste clients ([`batch`]), `202
//!   {"accepted": N}`.
//!
//! Both authenticate with a project API key ([`keys`]: `x-tracepost-key` or `Authorization:
//! Bearer`), optionally signed, rate-limit per key and per client address (`429` +
//! `Retry-After`), read the body within its limit (`413`) before checking the signature, and
//! capture every event through the pipeline (enrich → redact → fingerprint → sample) with
//! `ingest.project` and `ingest.key` (the key's prefix). Errors use the one ingest error
//! body ([`IngestError`]); only `429` and `503` (key store down) are worth retrying, as OTLP
//! asks.

pub mod batch;
pub mod bound;
pub mod config;
pub mod keys;
pub mod otlp;
pub mod otlp_json;
pub mod proto;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use parking_lot::Mutex;
use prost::Message as _;
use serde_json::{Map, Value};
use tracepost_core::TracepostHandle;

use crate::body::{decode, read_limited_within, Encoding};
use crate::config::{ConfigError, IngestConfig};
use crate::error::IngestError;
use crate::origin::{client_ip, limit_key};
pub use bound::OtlpLimits;
pub use config::LogIngestConfig;
pub use keys::{KeyRecord, KeyStore, StaticKeys};

/// Most prefixes the key cache holds before it starts over.
const KEY_CACHE_MAX: usize = 10_000;
/// Most unknown prefixes remembered (least recently seen forgotten first), each for
/// `key_cache_ttl`: a client repeating a bad key costs no store lookup, and a flood of
/// random prefixes neither grows memory nor evicts the known keys' cache.
pub const UNKNOWN_KEY_CACHE_MAX: usize = 4_096;

/// The server-to-server log routes' handlers. Cheap to clone.
#[derive(Clone)]
pub struct LogIngest {
    inner: Arc<Inner>,
}

struct Inner {
    handle: TracepostHandle,
    config: LogIngestConfig,
    /// For [`client_ip`] (only its trusted proxies are read).
    proxies: IngestConfig,
    store: Arc<dyn KeyStore>,
    per_key: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    cache: Mutex<HashMap<String, CachedKeys>>,
    /// Prefixes the store did not know, and when it said so.
    unknown: Mutex<lru::LruCache<String, Instant>>,
    last_used: Mutex<HashMap<i64, SystemTime>>,
}

impl std::fmt::Debug for LogIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogIngest")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The keys of one prefix, and when they were looked up.
type CachedKeys = (Instant, Arc<Vec<KeyRecord>>);

/// Who sent a request: its project and key.
#[derive(Debug, Clone)]
struct Sender {
    project: String,
    prefix: String,
}

fn quota(rate: u32, burst: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl LogIngest {
    /// The routes' handlers for `config` (validated), with keys from `store`, capturing into
    /// `handle`. Inside a Tokio runtime it starts the maintenance task (every
    /// `maintenance_every`: stores keys' last-used times, forgets idle rate-limit entries and
    /// expired cached keys); the task ends when the last clone is dropped.
    pub fn new(
        handle: TracepostHandle,
        config: LogIngestConfig,
        store: Arc<dyn KeyStore>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut proxies = IngestConfig::new();
        proxies.trusted_proxies = config.trusted_proxies.clone();
        let inner = Arc::new(Inner {
            per_key: RateLimiter::keyed(quota(config.per_key_rate, config.per_key_burst)),
            per_client: RateLimiter::keyed(quota(config.per_client_rate, config.per_client_burst)),
            cache: Mutex::new(HashMap::new()),
            unknown: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(UNKNOWN_KEY_CACHE_MAX)
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            last_used: Mutex::new(HashMap::new()),
            handle,
            proxies,
            store,
            config,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(maintenance(Arc::downgrade(&inner)));
        }
        Ok(LogIngest { inner })
    }

    /// The settings.
    pub fn config(&self) -> &LogIngestConfig {
        &self.inner.config
    }

    /// Forgets the cached keys of `prefix` (after revoking one, or creating one whose prefix
    /// was refused as unknown), so this server sees the change at once.
    pub fn invalidate(&self, prefix: &str) {
        self.inner.cache.lock().remove(prefix);
        self.inner.unknown.lock().pop(prefix);
    }

    /// Stores the pending last-used times now (the maintenance task does it periodically).
    pub async fn flush_last_used(&self) {
        flush(&self.inner).await;
    }

    /// `POST {prefix}/v1/batch`. Checks, in order: the client's rate (`429`), the content
    /// type and encoding (`415`), the key (`401`; `503` when the key store is down; a prefix
    /// the store did not know is remembered for `key_cache_ttl`, so repeating it costs no
    /// lookup; while the store errors, a key looked up within `key_stale_ttl` still works), the key's rate (`429`), the body size and read deadline (`413`, `408`), the
    /// signature (`401`), the decompressed size (`413`) and the batch (`400` naming the
    /// field), room in the pipeline's queues (`503 overloaded`, `Retry-After: 1`: refused
    /// whole, never accepted and dropped); then captures every log: `202 {"accepted": N}` —
    /// accepted into the in-memory pipeline queue, not yet written to the sinks.
    pub async fn batch<B>(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        body: B,
    ) -> Response<Bytes>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let result = async {
            self.check_client(headers, peer)?;
            let encoding = crate::body::check_content(headers)?;
            let limit = self.inner.config.max_batch_bytes;
            let (sender, decoded) = self.admit(headers, body, encoding, limit).await?;
            let events = batch::parse(
                &decoded,
                self.inner.config.max_batch_events,
                &common(&sender),
            )?;
            let n = events.len();
            // All or nothing: refused whole (retryable) rather than accepted and dropped by a
            // full queue.
            self.inner
                .handle
                .capture_all(events)
                .map_err(|full| IngestError::overloaded(&full))?;
            Ok::<_, IngestError>(json(StatusCode::ACCEPTED, format!(r#"{{"accepted":{n}}}"#)))
        }
        .await;
        result.unwrap_or_else(|e| e.to_response())
    }

    /// `POST {prefix}/v1/logs` (OTLP/HTTP). The same checks as [`LogIngest::batch`], with
    /// `Content-Type` `application/x-protobuf` or `application/json`; a body that does not
    /// decode is `400 malformed_protobuf` / `malformed_json`. Answers `200` with an
    /// `ExportLogsServiceResponse` in the request's encoding; records with invalid ids are
    /// rejected one by one and reported in its `partial_success`.
    pub async fn otlp_logs<B>(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        body: B,
    ) -> Response<Bytes>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let result = async {
            self.check_client(headers, peer)?;
            let (protobuf, encoding) = otlp_content(headers)?;
            let limit = self.inner.config.max_otlp_bytes;
            let (sender, decoded) = self.admit(headers, body, encoding, limit).await?;
            let req = decode_otlp_within(&decoded, protobuf, self.inner.config.otlp_limits())?;
            let mapped = otlp::to_events(&req, &common(&sender));
            // All or nothing: refused whole (503 is retryable in OTLP) rather than accepted
            // and dropped by a full queue.
            self.inner
                .handle
                .capture_all(mapped.events)
                .map_err(|full| IngestError::overloaded(&full))?;
            let partial = (mapped.rejected > 0).then_some(proto::ExportLogsPartialSuccess {
                rejected_log_records: mapped.rejected,
                error_message: mapped.error_message,
            });
            Ok::<_, IngestError>(otlp_response(protobuf, partial))
        }
        .await;
        result.unwrap_or_else(|e| e.to_response())
    }

    /// The per-client rate limit, the first check of both routes (before anything that
    /// costs: a key lookup, a body read). Errors: `429` with `Retry-After`.
    fn check_client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<(), IngestError> {
        let inner = &*self.inner;
        let client = client_ip(&inner.proxies, peer, headers)
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), limit_key);
        if let Err(not_until) = inner.per_client.check_key(&client) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(IngestError::rate_limited(
                "client address",
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        Ok(())
    }

    /// The checks both routes share after the client's rate and the content type: key, key
    /// rate, body, signature; the decoded body and its sender.
    async fn admit<B>(
        &self,
        headers: &HeaderMap,
        body: B,
        encoding: Encoding,
        limit: usize,
    ) -> Result<(Sender, Bytes), IngestError>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let inner = &*self.inner;
        let presented = presented_key(headers)?;
        let records = self.lookup(&presented[..keys::PREFIX_LEN]).await?;
        let Some((record, whole)) = keys::matching(&presented, &records) else {
            return Err(IngestError::unauthorized(
                "invalid_key",
                "the API key is not known, or revoked",
            ));
        };
        let record = record.clone();
        if let Err(not_until) = inner.per_key.check_key(&record.prefix) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(IngestError::rate_limited(
                "key",
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        let raw = read_limited_within(headers, body, limit, inner.config.body_read_timeout).await?;
        let signature = header_str(headers, "x-tracepost-signature");
        if !whole
            || signature.is_some()
            || record.require_signature
            || inner.config.require_signature
        {
            keys::verify(
                &record.hash,
                header_str(headers, "x-tracepost-timestamp"),
                signature,
                &raw,
                SystemTime::now(),
            )?;
        }
        inner.last_used.lock().insert(record.id, SystemTime::now());
        let decoded = decode(raw, encoding, limit)?;
        Ok((
            Sender {
                project: record.project,
                prefix: record.prefix,
            },
            decoded,
        ))
    }

    async fn lookup(&self, prefix: &str) -> Result<Arc<Vec<KeyRecord>>, IngestError> {
        let inner = &*self.inner;
        if let Some((at, recs)) = inner.cache.lock().get(prefix) {
            if at.elapsed() < inner.config.key_cache_ttl {
                return Ok(recs.clone());
            }
        }
        {
            let mut unknown = inner.unknown.lock();
            match unknown.get(prefix) {
                Some(at) if at.elapsed() < inner.config.key_cache_ttl => {
                    return Ok(Arc::new(Vec::new()))
                }
                Some(_) => {
                    unknown.pop(prefix);
                }
                None => {}
            }
        }
        let recs = match inner.store.by_prefix(prefix).await {
            Ok(recs) => recs,
            Err(e) => {
                // Stale if error: keys seen within `key_stale_ttl` keep working through an
                // outage of the store (a revocation made meanwhile waits for it to answer).
                let stale = inner.cache.lock().get(prefix).and_then(|(at, recs)| {
                    (at.elapsed() < inner.config.key_stale_ttl).then(|| recs.clone())
                });
                if let Some(recs) = stale {
                    tracing::warn!(error = %e, "tracepost: the API key store is unavailable; using the key cached before");
                    return Ok(recs);
                }
                tracing::warn!(error = %e, "tracepost: the API key store is unavailable");
                return Err(IngestError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "key_store_unavailable",
                    "the API key store is unavailable; retry later",
                ));
            }
        };
        if recs.is_empty() {
            inner.unknown.lock().put(prefix.to_owned(), Instant::now());
            return Ok(Arc::new(recs));
        }
        let recs = Arc::new(recs);
        let mut cache = inner.cache.lock();
        if cache.len() >= KEY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(prefix.to_owned(), (Instant::now(), recs.clone()));
        Ok(recs)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The key of a request: `x-tracepost-key`, else `Authorization: Bearer`. Errors: `401
/// missing_key`, `401 invalid_key` (not a key's shape).
fn presented_key(headers: &HeaderMap) -> Result<String, IngestError> {
    let key = header_str(headers, "x-tracepost-key")
        .or_else(|| {
            header_str(headers, header::AUTHORIZATION.as_str())
                .and_then(|a| a.strip_prefix("Bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            IngestError::unauthorized(
                "missing_key",
                "an API key is required (x-tracepost-key or Authorization: Bearer)",
            )
        })?;
    let shaped = key.starts_with("tpk_")
        && (key.len() == keys::PREFIX_LEN || keys::is_well_formed(key))
        && key[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if !shaped {
        return Err(IngestError::unauthorized(
            "invalid_key",
            "an API key is tpk_ and 64 hex digits (or its 12-character prefix, when signing)",
        ));
    }
    Ok(key.to_ascii_lowercase())
}

fn common(sender: &Sender) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ingest.project".into(), sender.project.clone().into());
    m.insert("ingest.key".into(), sender.prefix.clone().into());
    m
}

/// OTLP's content types and encoding: `(is_protobuf, encoding)`. Errors: `415`.
fn otlp_content(headers: &HeaderMap) -> Result<(bool, Encoding), IngestError> {
    let ct = header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let protobuf = match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => true,
        "application/json" => false,
        _ => {
            return Err(IngestError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {:?} is not application/x-protobuf or application/json",
                    tracepost_core::truncate_utf8(ct, 100)
                ),
            ))
        }
    };
    crate::body::check_charset(ct)?;
    let mut encoding = Encoding::Identity;
    for v in headers.get_all(header::CONTENT_ENCODING) {
        let v = v.to_str().unwrap_or("<not ASCII>").trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" if encoding == Encoding::Identity => encoding = Encoding::Gzip,
            _ => return Err(IngestError::unsupported_encoding(v)),
        }
    }
    Ok((protobuf, encoding))
}

/// Decodes an OTLP body within the default [`OtlpLimits`]; see [`decode_otlp_within`].
pub fn decode_otlp(
    body: &[u8],
    protobuf: bool,
) -> Result<proto::ExportLogsServiceRequest, IngestError> {
    decode_otlp_within(body, protobuf, OtlpLimits::default())
}

/// Decodes an OTLP body, counting its records and attribute values before the decoder
/// allocates them ([`bound`]). Errors: `413 too_many_records`, `413 too_many_attributes`,
/// `400 malformed_protobuf`, `400 malformed_json`.
pub fn decode_otlp_within(
    body: &[u8],
    protobuf: bool,
    limits: OtlpLimits,
) -> Result<proto::ExportLogsServiceRequest, IngestError> {
    let req = if protobuf {
        bound::check_protobuf(body, limits)?;
        proto::ExportLogsServiceRequest::decode(body).map_err(|e| {
            IngestError::new(
                StatusCode::BAD_REQUEST,
                "malformed_protobuf",
                format!("not an OTLP ExportLogsServiceRequest: {e}"),
            )
        })?
    } else {
        otlp_json::decode(body, limits)?
    };
    bound::check_mapped(&req, limits)?;
    Ok(req)
}

fn otlp_response(
    protobuf: bool,
    partial: Option<proto::ExportLogsPartialSuccess>,
) -> Response<Bytes> {
    let (body, ct) = if protobuf {
        let msg = proto::ExportLogsServiceResponse {
            partial_success: partial,
        };
        (Bytes::from(msg.encode_to_vec()), "application/x-protobuf")
    } else {
        let v = match partial {
            None => serde_json::json!({}),
            Some(p) => serde_json::json!({"partialSuccess": {
                "rejectedLogRecords": p.rejected_log_records.to_string(),
                "errorMessage": p.error_message,
            }}),
        };
        (Bytes::from(v.to_string()), "application/json")
    };
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn json(status: StatusCode, body: String) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn flush(inner: &Inner) {
    let used: Vec<(i64, SystemTime)> = inner.last_used.lock().drain().collect();
    if used.is_empty() {
        return;
    }
    if let Err(e) = inner.store.touch(used.clone()).await {
        tracing::warn!(error = %e, "tracepost: could not store API keys' last use; retrying later");
        let mut pending = inner.last_used.lock();
        for (id, at) in used {
            pending.entry(id).or_insert(at);
        }
    }
}

async fn maintenance(inner: Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(i) => i.config.maintenance_every,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        flush(&inner).await;
        inner.per_key.retain_recent();
        inner.per_client.retain_recent();
        inner.per_client.shrink_to_fit();
        let ttl = inner.config.key_cache_ttl;
        let keep = ttl.max(inner.config.key_stale_ttl);
        inner.cache.lock().retain(|_, (at, _)| at.elapsed() < keep);
        let mut unknown = inner.unknown.lock();
        while unknown
            .peek_lru()
            .is_some_and(|(_, at)| at.elapsed() >= ttl)
        {
            unknown.pop_lru();
        }
    }
}
