//! The axum routes (feature `axum`): a thin adapter over [`Ingest`]'s handlers.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;

use crate::Ingest;

fn into_axum(r: http::Response<Bytes>) -> Response {
    r.map(Body::from)
}

/// Marks each response as tracepost's own ([`OwnRoute`](tracepost_core::capture::OwnRoute)),
/// so the tower layer doesn't record the routes as app requests wherever they are merged.
/// A `route_layer`: the router's fallback stays unmarked (see `OwnRoute` on merge order).
fn own_routes<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.route_layer(axum::middleware::map_response(
        |mut r: Response| async move {
            r.extensions_mut().insert(tracepost_core::capture::OwnRoute);
            r
        },
    ))
}

/// `GET {prefix}/tp.js` and `{prefix}/tp-vitals.js`, `POST`/`OPTIONS {prefix}/v1/events` and
/// `GET {prefix}/v1/token`.
/// Serve the app with `into_make_service_with_connect_info::<SocketAddr>()` so the routes
/// see each client's address (without it every client shares one rate limit).
pub fn router<S: Clone + Send + Sync + 'static>(ingest: Ingest) -> Router<S> {
    events_router(ingest.clone()).merge(token_router(ingest))
}

/// [`router`] without the token route: `GET {prefix}/tp.js` and `{prefix}/tp-vitals.js`,
/// `POST`/`OPTIONS {prefix}/v1/events`.
pub fn events_router<S: Clone + Send + Sync + 'static>(ingest: Ingest) -> Router<S> {
    let prefix = ingest.config().prefix.clone();
    let script = ingest.clone();
    let vitals = ingest.clone();
    let events = ingest.clone();
    let preflight = ingest;
    let router = Router::new()
        .route(
            &format!("{prefix}/tp.js"),
            get(move |req: Request| async move { into_axum(script.script(req.headers())) }),
        )
        .route(
            &format!("{prefix}/tp-vitals.js"),
            get(move |req: Request| async move { into_axum(vitals.vitals_script(req.headers())) }),
        )
        .route(
            &format!("{prefix}/v1/events"),
            post(move |req: Request| async move {
                let peer = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                let (parts, body) = req.into_parts();
                into_axum(
                    events
                        .events(&parts.headers, parts.uri.query(), peer, body)
                        .await,
                )
            })
            .options(move |req: Request| async move {
                into_axum(preflight.preflight(req.headers()))
            }),
        );
    own_routes(router)
}

/// `GET {prefix}/v1/token` alone, to wrap in the host's own authentication
/// (`.route_layer(..)`): whoever can call it can send events.
pub fn token_router<S: Clone + Send + Sync + 'static>(ingest: Ingest) -> Router<S> {
    let prefix = ingest.config().prefix.clone();
    own_routes(Router::new().route(
        &format!("{prefix}/v1/token"),
        get(move |req: Request| async move {
            into_axum(ingest.token(req.headers(), req.uri().query()))
        }),
    ))
}

/// `POST {prefix}/v1/logs` (OTLP/HTTP logs) and `POST {prefix}/v1/batch` (JSON batch) of a
/// [`LogIngest`](crate::LogIngest). Serve with
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
            }),
        )
        .route(
            &format!("{prefix}/v1/batch"),
            post(move |req: Request| async move {
                let peer = peer(&req);
                let (parts, body) = req.into_parts();
                into_axum(logs.batch(&parts.headers, peer, body).await)
            }),
        );
    own_routes(router)
}

fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}
