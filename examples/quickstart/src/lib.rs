//! The quickstart's routes, in a library so that tests drive the same router.

// ANCHOR: imports
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tracing::Instrument;
// ANCHOR_END: imports

/// The demo page served at `/` (and at its client-side routes, `/demo/…`): it loads the
/// browser script from `/tracepost/tp.js` and has buttons that throw, reject a promise, track an
/// event, call the failing `/fail` and navigate without a page load.
pub const DEMO_PAGE: &str = include_str!("demo.html");

/// The app's routes (without tracepost: `main` adds the layer, `/metrics`, `/health` and the
/// browser ingest routes under `/tracepost`).
pub fn app() -> Router {
    Router::new()
        .route("/", get(demo_page))
        .route("/demo/{*route}", get(demo_page))
        .route("/users/{id}", get(user))
        .route("/checkout", post(checkout))
        .route("/fail", get(fail))
        .route("/panic", get(panic))
        .route("/slow", get(slow))
        .route("/stream", get(stream))
        .route("/rrweb.js", get(rrweb))
}

/// The rrweb build `/rrweb.js` redirects to when `QUICKSTART_RRWEB_JS` is unset: rrweb 2.2.2's
/// UMD bundle on jsDelivr, the release tracepost's browser tests record with (from npm).
pub const RRWEB_CDN: &str = "https://cdn.jsdelivr.net/npm/rrweb@2.2.2/dist/rrweb.umd.min.cjs";

/// Where `/rrweb.js` comes from, read from `QUICKSTART_RRWEB_JS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RrwebSource {
    /// Unset or empty: a redirect to [`RRWEB_CDN`], so the demo page records by default.
    Cdn,
    /// `off`: an empty script, and the page records nothing.
    Off,
    /// An `http://` or `https://` URL: a redirect there.
    Url(String),
    /// Anything else: a file served as is (e.g. `node_modules/rrweb/dist/rrweb.umd.min.cjs`,
    /// for a demo without internet access).
    File(std::path::PathBuf),
}

impl RrwebSource {
    /// Reads `QUICKSTART_RRWEB_JS`.
    pub fn from_env() -> Self {
        Self::parse(&std::env::var("QUICKSTART_RRWEB_JS").unwrap_or_default())
    }

    /// The source a value of `QUICKSTART_RRWEB_JS` names (see the variants).
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        if value.is_empty() {
            Self::Cdn
        } else if value.eq_ignore_ascii_case("off") {
            Self::Off
        } else if value.starts_with("https://") || value.starts_with("http://") {
            Self::Url(value.to_owned())
        } else {
            Self::File(value.into())
        }
    }
}

/// `/rrweb.js`, the recorder the demo page's `tp-replay.js` loads (tracepost does not ship
/// rrweb), from `QUICKSTART_RRWEB_JS` ([`RrwebSource`]): by default a redirect to rrweb on
/// jsDelivr ([`RRWEB_CDN`]); `off` disables recording; a URL or a file path otherwise. A file
/// that cannot be read is served as a script comment saying so (the page still works, and
/// records nothing).
async fn rrweb() -> axum::response::Response {
    let js = [("content-type", "text/javascript; charset=utf-8")];
    match RrwebSource::from_env() {
        RrwebSource::Cdn => axum::response::Redirect::temporary(RRWEB_CDN).into_response(),
        RrwebSource::Url(url) => axum::response::Redirect::temporary(&url).into_response(),
        RrwebSource::File(path) => match tokio::fs::read(&path).await {
            Ok(body) => (js, body).into_response(),
            Err(e) => (
                js,
                format!("// QUICKSTART_RRWEB_JS={path:?} is unreadable ({e}): no session replay\n"),
            )
                .into_response(),
        },
        RrwebSource::Off => (
            js,
            "// session replay is off (QUICKSTART_RRWEB_JS=off)\n".to_owned(),
        )
            .into_response(),
    }
}

/// The console viewer's rrweb-player, from `QUICKSTART_RRWEB_PLAYER`: a directory holding the
/// npm package `rrweb-player` (`node_modules/rrweb-player`), whose `umd/rrweb-player.min.js`
/// and `dist/style.css` the quickstart then serves at [`PLAYER_JS`] and [`PLAYER_CSS`], for a
/// console without internet access. Unset, `None`: the console loads rrweb-player from its
/// default CDN URL.
pub fn player_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("QUICKSTART_RRWEB_PLAYER")
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// Where the quickstart serves rrweb-player's script when [`player_dir`] names one.
pub const PLAYER_JS: &str = "/rrweb-player.js";
/// Where the quickstart serves rrweb-player's stylesheet when [`player_dir`] names one.
pub const PLAYER_CSS: &str = "/rrweb-player.css";

/// The routes serving rrweb-player from `dir` ([`player_dir`]); a missing file is a 404.
pub fn player_router(dir: std::path::PathBuf) -> Router {
    let file = |path: std::path::PathBuf, content_type: &'static str| {
        get(move || {
            let path = path.clone();
            async move {
                match tokio::fs::read(&path).await {
                    Ok(body) => ([("content-type", content_type)], body).into_response(),
                    Err(e) => (
                        StatusCode::NOT_FOUND,
                        format!("QUICKSTART_RRWEB_PLAYER: {}: {e}\n", path.display()),
                    )
                        .into_response(),
                }
            }
        })
    };
    Router::new()
        .route(
            PLAYER_JS,
            file(
                dir.join("umd/rrweb-player.min.js"),
                "text/javascript; charset=utf-8",
            ),
        )
        .route(
            PLAYER_CSS,
            file(dir.join("dist/style.css"), "text/css; charset=utf-8"),
        )
}

async fn demo_page() -> Html<&'static str> {
    Html(DEMO_PAGE)
}

// ANCHOR: spans
/// A handler with spans: `#[instrument]` opens a `user` span for the call, and the two steps
/// are child spans. With `span_level(INFO)` on the tracing layer they become `span` events,
/// drawn as a waterfall on the console's trace page.
#[tracing::instrument]
async fn user(Path(id): Path<u32>) -> Result<Json<Value>, StatusCode> {
    tracing::info!(user_id = id, "loading user");
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    let name = load_profile(id)
        .instrument(tracing::info_span!("db.query", db.table = "users"))
        .await;
    let body = tracing::info_span!("render").in_scope(|| json!({ "id": id, "name": name }));
    Ok(Json(body))
}

async fn load_profile(id: u32) -> String {
    tokio::time::sleep(Duration::from_millis(3)).await; // a database round trip
    tracing::debug!(user_id = id, "profile row read");
    format!("user {id}")
}
// ANCHOR_END: spans

async fn checkout(Json(order): Json<Value>) -> impl IntoResponse {
    tracing::info!(
        items = order["items"].as_array().map_or(0, Vec::len),
        "checking out"
    );
    tracing::warn!("payment provider answered 503");
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({ "error": "payment provider unavailable" })),
    )
}

#[tracing::instrument]
async fn fail() -> impl IntoResponse {
    tracing::info!("connecting to the inventory service");
    tracing::info_span!("inventory.lookup").in_scope(|| {
        tracing::error!(error = "connection refused", "inventory lookup failed");
    });
    (StatusCode::INTERNAL_SERVER_ERROR, "inventory unavailable\n")
}

async fn panic() -> String {
    tracing::info!("about to look up the cart");
    let carts: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    carts
        .get(&7)
        .cloned()
        .expect("cart must be loaded before checkout")
}

async fn slow(Query(q): Query<std::collections::HashMap<String, u64>>) -> &'static str {
    let ms = q.get("ms").copied().unwrap_or(1500);
    tracing::info!(ms, "doing something slow");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "done\n"
}

/// Streams `chunks` chunks (default 100) of `size` bytes (default 100 KiB), each chunk filled
/// with its index, as they are produced.
async fn stream(Query(q): Query<std::collections::HashMap<String, usize>>) -> impl IntoResponse {
    let chunks = q.get("chunks").copied().unwrap_or(100);
    let size = q.get("size").copied().unwrap_or(100 * 1024);
    let body = futures_util::stream::iter(
        (0..chunks)
            .map(move |i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (i % 26) as u8; size]))),
    );
    (
        [("content-type", "application/octet-stream")],
        Body::from_stream(body),
    )
}
