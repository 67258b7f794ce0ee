//! [`Ingest`]: the framework-neutral handlers. They take the request's parts (`http` types and
//! any `http_body::Body`) and answer an `http::Response<Bytes>`; the axum router (and any
//! other framework adapter) only maps its request onto them.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use parking_lot::Mutex;
use tracepost_core::TracepostHandle;

use crate::body::{check_content, decode, read_limited_within};
use crate::config::{ConfigError, IngestConfig};
use crate::error::IngestError;
use crate::map::{to_events, Context};
use crate::origin::{client_ip, country, limit_key, origin_allowed};
use crate::schema::{parse_batch, BrowserEvent};
use crate::script::Script;
use crate::sourcemaps::SourceMaps;
use crate::token::{TokenSigner, UploadToken};
use crate::ua::UserAgentCache;
use crate::visitor::DailySalt;

/// How many client addresses the per-client limiter tracks before it forgets idle ones
/// inline (it also does so every [`RETAIN_EVERY`] in the background).
pub const MAX_TRACKED_CLIENTS: usize = 100_000;
/// How often idle rate-limit entries are dropped (`governor`'s `retain_recent`).
pub const RETAIN_EVERY: Duration = Duration::from_secs(10);

/// The browser ingest: settings, rate limiters, duplicate filter, caches, and the pipeline
/// handle every accepted event is captured into. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    handle: TracepostHandle,
    config: IngestConfig,
    tokens: TokenSigner,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    per_key: DefaultKeyedRateLimiter<String>,
    last_inline_retain: AtomicU64,
    seen: Mutex<lru::LruCache<(String, String), Instant>>,
    user_agents: UserAgentCache,
    salt: DailySalt,
    source_maps: Option<SourceMaps>,
    script: Script,
    vitals_script: Script,
    warned_no_peer: AtomicBool,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl Ingest {
    /// The ingest for `config` (validated), capturing into `handle`. Inside a Tokio runtime
    /// it starts a task that forgets idle rate-limit entries every [`RETAIN_EVERY`]; the task
    /// ends when the last clone of the `Ingest` is dropped.
    pub fn new(handle: TracepostHandle, config: IngestConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let inner = Arc::new(Inner {
            tokens: TokenSigner::new(
                config.project.clone(),
                config.token_secrets.clone(),
                config.token_ttl,
            ),
            per_client: RateLimiter::keyed(quota(config.per_client_rate, config.per_client_burst)),
            per_key: RateLimiter::keyed(quota(config.per_key_rate, config.per_key_burst)),
            last_inline_retain: AtomicU64::new(0),
            seen: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(config.dedup_capacity)
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            user_agents: UserAgentCache::default(),
            salt: DailySalt::default(),
            source_maps: config.source_maps_dir.as_ref().map(SourceMaps::new),
            script: Script::new(),
            vitals_script: Script::vitals(),
            warned_no_peer: AtomicBool::new(false),
            handle,
            config,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(retain_task(Arc::downgrade(&inner)));
        }
        Ok(Ingest { inner })
    }

    /// The settings.
    pub fn config(&self) -> &IngestConfig {
        &self.inner.config
    }

    /// A token for a page served by the same host as the routes, to put in the script tag's
    /// `data-token` when rendering the page. `None` without a token secret.
    pub fn browser_token(&self) -> Option<UploadToken> {
        self.inner.tokens.mint("")
    }

    /// A token for pages of `origin` (`https://shop.example`), when they are served by
    /// another host than the routes. `None` without a token secret.
    pub fn browser_token_for(&self, origin: &str) -> Option<UploadToken> {
        self.inner.tokens.mint(origin)
    }

    /// How many client addresses the per-client limiter tracks right now.
    pub fn tracked_clients(&self) -> usize {
        self.inner.per_client.len()
    }

    /// `GET {prefix}/tp.js`: the script, with `ETag` (answering `304` to `If-None-Match`),
    /// `Cache-Control: public, max-age=3600`, and gzip when `Accept-Encoding` allows it.
    pub fn script(&self, headers: &HeaderMap) -> Response<Bytes> {
        self.inner.script.respond(headers)
    }

    /// `GET {prefix}/tp-vitals.js`: the opt-in web-vitals script, served as [`Self::script`].
    pub fn vitals_script(&self, headers: &HeaderMap) -> Response<Bytes> {
        self.inner.vitals_script.respond(headers)
    }

    /// `OPTIONS {prefix}/v1/events` (CORS preflight): `204` with the CORS headers for an
    /// allowed origin, else `403 origin_not_allowed`.
    pub fn preflight(&self, headers: &HeaderMap) -> Response<Bytes> {
        let host = host(headers);
        let origin = match request_origin(headers) {
            Ok(o) => o,
            Err(e) => return e.to_response(),
        };
        match origin {
            Some(o) if origin_allowed(&self.inner.config, o, host) => {
                let mut r = Response::new(Bytes::new());
                *r.status_mut() = StatusCode::NO_CONTENT;
                cors(r.headers_mut(), o);
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("POST, OPTIONS"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(
                        "content-type, content-encoding, x-tracepost-key, x-tracepost-token",
                    ),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
                r
            }
            Some(o) => IngestError::origin_not_allowed(o).to_response(),
            None => IngestError::new(
                StatusCode::BAD_REQUEST,
                "missing_origin",
                "a preflight request needs an Origin header",
            )
            .to_response(),
        }
    }

    /// `GET {prefix}/v1/token?key=pk_…`: `200 {"token": …, "expires_at": …}` for the
    /// request's origin (or the same host when it sends none). Whoever can call it can send
    /// events: call it only for the host's signed-in users (the axum adapter,
    /// `token_router` (feature `axum`), takes the host's guard). Errors: `401` for a missing or
    /// unknown key, `403` for an origin not allowed, `404 tokens_disabled` without a secret.
    pub fn token(&self, headers: &HeaderMap, query: Option<&str>) -> Response<Bytes> {
        let result = (|| {
            let origin = request_origin(headers)?;
            self.check_key(headers, query)?;
            if let Some(o) = origin {
                if !origin_allowed(&self.inner.config, o, host(headers)) {
                    return Err(IngestError::origin_not_allowed(o));
                }
            }
            let same_host = origin.is_none_or(|o| crate::origin::same_host(o, host(headers)));
            let minted = if same_host {
                self.inner.tokens.mint("")
            } else {
                origin.and_then(|o| self.inner.tokens.mint(o))
            };
            minted.ok_or_else(|| {
                IngestError::new(
                    StatusCode::NOT_FOUND,
                    "tokens_disabled",
                    "no token secret is configured",
                )
            })
        })();
        let mut response = match result {
            Ok(t) => {
                let mut r = Response::new(Bytes::from(serde_json::to_vec(&t).unwrap_or_default()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => e.to_response(),
        };
        self.add_cors(headers, &mut response);
        response
    }

    /// `POST {prefix}/v1/events`: checks, in order, the client's rate (`429`), the content
    /// type and encoding (`415`), the key (`401`), the origin (`403`), the token (`401`), the
    /// key's rate (`429`), the body size (`413`) and read deadline (`408`,
    /// `body_read_timeout`), the decompressed size (`413`) and the schema (`400`); then drops
    /// a duplicate `batch_id` (`200 {"accepted":0,"duplicate":true}`) or captures every event
    /// through the pipeline (`202 {"accepted": N}`: accepted into the in-memory pipeline
    /// queue; the sinks write them moments later).
    ///
    /// `peer` is the TCP peer address (`None` when the server does not provide it: every
    /// such request then shares one rate-limit bucket).
    pub async fn events<B>(
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
        let mut response = match self.events_inner(headers, query, peer, body).await {
            Ok(r) => r,
            Err(e) => e.to_response(),
        };
        self.add_cors(headers, &mut response);
        response
    }

    async fn events_inner<B>(
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
        let config = &inner.config;
        // Rate per address, key, origin, token, rate per key: the checks every browser route
        // shares (the replay route too); then the content type this route takes.
        let key = self.admit(headers, query, peer)?;
        let encoding = check_content(headers)?;
        let client = client_ip(config, peer, headers);
        let raw = read_limited_within(
            headers,
            body,
            config.max_body_bytes,
            config.body_read_timeout,
        )
        .await?;
        let decoded = decode(raw, encoding, config.max_decompressed_bytes)?;
        let batch = parse_batch(&decoded)?;
        // Refused whole (a retryable 503) rather than accepted and dropped by a full queue;
        // before the duplicate filter, so the retry is not taken for a duplicate.
        inner
            .handle
            .has_room_for(batch.events.len())
            .map_err(|full| IngestError::overloaded(&full))?;

        let dedup_key = (key, batch.batch_id.clone());
        {
            let mut seen = inner.seen.lock();
            let k = dedup_key.clone();
            if let Some(at) = seen.get(&k) {
                if at.elapsed() < config.dedup_ttl {
                    return Ok(json(
                        StatusCode::OK,
                        r#"{"accepted":0,"duplicate":true}"#.into(),
                    ));
                }
            }
            seen.put(k, Instant::now());
        }

        let ua_header = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ctx = Context {
            user_agent: (!ua_header.is_empty()).then(|| inner.user_agents.get(ua_header)),
            country: country(config, headers),
            derived_visitor: batch.visitor_id.is_none().then(|| {
                inner
                    .salt
                    .visitor_id(&config.project, client, ua_header, SystemTime::now())
            }),
            received_ms: now_ms(),
        };
        let has_errors = batch
            .events
            .iter()
            .any(|e| matches!(e, BrowserEvent::Error(_)));
        let events = match (&inner.source_maps, has_errors) {
            // Loading a map reads and parses a file: off the async workers.
            (Some(_), true) => {
                let this = self.inner.clone();
                tokio::task::spawn_blocking(move || {
                    to_events(&batch, &ctx, this.source_maps.as_ref())
                })
                .await
                .map_err(|_| {
                    IngestError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the batch could not be processed",
                    )
                })?
            }
            _ => to_events(&batch, &ctx, None),
        };
        let n = events.len();
        // All or nothing: refused whole (a retryable 503) if a queue filled since the check
        // above; the batch is then forgotten by the duplicate filter, so its retry is taken.
        if let Err(full) = inner.handle.capture_all(events) {
            inner.seen.lock().pop(&dedup_key);
            return Err(IngestError::overloaded(&full));
        }
        Ok(json(StatusCode::ACCEPTED, format!(r#"{{"accepted":{n}}}"#)))
    }

    fn check_client_rate(&self, client: Option<IpAddr>) -> Result<(), IngestError> {
        let inner = &*self.inner;
        let key = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), limit_key);
        if inner.per_client.len() >= MAX_TRACKED_CLIENTS {
            // Under a flood of addresses: forget idle ones now, at most once a second.
            let now = now_ms() as u64 / 1000;
            let last = inner.last_inline_retain.swap(now, Ordering::Relaxed);
            if last != now {
                inner.per_client.retain_recent();
            }
        }
        if let Err(not_until) = inner.per_client.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(IngestError::rate_limited(
                "client address",
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        Ok(())
    }

    /// The public key of the request, if configured. Errors: `401 missing_key`,
    /// `401 invalid_key`.
    fn check_key(&self, headers: &HeaderMap, query: Option<&str>) -> Result<String, IngestError> {
        let key = param(headers, query, "x-tracepost-key", "key").ok_or_else(|| {
            IngestError::unauthorized(
                "missing_key",
                "a public key is required (data-key, ?key= or x-tracepost-key)",
            )
        })?;
        if !self.inner.config.keys.contains(&key) {
            return Err(IngestError::unauthorized(
                "invalid_key",
                "the public key is not known to this server",
            ));
        }
        Ok(key)
    }

    fn add_cors(&self, headers: &HeaderMap, response: &mut Response<Bytes>) {
        if let Ok(Some(o)) = request_origin(headers) {
            if origin_allowed(&self.inner.config, o, host(headers)) {
                cors(response.headers_mut(), o);
            }
        }
    }
}

/// What the replay route (`crate::replay`) shares with the events route: the same admission
/// checks, CORS answer, pipeline handle and browser context.
impl Ingest {
    /// The admission checks of [`Ingest::events`] before the body: the client's rate (`429`),
    /// the key (`401`), the origin (`403`), the token (`401`) and the key's rate (`429`).
    /// Returns the public key.
    pub(crate) fn admit(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<String, IngestError> {
        let inner = &*self.inner;
        let config = &inner.config;
        if peer.is_none() && !inner.warned_no_peer.swap(true, Ordering::Relaxed) {
            tracing::warn!("tracepost ingest: no peer address (serve with into_make_service_with_connect_info::<SocketAddr>()); all clients share one rate limit");
        }
        self.check_client_rate(client_ip(config, peer, headers))?;
        let key = self.check_key(headers, query)?;
        let origin = request_origin(headers)?;
        if let Some(o) = origin {
            if !origin_allowed(config, o, host(headers)) {
                return Err(IngestError::origin_not_allowed(o));
            }
        }
        match param(headers, query, "x-tracepost-token", "token") {
            Some(token) => {
                if !inner.tokens.is_enabled() {
                    return Err(IngestError::unauthorized(
                        "invalid_token",
                        "this server has no token secret; send no token",
                    ));
                }
                inner
                    .tokens
                    .verify_at(&token, origin, host(headers), SystemTime::now())?;
            }
            None if config.require_token => {
                return Err(IngestError::unauthorized(
                    "missing_token",
                    "an upload token is required (data-token, ?token= or x-tracepost-token)",
                ))
            }
            None => {}
        }
        if let Err(not_until) = inner.per_key.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(IngestError::rate_limited(
                "key",
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        Ok(key)
    }

    /// Adds the CORS headers for an allowed origin.
    pub(crate) fn cors_for(&self, headers: &HeaderMap, response: &mut Response<Bytes>) {
        self.add_cors(headers, response);
    }

    /// The pipeline events are captured into.
    pub(crate) fn pipeline(&self) -> &TracepostHandle {
        &self.inner.handle
    }

    /// The attributes every browser event gets from the request: `visitor.id` (the client's,
    /// else derived: `visitor.cookieless = true`), the user agent's, `geo.country.iso_code`.
    pub(crate) fn browser_attributes(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        visitor: Option<&str>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let inner = &*self.inner;
        let config = &inner.config;
        let mut map = serde_json::Map::new();
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match visitor {
            Some(v) => {
                map.insert("visitor.id".into(), v.into());
            }
            None => {
                let client = client_ip(config, peer, headers);
                let v = inner
                    .salt
                    .visitor_id(&config.project, client, ua, SystemTime::now());
                map.insert("visitor.id".into(), v.into());
                map.insert("visitor.cookieless".into(), true.into());
            }
        }
        if !ua.is_empty() {
            inner.user_agents.get(ua).write_attributes(&mut map);
        }
        if let Some(c) = country(config, headers) {
            map.insert("geo.country.iso_code".into(), c.into());
        }
        map
    }
}

/// The `Origin` header: absent, or exactly one readable value. Errors: `403
/// origin_not_allowed` for several headers or a value that is not ASCII.
fn request_origin(headers: &HeaderMap) -> Result<Option<&str>, IngestError> {
    let mut all = headers.get_all(header::ORIGIN).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(IngestError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "the request has several Origin headers",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| IngestError::origin_not_allowed("<not ASCII>"))
}

fn cors(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// A request parameter from its header, else from the query string.
fn param(headers: &HeaderMap, query: Option<&str>, header: &str, name: &str) -> Option<String> {
    if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
        return Some(v.to_owned());
    }
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
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

async fn retain_task(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(RETAIN_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.per_client.retain_recent();
        inner.per_client.shrink_to_fit();
        inner.per_key.retain_recent();
        let ttl = inner.config.dedup_ttl;
        let mut seen = inner.seen.lock();
        while seen.peek_lru().is_some_and(|(_, at)| at.elapsed() >= ttl) {
            seen.pop_lru();
        }
    }
}
