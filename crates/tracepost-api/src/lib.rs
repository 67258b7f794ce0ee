//! tracepost's query API over any [`Store`] (SQLite, PostgreSQL, …): events, one event, the
//! activity histogram, issues and their status as JSON, a live tail as Server-Sent Events,
//! and an OpenAPI 3.1 document of all of it, served under [`BASE`] (`/tracepost/api`).
//!
//! | route | returns |
//! | --- | --- |
//! | `GET /events` | `{"events": [...], "next_cursor": "..."}`, newest first |
//! | `GET /events/{id}` | one event, or 404 |
//! | `GET /histogram?bucket_secs=60` | `[{"start": "...", "count": n}, ...]`, oldest first |
//! | `GET /issues?since=...&limit=20` | top issues |
//! | `GET /issues/{fingerprint}` | one issue, or 404 |
//! | `POST /issues/{fingerprint}/status` | `{"status": "resolved"}` sets it; the issue |
//! | `GET /analytics?since=...&until=...&bucket_secs=3600&limit=20` | page views, visitors, series, top pages, referrers |
//! | `GET /analytics/funnel?steps=/,/pricing,signup` | visitors reaching each step in order |
//! | `GET /tail` | Server-Sent Events: `event` (an event's JSON), `missed` (`{"missed": N}`) |
//! | `GET /openapi.json` | the OpenAPI document (no token needed) |
//!
//! Every route but the document needs `Authorization: Bearer <admin token>` (compared in
//! constant time); [`router`] refuses to build without a token of at least
//! [`MIN_TOKEN_LEN`] characters. Every error is `{"error": "...", "field": "..."}` with a
//! precise status: 400 for an unknown query parameter or a value that can't be read (the
//! parameter named in `field`), 401 without the token, 404 for no such event or issue, 503
//! when the store or the live tail can't answer now, 405 for a method a route doesn't serve,
//! 404 for any other path under [`BASE`].
//!
//! ```no_run
//! # fn run(store: std::sync::Arc<dyn tracepost_core::store::Store>) -> Result<(), tracepost_api::ConfigError> {
//! let api = tracepost_api::router(store, tracepost_api::ApiConfig::new("a-long-random-admin-token"))?;
//! let app: axum::Router = axum::Router::new().merge(api);
//! # Ok(()) }
//! ```

mod analytics;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tracepost_core::store::{
    Cursor, EventFilter, HistogramBucket, Issue, IssueStatus, Store, StoreError,
};
use tracepost_core::tail::{LiveTail, TailItem};
use tracepost_core::{Event, Kind, Level, Timestamp};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub mod openapi;

/// Where the routes live: `/tracepost/api`.
pub const BASE: &str = "/tracepost/api";

/// The shortest admin token [`router`] accepts (characters).
pub const MIN_TOKEN_LEN: usize = 16;

/// Default page size of `GET /events`.
pub const DEFAULT_EVENTS_LIMIT: usize = 100;
/// Largest page of `GET /events` (the stores' own clamp).
pub const MAX_EVENTS_LIMIT: usize = 10_000;
/// Default number of issues of `GET /issues`.
pub const DEFAULT_ISSUES_LIMIT: usize = 20;
/// Most issues `GET /issues` returns at once.
pub const MAX_ISSUES_LIMIT: usize = 1_000;
/// Widest histogram bucket: 100 years of 365 days, in seconds.
pub const MAX_BUCKET_SECS: f64 = 3_153_600_000.0;
/// Narrowest histogram bucket, in seconds (one millisecond).
pub const MIN_BUCKET_SECS: f64 = 0.001;

/// The API's settings: the admin token, and optionally the live tail to stream.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    token: String,
    tail: Option<LiveTail>,
}

impl ApiConfig {
    /// Settings with this admin token (at least [`MIN_TOKEN_LEN`] characters; keep it out of
    /// the source, e.g. from an environment variable).
    pub fn new(admin_token: impl Into<String>) -> Self {
        ApiConfig {
            token: admin_token.into(),
            tail: None,
        }
    }

    /// Streams this live tail on `GET /tail` (its [`LiveTail::sink`] must be one of the
    /// pipeline's sinks; the console may share the same hub). Without one, `/tail` answers
    /// 503.
    pub fn live_tail(mut self, tail: LiveTail) -> Self {
        self.tail = Some(tail);
        self
    }
}

/// Why [`router`] refused to build.
#[derive(Debug, thiserror::Error)]
#[error("tracepost-api: {0}")]
pub struct ConfigError(String);

struct ApiState {
    store: Arc<dyn Store>,
    token: String,
    tail: Option<LiveTail>,
}

type St = State<Arc<ApiState>>;

/// The routes under [`BASE`], reading from `store`: merge them into the app's router
/// (`app.merge(router(store, config)?)`). Refuses an admin token shorter than
/// [`MIN_TOKEN_LEN`] (the API would be open or guessable).
///
/// Responses carry [`tracepost_core::capture::OwnRoute`], so the tower layer doesn't record
/// them as the app's requests.
pub fn router<S: Clone + Send + Sync + 'static>(
    store: Arc<dyn Store>,
    config: ApiConfig,
) -> Result<Router<S>, ConfigError> {
    if config.token.trim().chars().count() < MIN_TOKEN_LEN {
        return Err(ConfigError(format!(
            "the admin token must have at least {MIN_TOKEN_LEN} characters; the query API \
             exposes everything stored and won't start open"
        )));
    }
    let state = Arc::new(ApiState {
        store,
        token: config.token,
        tail: config.tail,
    });
    let p = |s: &str| format!("{BASE}{s}");
    let guarded = Router::new()
        .route(&p("/events"), get(list_events))
        .route(&p("/events/{id}"), get(get_event))
        .route(&p("/histogram"), get(histogram))
        .route(&p("/issues"), get(list_issues))
        .route(&p("/issues/{fingerprint}"), get(get_issue))
        .route(&p("/issues/{fingerprint}/status"), post(set_status))
        .route(&p("/analytics"), get(analytics::analytics_summary))
        .route(&p("/analytics/funnel"), get(analytics::funnel))
        .route(&p("/tail"), get(tail))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Ok(Router::new()
        .route(&p("/openapi.json"), get(openapi_json))
        // Anything else under BASE is a JSON 404 too (not the app's fallback).
        .route(&p("/{*rest}"), axum::routing::any(no_route))
        .merge(guarded)
        .method_not_allowed_fallback(method_not_allowed)
        // tracepost's own routes: the tower layer doesn't record them (a route layer: the
        // fallback stays the app's).
        .route_layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.extensions_mut().insert(tracepost_core::capture::OwnRoute);
                r
            },
        ))
        .with_state(state))
}

// ---------------------------------------------------------------------------------------
// Errors

/// Every error's body: what failed and, when one parameter or field is to blame, its name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What failed, for a person.
    pub error: String,
    /// The query parameter, path segment, header or body field that failed, if one did.
    pub field: Option<String>,
}

/// An error response: a status and an [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, field: Option<&str>, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                field: field.map(str::to_owned),
            },
        }
    }

    fn bad(field: &str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, None, e.to_string())
    }
}

async fn require_token(State(state): St, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(t) if bool::from(t.as_bytes().ct_eq(state.token.as_bytes())) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("authorization"),
            "wrong admin token",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("authorization"),
            "send the admin token: Authorization: Bearer <token>",
        )
        .into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Query parameters

/// The event filter's query parameters, shared by `/events`, `/histogram` and `/tail`.
/// Empty values don't filter.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by hand (see `Params`); the struct documents them
pub struct FilterQuery {
    /// Kinds, comma-separated: `log`, `error`, `request`, `analytics`, `replay`,
    /// `metric_window`, `alert`, `metric`, `span`.
    #[param(example = "error,request")]
    kind: Option<String>,
    /// Levels, comma-separated: `trace`, `debug`, `info`, `warn`, `error`.
    #[param(example = "warn,error")]
    level: Option<String>,
    /// This level and every more severe one (replaces `level`).
    #[param(inline)]
    min_level: Option<LevelName>,
    /// The service.
    service: Option<String>,
    /// At or after this time (RFC 3339, any UTC offset).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Before this time (RFC 3339, any UTC offset).
    #[param(format = DateTime)]
    until: Option<String>,
    /// The message contains this text, ignoring case.
    q: Option<String>,
    /// A JSON object the event's attributes must hold (same keys, equal values).
    #[param(example = r#"{"tenant":"acme"}"#)]
    attrs: Option<String>,
    /// The error fingerprint.
    fingerprint: Option<String>,
    /// The trace id.
    trace_id: Option<String>,
    /// The user id (combine with a time range: not indexed everywhere).
    user_id: Option<String>,
    /// The request id.
    request_id: Option<String>,
    /// The session id.
    session_id: Option<String>,
}

/// `GET /events`'s paging parameters.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// Events per page (default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /histogram`'s bucket width.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BucketQuery {
    /// Bucket width in seconds (default 60, at least 0.001, at most 3 153 600 000 = 100
    /// years). Buckets align to multiples of the width since 2000-01-01 UTC.
    #[param(minimum = 0.001, maximum = 3153600000.0)]
    bucket_secs: Option<f64>,
}

/// `GET /issues`'s parameters.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IssuesQuery {
    /// Count events since this time (RFC 3339, any UTC offset) instead of all time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Issues to return (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A level's name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LevelName {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
}

const FILTER_PARAMS: [&str; 13] = [
    "kind",
    "level",
    "min_level",
    "service",
    "since",
    "until",
    "q",
    "attrs",
    "fingerprint",
    "trace_id",
    "user_id",
    "request_id",
    "session_id",
];

/// The query string read against the parameters a route takes: an unknown or repeated
/// parameter is a 400 naming it.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(raw: Option<String>, allowed: &[&[&str]]) -> Result<Params, ApiError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
            if !allowed.iter().any(|set| set.contains(&&*k)) {
                return Err(ApiError::bad(&k, format!("unknown query parameter {k:?}")));
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(ApiError::bad(&k, format!("{k:?} is given more than once")));
            }
            if v.contains('\0') {
                return Err(ApiError::bad(&k, "must not contain NUL characters"));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(out))
    }

    /// The parameter's trimmed value, `None` when absent or empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A typed parameter's exact value (not trimmed): `None` when absent; an empty value is
    /// a 400 (the document types it, and an empty string is none of those types).
    fn typed(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) if v.is_empty() => Err(ApiError::bad(name, "is empty")),
            Some((_, v)) => Ok(Some(v)),
        }
    }

    fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.typed(name)?.map(|s| parse_time(name, s)).transpose()
    }

    fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
        ok: impl Fn(&T) -> bool,
        rule: &str,
    ) -> Result<T, ApiError> {
        match self.typed(name)? {
            None => Ok(default),
            Some(s) => match s.parse::<T>() {
                Ok(n) if ok(&n) => Ok(n),
                _ => Err(ApiError::bad(name, format!("{s:?} is not {rule}"))),
            },
        }
    }

    fn filter(&self) -> Result<EventFilter, ApiError> {
        let mut f = EventFilter::new();
        for k in self.list("kind") {
            let kind = serde_json::from_value::<Kind>(Value::String(k.to_owned()))
                .map_err(|_| ApiError::bad("kind", format!("unknown kind {k:?}")))?;
            f = f.kind(kind);
        }
        for l in self.list("level") {
            f = f.level(parse_level("level", l)?);
        }
        if let Some(l) = self.typed("min_level")? {
            f = f.min_level(parse_level("min_level", l)?);
        }
        f.service = self.get("service").map(str::to_owned);
        f.since = self.time("since")?;
        f.until = self.time("until")?;
        f.message_contains = self.get("q").map(str::to_owned);
        if let Some(a) = self.get("attrs") {
            let attrs: Map<String, Value> = serde_json::from_str(a).map_err(|e| {
                ApiError::bad("attrs", format!("not a JSON object of attributes: {e}"))
            })?;
            if attrs.len() > tracepost_core::store::MAX_ATTRIBUTE_FILTERS {
                return Err(ApiError::bad(
                    "attrs",
                    format!(
                        "at most {} attributes, not {}",
                        tracepost_core::store::MAX_ATTRIBUTE_FILTERS,
                        attrs.len()
                    ),
                ));
            }
            if has_nul(&Value::Object(attrs.clone())) {
                return Err(ApiError::bad("attrs", "must not contain NUL characters"));
            }
            f.attributes = attrs;
        }
        f.fingerprint = self.get("fingerprint").map(str::to_owned);
        f.trace_id = self.get("trace_id").map(str::to_owned);
        f.user_id = self.get("user_id").map(str::to_owned);
        f.request_id = self.get("request_id").map(str::to_owned);
        f.session_id = self.get("session_id").map(str::to_owned);
        Ok(f)
    }

    fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        self.get(name)
            .into_iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn parse_level(field: &str, s: &str) -> Result<Level, ApiError> {
    serde_json::from_value::<Level>(Value::String(s.to_owned())).map_err(|_| {
        ApiError::bad(
            field,
            format!("unknown level {s:?}: use trace, debug, info, warn or error"),
        )
    })
}

/// RFC 3339 with any offset, at or after 1970 and before 2262 (nanoseconds in 64 bits).
fn parse_time(field: &str, s: &str) -> Result<Timestamp, ApiError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::bad(field, format!("{s:?} is not an RFC 3339 time: {e}")))?;
    u64::try_from(t.unix_timestamp_nanos())
        .map(Timestamp::from_unix_nanos)
        .map_err(|_| {
            ApiError::bad(
                field,
                format!("{s:?} is out of range (1970-01-01 to 2262-04-11 UTC)"),
            )
        })
}

// ---------------------------------------------------------------------------------------
// Response bodies

/// One page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageBody {
    /// The events.
    #[schema(value_type = Vec<openapi::EventSchema>)]
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One bar of the histogram.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketBody {
    /// The bucket's start (RFC 3339, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Matching events in `[start, start + bucket_secs)`.
    pub count: u64,
}

impl From<&HistogramBucket> for BucketBody {
    fn from(b: &HistogramBucket) -> Self {
        BucketBody {
            start: b.start,
            count: b.count,
        }
    }
}

/// An issue's triage state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    /// Open (a resolved issue that happens again is unresolved again).
    Unresolved,
    /// Marked fixed.
    Resolved,
    /// Muted.
    Ignored,
}

impl From<IssueStatus> for StatusName {
    fn from(s: IssueStatus) -> Self {
        match s {
            IssueStatus::Resolved => StatusName::Resolved,
            IssueStatus::Ignored => StatusName::Ignored,
            _ => StatusName::Unresolved,
        }
    }
}

impl From<StatusName> for IssueStatus {
    fn from(s: StatusName) -> Self {
        match s {
            StatusName::Unresolved => IssueStatus::Unresolved,
            StatusName::Resolved => IssueStatus::Resolved,
            StatusName::Ignored => IssueStatus::Ignored,
        }
    }
}

/// Errors grouped by fingerprint.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueBody {
    /// The grouping key.
    pub fingerprint: String,
    /// The service of the latest event.
    pub service: String,
    /// The error type of the latest event.
    pub error_type: Option<String>,
    /// The message of the latest event.
    pub title: String,
    /// The first event's time (RFC 3339, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: Timestamp,
    /// The latest event's time (RFC 3339, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Timestamp,
    /// Events with this fingerprint, all time (as kept by the store).
    pub count: u64,
    /// Events with this fingerprint since `since` (equals `count` without it).
    pub recent: u64,
    /// The latest event's id.
    pub last_event_id: Uuid,
    /// Triage state.
    pub status: StatusName,
    /// Distinct user ids among the issue's events.
    pub users: u64,
    /// When a resolved issue happened again (RFC 3339, UTC); `null` when it never did.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub regressed_at: Option<Timestamp>,
}

impl From<&Issue> for IssueBody {
    fn from(i: &Issue) -> Self {
        IssueBody {
            fingerprint: i.fingerprint.clone(),
            service: i.service.clone(),
            error_type: i.error_type.clone(),
            title: i.title.clone(),
            first_seen: i.first_seen,
            last_seen: i.last_seen,
            count: i.count,
            recent: i.recent,
            last_event_id: i.last_event_id,
            status: i.status.into(),
            users: i.users,
            regressed_at: i.regressed_at,
        }
    }
}

/// `POST /issues/{fingerprint}/status`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// The new state.
    pub status: StatusName,
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Events matching the filter, newest first, one page at a time.
#[utoipa::path(get, path = "/tracepost/api/events", tag = "events",
    params(FilterQuery, PageQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPageBody),
        (status = 400, description = "An unknown parameter or a value that can't be read", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn list_events(State(s): St, RawQuery(q): RawQuery) -> Result<Json<EventPageBody>, ApiError> {
    let p = Params::read(q, &[&FILTER_PARAMS, &["limit", "cursor"]])?;
    let f = p.filter()?;
    let limit = p.number(
        "limit",
        DEFAULT_EVENTS_LIMIT,
        |n| (1..=MAX_EVENTS_LIMIT).contains(n),
        "a whole number from 1 to 10000",
    )?;
    let cursor = p
        .typed("cursor")?
        .map(|c| {
            c.parse::<Cursor>()
                .map_err(|_| ApiError::bad("cursor", format!("{c:?} is not a cursor of this API")))
        })
        .transpose()?;
    let page = s.store.events(&f, limit, cursor).await?;
    Ok(Json(EventPageBody {
        events: page.events,
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}

/// One event by id.
#[utoipa::path(get, path = "/tracepost/api/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event's id (a UUID)")),
    responses(
        (status = 200, description = "The event", body = openapi::EventSchema),
        (status = 400, description = "Not a UUID, or a query parameter given", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn get_event(
    State(s): St,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Event>, ApiError> {
    Params::read(q, &[])?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad("id", format!("{id:?} is not an event id (a UUID)")))?;
    match s.store.event(id).await? {
        Some(e) => Ok(Json(e)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("id"),
            "no such event",
        )),
    }
}

/// Counts of matching events per time bucket, oldest first (with `since` and `until`,
/// empty buckets included as zeros).
#[utoipa::path(get, path = "/tracepost/api/histogram", tag = "events",
    params(FilterQuery, BucketQuery),
    responses(
        (status = 200, description = "The buckets", body = Vec<BucketBody>),
        (status = 400, description = "An unknown parameter, a value that can't be read, or more than 100 000 buckets", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn histogram(State(s): St, RawQuery(q): RawQuery) -> Result<Json<Vec<BucketBody>>, ApiError> {
    let p = Params::read(q, &[&FILTER_PARAMS, &["bucket_secs"]])?;
    let f = p.filter()?;
    let secs = p.number(
        "bucket_secs",
        60.0,
        |s: &f64| s.is_finite() && (MIN_BUCKET_SECS..=MAX_BUCKET_SECS).contains(s),
        "a number of seconds from 0.001 to 3153600000",
    )?;
    let buckets = s
        .store
        .histogram(&f, Duration::from_secs_f64(secs))
        .await
        .map_err(|e| match e {
            StoreError::InvalidQuery(m) => ApiError::bad("bucket_secs", m),
            e => e.into(),
        })?;
    Ok(Json(buckets.iter().map(BucketBody::from).collect()))
}

/// The issues with the most events (since `since`, or all time).
#[utoipa::path(get, path = "/tracepost/api/issues", tag = "issues",
    params(IssuesQuery),
    responses(
        (status = 200, description = "Top issues, most events first", body = Vec<IssueBody>),
        (status = 400, description = "An unknown parameter or a value that can't be read", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn list_issues(
    State(s): St,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<IssueBody>>, ApiError> {
    let p = Params::read(q, &[&["since", "limit"]])?;
    let since = p.time("since")?;
    let limit = p.number(
        "limit",
        DEFAULT_ISSUES_LIMIT,
        |n| (1..=MAX_ISSUES_LIMIT).contains(n),
        "a whole number from 1 to 1000",
    )?;
    let issues = s.store.top_issues(since, limit).await?;
    Ok(Json(issues.iter().map(IssueBody::from).collect()))
}

/// One issue by fingerprint.
#[utoipa::path(get, path = "/tracepost/api/issues/{fingerprint}", tag = "issues",
    params(("fingerprint" = String, Path, description = "The issue's fingerprint")),
    responses(
        (status = 200, description = "The issue", body = IssueBody),
        (status = 400, description = "A query parameter given", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn get_issue(
    State(s): St,
    Path(fingerprint): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<IssueBody>, ApiError> {
    Params::read(q, &[])?;
    let fingerprint = checked_fingerprint(fingerprint)?;
    match s.store.issue(&fingerprint).await? {
        Some(i) => Ok(Json(IssueBody::from(&i))),
        None => Err(no_issue()),
    }
}

fn checked_fingerprint(f: String) -> Result<String, ApiError> {
    if f.contains('\0') {
        return Err(ApiError::bad(
            "fingerprint",
            "must not contain NUL characters",
        ));
    }
    Ok(f)
}

fn no_issue() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, Some("fingerprint"), "no such issue")
}

/// Sets an issue's status (and clears its regression mark).
#[utoipa::path(post, path = "/tracepost/api/issues/{fingerprint}/status", tag = "issues",
    params(("fingerprint" = String, Path, description = "The issue's fingerprint")),
    request_body(content = StatusRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The issue with its new status", body = IssueBody),
        (status = 400, description = "A body that isn't `{\"status\": ...}`, or a query parameter given", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such issue", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn set_status(
    State(s): St,
    Path(fingerprint): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Json<IssueBody>, ApiError> {
    Params::read(q, &[])?;
    let fingerprint = checked_fingerprint(fingerprint)?;
    let req: StatusRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "status",
            format!(
                "the body must be {{\"status\": \"unresolved\" | \"resolved\" | \"ignored\"}}: {e}"
            ),
        )
    })?;
    if !s
        .store
        .set_issue_status(&fingerprint, req.status.into())
        .await?
    {
        return Err(no_issue());
    }
    match s.store.issue(&fingerprint).await? {
        Some(i) => Ok(Json(IssueBody::from(&i))),
        None => Err(no_issue()),
    }
}

/// Live events matching the filter as Server-Sent Events: `event: event` with each event's
/// JSON, `event: missed` with `{"missed": N}` when this client fell behind (it continues
/// with the oldest event still kept). A slow client never slows the pipeline or other
/// clients.
#[utoipa::path(get, path = "/tracepost/api/tail", tag = "events",
    params(FilterQuery),
    responses(
        (status = 200, description = "An endless stream of Server-Sent Events", content_type = "text/event-stream", body = String),
        (status = 400, description = "An unknown parameter or a value that can't be read", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 503, description = "The live tail is not configured, or too many clients are connected", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
async fn tail(State(s): St, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::read(q, &[&FILTER_PARAMS])?;
    let f = p.filter()?;
    let Some(tail) = &s.tail else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("live_tail"),
            "the live tail is not configured",
        ));
    };
    let Some(sub) = tail.subscribe() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("live_tail"),
            "too many live tail clients; try again later",
        ));
    };
    let stream = futures_util::stream::unfold((sub, f), |(mut sub, f)| async move {
        loop {
            match sub.next().await? {
                TailItem::Event(e) => {
                    if f.matches(&e) {
                        let data = serde_json::to_string(&*e).unwrap_or_default();
                        let ev = SseEvent::default().event("event").data(data);
                        return Some((Ok::<_, Infallible>(ev), (sub, f)));
                    }
                }
                TailItem::Missed(n) => {
                    let ev = SseEvent::default()
                        .event("missed")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(ev), (sub, f)));
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        None,
        format!("no route {}; see {BASE}/openapi.json", uri.path()),
    )
}

/// A route asked with a method it doesn't serve: 405 with the JSON error body (axum adds
/// `Allow`).
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!("method {method} is not allowed here"),
    )
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_default(),
    )
        .into_response()
}

/// The OpenAPI document of the routes, as served on `GET /tracepost/api/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::ApiDoc::openapi()
}
