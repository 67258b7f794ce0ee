//! The query API as JSON over HTTP: an axum [`Router`] to nest into your app (feature `http`).
//!
//! Superseded by the `tracepost-api` crate (feature `api` of `tracepost`), which serves the
//! same shapes over any store (SQLite or Postgres) with an admin token, precise JSON errors,
//! issue status, a live tail and an OpenAPI document; this router stays for existing users.
//!
//! | route | returns |
//! | --- | --- |
//! | `GET /events` | `{"events": [...], "next_cursor": "..."}`, newest first |
//! | `GET /events/{id}` | one event, or 404 |
//! | `GET /histogram?bucket_secs=60` | `[{"start": "...", "count": n}, ...]` |
//! | `GET /issues?since=...&limit=20` | top issues |
//!
//! `/events` and `/histogram` take the filters as query parameters: `kind` and `level`
//! (comma-separated lists), `min_level`, `service`, `since` and `until` (RFC 3339), `q`
//! (message contains), `attrs` (a JSON object the attributes must contain), `fingerprint`,
//! `trace_id`, `user_id`, `request_id`; `/events` also `limit` (default 100) and `cursor`.
//!
//! ```no_run
//! # async fn run(store: tracepost_postgres::PgStore) {
//! let app: axum::Router = axum::Router::new().nest("/tracepost", tracepost_postgres::http::router(store));
//! # }
//! ```
//! Put your own authentication in front of it: it exposes everything stored.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tracepost_core::{Kind, Level, Timestamp};
use uuid::Uuid;

use crate::{Cursor, EventFilter, Issue, PgError, PgStore};

/// The routes, with the store as state.
pub fn router(store: PgStore) -> Router {
    Router::new()
        .route("/events", get(list_events))
        .route("/events/{id}", get(get_event))
        .route("/histogram", get(histogram))
        .route("/issues", get(issues))
        // tracepost's own routes (`OwnRoute`): the tower layer doesn't record them as app
        // requests (a 503 from a stopped database is not an app failure).
        .route_layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.extensions_mut().insert(tracepost_core::capture::OwnRoute);
                r
            },
        ))
        .with_state(store)
}

#[derive(Debug, Default, Deserialize)]
struct FilterParams {
    kind: Option<String>,
    level: Option<String>,
    min_level: Option<String>,
    service: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    attrs: Option<String>,
    fingerprint: Option<String>,
    trace_id: Option<String>,
    user_id: Option<String>,
    request_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    bucket_secs: Option<f64>,
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<PgError> for ApiError {
    fn from(e: PgError) -> Self {
        let status = match &e {
            PgError::Config(_) => StatusCode::BAD_REQUEST,
            e if e.is_temporary() || e.is_refused() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<tracepost_core::store::StoreError> for ApiError {
    fn from(e: tracepost_core::store::StoreError) -> Self {
        use tracepost_core::store::StoreError;
        let status = match &e {
            StoreError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(s.trim().to_owned()))
        .map_err(|_| bad(format!("invalid {what}: {s:?}")))
}

fn list<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &Option<String>,
) -> Result<Vec<T>, ApiError> {
    s.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse(what, s))
        .collect()
}

fn filter(p: &FilterParams) -> Result<EventFilter, ApiError> {
    let mut f = EventFilter::new();
    f.kinds = list::<Kind>("kind", &p.kind)?;
    f.levels = list::<Level>("level", &p.level)?;
    if let Some(l) = &p.min_level {
        f = f.min_level(parse::<Level>("min_level", l)?);
    }
    f.service.clone_from(&p.service);
    f.since = p
        .since
        .as_deref()
        .map(|s| parse::<Timestamp>("since", s))
        .transpose()?;
    f.until = p
        .until
        .as_deref()
        .map(|s| parse::<Timestamp>("until", s))
        .transpose()?;
    f.message_contains.clone_from(&p.q);
    if let Some(a) = &p.attrs {
        f.attributes = serde_json::from_str(a).map_err(|e| bad(format!("attrs: {e}")))?;
    }
    f.fingerprint.clone_from(&p.fingerprint);
    f.trace_id.clone_from(&p.trace_id);
    f.user_id.clone_from(&p.user_id);
    f.request_id.clone_from(&p.request_id);
    Ok(f)
}

async fn list_events(
    State(store): State<PgStore>,
    Query(p): Query<FilterParams>,
) -> Result<Json<Value>, ApiError> {
    let f = filter(&p)?;
    let cursor = p.cursor.as_deref().map(str::parse::<Cursor>).transpose()?;
    let page = store.events(&f, p.limit.unwrap_or(100), cursor).await?;
    Ok(Json(json!({
        "events": page.events,
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

async fn get_event(
    State(store): State<PgStore>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| bad("invalid event id"))?;
    match store.event(id).await? {
        Some(e) => Ok(Json(json!(e))),
        None => Err(ApiError(StatusCode::NOT_FOUND, "no such event".into())),
    }
}

async fn histogram(
    State(store): State<PgStore>,
    Query(p): Query<FilterParams>,
) -> Result<Json<Value>, ApiError> {
    let f = filter(&p)?;
    let secs = p.bucket_secs.unwrap_or(60.0);
    if !(secs.is_finite() && secs >= 0.001) {
        return Err(bad("bucket_secs must be at least 0.001"));
    }
    let buckets = store
        .histogram(&f, std::time::Duration::from_secs_f64(secs))
        .await?;
    Ok(Json(json!(buckets
        .iter()
        .map(|b| json!({ "start": b.start, "count": b.count }))
        .collect::<Vec<_>>())))
}

fn issue_json(i: &Issue) -> Value {
    json!({
        "fingerprint": i.fingerprint,
        "service": i.service,
        "error_type": i.error_type,
        "title": i.title,
        "first_seen": i.first_seen,
        "last_seen": i.last_seen,
        "count": i.count,
        "recent": i.recent,
        "last_event_id": i.last_event_id,
        "status": i.status.as_str(),
    })
}

async fn issues(
    State(store): State<PgStore>,
    Query(p): Query<FilterParams>,
) -> Result<Json<Value>, ApiError> {
    let since = p
        .since
        .as_deref()
        .map(|s| parse::<Timestamp>("since", s))
        .transpose()?;
    let issues = store.top_issues(since, p.limit.unwrap_or(20)).await?;
    Ok(Json(json!(issues
        .iter()
        .map(issue_json)
        .collect::<Vec<_>>())))
}
