//! Session replay in the console: the Sessions list, the viewer page (rrweb-player), the
//! segment and session routes it loads from, and the side panel of the session's browser
//! errors and backend requests.
//!
//! Routes (all behind the console's guard; the JSON ones answer 401 JSON without it):
//!
//! * `GET BASE/sessions?user=&url=&since=&until=&fingerprint=`: recorded sessions;
//! * `GET BASE/replays/{session_id}?t={offset_ms}` (or `?at={unix_ms}`): the viewer;
//! * `GET BASE/v1/replay/{session_id}`: `{"session": {index row}, "segments": [0, 1, …],
//!   "gaps": [segment numbers missing between the stored ones], "timeline": [{offset_ms,
//!   kind, level, label, event_id}]}`;
//! * `GET BASE/v1/replay/{session_id}/{segment}`: the segment as stored (a gzipped JSON array
//!   of rrweb events) with `Content-Encoding: gzip` and `Content-Type: application/json`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use maud::html;
use serde::Deserialize;
use serde_json::json;
use tracepost_core::object_store::{Day, ObjectStore, ReplayStore, SegmentKey};
use tracepost_core::replay_index::{format_offset, ts_to_ms, ReplayFilter, ReplaySession};
use tracepost_core::store::EventFilter;
use tracepost_core::{Event, Kind, SinkError, Timestamp};

use crate::auth::Session;
use crate::filter;
use crate::html::{self as h, page};
use crate::pages::{fmt_time, PageError, PageResult};
use crate::{ConsoleState, BASE};

type St = State<Arc<ConsoleState>>;

/// The default rrweb-player script: the UMD bundle of `rrweb-player` 2.1.6 on jsDelivr
/// (2.0.0–2.1.0 are broken: rrweb issue #1872). Override with
/// [`ConsoleBuilder::replay_player`](crate::ConsoleBuilder::replay_player) to serve it yourself.
pub const DEFAULT_PLAYER_JS: &str =
    "https://cdn.jsdelivr.net/npm/rrweb-player@2.1.6/umd/rrweb-player.min.js";
/// The default rrweb-player stylesheet (same release).
pub const DEFAULT_PLAYER_CSS: &str =
    "https://cdn.jsdelivr.net/npm/rrweb-player@2.1.6/dist/style.css";

/// Timeline entries (errors and requests) shown beside one replay at most.
pub const MAX_TIMELINE: usize = 500;

/// Sessions per page of the Sessions list.
const SESSIONS_PAGE: usize = 100;

/// Where the viewer loads rrweb-player from.
#[derive(Debug, Clone)]
pub(crate) struct Player {
    pub(crate) js: String,
    pub(crate) css: String,
}

impl Default for Player {
    fn default() -> Self {
        Player {
            js: DEFAULT_PLAYER_JS.into(),
            css: DEFAULT_PLAYER_CSS.into(),
        }
    }
}

impl Player {
    /// The origins (`https://cdn.jsdelivr.net`) of the player's files, for the CSP; nothing
    /// for same-origin paths.
    fn origins(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.js, &self.css]
            .iter()
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .filter(|u| u.host_str().is_some())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        out.dedup();
        out
    }
}

/// The segments of recorded sessions, whatever object store holds them.
pub(crate) trait Segments: Send + Sync {
    fn list<'a>(&'a self, session: &'a str, day: Day)
        -> BoxFuture<'a, Result<Vec<u32>, SinkError>>;
    fn get<'a>(&'a self, key: &'a SegmentKey) -> BoxFuture<'a, Result<Option<Bytes>, SinkError>>;
}

impl<S: ObjectStore> Segments for ReplayStore<S> {
    fn list<'a>(
        &'a self,
        session: &'a str,
        day: Day,
    ) -> BoxFuture<'a, Result<Vec<u32>, SinkError>> {
        async move {
            Ok(self
                .list_segments(session, day)
                .await?
                .iter()
                .map(SegmentKey::segment)
                .collect())
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a SegmentKey) -> BoxFuture<'a, Result<Option<Bytes>, SinkError>> {
        self.get_segment(key).boxed()
    }
}

/// A JSON error answer: `{"error": <the field or part at fault>, "detail": …}`.
pub(crate) struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1, "detail": self.2 }))).into_response()
    }
}

fn api_error(status: StatusCode, field: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError(status, field, detail.into())
}

/// The session id, validated as segment keys need it (no path tricks), or a 400 naming it.
fn valid_session(id: &str) -> Result<(), ApiError> {
    SegmentKey::new(id, Day::of(Timestamp::now()), 0)
        .map(|_| ())
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, "session_id", e.to_string()))
}

fn store_failed(e: impl std::fmt::Display) -> ApiError {
    api_error(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
}

async fn indexed(state: &ConsoleState, id: &str) -> Result<ReplaySession, ApiError> {
    valid_session(id)?;
    match state.store.replay_session(id).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(api_error(
            StatusCode::NOT_FOUND,
            "session_id",
            format!("no recorded session {id}"),
        )),
        Err(e) => Err(store_failed(e)),
    }
}

fn segments_source(state: &ConsoleState) -> Result<&dyn Segments, ApiError> {
    state.segments.as_deref().ok_or_else(|| {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "replays",
            "no replay store configured: ConsoleBuilder::replays(ReplayStore::new(..))",
        )
    })
}

/// One entry of the side panel: an error or a request of the session.
struct Mark {
    offset_ms: i64,
    kind: &'static str,
    level: &'static str,
    label: String,
    event_id: String,
}

fn mark(session: &ReplaySession, e: &Event) -> Mark {
    let label = match (&e.request, &e.error) {
        (Some(r), _) => format!("{} {} → {}", r.method, r.path, r.status),
        (None, Some(err)) => format!("{}: {}", err.error_type, err.message),
        _ => e.message.clone(),
    };
    Mark {
        offset_ms: (ts_to_ms(e.timestamp) - ts_to_ms(session.started_at)).max(0),
        kind: e.kind.as_str(),
        level: e.level.as_str(),
        label: tracepost_core::truncate_utf8(&label, 300).to_owned(),
        event_id: e.id.to_string(),
    }
}

/// The session's errors and requests (stored events with its session id) within its
/// recorded time (a minute either side), oldest first.
async fn timeline(state: &ConsoleState, s: &ReplaySession) -> Result<Vec<Mark>, PageError> {
    let margin = std::time::Duration::from_secs(60);
    let f = EventFilter::new()
        .session_id(s.session_id.clone())
        .kind(Kind::Error)
        .kind(Kind::Request)
        .since(Timestamp::from(s.started_at.system_time() - margin))
        .until(Timestamp::from(s.ended_at.system_time() + margin));
    let page = state.store.events(&f, MAX_TIMELINE, None).await?;
    let mut marks: Vec<Mark> = page.events.iter().map(|e| mark(s, e)).collect();
    marks.reverse();
    Ok(marks)
}

/// The most missing segment numbers listed (their count is always given).
const MAX_LISTED_GAPS: usize = 100;

/// Segment numbers missing between 0 and the last stored one (`segments` sorted): how many,
/// and the first [`MAX_LISTED_GAPS`] of them. Walks the stored numbers, not the range, so a
/// stored segment numbered in the billions costs nothing (a tester's finding: the list was
/// built number by number, gigabytes for one hostile upload).
fn gaps(segments: &[u32]) -> (u64, Vec<u32>) {
    let mut total = 0u64;
    let mut listed = Vec::new();
    let mut next = 0u32;
    for &s in segments {
        if s > next {
            total += u64::from(s - next);
            let room = MAX_LISTED_GAPS - listed.len();
            listed.extend((next..s).take(room));
        }
        next = next.max(s.saturating_add(1));
    }
    (total, listed)
}

/// `GET BASE/v1/replay/{session_id}`.
pub(crate) async fn session_json(
    State(state): St,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = indexed(&state, &id).await?;
    let segments = segments_source(&state)?
        .list(&id, s.session_day)
        .await
        .map_err(store_failed)?;
    let marks = timeline(&state, &s).await.map_err(|e| match e {
        PageError::Store(e) => store_failed(e),
        _ => store_failed("the session's events could not be read"),
    })?;
    Ok(Json(json!({
        "session": s,
        "segments": segments,
        "gaps": gaps(&segments).1,
        "gaps_total": gaps(&segments).0,
        "timeline": marks.iter().map(|m| json!({
            "offset_ms": m.offset_ms, "kind": m.kind, "level": m.level,
            "label": m.label, "event_id": m.event_id,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET BASE/v1/replay/{session_id}/{segment}`.
pub(crate) async fn segment(
    State(state): St,
    Path((id, segment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let number = segment.parse::<u32>().map_err(|_| {
        api_error(
            StatusCode::BAD_REQUEST,
            "segment",
            format!("{segment:?} is not a segment number (0 to 4294967295)"),
        )
    })?;
    let s = indexed(&state, &id).await?;
    let source = segments_source(&state)?;
    let key = SegmentKey::new(id.as_str(), s.session_day, number)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, "session_id", e.to_string()))?;
    match source.get(&key).await.map_err(store_failed)? {
        Some(body) => Ok((
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_ENCODING, "gzip"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            body,
        )
            .into_response()),
        None => Err(api_error(
            StatusCode::NOT_FOUND,
            "segment",
            format!("session {id} has no segment {number}"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ViewerQuery {
    /// Offset from the session's first recorded event, ms.
    t: String,
    /// A time (Unix ms) to jump to: the offset is computed from the index.
    at: String,
}

/// The viewer's CSP: the console's own script plus the player's origin; the replayed page
/// is rebuilt in a sandboxed iframe (no scripts) whose styles, images and fonts come from
/// the recording (inline, or the recorded site's URLs).
fn viewer_csp(player: &Player) -> String {
    let origins = player.origins().join(" ");
    format!(
        "default-src 'none'; script-src 'self' {origins}; style-src 'self' 'unsafe-inline' * data:; \
         img-src * data: blob:; font-src * data:; media-src * data: blob:; connect-src 'self'; \
         frame-src 'self' about: blob:; child-src 'self' about: blob:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `GET BASE/replays/{session_id}`: the viewer.
pub(crate) async fn viewer(
    State(state): St,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<ViewerQuery>,
) -> PageResult {
    SegmentKey::new(id.as_str(), Day::of(Timestamp::now()), 0).map_err(|e| {
        PageError::BadField(filter::BadField {
            field: "session_id",
            message: e.to_string(),
        })
    })?;
    let bad = |field: &'static str, v: &str| {
        PageError::BadField(filter::BadField {
            field,
            message: format!("{v:?} is not a whole number of milliseconds"),
        })
    };
    let t: Option<i64> = match q.t.trim() {
        "" => None,
        v => Some(v.parse::<u64>().map_err(|_| bad("t", v))? as i64),
    };
    let at: Option<i64> = match q.at.trim() {
        "" => None,
        v => Some(v.parse::<u64>().map_err(|_| bad("at", v))? as i64),
    };
    let Some(s) = state.store.replay_session(&id).await? else {
        let body = html! {
            h1 { "Session " span.mono { (id) } }
            div.panel {
                p { "No replay was recorded for this session (replay off, sampled out, or not uploaded yet)." }
                p { a href={ (BASE) "/events?session_id=" (h::url_component(&id)) } { "The session's events" } }
            }
        };
        return Ok((
            StatusCode::NOT_FOUND,
            page("Replay", "/sessions", Some(&session.csrf), body),
        )
            .into_response());
    };
    let offset = t
        .or(at.map(|at| (at - ts_to_ms(s.started_at)).max(0)))
        .unwrap_or(0)
        .min(s.duration_ms);
    let marks = timeline(&state, &s).await?;
    let segments = match &state.segments {
        Some(src) => src.list(&id, s.session_day).await.map_err(|e| {
            PageError::Store(tracepost_core::store::StoreError::Unavailable(
                e.to_string(),
            ))
        })?,
        None => Vec::new(),
    };
    let (missing_total, missing) = gaps(&segments);
    let player = &state.player;
    let body = html! {
        link rel="stylesheet" href=(player.css);
        script src=(player.js) defer {}
        script src={ (BASE) "/static/replay.js" } defer {}
        h1 { "Session " span.mono { (s.session_id) } }
        div.replay-layout {
            div {
                @if state.segments.is_none() {
                    div.error-box { "No replay store configured: ConsoleBuilder::replays(ReplayStore::new(..))." }
                }
                @if s.missing_segments > 0 {
                    p.warn-box #missing { (s.missing_segments) " segment" @if s.missing_segments != 1 { "s" } " could not be uploaded by the browser: parts of this session are missing from the replay." }
                }
                @if missing_total > 0 {
                    p.warn-box #gaps { (missing_total) " segment" @if missing_total != 1 { "s" } " missing from storage (" (missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")) @if missing_total > missing.len() as u64 { ", …" } ")." }
                }
                div #replay data-session=(s.session_id) data-t=(offset)
                    data-base=(BASE) data-segments=(segments.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
                    data-duration=(s.duration_ms) {}
                p.dim #replay-status { "Loading " (segments.len()) " segments…" }
                div.replay-track #replay-track {
                    @for m in &marks {
                        a class={ "tick tick-" (m.kind) } href={ "?t=" (m.offset_ms) } data-offset=(m.offset_ms) title=(m.label) {}
                    }
                }
            }
            aside.panel.replay-side {
                dl.kv {
                    dt { "Started" } dd { (fmt_time(s.started_at)) " UTC" }
                    dt { "Duration" } dd { (format_offset(s.duration_ms)) }
                    @if let Some(u) = &s.user_id { dt { "User" } dd.mono { a href={ (BASE) "/sessions?user=" (h::url_component(u)) } { (u) } } }
                    @if let Some(v) = &s.visitor_id { dt { "Visitor" } dd.mono { (v) } }
                    @if let Some(u) = &s.first_url { dt { "First page" } dd.mono { (u) } }
                    dt { "Pages" } dd { (s.page_count) }
                    dt { "Segments" } dd { (s.segment_count) " (" (s.bytes / 1024) " KiB)" }
                    dt { "Browser errors" } dd { (s.error_count) }
                }
                h2 { "Errors and requests" }
                @if marks.is_empty() { (h::note("No errors or requests stored for this session.")) }
                ol.replay-marks {
                    @for m in &marks {
                        li class={ "mark mark-" (m.kind) " lvl-text-" (m.level) } {
                            a.seek href={ "?t=" (m.offset_ms) } data-offset=(m.offset_ms) { (format_offset(m.offset_ms)) }
                            " " span.badge { (m.kind) } " "
                            a.mono href={ (BASE) "/event/" (m.event_id) } { (m.label) }
                        }
                    }
                }
                p { a href={ (BASE) "/events?session_id=" (h::url_component(&s.session_id)) } { "All events of this session" } }
            }
        }
    };
    let mut resp = page("Replay", "/sessions", Some(&session.csrf), body).into_response();
    if let Ok(v) = HeaderValue::from_str(&viewer_csp(player)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(resp)
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SessionsQuery {
    user: String,
    url: String,
    since: String,
    until: String,
    fingerprint: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `GET BASE/sessions`: recorded sessions, newest first, filtered by user, URL, time and
/// error fingerprint.
pub(crate) async fn sessions(
    State(state): St,
    Extension(session): Extension<Session>,
    Query(q): Query<SessionsQuery>,
) -> PageResult {
    let now = std::time::SystemTime::now();
    let time = |field: &'static str, v: &str| -> Result<Option<Timestamp>, PageError> {
        match some(v) {
            None => Ok(None),
            Some(v) => filter::parse_time(&v, now).map(Some).ok_or_else(|| {
                PageError::BadField(filter::BadField {
                    field,
                    message: format!(
                        "{v:?} is neither a duration back from now (15m, 24h, 7d) nor a time"
                    ),
                })
            }),
        }
    };
    let mut f = ReplayFilter::new();
    f.user_id = some(&q.user);
    f.url_contains = some(&q.url);
    f.since = time("since", &q.since)?;
    f.until = time("until", &q.until)?;
    f.fingerprint = some(&q.fingerprint);
    let list = state.store.replay_sessions(&f, SESSIONS_PAGE).await?;
    let body = html! {
        h1 { "Sessions" }
        form.filters method="get" action={ (BASE) "/sessions" } {
            label { "User" input name="user" value=(q.user); }
            label { "URL contains" input name="url" value=(q.url); }
            label { "Since" input name="since" value=(q.since) placeholder="24h"; }
            label { "Until" input name="until" value=(q.until); }
            label { "Error fingerprint" input name="fingerprint" value=(q.fingerprint); }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() {
            (h::note("No recorded sessions match. Sessions appear here once the browser script records them (tracepost.replay.start())."))
        } @else {
            table.sessions {
                thead { tr { th { "Started (UTC)" } th { "Duration" } th { "User" } th { "First page" } th { "Pages" } th { "Errors" } th { "Segments" } th {} } }
                tbody {
                    @for s in &list {
                        tr {
                            td.mono { (fmt_time(s.started_at)) }
                            td { (format_offset(s.duration_ms)) }
                            td.mono { @if let Some(u) = &s.user_id { (u) } @else { span.dim { "anonymous" } } }
                            td.mono { (s.first_url.as_deref().unwrap_or("")) }
                            td { (s.page_count) }
                            td { @if s.error_count > 0 { span.lvl.lvl-error { (s.error_count) } } @else { "0" } }
                            td { (s.segment_count) @if s.missing_segments > 0 { " " span.badge.regressed title="segments the browser could not upload" { (s.missing_segments) " missing" } } }
                            td { a.watch href={ (BASE) "/replays/" (s.session_id) } { "Watch" } }
                        }
                    }
                }
            }
            @if list.len() == SESSIONS_PAGE { p.note { "The " (SESSIONS_PAGE) " most recent matching sessions; narrow the filter for older ones." } }
        }
    };
    Ok(page("Sessions", "/sessions", Some(&session.csrf), body).into_response())
}

/// "Watch replay at 0:42" for an event of a recorded session: the link, or `None` when
/// the event has no session, the session no index row, or the store no replay index.
pub(crate) async fn watch_link(state: &ConsoleState, e: &Event) -> Option<(String, String)> {
    let sid = e.session_id.as_deref()?;
    SegmentKey::new(sid, Day::of(e.timestamp), 0).ok()?;
    let s = state.store.replay_session(sid).await.ok()??;
    let offset = (ts_to_ms(e.timestamp) - ts_to_ms(s.started_at)).clamp(0, s.duration_ms);
    Some((
        format!("{BASE}/replays/{sid}?t={offset}"),
        format_offset(offset),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_without_walking_the_range() {
        assert_eq!(gaps(&[]), (0, vec![]));
        assert_eq!(gaps(&[0, 1, 2]), (0, vec![]));
        assert_eq!(gaps(&[1, 3]), (2, vec![0, 2]));
        // The tester's upload: segment 0 and segment 4294967295.
        let (total, listed) = gaps(&[0, u32::MAX]);
        assert_eq!(total, u64::from(u32::MAX) - 1);
        assert_eq!(listed.len(), MAX_LISTED_GAPS);
        assert_eq!(listed[..3], [1, 2, 3]);
    }
}
