#![doc = include_str!("../docs.md")]

mod analytics;
mod auth;
pub mod filter;
mod html;
mod pages;
mod recordings;
pub mod replay;
/// The live tail hub (moved to `tracepost_core::tail`, shared with the query API).
pub mod tail {
    pub use tracepost_core::tail::*;
}

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tracepost_core::store::Store;
use tracepost_core::TracepostHandle;

pub use auth::{COOKIE, MAX_SESSIONS, SESSION_TTL};
pub use recordings::{DEFAULT_PLAYER_CSS, DEFAULT_PLAYER_JS, MAX_TIMELINE};
pub use replay::ReplayPolicy;
pub use tail::{LiveTail, TailSink, TailStats};

/// Where the console is served: every route is under this path.
pub const BASE: &str = "/tracepost/console";

/// The smallest admin token accepted (characters).
pub const MIN_TOKEN_LEN: usize = 16;

/// The console: build it with [`Console::builder`], serve [`Console::router`].
#[derive(Clone)]
pub struct Console {
    state: Arc<ConsoleState>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field(
                "auth",
                &match self.state.auth.mode {
                    auth::AuthMode::Token(_) => "admin token",
                    auth::AuthMode::Host { .. } => "host auth layer",
                },
            )
            .field("replay", &self.state.replay)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ConsoleState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) auth: auth::Auth,
    pub(crate) pipeline: Option<TracepostHandle>,
    pub(crate) tail: Option<LiveTail>,
    pub(crate) replay: ReplayPolicy,
    pub(crate) client: reqwest::Client,
    pub(crate) segments: Option<Arc<dyn recordings::Segments>>,
    pub(crate) player: recordings::Player,
}

/// Settings of a [`Console`]. Exactly one of [`admin_token`](Self::admin_token) and
/// [`trust_host_auth`](Self::trust_host_auth) is required.
pub struct ConsoleBuilder {
    store: Arc<dyn Store>,
    token: Option<String>,
    host_auth: bool,
    secure_cookie: bool,
    pipeline: Option<TracepostHandle>,
    tail: Option<LiveTail>,
    replay: ReplayPolicy,
    segments: Option<Arc<dyn recordings::Segments>>,
    player: recordings::Player,
}

impl std::fmt::Debug for ConsoleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleBuilder")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("host_auth", &self.host_auth)
            .field("secure_cookie", &self.secure_cookie)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

/// A console that can't be built: `field` names the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("console config: {field}: {message}")]
#[non_exhaustive]
pub struct ConsoleError {
    /// The builder setting (`admin_token`, `replay_base_url`, …).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn config_error(field: &'static str, message: impl Into<String>) -> ConsoleError {
    ConsoleError {
        field,
        message: message.into(),
    }
}

impl Console {
    /// A builder reading from `store` (an `Arc<dyn Store>`: `Arc::new(sqlite_sink.store().clone())`,
    /// a Postgres store, …).
    pub fn builder(store: Arc<dyn Store>) -> ConsoleBuilder {
        ConsoleBuilder {
            store,
            token: None,
            host_auth: false,
            secure_cookie: false,
            pipeline: None,
            tail: None,
            replay: ReplayPolicy::default(),
            segments: None,
            player: recordings::Player::default(),
        }
    }

    /// The console's routes, all under [`BASE`] (`/tracepost/console`): merge them into the
    /// app's router (`app.merge(console.router())`).
    ///
    /// Pages: `/issues`, `/issue/{fingerprint}`, `/event/{id}`, `/events`, `/live`,
    /// `/traces`, `/trace/{trace_id}`, `/routes`, `/sessions` (recorded browser sessions),
    /// `/replays/{session_id}` (the replay viewer, `?t=` offset in ms), `/analytics`,
    /// `/health`; actions (`POST`, CSRF-checked): `/issue/{fingerprint}/status`,
    /// `/event/{id}/replay`, `/login`, `/logout`; the live tail's stream: `GET /api/tail`
    /// (Server-Sent Events); replay data: `GET /v1/replay/{session_id}` (the index row, the
    /// segment list and the timeline, JSON) and `GET /v1/replay/{session_id}/{segment}` (one
    /// segment as stored, `Content-Encoding: gzip`). Every route but `/login` and the static
    /// files needs the admin session (or the host's auth): pages redirect to the login form,
    /// `/api/` and `/v1/` answer 401 JSON.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let p = |s: &str| format!("{BASE}{s}");
        let guarded = Router::new()
            .route(
                &p(""),
                get(|| async { Redirect::to(&format!("{BASE}/issues")) }),
            )
            .route(
                &p("/"),
                get(|| async { Redirect::to(&format!("{BASE}/issues")) }),
            )
            .route(&p("/issues"), get(pages::issues))
            .route(&p("/issue/{fingerprint}"), get(pages::issue))
            .route(&p("/issue/{fingerprint}/status"), post(pages::set_status))
            .route(&p("/event/{id}"), get(pages::event))
            .route(&p("/event/{id}/replay"), post(pages::replay))
            .route(&p("/events"), get(pages::events))
            .route(&p("/live"), get(pages::live))
            .route(&p("/api/tail"), get(pages::tail_stream))
            .route(&p("/traces"), get(pages::traces))
            .route(&p("/trace/{trace_id}"), get(pages::trace))
            .route(&p("/routes"), get(pages::routes))
            .route(&p("/sessions"), get(recordings::sessions))
            .route(&p("/replays/{session_id}"), get(recordings::viewer))
            .route(&p("/v1/replay/{session_id}"), get(recordings::session_json))
            .route(
                &p("/v1/replay/{session_id}/{segment}"),
                get(recordings::segment),
            )
            .route(&p("/analytics"), get(analytics::analytics))
            .route(&p("/health"), get(pages::health))
            .route(&p("/logout"), post(pages::logout))
            .route_layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                require_session,
            ));
        Router::new()
            .route(&p("/login"), get(pages::login_form).post(pages::login))
            .route(
                &p("/static/console.css"),
                get(|| async { asset("text/css", html::CSS) }),
            )
            .route(
                &p("/static/console.js"),
                get(|| async { asset("text/javascript", html::JS) }),
            )
            .route(
                &p("/static/replay.js"),
                get(|| async { asset("text/javascript", html::REPLAY_JS) }),
            )
            .merge(guarded)
            // The console's pages are tracepost's own: the tower layer doesn't record them,
            // wherever the router is merged (a route layer: the fallback stays unmarked).
            .route_layer(axum::middleware::map_response(
                |mut r: Response| async move {
                    r.extensions_mut().insert(tracepost_core::capture::OwnRoute);
                    r
                },
            ))
            .layer(axum::middleware::from_fn(security_headers))
            .with_state(self.state.clone())
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Signed in (or behind the host's auth): the session goes into the request's extensions.
/// Otherwise pages redirect to the login form and the API answers 401 JSON.
async fn require_session(
    State(state): State<Arc<ConsoleState>>,
    mut req: Request,
    next: Next,
) -> Response {
    match state.auth.session(req.headers()) {
        Some(s) => {
            req.extensions_mut().insert(s);
            next.run(req).await
        }
        None if req.uri().path().starts_with(&format!("{BASE}/api/"))
            || req.uri().path().starts_with(&format!("{BASE}/v1/")) =>
        {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": "unauthorized",
                    "detail": "sign in at /tracepost/console/login"
                })),
            )
                .into_response()
        }
        None => Redirect::to(&format!("{BASE}/login")).into_response(),
    }
}

/// A strict Content-Security-Policy (only the console's own script and styles; no inline
/// script can run even if some markup slipped through), no caching, no framing, no referrer.
/// Captured text may hold characters that change what a reader sees without being seen:
/// bidirectional overrides and isolates (`U+202E` turns "txt.exe" around), line and
/// paragraph separators, C0/C1 controls (NUL, ESC). The console shows each as a visible
/// escape (`\u{202e}`, `\x1b`) instead — line feeds and tabs stay (backtraces and bodies in
/// `<pre>`). No template of the console writes such a character itself.
fn visible_controls(html: &str) -> Option<String> {
    match tracepost_core::escape_control_multiline(html) {
        std::borrow::Cow::Owned(page) => Some(page),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// The most of an HTML page [`security_headers`] reads to make hidden characters visible
/// (pages are far smaller: event bodies are capped when captured).
const MAX_PAGE_BYTES: usize = 32 << 20;

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        let (mut parts, body) = resp.into_parts();
        resp = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
            Ok(bytes) => match std::str::from_utf8(&bytes).ok().and_then(visible_controls) {
                Some(page) => {
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Response::from_parts(parts, axum::body::Body::from(page))
                }
                None => Response::from_parts(parts, axum::body::Body::from(bytes)),
            },
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "page too large").into_response(),
        };
    }
    let h = resp.headers_mut();
    // A page may set its own (the replay viewer allows the player's origin).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

impl ConsoleBuilder {
    /// Sign-in with this token (at least [`MIN_TOKEN_LEN`] characters; keep it out of the
    /// source: an environment variable or a secret store). The login form exchanges it for
    /// a cookie session.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// No sign-in: the host wraps [`Console::router`] in its own authentication layer (an
    /// axum `route_layer`, a reverse proxy's auth) and the console trusts every request that
    /// reaches it. CSRF checks stay on.
    pub fn trust_host_auth(mut self) -> Self {
        self.host_auth = true;
        self
    }

    /// Marks the session cookie `Secure` (send it over HTTPS only). Default off, for
    /// `http://localhost`; turn it on behind TLS.
    pub fn secure_cookie(mut self, on: bool) -> Self {
        self.secure_cookie = on;
        self
    }

    /// The pipeline whose sinks the Health page shows.
    pub fn pipeline(mut self, handle: TracepostHandle) -> Self {
        self.pipeline = Some(handle);
        self
    }

    /// The live tail to stream (its [`LiveTail::sink`] must be one of the pipeline's sinks).
    pub fn live_tail(mut self, tail: LiveTail) -> Self {
        self.tail = Some(tail);
        self
    }

    /// Turns on *replay request*: captured requests are sent again to this base URL
    /// (`http://127.0.0.1:3000/`; never to another host). Off by default.
    pub fn replay_base_url(mut self, url: &str) -> Result<Self, ConsoleError> {
        let mut u = reqwest::Url::parse(url)
            .map_err(|e| config_error("replay_base_url", format!("{url:?}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(config_error(
                "replay_base_url",
                format!("{url:?}: an http(s) URL with a host is needed"),
            ));
        }
        if !u.path().ends_with('/') {
            let p = format!("{}/", u.path());
            u.set_path(&p);
        }
        self.replay.base = Some(u);
        Ok(self)
    }

    /// Where recorded sessions' segments are read from: the same [`ReplayStore`] the
    /// replay upload route writes to (a local directory by default, S3/MinIO/GCS through
    /// `tracepost-opendal`, or `tracepost-s3`). Without it the Sessions list still shows the
    /// index, and the viewer says no replay store is configured.
    ///
    /// [`ReplayStore`]: tracepost_core::object_store::ReplayStore
    pub fn replays<S: tracepost_core::object_store::ObjectStore>(
        mut self,
        store: tracepost_core::object_store::ReplayStore<S>,
    ) -> Self {
        self.segments = Some(Arc::new(store));
        self
    }

    /// Where the viewer loads rrweb-player from: its UMD script and stylesheet (default
    /// [`DEFAULT_PLAYER_JS`] and [`DEFAULT_PLAYER_CSS`], rrweb-player 2.1.6 on jsDelivr). Serve
    /// them yourself (`/assets/rrweb-player.min.js`) for a console without internet access;
    /// another origin is added to the viewer's Content-Security-Policy.
    pub fn replay_player(mut self, js_url: impl Into<String>, css_url: impl Into<String>) -> Self {
        self.player = recordings::Player {
            js: js_url.into(),
            css: css_url.into(),
        };
        self
    }

    /// The methods a replay may send. Default `GET`, `HEAD`: add others only for
    /// idempotent endpoints of a test environment.
    pub fn replay_methods<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        methods: I,
    ) -> Self {
        self.replay.methods = methods
            .into_iter()
            .map(|m| m.into().to_ascii_uppercase())
            .collect();
        self
    }

    /// Adds a path prefix never replayed (`/admin`, `/payments`). `/tracepost` is always on
    /// the list.
    pub fn replay_deny_path(mut self, prefix: impl Into<String>) -> Self {
        self.replay.deny_paths.push(prefix.into());
        self
    }

    /// How long a replay may take. Default 10 s.
    pub fn replay_timeout(mut self, timeout: Duration) -> Self {
        self.replay.timeout = timeout;
        self
    }

    /// The console, or the setting at fault: no authentication chosen, both chosen, or a
    /// token shorter than [`MIN_TOKEN_LEN`].
    pub fn build(self) -> Result<Console, ConsoleError> {
        let mode = match (self.token, self.host_auth) {
            (Some(_), true) => {
                return Err(config_error(
                    "admin_token",
                    "choose admin_token or trust_host_auth, not both",
                ))
            }
            (None, false) => {
                return Err(config_error(
                    "admin_token",
                    "the console refuses to run open: set admin_token(..) or \
                     trust_host_auth() behind your own auth layer",
                ))
            }
            (Some(t), false) if t.chars().count() < MIN_TOKEN_LEN => {
                return Err(config_error(
                    "admin_token",
                    format!("at least {MIN_TOKEN_LEN} characters"),
                ))
            }
            (Some(t), false) => auth::AuthMode::Token(t),
            (None, true) => auth::AuthMode::Host {
                csrf: auth::random_token(),
            },
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| config_error("replay_base_url", format!("HTTP client: {e}")))?;
        Ok(Console {
            state: Arc::new(ConsoleState {
                store: self.store,
                auth: auth::Auth::new(mode, self.secure_cookie),
                pipeline: self.pipeline,
                tail: self.tail,
                replay: self.replay,
                client,
                segments: self.segments,
                player: self.player,
            }),
        })
    }
}
