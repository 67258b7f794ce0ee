//! The axum routes (feature `axum`): a thin adapter over [`Ingest`]'s handlers.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;

use crate::{Ingest, IngestError};

fn into_axum(r: http::Response<Bytes>) -> Response {
    r.map(Body::from)
}

/// Marks each response as tracepost's own ([`OwnRoute`](tracepost_core::capture::OwnRoute)),
/// so the tower layer doesn't record the routes as app requests wherever they are merged.
/// A `route_layer`: the router's fallback stays unmarked (see `OwnRoute` on merge order).
pub(crate) fn own_routes<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.route_layer(axum::middleware::map_response(
        |mut r: Response| async move {
            r.extensions_mut().insert(tracepost_core::capture::OwnRoute);
            r
        },
    ))
}

/// The browser routes (marked [`OwnRoute`](tracepost_core::capture::OwnRoute)): `GET {prefix}/tp.js` and `{prefix}/tp-vitals.js`, `POST`/`OPTIONS
/// {prefix}/v1/events`. Any other path under the prefix answers `404 not_found`, another
/// method on these paths `405 method_not_allowed` (with `Allow`), both with the JSON error
/// body (with an empty prefix there is no catch-all: the host's own 404 stays).
///
/// The token route is **not** here: mount [`token_router`] behind the host's own
/// authentication when single-page apps need fresh tokens.
///
/// Serve the app with `into_make_service_with_connect_info::<SocketAddr>()` so the routes
/// see each client's address (without it every client shares one rate limit).
pub fn router<S: Clone + Send + Sync + 'static>(ingest: Ingest) -> Router<S> {
    events_router(ingest)
}

/// The same routes as [`router`] (kept for callers of the earlier name).
pub fn events_router<S: Clone + Send + Sync + 'static>(ingest: Ingest) -> Router<S> {
    let prefix = ingest.config().prefix.clone();
    let script = ingest.clone();
    let vitals = ingest.clone();
    let events = ingest.clone();
    let preflight = ingest;
    let router = Router::new()
        .route(
            &format!("{prefix}/tp.js"),
            get(move |req: Request| async move { into_axum(script.script(req.headers())) })
                .fallback(method_not_allowed("GET, HEAD")),
        )
        .route(
            &format!("{prefix}/tp-vitals.js"),
            get(move |req: Request| async move { into_axum(vitals.vitals_script(req.headers())) })
                .fallback(method_not_allowed("GET, HEAD")),
        )
        .route(
            &format!("{prefix}/v1/events"),
            post(move |req: Request| async move {
                let peer = peer(&req);
                let (parts, body) = req.into_parts();
                into_axum(
                    events
                        .events(&parts.headers, parts.uri.query(), peer, body)
                        .await,
                )
            })
            .options(
                move |req: Request| async move { into_axum(preflight.preflight(req.headers())) },
            )
            .fallback(method_not_allowed("POST, OPTIONS")),
        );
    own_routes(with_not_found(router, &prefix))
}

/// `GET {prefix}/v1/token`: a fresh upload token for the calling page (see
/// [`Ingest::token`]), for single-page apps that outlive theirs. Whoever can call it can send
/// events, so it is opt-in and guarded: `guard` sees each request's head (headers — the
/// host's session cookie or bearer token —, URI, and the extensions the host's own
/// middleware set) and returns whether the caller is one of the host's signed-in users. A
/// refused request gets `401 unauthorized` with the JSON error body; the key, origin and
/// token checks follow for the others.
///
/// ```no_run
/// # fn app(ingest: tracepost_ingest::Ingest) -> axum::Router {
/// let token_route = tracepost_ingest::token_router(ingest, |head: &http::request::Parts| {
///     // The host's own check: here a session cookie its login route set.
///     head.headers
///         .get(http::header::COOKIE)
///         .and_then(|c| c.to_str().ok())
///         .is_some_and(|c| c.contains("session=")) // look the session up for real
/// });
/// axum::Router::new().merge(token_route)
/// # }
/// ```
///
/// A host whose authentication is a tower layer can pass `|_| true` and wrap the router in
/// that layer (`.route_layer(..)`): the choice is then explicit.
pub fn token_router<S, G>(ingest: Ingest, guard: G) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    G: Fn(&http::request::Parts) -> bool + Clone + Send + Sync + 'static,
{
    let prefix = ingest.config().prefix.clone();
    own_routes(Router::new().route(
        &format!("{prefix}/v1/token"),
        get(move |req: Request| async move {
            let (parts, _body) = req.into_parts();
            if !guard(&parts) {
                return into_axum(
                    IngestError::unauthorized(
                        "unauthorized",
                        "the token route needs the host's authentication, which refused this request",
                    )
                    .to_response(),
                );
            }
            into_axum(ingest.token(&parts.headers, parts.uri.query()))
        })
        .fallback(method_not_allowed("GET, HEAD")),
    ))
}

/// A `405 method_not_allowed` handler with the JSON error body and `Allow: allow`.
pub(crate) fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(Request) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |req: Request| {
        let mut r = IngestError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not accepted here: use {allow}",
                tracepost_core::truncate_utf8(req.method().as_str(), 20)
            ),
        )
        .to_response();
        r.headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        std::future::ready(into_axum(r))
    }
}

/// Adds `{under}/{*rest}` answering `404 not_found` with the JSON error body (nothing when
/// `under` is empty: a catch-all at the root would take the host's own 404).
fn with_not_found<S: Clone + Send + Sync + 'static>(router: Router<S>, under: &str) -> Router<S> {
    if under.is_empty() {
        return router;
    }
    router.route(
        &format!("{under}/{{*rest}}"),
        any(|req: Request| async move {
            into_axum(
                IngestError::new(
                    http::StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "no ingest route at {}",
                        tracepost_core::truncate_utf8(req.uri().path(), 200)
                    ),
                )
                .to_response(),
            )
        }),
    )
}

/// `POST {prefix}/v1/logs` (OTLP/HTTP logs) and `POST {prefix}/v1/batch` (JSON batch) of a
/// [`LogIngest`](crate::LogIngest); any other path under `{prefix}/v1/` answers `404
/// not_found`, another method `405 method_not_allowed`, with the JSON error body. Serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` for per-address rate limits.
pub fn logs_router<S: Clone + Send + Sync + 'static>(logs: crate::LogIngest) -> Router<S> {
    let prefix = logs.config().prefix.clone();
    let otlp = logs.clone();
    let router = Router::new()
        .route(
            &format!("{prefix}/v1/logs"),
            post(move |req: Request| async move {
                let peer = peer(&req);
                let (parts, body) = req.into_parts();
                into_axum(otlp.otlp_logs(&parts.headers, peer, body).await)
            })
            .fallback(method_not_allowed("POST")),
        )
        .route(
            &format!("{prefix}/v1/batch"),
            post(move |req: Request| async move {
                let peer = peer(&req);
                let (parts, body) = req.into_parts();
                into_axum(logs.batch(&parts.headers, peer, body).await)
            })
            .fallback(method_not_allowed("POST")),
        );
    // `{prefix}/v1/…` only: the browser router (same default prefix) holds `{prefix}/…`.
    own_routes(if prefix.is_empty() {
        router
    } else {
        with_not_found(router, &format!("{prefix}/v1"))
    })
}

fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}
