//! The console's pages and actions.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use maud::{html, Markup};
use serde::Deserialize;
use tracepost_core::store::{ts_to_micros, Cursor, EventFilter, Issue, IssueStatus, StoreError};
use tracepost_core::{Event, Kind, Level, RequestSnapshot, SpanStatus, Timestamp};
use uuid::Uuid;

use crate::auth::{csrf_problem, Session};
use crate::filter::{self, FilterParams, KINDS};
use crate::html::{self as h, page};
use crate::replay::{self, ReplayPolicy};
use crate::tail::TailItem;
use crate::{ConsoleState, BASE};

type St = State<Arc<ConsoleState>>;

/// Rows per page of the Events page.
const PAGE_SIZE: usize = 50;

/// What went wrong while answering a page.
pub(crate) enum PageError {
    BadField(filter::BadField),
    Store(StoreError),
    NotFound(String),
    Forbidden(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Store(e)
    }
}

impl From<filter::BadField> for PageError {
    fn from(e: filter::BadField) -> Self {
        PageError::BadField(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            PageError::BadField(b) => (
                StatusCode::BAD_REQUEST,
                format!("Bad value for {}", b.field),
                b.message,
            ),
            PageError::Store(e) => {
                let status = match e {
                    StoreError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
                    StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (
                    status,
                    "The store could not answer".to_owned(),
                    e.to_string(),
                )
            }
            PageError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found".to_owned(), what),
            PageError::Forbidden(why) => (StatusCode::FORBIDDEN, "Refused".to_owned(), why),
        };
        let body = page(
            &title,
            "",
            None,
            html! { div.error-box { h1 { (title) } p { (detail) } p { a href={ (BASE) "/issues" } { "Back to the console" } } } },
        );
        (status, body).into_response()
    }
}

pub(crate) type PageResult = Result<Response, PageError>;

fn now() -> SystemTime {
    SystemTime::now()
}

/// `2026-11-29 18:49:41.123`
pub(crate) fn fmt_time(t: Timestamp) -> String {
    let s = t.to_string();
    let mut out: String = s.chars().take(23).collect();
    if out.len() > 10 {
        out.replace_range(10..11, " ");
    }
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    session: &Session,
    token: &str,
) -> Result<(), PageError> {
    match csrf_problem(method, headers, session, token) {
        Some(why) => Err(PageError::Forbidden(why.to_owned())),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Sign-in

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct LoginQuery {
    failed: Option<String>,
}

pub(crate) async fn login_form(State(state): St, Query(q): Query<LoginQuery>) -> Response {
    if matches!(state.auth.mode, crate::auth::AuthMode::Host { .. }) {
        return Redirect::to(&format!("{BASE}/issues")).into_response();
    }
    page(
        "Sign in",
        "",
        None,
        html! {
            div.login.panel {
                h1 { "tracepost console" }
                @if q.failed.is_some() { p.err { "That token is not the admin token." } }
                form method="post" action={ (BASE) "/login" } {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button.primary type="submit" { "Sign in" }
                }
                p.note { "The token is the one the app was configured with (ConsoleBuilder::admin_token)." }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

pub(crate) async fn login(
    State(state): St,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return PageError::Forbidden("cross-site sign-in refused (Sec-Fetch-Site)".into())
                .into_response();
        }
    }
    if !state.auth.check_token(&f.token) {
        // A short pause makes guessing slow without holding a thread.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("{BASE}/login?failed=1"))],
        )
            .into_response();
    }
    let cookie = state.auth.sign_in();
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (
                header::LOCATION,
                header::HeaderValue::from_static("/tracepost/console/issues"),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
pub(crate) struct CsrfForm {
    csrf: String,
}

pub(crate) async fn logout(
    State(state): St,
    Extension(session): Extension<Session>,
    method: Method,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    check_csrf(&method, &headers, &session, &f.csrf)?;
    let cookie = state.auth.sign_out(&headers);
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (
                header::LOCATION,
                header::HeaderValue::from_static("/tracepost/console/login"),
            ),
        ],
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Issues

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct IssuesQuery {
    /// `open` (default), `resolved`, `ignored`, `all`.
    status: String,
}

fn status_badge(s: IssueStatus) -> Markup {
    let label = match s {
        IssueStatus::Unresolved => "open",
        IssueStatus::Resolved => "resolved",
        IssueStatus::Ignored => "ignored",
    };
    html! { span class={ "badge st-" (s.as_str()) } { (label) } }
}

/// Hourly counts of an issue over the last 24 hours, oldest first.
async fn issue_spark(
    state: &ConsoleState,
    fingerprint: &str,
    hours: u64,
    width: Duration,
) -> Vec<u64> {
    let until = now();
    let since = until - Duration::from_secs(hours * 3600);
    // Only errors carry a fingerprint: no kind condition, so the (fingerprint, time) index
    // answers alone.
    let f = EventFilter::new()
        .fingerprint(fingerprint)
        .since(Timestamp::from(since))
        .until(Timestamp::from(until));
    state
        .store
        .histogram(&f, width)
        .await
        .map(|b| b.iter().map(|b| b.count).collect())
        .unwrap_or_default()
}

/// "regressed" when a resolved issue happened again.
fn regression_badge(i: &Issue, now: SystemTime) -> Markup {
    html! {
        @if let Some(at) = i.regressed_at {
            " " span.badge.regressed title={ "resolved, then seen again at " (fmt_time(at)) " UTC" } { "regressed " (filter::ago(at, now)) }
        }
    }
}

pub(crate) async fn issues(
    State(state): St,
    Extension(session): Extension<Session>,
    Query(q): Query<IssuesQuery>,
) -> PageResult {
    let want = match q.status.as_str() {
        "" | "open" => Some(IssueStatus::Unresolved),
        "resolved" => Some(IssueStatus::Resolved),
        "ignored" => Some(IssueStatus::Ignored),
        "all" => None,
        other => {
            return Err(PageError::BadField(filter::BadField {
                field: "status",
                message: format!("{other:?}: use open, resolved, ignored or all"),
            }))
        }
    };
    let all = state.store.top_issues(None, 500).await?;
    let list: Vec<Issue> = all
        .into_iter()
        .filter(|i| want.is_none_or(|w| i.status == w))
        .take(100)
        .collect();
    let sparks = futures_util::future::join_all(
        list.iter()
            .map(|i| issue_spark(&state, &i.fingerprint, 24, Duration::from_secs(3600))),
    )
    .await;
    let tab = if q.status.is_empty() {
        "open"
    } else {
        q.status.as_str()
    };
    let t = now();
    let body = html! {
        h1 { "Issues" }
        div.actions {
            @for s in ["open", "resolved", "ignored", "all"] {
                a.badge.st-unresolved[s == "open" && tab == s].on[tab == s] href={ (BASE) "/issues?status=" (s) } { (s) }
            }
        }
        @if list.is_empty() {
            (h::note("No issues here. Errors and panics the app captures are grouped here by fingerprint."))
        } @else {
            table.issues {
                thead { tr {
                    th { "Issue" } th { "State" } th.num { "Events" } th.num { "Users" } th { "Last 24 h" }
                    th { "First seen" } th { "Last seen" } th { "Service" }
                } }
                tbody {
                    @for (i, spark) in list.iter().zip(&sparks) {
                        tr {
                            td.msg {
                                a href={ (BASE) "/issue/" (h::url_component(&i.fingerprint)) } {
                                    @if let Some(t) = &i.error_type { b { (t) } ": " }
                                    (i.title)
                                }
                                div.dim.mono { (i.fingerprint) }
                            }
                            td { (status_badge(i.status)) (regression_badge(i, t)) }
                            td.num { (i.count) }
                            td.num { (i.users) }
                            td { (h::sparkline(spark, 96, 20)) }
                            td.dim title=(fmt_time(i.first_seen)) { (filter::ago(i.first_seen, t)) }
                            td title=(fmt_time(i.last_seen)) { (filter::ago(i.last_seen, t)) }
                            td { (i.service) }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Issues", "/issues", Some(&session.csrf), body).into_response())
}

pub(crate) async fn issue(
    State(state): St,
    Extension(session): Extension<Session>,
    Path(fingerprint): Path<String>,
) -> PageResult {
    let issue =
        state.store.issue(&fingerprint).await?.ok_or_else(|| {
            PageError::NotFound(format!("no issue with fingerprint {fingerprint:?}"))
        })?;
    let latest = state.store.event(issue.last_event_id).await?;
    let recent = state
        .store
        .events(&EventFilter::new().fingerprint(&fingerprint), 20, None)
        .await?;
    let days = issue_spark(&state, &fingerprint, 14 * 24, Duration::from_secs(86_400)).await;
    let watch = match &latest {
        Some(e) => crate::recordings::watch_link(&state, e).await,
        None => None,
    };
    let t = now();
    let body = html! {
        h1 {
            @if let Some(t) = &issue.error_type { (t) ": " }
            (issue.title)
        }
        div.panel {
            div.actions {
                (status_badge(issue.status)) (regression_badge(&issue, t))
                span.dim { (issue.count) " events · " (issue.users) " users · first seen " (filter::ago(issue.first_seen, t))
                    " · last seen " (filter::ago(issue.last_seen, t)) " · " (issue.service) }
                @for (value, label) in [("resolved", "Resolve"), ("ignored", "Ignore"), ("unresolved", "Reopen")] {
                    @if value != issue.status.as_str() {
                        form method="post" action={ (BASE) "/issue/" (h::url_component(&fingerprint)) "/status" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            input type="hidden" name="status" value=(value);
                            button type="submit" { (label) }
                        }
                    }
                }
                a href={ (BASE) "/events?fingerprint=" (h::url_component(&fingerprint)) } { "All events →" }
            }
            div { span.dim { "last 14 days " } (h::sparkline(&days, 280, 28)) }
        }
        @if let Some(e) = &latest {
            h2 { "Latest event" }
            (event_detail(&state, &session, e, watch.as_ref()))
        }
        h2 { "Recent events" }
        (event_table(&recent.events, None))
    };
    Ok(page("Issue", "/issues", Some(&session.csrf), body).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct StatusForm {
    csrf: String,
    status: String,
}

pub(crate) async fn set_status(
    State(state): St,
    Extension(session): Extension<Session>,
    Path(fingerprint): Path<String>,
    method: Method,
    headers: HeaderMap,
    Form(f): Form<StatusForm>,
) -> PageResult {
    check_csrf(&method, &headers, &session, &f.csrf)?;
    let status = match f.status.as_str() {
        "resolved" => IssueStatus::Resolved,
        "ignored" => IssueStatus::Ignored,
        "unresolved" => IssueStatus::Unresolved,
        other => {
            return Err(PageError::BadField(filter::BadField {
                field: "status",
                message: format!("{other:?}: use resolved, ignored or unresolved"),
            }))
        }
    };
    if !state.store.set_issue_status(&fingerprint, status).await? {
        return Err(PageError::NotFound(format!(
            "no issue with fingerprint {fingerprint:?}"
        )));
    }
    Ok(Redirect::to(&format!("{BASE}/issue/{}", h::url_component(&fingerprint))).into_response())
}

// ---------------------------------------------------------------------------------------
// Event detail

struct Frame {
    symbol: String,
    location: Option<String>,
    app: bool,
}

/// Splits a Rust backtrace (`  3: symbol` / `at file:line`) into frames, marking the
/// application's the way the fingerprint stage does
/// ([`in_app_frames`](tracepost_core::fingerprint::in_app_frames)).
fn frames(bt: &str) -> Vec<Frame> {
    let app_names: std::collections::HashSet<String> =
        tracepost_core::fingerprint::in_app_frames(bt, usize::MAX)
            .into_iter()
            .collect();
    let mut out: Vec<Frame> = Vec::new();
    for line in bt.lines() {
        let t = line.trim();
        if let Some(at) = t.strip_prefix("at ") {
            if let Some(f) = out.last_mut() {
                f.location.get_or_insert_with(|| at.to_owned());
            }
            continue;
        }
        let symbol = match t.split_once(": ") {
            Some((n, s)) if n.chars().all(|c| c.is_ascii_digit()) => s,
            _ => t,
        };
        if symbol.is_empty() {
            continue;
        }
        let app = app_names.contains(symbol)
            || app_names
                .iter()
                .any(|n| symbol.starts_with(n.as_str()) && symbol[n.len()..].starts_with("::h"));
        out.push(Frame {
            symbol: symbol.to_owned(),
            location: None,
            app,
        });
    }
    out
}

/// The origin a curl command targets: the captured `Host`, else the replay base URL.
fn curl_origin(state: &ConsoleState, r: &RequestSnapshot) -> String {
    if let Some((_, host)) = r
        .request_headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        return format!("http://{host}");
    }
    state
        .replay
        .base
        .as_ref()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "http://localhost".into())
}

fn headers_table(headers: &[(String, String)]) -> Markup {
    html! {
        table.headers {
            tbody {
                @for (k, v) in headers {
                    tr { td.mono.dim { (k) } td.mono { (h::redacted_text(v)) } }
                }
            }
        }
    }
}

fn request_panel(
    state: &ConsoleState,
    session: &Session,
    e: &Event,
    r: &RequestSnapshot,
) -> Markup {
    let curl = replay::curl(r, &curl_origin(state, r));
    let target = state.replay.target(r);
    html! {
        div.panel {
            h2 { "Request" }
            dl.kv {
                dt { "Request" } dd.mono { (r.method) " " (r.path) @if let Some(q) = &r.query { "?" (h::redacted_text(q)) } }
                dt { "Route" } dd.mono { (r.route) }
                dt { "Status" } dd { span class=[(r.status >= 500).then_some("err")] { (r.status) } }
                dt { "Duration" } dd { (fmt_ms(r.duration_ms)) }
                dt { "Bytes" } dd { (r.request_bytes) " in · " (r.response_bytes) " out" }
                @if let Some(c) = &r.client_address { dt { "Client" } dd.mono { (c) } }
            }
            div.grid2 {
                div {
                    h2 { "Request headers" }
                    (headers_table(&r.request_headers))
                    @if let Some(b) = &r.request_body {
                        h2 { "Request body" @if b.truncated { " (truncated)" } }
                        (h::body_text(&b.text))
                    }
                }
                div {
                    h2 { "Response headers" }
                    (headers_table(&r.response_headers))
                    @if let Some(b) = &r.response_body {
                        h2 { "Response body" @if b.truncated { " (truncated)" } }
                        (h::body_text(&b.text))
                    }
                }
            }
            h2 { "Copy as curl " button type="button" data-copy="curl" { "Copy" } }
            pre #curl.mono { (curl) }
            p.note { "Redacted header values are shell variables (set them before running); redacted body fields stay [REDACTED]." }
            div.actions {
                @match &target {
                    Ok(url) => {
                        form method="post" action={ (BASE) "/event/" (e.id) "/replay" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button.primary #replay type="submit" { "Replay request" }
                        }
                        span.dim { "sends " (r.method) " " (url.as_str()) " (redacted headers left out)" }
                    }
                    Err(refused) => {
                        button type="button" disabled title=(refused.message) { "Replay request" }
                        span.dim { "Replay unavailable: " (refused.message) }
                    }
                }
            }
        }
    }
}

/// `watch`: the link to the moment of the session's replay and its offset (`0:42`).
fn event_detail(
    state: &ConsoleState,
    session: &Session,
    e: &Event,
    watch: Option<&(String, String)>,
) -> Markup {
    let t = now();
    html! {
        div.panel {
            div.actions {
                (h::level(e.level)) span.badge { (e.kind.as_str()) }
                span.dim title=(fmt_time(e.timestamp)) { (fmt_time(e.timestamp)) " UTC · " (filter::ago(e.timestamp, t)) }
                a href={ (BASE) "/event/" (e.id) } { "permalink" }
            }
            p.msg.mono { (e.message) }
            dl.kv {
                dt { "Service" } dd { (e.resource.service)
                    @if let Some(env) = &e.resource.environment { " · " (env) }
                    @if let Some(r) = &e.resource.release { " · " (r) } }
                @if let Some(host) = &e.resource.host { dt { "Host" } dd { (host) } }
                @if let Some(x) = &e.trace_id { dt { "Trace" } dd.mono { a href={ (BASE) "/trace/" (h::url_component(x)) } { (x) } } }
                @if let Some(x) = &e.request_id { dt { "Request id" } dd.mono { a href={ (BASE) "/events?request_id=" (h::url_component(x)) } { (x) } } }
                @if let Some(x) = &e.user_id { dt { "User" } dd.mono { a href={ (BASE) "/events?user_id=" (h::url_component(x)) } { (x) } } }
                @if let Some(x) = &e.session_id { dt { "Session" } dd.mono {
                    a href={ (BASE) "/events?session_id=" (h::url_component(x)) } { (x) } " "
                    @if let Some((url, at)) = watch { a.watch href=(url) { "▶ Watch replay at " (at) } }
                    @else { span.dim { "(no replay recorded)" } }
                } }
                @if let Some(x) = &e.fingerprint { dt { "Issue" } dd.mono { a href={ (BASE) "/issue/" (h::url_component(x)) } { (x) } } }
                dt { "Id" } dd.mono { (e.id) }
            }
        }
        @if let Some(err) = &e.error {
            div.panel {
                h2 { "Error" }
                p.mono { b { (err.error_type) } ": " (err.message) }
                @if let Some(l) = &err.location { p.mono.dim { "at " (l) } }
                @if let Some(bt) = &err.backtrace {
                    @let fr = frames(bt);
                    @let app: Vec<&Frame> = fr.iter().filter(|f| f.app).collect();
                    h2 { "Application frames" }
                    @if app.is_empty() { (h::note("No application frames in this backtrace.")) }
                    ol.frames {
                        @for f in &app { li.app { (f.symbol) @if let Some(l) = &f.location { br; span.dim { "at " (l) } } } }
                    }
                    details { summary.dim { "Full backtrace (" (fr.len()) " frames)" } pre { (bt) } }
                }
            }
        }
        @if !e.breadcrumbs.is_empty() {
            div.panel {
                h2 { "Breadcrumbs" }
                table { tbody {
                    @for b in &e.breadcrumbs {
                        tr { td.mono.dim { (fmt_time(b.timestamp)) } td { (h::level(b.level)) } td.mono.dim { (b.target) } td.msg.mono { (h::redacted_text(&b.message)) } }
                    }
                } }
            }
        }
        @if let Some(r) = &e.request { (request_panel(state, session, e, r)) }
        @if !e.attributes.is_empty() {
            div.panel { h2 { "Attributes" } (h::json_details("attributes", &serde_json::Value::Object(e.attributes.clone()))) }
        }
        (h::json_details("Event JSON", &serde_json::to_value(e).unwrap_or_default()))
    }
}

pub(crate) async fn event(
    State(state): St,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> PageResult {
    let id = Uuid::parse_str(&id).map_err(|_| {
        PageError::BadField(filter::BadField {
            field: "id",
            message: format!("{id:?} is not an event id (a UUID)"),
        })
    })?;
    let e = state
        .store
        .event(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no event {id}")))?;
    let watch = crate::recordings::watch_link(&state, &e).await;
    let body = html! {
        h1 { "Event" }
        (event_detail(&state, &session, &e, watch.as_ref()))
    };
    Ok(page("Event", "/events", Some(&session.csrf), body).into_response())
}

pub(crate) async fn replay(
    State(state): St,
    Extension(session): Extension<Session>,
    Path(id): Path<Uuid>,
    method: Method,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    check_csrf(&method, &headers, &session, &f.csrf)?;
    let e = state
        .store
        .event(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no event {id}")))?;
    let r = e
        .request
        .as_ref()
        .ok_or_else(|| PageError::NotFound(format!("event {id} has no request snapshot")))?;
    let replayed = replay::send(&state.client, &state.replay, r)
        .await
        .map_err(|refused| {
            PageError::Forbidden(format!(
                "replay refused ({}): {}",
                refused.rule, refused.message
            ))
        })?;
    let body = html! {
        h1 { "Replay of " (r.method) " " (r.path) }
        p.dim { "Sent " (r.method) " " (replayed.url) " with " (ReplayPolicy::headers(r).len()) " captured headers (redacted ones left out). "
            a href={ (BASE) "/event/" (e.id) } { "Back to the event" } }
        div.grid2 {
            div.panel #captured {
                h2 { "Captured response" }
                p { "Status " b.status { (r.status) } " · " (fmt_ms(r.duration_ms)) }
                (headers_table(&r.response_headers))
                @if let Some(b) = &r.response_body { (h::body_text(&b.text)) } @else { (h::note("Body not captured.")) }
            }
            div.panel #replayed {
                h2 { "New response" }
                p { "Status " b.status { (replayed.status) } " · " (fmt_ms(replayed.duration_ms)) }
                (headers_table(&replayed.headers))
                (h::body_text(&replayed.body))
                @if replayed.truncated { p.note { "Body truncated at " (replay::MAX_REPLAY_BODY) " bytes." } }
            }
        }
    };
    Ok(page("Replay", "/events", Some(&session.csrf), body).into_response())
}

// ---------------------------------------------------------------------------------------
// Events

fn filter_form(p: &FilterParams, action: &str) -> Markup {
    html! {
        form.filters method="get" action=(action) {
            label { "Level ≥" select name="level" {
                option value="" { "any" }
                @for l in ["trace", "debug", "info", "warn", "error"] { option value=(l) selected[p.level == l] { (l) } }
            } }
            label { "Kind" select name="kind" {
                option value="" { "any" }
                @for k in KINDS { option value=(k.as_str()) selected[p.kind == k.as_str()] { (k.as_str()) } }
            } }
            label { "Service" input name="service" value=(p.service) size="10"; }
            label { "Message contains" input name="q" value=(p.q) size="18"; }
            label { "Attributes (k=v, …)" input name="attr" value=(p.attr) size="16"; }
            label { "Since (15m, 24h, time)" input name="since" value=(p.since) size="10"; }
            label { "Until" input name="until" value=(p.until) size="10"; }
            @for (name, v) in [("fingerprint", &p.fingerprint), ("trace_id", &p.trace_id), ("request_id", &p.request_id), ("user_id", &p.user_id), ("session_id", &p.session_id)] {
                @if !v.is_empty() { label { (name) input name=(name) value=(v) size="14"; } }
            }
            button.primary type="submit" { "Apply" }
            a href=(action) { "Clear" }
        }
    }
}

fn event_rows(events: &[Event]) -> Markup {
    html! {
        @for e in events {
            tr {
                td.mono.dim { (fmt_time(e.timestamp)) }
                td { (h::level(e.level)) }
                td { (e.kind.as_str()) }
                td { (e.resource.service) }
                td.msg {
                    a href={ (BASE) "/event/" (e.id) } { (e.message) }
                    @if let Some(r) = &e.request { " " span.dim.mono { (r.method) " " (r.route) " → " (r.status) } }
                    (h::json_details("JSON", &serde_json::to_value(e).unwrap_or_default()))
                }
            }
        }
    }
}

fn more_row(next: Option<Cursor>, qs: &str) -> Markup {
    html! {
        @if let Some(c) = next {
            tr.more-row { td colspan="5" .more {
                a.more-link href={ (BASE) "/events?" (qs) @if !qs.is_empty() { "&" } "after=" (c) } { "Older events →" }
            } }
        }
    }
}

fn event_table(events: &[Event], more: Option<Markup>) -> Markup {
    html! {
        @if events.is_empty() {
            (h::note("No events match."))
        } @else {
            table.events {
                thead { tr { th { "Time (UTC)" } th { "Level" } th { "Kind" } th { "Service" } th { "Message" } } }
                tbody { (event_rows(events)) @if let Some(m) = more { (m) } }
            }
        }
    }
}

pub(crate) async fn events(
    State(state): St,
    Extension(session): Extension<Session>,
    Query(p): Query<FilterParams>,
) -> PageResult {
    let f = p.to_filter(now())?;
    let after = match p.after.trim() {
        "" => None,
        s => Some(s.parse::<Cursor>().map_err(|_| {
            PageError::BadField(filter::BadField {
                field: "after",
                message: format!("{s:?} is not a page cursor"),
            })
        })?),
    };
    let page_ = state.store.events(&f, PAGE_SIZE, after).await?;
    let qs = p.query_string();
    if p.fragment == "1" {
        let rows = html! { (event_rows(&page_.events)) (more_row(page_.next, &qs)) };
        return Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            rows.into_string(),
        )
            .into_response());
    }
    let body = html! {
        h1 { "Events" }
        (filter_form(&p, &format!("{BASE}/events")))
        div.actions { a href={ (BASE) "/live?" (qs) } { "Tail these live →" } }
        (event_table(&page_.events, Some(more_row(page_.next, &qs))))
    };
    Ok(page("Events", "/events", Some(&session.csrf), body).into_response())
}

// ---------------------------------------------------------------------------------------
// Live tail

pub(crate) async fn live(
    State(state): St,
    Extension(session): Extension<Session>,
    Query(p): Query<FilterParams>,
) -> PageResult {
    p.to_filter(now())?;
    let qs = p.query_string();
    let body = html! {
        h1 { "Live tail" }
        @if state.tail.is_none() {
            (h::note("The live tail is off: add LiveTail::sink() to the pipeline and ConsoleBuilder::live_tail(..)."))
        } @else {
            (filter_form(&p, &format!("{BASE}/live")))
            div.actions {
                button #tail-pause type="button" { "Pause" }
                span #tail-status.dim { "connecting…" }
                span.dim { "newest first, the last 500 kept" }
            }
            table #tail-log.events data-src={ (BASE) "/api/tail?" (qs) } data-base=(BASE) {
                thead { tr { th { "Time (UTC)" } th { "Level" } th { "Kind" } th { "Service" } th { "Message" } } }
                tbody {}
            }
        }
    };
    Ok(page("Live tail", "/live", Some(&session.csrf), body).into_response())
}

fn api_error(status: StatusCode, field: &str, detail: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": field, "detail": detail })),
    )
        .into_response()
}

/// `GET BASE/api/tail`: Server-Sent Events, `event: event` with each matching event's JSON,
/// `event: missed` with `{"missed": N}` when this client fell behind. 400 (JSON naming the
/// field) for a bad filter, 503 when the tail is off or full.
pub(crate) async fn tail_stream(State(state): St, Query(p): Query<FilterParams>) -> Response {
    let f = match p.to_filter(now()) {
        Ok(f) => f,
        Err(b) => return api_error(StatusCode::BAD_REQUEST, b.field, b.message),
    };
    let Some(tail) = &state.tail else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "live_tail",
            "the live tail is not configured".into(),
        );
    };
    let Some(sub) = tail.subscribe() else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "live_tail",
            "too many live tail clients; try again later".into(),
        );
    };
    let stream = futures_util::stream::unfold((sub, f), |(mut sub, f)| async move {
        loop {
            match sub.next().await? {
                TailItem::Event(e) => {
                    if filter::matches(&f, &e) {
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
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Traces

pub(crate) async fn traces(State(state): St, Extension(session): Extension<Session>) -> PageResult {
    let f = EventFilter::new()
        .kind(Kind::Request)
        .kind(Kind::Error)
        .kind(Kind::Span);
    let recent = state.store.events(&f, 500, None).await?;
    // One row per trace, newest first: its request (if one was kept), else its outermost
    // span; how many spans and errors the recent events hold.
    struct Row<'a> {
        trace_id: &'a str,
        newest: Timestamp,
        head: Option<&'a Event>,
        spans: usize,
        errors: usize,
    }
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in &recent.events {
        let Some(tid) = e.trace_id.as_deref() else {
            continue;
        };
        let i = *index.entry(tid).or_insert_with(|| {
            rows.push(Row {
                trace_id: tid,
                newest: e.timestamp,
                head: None,
                spans: 0,
                errors: 0,
            });
            rows.len() - 1
        });
        let row = &mut rows[i];
        if e.kind == Kind::Span {
            row.spans += 1;
        }
        if e.kind == Kind::Error {
            row.errors += 1;
        }
        let better = match (row.head, e.request.is_some()) {
            (None, _) => true,
            (Some(h), true) => h.request.is_none() || e.timestamp < h.timestamp,
            (Some(h), false) => {
                h.request.is_none() && e.kind == Kind::Span && e.timestamp < h.timestamp
            }
        };
        if better {
            row.head = Some(e);
        }
    }
    rows.truncate(50);
    let body = html! {
        h1 { "Traces" }
        p.note { "Recent traces with spans, a kept request or an error. A trace's page draws its spans as a waterfall, with the logs and errors recorded inside each span." }
        @if rows.is_empty() { (h::note("No traces yet.")) } @else {
            table { thead { tr { th { "Time (UTC)" } th { "Trace" } th { "Root" } th.num { "Spans" } th.num { "Errors" } } }
                tbody { @for r in &rows {
                    tr {
                        td.mono.dim { (fmt_time(r.newest)) }
                        td.mono { a href={ (BASE) "/trace/" (h::url_component(r.trace_id)) } { (r.trace_id) } }
                        td.msg { @if let Some(e) = r.head {
                            @if let Some(q) = &e.request { span.mono { (q.method) " " (q.route) " → " (q.status) " · " (fmt_ms(q.duration_ms)) } " " span.dim { (e.message) } }
                            @else if let Some(sp) = &e.span { (sp.name) span.dim { " · " (fmt_ms(sp.duration_ms)) } }
                            @else { (e.message) }
                        } }
                        td.num { (r.spans) }
                        td.num { @if r.errors > 0 { span.err { (r.errors) } } @else { span.dim { "0" } } }
                    }
                } }
            }
        }
    };
    Ok(page("Traces", "/traces", Some(&session.csrf), body).into_response())
}

/// One bar of a trace's waterfall: a span, or a kept request (the server span the
/// outermost spans hang from).
struct WfNode<'a> {
    span_id: Option<&'a str>,
    parent: Option<&'a str>,
    start_us: i64,
    end_us: i64,
    label: String,
    error: bool,
    request: bool,
    event: &'a Event,
    /// Child spans (indices) and the events recorded inside, in time order once built.
    children: Vec<usize>,
    inside: Vec<&'a Event>,
}

/// A row of the waterfall, in drawing order.
enum WfRow<'a> {
    Node(usize, usize),
    Event(&'a Event, usize),
    Crumb(&'a tracepost_core::Breadcrumb, usize),
}

/// The waterfall's rows: every root (a span or request whose parent is not stored) in time
/// order, each followed by what happened inside it — its child spans and its events,
/// interleaved by time — depth first. Events whose span is not stored come at depth 0.
fn waterfall<'a>(events: &'a [Event]) -> (Vec<WfNode<'a>>, Vec<WfRow<'a>>) {
    let mut nodes: Vec<WfNode<'a>> = Vec::new();
    let mut loose: Vec<&'a Event> = Vec::new();
    for e in events {
        let start = ts_to_micros(e.timestamp);
        let (node, ms) = match (&e.span, &e.request) {
            (Some(sp), _) if e.kind == Kind::Span => (
                Some((
                    sp.name.clone(),
                    sp.status == SpanStatus::Error,
                    false,
                    sp.parent_span_id.as_deref(),
                )),
                sp.duration_ms,
            ),
            (_, Some(r)) => (
                Some((
                    format!("{} {} → {}", r.method, r.route, r.status),
                    r.status >= 500 || e.kind == Kind::Error,
                    true,
                    None,
                )),
                r.duration_ms,
            ),
            _ => (None, 0.0),
        };
        match node {
            Some((label, error, request, parent)) => nodes.push(WfNode {
                span_id: e.span_id.as_deref(),
                parent,
                start_us: start,
                end_us: start + (ms.max(0.0) * 1000.0) as i64,
                label,
                error,
                request,
                event: e,
                children: Vec::new(),
                inside: Vec::new(),
            }),
            None => loose.push(e),
        }
    }
    let mut by_id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(id) = n.span_id {
            by_id.entry(id).or_insert(i);
        }
    }
    let mut roots: Vec<usize> = Vec::new();
    for i in 0..nodes.len() {
        match nodes[i]
            .parent
            .and_then(|p| by_id.get(p).copied())
            .filter(|p| *p != i)
        {
            Some(p) => nodes[p].children.push(i),
            None => roots.push(i),
        }
    }
    let mut top: Vec<&'a Event> = Vec::new();
    for e in loose {
        match e.span_id.as_deref().and_then(|id| by_id.get(id).copied()) {
            Some(i) => nodes[i].inside.push(e),
            None => top.push(e),
        }
    }
    // Breadcrumbs only when no log event of the trace is stored (they would repeat them).
    let crumbs = !events.iter().any(|e| e.kind == Kind::Log);
    let mut rows = Vec::new();
    let mut seen = vec![false; nodes.len()];
    enum Item<'a> {
        Node(usize),
        Event(&'a Event),
    }
    fn at(nodes: &[WfNode<'_>], item: &Item<'_>) -> i64 {
        match item {
            Item::Node(i) => nodes[*i].start_us,
            Item::Event(e) => ts_to_micros(e.timestamp),
        }
    }
    fn walk<'a>(
        nodes: &[WfNode<'a>],
        items: Vec<Item<'a>>,
        depth: usize,
        crumbs: bool,
        seen: &mut Vec<bool>,
        rows: &mut Vec<WfRow<'a>>,
    ) {
        let mut items = items;
        items.sort_by_key(|it| at(nodes, it));
        for it in items {
            match it {
                Item::Event(e) => rows.push(WfRow::Event(e, depth)),
                Item::Node(i) => {
                    if std::mem::replace(&mut seen[i], true) {
                        continue; // a cycle in stored parent ids: draw each span once
                    }
                    rows.push(WfRow::Node(i, depth));
                    let n = &nodes[i];
                    if crumbs && n.request {
                        for b in &n.event.breadcrumbs {
                            rows.push(WfRow::Crumb(b, depth + 1));
                        }
                    }
                    let inner: Vec<Item<'a>> = n
                        .children
                        .iter()
                        .map(|c| Item::Node(*c))
                        .chain(n.inside.iter().map(|e| Item::Event(e)))
                        .collect();
                    walk(nodes, inner, depth + 1, crumbs, seen, rows);
                }
            }
        }
    }
    let items: Vec<Item<'a>> = roots
        .into_iter()
        .map(Item::Node)
        .chain(top.into_iter().map(Item::Event))
        .collect();
    walk(&nodes, items, 0, crumbs, &mut seen, &mut rows);
    (nodes, rows)
}

/// Attributes worth showing beside a span's name (not the ones every span has).
fn span_fields(e: &Event) -> String {
    let mut out = String::new();
    for (k, v) in e
        .attributes
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "target" | "code.location" | "http.route"))
        .take(4)
    {
        if !out.is_empty() {
            out.push(' ');
        }
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{k}={}", tracepost_core::truncate_utf8(&v, 60)));
    }
    out
}

pub(crate) async fn trace(
    State(state): St,
    Extension(session): Extension<Session>,
    Path(trace_id): Path<String>,
) -> PageResult {
    let page_ = state
        .store
        .events(&EventFilter::new().trace_id(&trace_id), 1000, None)
        .await?;
    let mut events = page_.events;
    events.sort_by_key(|e| (e.timestamp, e.id));
    let (nodes, rows) = waterfall(&events);
    let row_us = |r: &WfRow<'_>| -> (i64, i64) {
        match r {
            WfRow::Node(i, _) => (nodes[*i].start_us, nodes[*i].end_us),
            WfRow::Event(e, _) => {
                let t = ts_to_micros(e.timestamp);
                (t, t)
            }
            WfRow::Crumb(b, _) => {
                let t = ts_to_micros(b.timestamp);
                (t, t)
            }
        }
    };
    let t0 = rows.iter().map(|r| row_us(r).0).min().unwrap_or(0);
    let t1 = rows
        .iter()
        .map(|r| row_us(r).1)
        .max()
        .unwrap_or(0)
        .max(t0 + 1);
    let total = (t1 - t0) as f64;
    let n_spans = nodes.iter().filter(|n| !n.request).count();
    let (w, row_h) = (600.0_f64, 16.0_f64);
    let body = html! {
        h1 { "Trace " span.mono { (trace_id) } }
        @if rows.is_empty() { (h::note("No stored events carry this trace id.")) } @else {
            p.dim { (n_spans) " spans · " (events.len() - nodes.len()) " other events · " (fmt_ms(total / 1000.0)) " from first to last" }
            table.waterfall { thead { tr { th.num { "+ms" } th { "What" } th { "Timeline" } th { "Status" } } }
                tbody { @for r in &rows {
                    @let (a, b) = row_us(r);
                    @let x = (a - t0) as f64 / total * (w - 4.0);
                    @let bw = ((b - a) as f64 / total * (w - 4.0)).max(3.0);
                    @let (depth, class, bar) = match r {
                        WfRow::Node(i, d) => (*d, if nodes[*i].request { "wf-node wf-req" } else { "wf-node" },
                            if nodes[*i].error { "bar-err" } else if nodes[*i].request { "bar-req" } else { "bar-span" }),
                        WfRow::Event(e, d) => (*d, "wf-event", if e.level >= Level::Error { "bar-err" } else { "bar" }),
                        WfRow::Crumb(c, d) => (*d, "wf-event wf-crumb", if c.level >= Level::Error { "bar-err" } else { "bar" }),
                    };
                    tr class=(class) {
                        td.num.mono { (format!("{:.1}", (a - t0) as f64 / 1000.0)) }
                        td class={ "msg d" (depth.min(12)) } {
                            @match r {
                                WfRow::Node(i, _) => {
                                    @let n = &nodes[*i];
                                    a href={ (BASE) "/event/" (n.event.id) } { (n.label) }
                                    span.dim { " · " (fmt_ms((n.end_us - n.start_us) as f64 / 1000.0)) }
                                    @let fields = span_fields(n.event);
                                    @if !n.request && !fields.is_empty() { " " span.mono.dim { (fields) } }
                                }
                                WfRow::Event(e, _) => {
                                    span.dim { (e.kind.as_str()) " " }
                                    a href={ (BASE) "/event/" (e.id) } { (e.message) }
                                }
                                WfRow::Crumb(c, _) => { span.dim { "breadcrumb " } (c.message) }
                            }
                        }
                        td.wf { svg.waterfall width="100%" height=(row_h) viewBox={ "0 0 " (w) " " (row_h) } preserveAspectRatio="none" role="img" aria-label=(if matches!(r, WfRow::Node(..)) { "span" } else { "event" }) {
                            rect class=(bar) x=(format!("{x:.1}")) y=(if matches!(r, WfRow::Node(..)) { "3" } else { "5" })
                                width=(format!("{bw:.1}")) height=(if matches!(r, WfRow::Node(..)) { format!("{:.1}", row_h - 6.0) } else { "6".to_owned() }) {}
                        } }
                        td {
                            @match r {
                                WfRow::Node(i, _) => {
                                    @let n = &nodes[*i];
                                    @if n.error { span.err { "error" } }
                                    @else if let Some(sp) = &n.event.span { span.dim { (sp.status.as_str()) } }
                                    @else { span.dim { "request" } }
                                }
                                WfRow::Event(e, _) => { (h::level(e.level)) }
                                WfRow::Crumb(c, _) => { (h::level(c.level)) }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(page("Trace", "/traces", Some(&session.csrf), body).into_response())
}

// ---------------------------------------------------------------------------------------
// Routes

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RoutesQuery {
    /// How far back: `1h` (default), `6h`, `24h`, any duration.
    since: String,
}

#[derive(Default)]
struct RouteStats {
    count: u64,
    errors: u64,
    /// Oldest first.
    windows: Vec<Win>,
}

/// The most points a route's chart line gets (see [`RouteStats::series`]).
const MAX_POINTS: usize = 300;

/// One metric window of one route.
#[derive(Clone, Copy)]
struct Win {
    start_us: i64,
    count: u64,
    errors: u64,
    p50: f64,
    p95: f64,
    p99: f64,
}

impl RouteStats {
    /// A latency percentile averaged over the windows, weighted by their requests.
    fn weighted(&self, pick: impl Fn(&Win) -> f64) -> f64 {
        let n: u64 = self.windows.iter().map(|w| w.count).sum();
        if n == 0 {
            return 0.0;
        }
        self.windows
            .iter()
            .map(|w| pick(w) * w.count as f64)
            .sum::<f64>()
            / n as f64
    }

    /// The chart points of one value: one per window, or, past [`MAX_POINTS`] windows, one
    /// per run of consecutive windows (at the run's first start): the runs' mean for
    /// counts, their highest for latencies (`peak`), so a spike stays visible. A chart is
    /// 300 px wide: more points than pixels only cost render time (a day of 60 s windows
    /// is 1 440 per route).
    fn series(&self, peak: bool, pick: impl Fn(&Win) -> f64) -> Vec<(i64, f64)> {
        let per = self.windows.len().div_ceil(MAX_POINTS).max(1);
        self.windows
            .chunks(per)
            .map(|run| {
                let values = run.iter().map(&pick);
                let y = if peak {
                    values.fold(0.0, f64::max)
                } else {
                    values.sum::<f64>() / run.len() as f64
                };
                (run[0].start_us, y)
            })
            .collect()
    }
}

/// A chart line: label, CSS class, points (x in Unix µs, y).
type Series<'a> = (&'a str, &'a str, Vec<(i64, f64)>);

/// A line chart of `series` (label, CSS class, points (x µs, y)) over `[x0, x1]`.
fn line_chart(series: &[Series<'_>], x0: i64, x1: i64, unit: &str) -> Markup {
    let (w, hgt, pad) = (300.0_f64, 80.0_f64, 4.0_f64);
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let span = (x1 - x0).max(1) as f64;
    let pts = |v: &Vec<(i64, f64)>| {
        v.iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    pad + (x - x0) as f64 / span * (w - 2.0 * pad),
                    hgt - pad - y / ymax * (hgt - 2.0 * pad - 10.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        svg.chart width=(w) height=(hgt) viewBox={ "0 0 " (w) " " (hgt) } role="img" aria-label=(unit) {
            line.grid x1="0" y1=(hgt - pad) x2=(w) y2=(hgt - pad) {}
            text x="4" y="10" { "max " (format!("{ymax:.1}")) " " (unit) }
            @for (label, class, v) in series {
                @if v.len() == 1 {
                    @let p = pts(v);
                    @let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    circle class=(class) cx=(cx) cy=(cy) r="2.5" { title { (label) } }
                } @else {
                    polyline class=(class) fill="none" stroke-width="1.5" points=(pts(v)) { title { (label) } }
                }
            }
        }
    }
}

pub(crate) async fn routes(
    State(state): St,
    Extension(session): Extension<Session>,
    Query(q): Query<RoutesQuery>,
) -> PageResult {
    let since_txt = if q.since.trim().is_empty() {
        "1h".to_owned()
    } else {
        q.since.trim().to_owned()
    };
    let t = now();
    let since = filter::parse_time(&since_txt, t).ok_or_else(|| filter::BadField {
        field: "since",
        message: format!("{since_txt:?} is neither a duration (1h, 24h) nor a time"),
    })?;
    let mut by_route: BTreeMap<(String, String), RouteStats> = BTreeMap::new();
    // Metric windows are one per route and window: a day of 60 s windows for 50 routes is
    // 72 000 rows, read from the store's windows alone (at most the newest 200 000).
    for m in state.store.metric_windows(since, None, 200_000).await? {
        let s = by_route.entry((m.route, m.method)).or_default();
        s.count += m.count;
        s.errors += m.errors;
        s.windows.push(Win {
            start_us: ts_to_micros(m.start),
            count: m.count,
            errors: m.errors,
            p50: m.p50_ms,
            p95: m.p95_ms,
            p99: m.p99_ms,
        });
    }
    // The charts span the data (first window to now), not the whole asked range.
    let x0 = by_route
        .values()
        .flat_map(|s| s.windows.iter().map(|w| w.start_us))
        .min()
        .unwrap_or_else(|| ts_to_micros(since));
    let x1 = ts_to_micros(Timestamp::from(t)).max(x0 + 1);
    let mut rows: Vec<_> = by_route.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.count));
    for (_, s) in &mut rows {
        s.windows.sort_by_key(|w| w.start_us);
    }
    let body = html! {
        h1 { "Routes" }
        form.filters method="get" action={ (BASE) "/routes" } {
            label { "Since" input name="since" value=(since_txt) size="8"; }
            button.primary type="submit" { "Apply" }
            span.dim { "from the metric windows the pipeline stores (one per route and window); percentiles per window (relative error ≤ 2 %)" }
        }
        @if rows.is_empty() { (h::note("No metric windows in this range yet (they are flushed once per window, 60 s by default).")) } @else {
            table.routes {
                thead { tr { th { "Route" } th.num { "Requests" } th.num { "Error rate" } th.num { "p50" } th.num { "p95" } th.num { "p99" } th { "Requests / errors" } th { "p50 / p95 / p99 (ms)" } } }
                tbody {
                    @for ((route, method), s) in &rows {
                        @let p99max = s.windows.iter().map(|w| w.p99).fold(0.0, f64::max);
                        tr {
                            td.mono { (method) " " (route) }
                            td.num { (s.count) }
                            td.num.err[s.errors > 0] { (format!("{:.1} %", if s.count == 0 { 0.0 } else { s.errors as f64 * 100.0 / s.count as f64 })) }
                            td.num { (fmt_ms(s.weighted(|w| w.p50))) }
                            td.num { (fmt_ms(s.weighted(|w| w.p95))) }
                            td.num title="the highest window p99" { (fmt_ms(p99max)) }
                            td { (line_chart(&[
                                ("requests", "line-req", s.series(false, |w| w.count as f64)),
                                ("errors", "line-err", s.series(false, |w| w.errors as f64)),
                            ], x0, x1, "req/window")) }
                            td { (line_chart(&[
                                ("p50", "line-p50", s.series(true, |w| w.p50)),
                                ("p95", "line-p95", s.series(true, |w| w.p95)),
                                ("p99", "line-p99", s.series(true, |w| w.p99)),
                            ], x0, x1, "ms")) }
                        }
                    }
                }
            }
            p.note { "p50 and p95 are averaged over windows weighted by requests; p99 is the highest window's. Charts draw at most 300 points a line: past that, each point is a run of windows (requests and errors: their mean per window; latencies: their highest)." }
        }
    };
    Ok(page("Routes", "/routes", Some(&session.csrf), body).into_response())
}

// ---------------------------------------------------------------------------------------
// Health

pub(crate) async fn health(State(state): St, Extension(session): Extension<Session>) -> Response {
    let body = match &state.pipeline {
        None => {
            html! { h1 { "Health" } (h::note("No pipeline attached: ConsoleBuilder::pipeline(tp.handle()).")) }
        }
        Some(handle) => {
            let report = handle.health();
            let counts: BTreeMap<String, tracepost_core::SinkCounts> =
                handle.sink_counts().into_iter().collect();
            html! {
                h1 { "Health " span class=(match report.state.as_str() { "up" => "ok", "degraded" => "warn", _ => "err" }) { (report.state.as_str()) } }
                table.health {
                    thead { tr { th { "Sink" } th { "State" } th.num { "Queued" } th.num { "Sent" } th.num { "Retried" } th.num { "Spooled" } th.num { "Spool bytes" } th { "Oldest spooled" } th.num { "Dropped" } th { "Last error" } } }
                    tbody { @for s in &report.sinks {
                        @let c = counts.get(&s.name);
                        tr {
                            td.mono { (s.name) }
                            td { span class=(match s.state.as_str() { "up" => "ok", "degraded" => "warn", _ => "err" }) { (s.state.as_str()) } }
                            td.num { (s.queued_events) }
                            td.num { (c.map_or(0, |c| c.sent)) }
                            td.num { (c.map_or(0, |c| c.retried)) }
                            td.num { (c.map_or(0, |c| c.spooled)) }
                            td.num { (s.spool_bytes) }
                            td { @if let Some(a) = s.oldest_spooled_age { (format!("{} s", a.as_secs())) } @else { "—" } }
                            td.num { (c.map_or(0, |c| c.dropped_total()))
                                @if let Some(c) = c { @for (reason, n) in &c.dropped { @if *n > 0 { br; span.dim { (reason) ": " (n) } } } } }
                            td.msg.mono { @if let Some(e) = &s.last_error { span.err { (e) } } @else { span.dim { "—" } } }
                        }
                    } }
                }
                @if let Some(t) = &state.tail {
                    @let s = t.stats();
                    h2 { "Live tail" }
                    p { (s.clients) " clients · " (s.published) " events published · " (s.missed) " missed by slow clients · " (s.refused) " refused (too many clients)" }
                }
            }
        }
    };
    page("Health", "/health", Some(&session.csrf), body).into_response()
}
