//! `POST {prefix}/v1/replay`: one segment of an rrweb session recording, as `tp-replay.js`
//! uploads it. [`ReplayIngest`] checks it, stores it in a [`ReplayStore`] and captures one
//! `replay` index event through the pipeline.
//!
//! ## The request
//!
//! `POST {prefix}/v1/replay?key=pk_…&session=…&segment=3&session_start=1764450000000`
//!
//! | query parameter | required | what |
//! |---|---|---|
//! | `key` (or header `x-tracepost-key`) | yes | the public key, as for `/v1/events` |
//! | `token` (or header `x-tracepost-token`) | with `require_token` | the upload token |
//! | `session` | yes | the session id (`tp.js`'s): 1–128 of `A-Z a-z 0-9 - _` |
//! | `segment` | yes | the segment number, 0 first, one more per segment (0–4 294 967 295) |
//! | `session_start` | yes | when the session started, unix ms (browser clock): all segments of a session are stored under this day |
//! | `sent_at` | no | the browser's clock when sending, unix ms: corrects the index event's time for the browser's clock skew |
//! | `missing` | no | how many segments the browser could not send so far (default 0) |
//! | `errors` | no | how many browser errors the page saw during the segment (default 0) |
//! | `visitor` | no | `tp.js`'s visitor id (else one is derived, as for cookieless batches) |
//! | `user` | no | the identified user id |
//!
//! The segment's own times (first and last event) are read from its events, so they cannot
//! disagree with what is stored. Query parameters rather than headers: a page can send them
//! with `fetch(…, {keepalive: true})` or `sendBeacon` without a CORS preflight.
//!
//! The body is the JSON array of rrweb events, gzip-compressed (`Content-Encoding: gzip`, or
//! recognised by gzip's magic bytes `1f 8b`, which is how a browser sends it without a
//! preflight) or plain. `Content-Type` may be `application/json`, `text/plain`,
//! `application/octet-stream`, `application/gzip` or absent.
//!
//! ## The answers
//!
//! In order: the admission checks of `/v1/events` (`429 rate_limited`, `401 missing_key` /
//! `invalid_key` / `missing_token` / `invalid_token`, `403 origin_not_allowed`), `415
//! unsupported_media_type` / `unsupported_encoding`, `400 missing_param` / `invalid_param`
//! (the message names the parameter), then:
//!
//! - `200 {"accepted":0,"duplicate":true}`: this (session, segment) is already stored;
//!   nothing is stored or captured again (idempotent: a client may retry freely);
//! - `409 segment_in_progress` (`Retry-After: 1`): the same segment is being stored by
//!   another request right now;
//! - `413 body_too_large` (over [`ReplayConfig::max_body_bytes`] as sent, 10 MiB by
//!   default) or `413 decompressed_too_large` (over
//!   [`ReplayConfig::max_decompressed_bytes`], 100 MiB: a gzip bomb is cut there, the
//!   memory it costs is bounded by that limit);
//! - `400 invalid_gzip` (a truncated or corrupt gzip stream), `400 malformed_json` (not
//!   JSON), `400 invalid_segment` (not an array, empty, too deep, too many events, or an event
//!   that is not rrweb's: `field` is its JSON pointer, `/3/data/positions/0/x`, and the
//!   message says what is wrong);
//! - `503 store_unavailable` (`Retry-After: 5`) when the object store is down, `500
//!   store_failed` when it refuses the write: the segment is not acknowledged, so the
//!   browser keeps it and retries;
//! - `202 {"accepted":1,"segment":3,"events":412,"bytes":18734}`: stored (`bytes` is the
//!   size of the stored gzip object) and the index event captured.
//!
//! ## What is stored
//!
//! The segment goes to [`SegmentKey::new`]`(session, Day::of(session_start), segment)`.
//! With [`ReplayConfig::redact`] (the default) every string of the segment (text nodes,
//! attribute values, input values, URLs, custom and plugin payloads) first passes the
//! pipeline's [`Redactor`](tracepost_core::Redactor), and values under secret-looking keys
//! are masked, as in every other event: the stored object is the redacted JSON, gzipped.
//!
//! ## The index event
//!
//! One event per stored segment (none for a duplicate), through the pipeline: `kind =
//! replay`, `timestamp` = the segment's first event (corrected for clock skew when `sent_at`
//! is given), `session_id`, `user_id`, and the attributes `replay.segment`,
//! `replay.session_start` (RFC 3339), `replay.day` (`yyyy/mm/dd`, the day part of the
//! segment keys), `replay.start_ms` / `replay.end_ms` (unix ms of the first and last event,
//! browser clock, as in the stored events), `replay.events`, `replay.bytes`,
//! `replay.first_url` (the href of the segment's first Meta event, if any),
//! `replay.missing_segments`, `replay.errors`, `replay.clock_skew_ms` (server − browser,
//! with `sent_at`), and the browser context (`visitor.id`, user agent, country) as on the
//! other browser events.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracepost_core::object_store::{Day, ObjectStore, ReplayStore, SegmentKey};
use tracepost_core::{Event, Kind, Level, SinkError, SinkErrorClass, Timestamp};
use tracepost_rrweb::{EventData, Limits, SegmentError};

use crate::body::{decode, read_limited, Encoding};
use crate::config::ConfigError;
use crate::error::IngestError;
use crate::Ingest;

/// The settings of the replay route. Every field has a default.
///
/// ```toml
/// max_body_bytes = 10485760
/// max_decompressed_bytes = 104857600
/// max_concurrent = 2
/// redact = true
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ReplayConfig {
    /// The largest segment accepted as sent (gzip or plain), in bytes. Default 10 MiB
    /// (Sentry Relay's `max_replay_compressed_size`) → `413 body_too_large`.
    pub max_body_bytes: usize,
    /// The largest segment after gzip decoding, in bytes. Default 100 MiB (Relay's
    /// `max_replay_uncompressed_size`) → `413 decompressed_too_large`.
    pub max_decompressed_bytes: usize,
    /// How many segments are decoded, parsed, redacted and compressed at once (each on a
    /// blocking thread); more wait. The work is CPU-bound, so more than the CPUs gains
    /// nothing; it bounds the memory of many large uploads at once to about this many times
    /// a segment's parsed size. Default: the CPUs available, at most 4.
    pub max_concurrent: usize,
    /// Run the pipeline's redactor over every string of the segment before storing it
    /// (default true).
    pub redact: bool,
    /// Deepest JSON nesting of a segment (see `tracepost_rrweb::Limits::max_depth`). Default
    /// 1 000.
    pub max_depth: usize,
    /// How many stored (session, segment) pairs are remembered to answer duplicates without
    /// asking the store (default 100 000). Beyond it, or after a restart, the store's listing
    /// of the session answers.
    pub dedup_capacity: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            max_body_bytes: 10 << 20,
            max_decompressed_bytes: 100 << 20,
            max_concurrent: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, 4),
            redact: true,
            max_depth: 1_000,
            dedup_capacity: 100_000,
        }
    }
}

impl ReplayConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest segment as sent, in bytes.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// The largest segment after gzip decoding, in bytes.
    pub fn max_decompressed_bytes(mut self, n: usize) -> Self {
        self.max_decompressed_bytes = n;
        self
    }

    /// How many segments are processed at once.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Whether the segment's strings pass the pipeline's redactor.
    pub fn redact(mut self, on: bool) -> Self {
        self.redact = on;
        self
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| ConfigError {
            field,
            reason: reason.into(),
        };
        if self.max_body_bytes == 0 {
            return Err(bad("replay.max_body_bytes", "must be at least 1"));
        }
        if self.max_decompressed_bytes < self.max_body_bytes {
            return Err(bad(
                "replay.max_decompressed_bytes",
                "must be at least max_body_bytes",
            ));
        }
        if self.max_concurrent == 0 {
            return Err(bad("replay.max_concurrent", "must be at least 1"));
        }
        if self.max_depth < 4 {
            return Err(bad("replay.max_depth", "must be at least 4"));
        }
        if self.dedup_capacity == 0 {
            return Err(bad("replay.dedup_capacity", "must be at least 1"));
        }
        Ok(())
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the replay route stores segments: any [`ReplayStore`] (on any [`ObjectStore`]),
/// behind a trait object so [`ReplayIngest`] needs no type parameter.
pub trait SegmentStore: Send + Sync + 'static {
    /// The store's name, for logs.
    fn store_name(&self) -> &str;
    /// Stores a gzipped segment at `key` (see [`ReplayStore::put_segment`]).
    fn put<'a>(
        &'a self,
        key: &'a SegmentKey,
        gzipped: Bytes,
    ) -> BoxFuture<'a, Result<(), SinkError>>;
    /// The stored segments of a session (see [`ReplayStore::list_segments`]).
    fn list<'a>(
        &'a self,
        session_id: &'a str,
        day: Day,
    ) -> BoxFuture<'a, Result<Vec<SegmentKey>, SinkError>>;
}

impl<S: ObjectStore> SegmentStore for ReplayStore<S> {
    fn store_name(&self) -> &str {
        self.store().name()
    }

    fn put<'a>(
        &'a self,
        key: &'a SegmentKey,
        gzipped: Bytes,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.put_segment(key, gzipped))
    }

    fn list<'a>(
        &'a self,
        session_id: &'a str,
        day: Day,
    ) -> BoxFuture<'a, Result<Vec<SegmentKey>, SinkError>> {
        Box::pin(self.list_segments(session_id, day))
    }
}

/// The replay upload route: the browser ingest's admission checks, a [`SegmentStore`] and
/// the [`ReplayConfig`]. Cheap to clone.
#[derive(Clone)]
pub struct ReplayIngest {
    inner: Arc<ReplayInner>,
}

struct ReplayInner {
    ingest: Ingest,
    store: Arc<dyn SegmentStore>,
    config: ReplayConfig,
    /// (session, segment) pairs stored by this process.
    seen: Mutex<lru::LruCache<(String, u32), ()>>,
    /// (session, segment) pairs being stored right now.
    in_flight: Mutex<HashSet<(String, u32)>>,
    permits: tokio::sync::Semaphore,
    script: crate::script::Script,
}

impl std::fmt::Debug for ReplayIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayIngest")
            .field("store", &self.inner.store.store_name())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The parameters of one upload.
#[derive(Debug)]
struct Params {
    key: SegmentKey,
    session_start_ms: u64,
    sent_at_ms: Option<f64>,
    missing: u64,
    errors: u64,
    visitor: Option<String>,
    user: Option<String>,
}

/// What the blocking work found in a segment.
struct Processed {
    gzipped: Bytes,
    events: usize,
    start_ms: f64,
    end_ms: f64,
    first_url: Option<String>,
}

/// Unix ms of 2000-01-01: an earlier session start is a broken clock or a bad parameter.
const EARLIEST_MS: u64 = 946_684_800_000;

/// The highest segment number accepted. tp-replay.js cuts a segment every 5 s or 1 MB and stops
/// a session after 60 min (720 time cuts), so 100 000 leaves room for size cuts; an unbounded
/// number let one upload make the console's viewer list billions of missing segments (a
/// tester's finding).
pub const MAX_SEGMENT: u32 = 100_000;
/// How far ahead of the server's clock a session start may be (a browser clock running fast).
const FUTURE_SLACK_MS: u64 = 24 * 3600 * 1000;

impl ReplayIngest {
    /// The route for `ingest`'s settings (keys, origins, tokens, rate limits), storing into
    /// `store`. Errors: an invalid setting (named).
    pub fn new<S: ObjectStore>(
        ingest: Ingest,
        store: ReplayStore<S>,
        config: ReplayConfig,
    ) -> Result<Self, ConfigError> {
        Self::with_store(ingest, Arc::new(store), config)
    }

    /// [`ReplayIngest::new`] with a store already behind a trait object.
    pub fn with_store(
        ingest: Ingest,
        store: Arc<dyn SegmentStore>,
        config: ReplayConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(ReplayIngest {
            inner: Arc::new(ReplayInner {
                seen: Mutex::new(lru::LruCache::new(
                    NonZeroUsize::new(config.dedup_capacity).unwrap_or(NonZeroUsize::MIN),
                )),
                in_flight: Mutex::new(HashSet::new()),
                permits: tokio::sync::Semaphore::new(config.max_concurrent),
                script: crate::script::Script::replay(),
                ingest,
                store,
                config,
            }),
        })
    }

    /// The browser ingest whose checks the route applies.
    pub fn ingest(&self) -> &Ingest {
        &self.inner.ingest
    }

    /// The settings.
    pub fn config(&self) -> &ReplayConfig {
        &self.inner.config
    }

    /// `GET {prefix}/tp-replay.js`: the recording script, served as `tp.js` is (`ETag`,
    /// gzip, an hour of caching).
    pub fn script(&self, headers: &HeaderMap) -> Response<Bytes> {
        self.inner.script.respond(headers)
    }

    /// `OPTIONS {prefix}/v1/replay`: the CORS preflight, as for `/v1/events`.
    pub fn preflight(&self, headers: &HeaderMap) -> Response<Bytes> {
        self.inner.ingest.preflight(headers)
    }

    /// `POST {prefix}/v1/replay`: see the [module](self) for the request and every answer.
    /// `peer` is the TCP peer address (for the per-client rate limit).
    pub async fn upload<B>(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        peer: Option<IpAddr>,
        body: B,
    ) -> Response<Bytes>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let mut response = match self.upload_inner(headers, query, peer, body).await {
            Ok(r) => r,
            Err(e) => e.to_response(),
        };
        self.inner.ingest.cors_for(headers, &mut response);
        response
    }

    async fn upload_inner<B>(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        peer: Option<IpAddr>,
        body: B,
    ) -> Result<Response<Bytes>, IngestError>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let inner = &*self.inner;
        inner.ingest.admit(headers, query, peer)?;
        let declared = content_encoding(headers)?;
        let params = parse_params(query.unwrap_or(""))?;
        let id = (params.key.session_id().to_owned(), params.key.segment());
        // A segment stored already (by this process, or before a restart) is not stored
        // or indexed again.
        if inner.seen.lock().get(&id).is_some() {
            return Ok(duplicate());
        }
        if !inner.in_flight.lock().insert(id.clone()) {
            let mut e = IngestError::new(
                StatusCode::CONFLICT,
                "segment_in_progress",
                format!(
                    "segment {} of this session is being stored by another request; retry",
                    id.1
                ),
            );
            e = e.with_retry_after(1);
            return Err(e);
        }
        let _in_flight = InFlight {
            set: &inner.in_flight,
            id: Some(id.clone()),
        };
        let stored = inner
            .store
            .list(params.key.session_id(), params.key.day())
            .await
            .map_err(store_error)?;
        if stored.iter().any(|k| k.segment() == id.1) {
            inner.seen.lock().put(id, ());
            return Ok(duplicate());
        }

        let raw = read_limited(headers, body, inner.config.max_body_bytes).await?;
        let encoding = match declared {
            Some(e) => e,
            None if raw.starts_with(&[0x1f, 0x8b]) => Encoding::Gzip,
            None => Encoding::Identity,
        };
        let _permit = inner.permits.acquire().await.map_err(|_| {
            IngestError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the replay route is shutting down",
            )
        })?;
        let config = inner.config.clone();
        let redactor = config
            .redact
            .then(|| inner.ingest.pipeline().redactor().clone());
        let processed =
            tokio::task::spawn_blocking(move || process(raw, encoding, &config, redactor.as_ref()))
                .await
                .map_err(|_| {
                    IngestError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the segment could not be processed",
                    )
                })??;
        drop(_permit);

        let bytes = processed.gzipped.len();
        inner
            .store
            .put(&params.key, processed.gzipped.clone())
            .await
            .map_err(store_error)?;
        inner.seen.lock().put(id, ());

        let event = self.index_event(headers, peer, &params, &processed, bytes);
        inner.ingest.pipeline().capture(event);
        Ok(json(
            StatusCode::ACCEPTED,
            format!(
                r#"{{"accepted":1,"segment":{},"events":{},"bytes":{bytes}}}"#,
                params.key.segment(),
                processed.events
            ),
        ))
    }

    fn index_event(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        p: &Params,
        seg: &Processed,
        bytes: usize,
    ) -> Event {
        let now = now_ms();
        let skew = p.sent_at_ms.map(|sent| now - sent);
        let at = (seg.start_ms + skew.unwrap_or(0.0)).clamp(0.0, now + 60_000.0);
        let mut event = Event::new(
            Kind::Replay,
            Level::Info,
            format!("replay segment {} ({} events)", p.key.segment(), seg.events),
        )
        .with_timestamp(Timestamp::from_unix_nanos((at * 1e6) as u64));
        event.session_id = Some(p.key.session_id().to_owned());
        event.user_id = p.user.clone();
        let a = &mut event.attributes;
        *a = self
            .inner
            .ingest
            .browser_attributes(headers, peer, p.visitor.as_deref());
        let session_start = UNIX_EPOCH + Duration::from_millis(p.session_start_ms);
        a.insert("replay.segment".into(), p.key.segment().into());
        a.insert(
            "replay.session_start".into(),
            humantime::format_rfc3339_millis(session_start)
                .to_string()
                .into(),
        );
        a.insert("replay.day".into(), p.key.day().path().into());
        a.insert("replay.start_ms".into(), (seg.start_ms as i64).into());
        a.insert("replay.end_ms".into(), (seg.end_ms as i64).into());
        a.insert("replay.events".into(), seg.events.into());
        a.insert("replay.bytes".into(), bytes.into());
        if let Some(u) = &seg.first_url {
            a.insert("replay.first_url".into(), u.clone().into());
        }
        a.insert("replay.missing_segments".into(), p.missing.into());
        a.insert("replay.errors".into(), p.errors.into());
        if let Some(s) = skew {
            a.insert("replay.clock_skew_ms".into(), (s.round() as i64).into());
        }
        event
    }
}

/// Removes its pair from the in-flight set when the request ends, however it ends.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(String, u32)>>,
    id: Option<(String, u32)>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.set.lock().remove(&id);
        }
    }
}

fn duplicate() -> Response<Bytes> {
    json(StatusCode::OK, r#"{"accepted":0,"duplicate":true}"#.into())
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

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn store_error(e: SinkError) -> IngestError {
    tracing::warn!(error = %e, "tracepost replay: the segment store failed");
    if e.class() == SinkErrorClass::Temporary {
        IngestError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the replay store is unavailable; retry later",
        )
        .with_retry_after(5)
    } else {
        IngestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_failed",
            "the replay store refused the segment",
        )
    }
}

/// `Content-Type` (JSON, text, octet-stream, gzip, or none) and `Content-Encoding` (gzip,
/// identity, or none: `None`, then the body's first bytes decide).
fn content_encoding(headers: &HeaderMap) -> Result<Option<Encoding>, IngestError> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    if let Some(ct) = types.next() {
        if types.next().is_some() {
            return Err(IngestError::unsupported_media_type(
                "<several Content-Type headers>",
            ));
        }
        let ct = ct.to_str().unwrap_or("<not ASCII>");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            essence.as_str(),
            "application/json" | "text/plain" | "application/octet-stream" | "application/gzip"
        ) {
            return Err(IngestError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {:?} is not accepted: send application/json, text/plain, application/octet-stream, application/gzip or none",
                    tracepost_core::truncate_utf8(ct, 100)
                ),
            ));
        }
    }
    let mut encoding = None;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let v = value.to_str().unwrap_or("<not ASCII>").trim();
        match v.to_ascii_lowercase().as_str() {
            "" => {}
            "identity" if encoding.is_none() => encoding = Some(Encoding::Identity),
            "gzip" | "x-gzip" if encoding.is_none() => encoding = Some(Encoding::Gzip),
            _ => return Err(IngestError::unsupported_encoding(v)),
        }
    }
    Ok(encoding)
}

fn missing(name: &str) -> IngestError {
    IngestError::new(
        StatusCode::BAD_REQUEST,
        "missing_param",
        format!("the query parameter `{name}` is required"),
    )
}

fn invalid(name: &str, why: &str) -> IngestError {
    IngestError::new(
        StatusCode::BAD_REQUEST,
        "invalid_param",
        format!("the query parameter `{name}` {why}"),
    )
}

fn parse_params(query: &str) -> Result<Params, IngestError> {
    let mut session = None;
    let mut segment = None;
    let mut session_start = None;
    let mut sent_at = None;
    let mut missing_n = None;
    let mut errors = None;
    let mut visitor = None;
    let mut user = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "session" => &mut session,
            "segment" => &mut segment,
            "session_start" => &mut session_start,
            "sent_at" => &mut sent_at,
            "missing" => &mut missing_n,
            "errors" => &mut errors,
            "visitor" => &mut visitor,
            "user" => &mut user,
            _ => continue,
        };
        if slot.is_some() {
            return Err(invalid(&k, "is given more than once"));
        }
        *slot = Some(v.into_owned());
    }
    let session = session
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("session"))?;
    let segment: u32 = segment
        .ok_or_else(|| missing("segment"))?
        .parse()
        .ok()
        .filter(|n| *n <= MAX_SEGMENT)
        .ok_or_else(|| invalid("segment", "must be an integer from 0 to 100000"))?;
    let now = now_ms() as u64;
    let session_start_ms: u64 = session_start
        .ok_or_else(|| missing("session_start"))?
        .parse()
        .ok()
        .filter(|ms| (EARLIEST_MS..=now + FUTURE_SLACK_MS).contains(ms))
        .ok_or_else(|| {
            invalid(
                "session_start",
                "must be unix milliseconds between 2000-01-01 and one day from now",
            )
        })?;
    let day = Day::of(Timestamp::from_unix_nanos(session_start_ms * 1_000_000));
    let key = SegmentKey::new(session, day, segment).map_err(|_| {
        invalid(
            "session",
            "must be 1 to 128 characters among A-Z a-z 0-9 - _",
        )
    })?;
    let sent_at_ms = sent_at
        .map(|s| {
            s.parse::<u64>()
                .ok()
                .filter(|ms| *ms >= EARLIEST_MS)
                .map(|ms| ms as f64)
                .ok_or_else(|| invalid("sent_at", "must be unix milliseconds after 2000-01-01"))
        })
        .transpose()?;
    let count = |name: &str, v: Option<String>| -> Result<u64, IngestError> {
        v.map_or(Ok(0), |s| {
            s.parse::<u32>()
                .map(u64::from)
                .map_err(|_| invalid(name, "must be an integer from 0 to 4294967295"))
        })
    };
    let missing_n = count("missing", missing_n)?;
    let errors = count("errors", errors)?;
    let text = |name: &str, v: Option<String>, max: usize| -> Result<Option<String>, IngestError> {
        match v {
            Some(s) if s.len() > max || s.chars().any(char::is_control) => Err(invalid(
                name,
                &format!("must be at most {max} bytes without control characters"),
            )),
            Some(s) if s.is_empty() => Ok(None),
            other => Ok(other),
        }
    };
    Ok(Params {
        key,
        session_start_ms,
        sent_at_ms,
        missing: missing_n,
        errors,
        visitor: text("visitor", visitor, 128)?,
        user: text("user", user, 256)?,
    })
}

/// The blocking part: decode within the limit, parse as rrweb events, measure, redact,
/// compress.
fn process(
    raw: Bytes,
    encoding: Encoding,
    config: &ReplayConfig,
    redactor: Option<&tracepost_core::Redactor>,
) -> Result<Processed, IngestError> {
    let was_gzip = encoding == Encoding::Gzip;
    let json = decode(raw.clone(), encoding, config.max_decompressed_bytes)?;
    let limits = Limits::default()
        .max_bytes(config.max_decompressed_bytes)
        .max_depth(config.max_depth);
    let events = tracepost_rrweb::parse_segment(&json, &limits).map_err(segment_error)?;
    let mut start_ms = f64::INFINITY;
    let mut end_ms = f64::NEG_INFINITY;
    let mut first_url = None;
    for e in &events {
        let t = e.timestamp_ms();
        start_ms = start_ms.min(t);
        end_ms = end_ms.max(t);
        if first_url.is_none() {
            if let EventData::Meta(m) = &e.data {
                first_url = Some(m.href.clone());
            }
        }
    }
    let count = events.len();
    // Parsing made a stack for the depth; dropping a deep tree needs one as well.
    let stack = (1 << 20) + config.max_depth * (16 << 10);
    stacker::grow(stack, move || drop(events));
    // Each buffer is dropped as soon as the next step no longer needs it, and the redacted
    // JSON is written straight into the gzip encoder: at most two copies of the segment
    // are alive at once.
    let gzipped = match redactor {
        Some(r) => {
            let mut value = stacker::grow(stack, || {
                let mut de = serde_json::Deserializer::from_slice(&json);
                de.disable_recursion_limit();
                Value::deserialize(&mut de)
            })
            .map_err(|e| IngestError::malformed_json(e.to_string()))?;
            let size = json.len();
            drop((json, raw));
            stacker::grow(stack, || {
                r.json(&mut value);
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(size / 8 + 64),
                    flate2::Compression::default(),
                );
                let written = serde_json::to_writer(&mut gz, &value);
                drop(value);
                written
                    .map_err(|e| IngestError::malformed_json(e.to_string()))
                    .and_then(|()| gz.finish().map_err(|e| internal(&e)))
            })
            .map(Bytes::from)?
        }
        None if was_gzip => {
            drop(json);
            raw
        }
        None => gzip(&json),
    };
    if let Some(url) = &mut first_url {
        if let Some(r) = redactor {
            *url = r.text(url).into_owned();
        }
    }
    Ok(Processed {
        gzipped,
        events: count,
        start_ms,
        end_ms,
        first_url,
    })
}

fn internal(e: &dyn std::fmt::Display) -> IngestError {
    tracing::warn!(error = %e, "tracepost replay: compressing a segment failed");
    IngestError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the segment could not be compressed",
    )
}

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    let _ = e.write_all(data);
    Bytes::from(e.finish().unwrap_or_default())
}

/// A segment error as the route's answer: `invalid_segment` with the JSON pointer of the
/// field at fault.
fn segment_error(e: SegmentError) -> IngestError {
    let message = e.to_string();
    match &e {
        SegmentError::TooLarge { max, .. } => IngestError::decompressed_too_large(*max),
        SegmentError::Syntax { .. } => IngestError::malformed_json(message),
        SegmentError::Event { index, path, .. } => {
            IngestError::new(StatusCode::BAD_REQUEST, "invalid_segment", message)
                .with_field(pointer(*index, path))
        }
        _ => IngestError::new(StatusCode::BAD_REQUEST, "invalid_segment", message).with_field(""),
    }
}

/// `data.adds[0].node` of event 3 → `/3/data/adds/0/node` (RFC 6901: `~` and `/` escaped).
fn pointer(index: usize, path: &str) -> String {
    let mut out = format!("/{index}");
    if path == "." || path.is_empty() {
        return out;
    }
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        while let Some(close) = rest.find(']') {
            out.push('/');
            out.push_str(&rest[1..close]);
            rest = &rest[close + 1..];
        }
    }
    out
}

/// The axum routes (feature `axum`): `GET {prefix}/tp-replay.js` and `POST`/`OPTIONS
/// {prefix}/v1/replay` (another method: `405 method_not_allowed` with the JSON error body).
/// Responses are marked [`OwnRoute`](tracepost_core::capture::OwnRoute): merged before the
/// tower layer, uploads are not recorded as app requests. Serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` for per-address rate limits.
#[cfg(feature = "axum")]
pub fn replay_router<S: Clone + Send + Sync + 'static>(replay: ReplayIngest) -> axum::Router<S> {
    use axum::extract::{ConnectInfo, Request};
    use axum::routing::{get, post};
    let prefix = replay.ingest().config().prefix.clone();
    let preflight = replay.clone();
    let script = replay.clone();
    let router = axum::Router::new()
        .route(
            &format!("{prefix}/tp-replay.js"),
            get(move |req: Request| async move {
                script.script(req.headers()).map(axum::body::Body::from)
            }),
        )
        .route(
            &format!("{prefix}/v1/replay"),
            post(move |req: Request| async move {
                let peer = req
                    .extensions()
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip());
                let (parts, body) = req.into_parts();
                replay
                    .upload(&parts.headers, parts.uri.query(), peer, body)
                    .await
                    .map(axum::body::Body::from)
            })
            .options(move |req: Request| async move {
                preflight
                    .preflight(req.headers())
                    .map(axum::body::Body::from)
            })
            .fallback(crate::router::method_not_allowed("POST, OPTIONS")),
        );
    crate::router::own_routes(router)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_from_paths() {
        assert_eq!(pointer(3, "."), "/3");
        assert_eq!(pointer(3, "timestamp"), "/3/timestamp");
        assert_eq!(
            pointer(0, "data.adds[0].node.childNodes[2]"),
            "/0/data/adds/0/node/childNodes/2"
        );
        assert_eq!(pointer(1, "data.positions[0].x"), "/1/data/positions/0/x");
        assert_eq!(pointer(1, "data.a/b"), "/1/data/a~1b");
    }

    #[test]
    fn params_are_checked_and_named() {
        let ok =
            parse_params("session=abc_1&segment=2&session_start=1764450000000&missing=1").unwrap();
        assert_eq!(ok.key.key(), "replays/2025/11/29/abc_1/000002.json.gz");
        assert_eq!(ok.missing, 1);
        for (q, code, name) in [
            (
                "segment=1&session_start=1764450000000",
                "missing_param",
                "`session`",
            ),
            (
                "session=a&session_start=1764450000000",
                "missing_param",
                "`segment`",
            ),
            ("session=a&segment=1", "missing_param", "`session_start`"),
            (
                "session=a/b&segment=1&session_start=1764450000000",
                "invalid_param",
                "`session`",
            ),
            (
                "session=a&segment=-1&session_start=1764450000000",
                "invalid_param",
                "`segment`",
            ),
            (
                "session=a&segment=1&session_start=12",
                "invalid_param",
                "`session_start`",
            ),
            (
                "session=a&segment=1&segment=2&session_start=1764450000000",
                "invalid_param",
                "`segment`",
            ),
            (
                "session=a&segment=1&session_start=1764450000000&missing=x",
                "invalid_param",
                "`missing`",
            ),
        ] {
            let e = parse_params(q).unwrap_err();
            assert_eq!(e.code(), code, "{q}");
            assert!(e.message().contains(name), "{q}: {}", e.message());
        }
    }
}
