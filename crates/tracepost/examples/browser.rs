//! Browser capture: the ingest routes next to the app, and a page rendered with an upload
//! token in its script tag.
//!
//! `cargo run -p tracepost --features browser --example browser`, then open
//! <http://127.0.0.1:3000/>.

// ANCHOR: imports
use std::net::SocketAddr;

use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::response::Html;
use axum::routing::get;
use tracepost::ingest::IngestConfig;
use tracepost::prelude::*;
use tracepost::Tracepost;
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: setup
    let tp = Tracepost::builder()
        .service("shop")
        .sink(tracepost::sinks::Console::default())
        .browser(
            IngestConfig::new()
                .key("pk_shop_1") // public: it goes into the page
                .allowed_origin("https://shop.example") // pages of other hosts, if any
                .token_secret(token_secret())
                .require_token(true), // a scraped public key alone is useless
        )
        .sample_analytics("pageview", 0.5) // keep half the page views
        .build()?;

    let page = {
        let tp = tp.handle();
        move || async move {
            // A fresh token each time the page is rendered (valid 1 h by default).
            let token = tp.browser_token().map(|t| t.token).unwrap_or_default();
            Html(format!(
                r#"<!doctype html><title>Shop</title>
<script src="/tracepost/tp.js" data-key="pk_shop_1" data-token="{token}" defer></script>
<button onclick="tracepost.track('signup', {{plan: 'pro'}})">Sign up</button>"#
            ))
        }
    };
    // For single-page apps that outlive their token: GET /tracepost/v1/token, opt-in and
    // only for the host's signed-in users (whoever can call it can send events).
    let token_route = tp.token_router(|head: &Parts| {
        // The host's own check: here the session cookie its login route would set (look
        // the session up for real). Refused: 401 with the JSON error body.
        head.headers
            .get(COOKIE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.split("; ").any(|kv| kv == "session=signed-in"))
    })?;
    let app = axum::Router::new()
        .route("/", get(page))
        // tracepost's routes mark their responses as its own: merged before the layer, they
        // are not recorded as app requests, and the layer keeps measuring unmatched paths.
        .merge(tp.ingest_router()?) // GET /tracepost/tp.js, POST /tracepost/v1/events, …
        .merge(token_route)
        .layer(tp.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    // The client's address is the rate-limit key: serve with connect info.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal()) // Ctrl-C or SIGTERM
    .await?;
    // ANCHOR_END: setup
    tp.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

// ANCHOR: token_secret
/// `TP_TOKEN_SECRET`, else a random secret for this run with a warning: never a constant in
/// the source, which anyone could read and mint tokens with. Tokens minted with a random
/// secret stop verifying when the process restarts (and differ between replicas): set the
/// variable in production.
fn token_secret() -> String {
    std::env::var("TP_TOKEN_SECRET").unwrap_or_else(|_| {
        eprintln!(
            "warning: TP_TOKEN_SECRET is not set; using a random upload-token secret for this \
             run (tokens will not survive a restart)"
        );
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}
// ANCHOR_END: token_secret

// ANCHOR: shutdown
/// Resolves on Ctrl-C (SIGINT) or SIGTERM, so that the pipeline flushes before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        // A handler that can't be installed must not read as a signal (and stop the server).
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
// ANCHOR_END: shutdown
