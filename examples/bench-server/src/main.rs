//! Run: `cargo run --release -p bench-server -- tracepost 127.0.0.1:3100`
//!
//! The server `scripts/bench-wrk.sh` measures. Modes:
//! - `bare`: the axum routes alone;
//! - `tracepost`: the quickstart's integration (HTTP layer, tracing layer, `/metrics`), with
//!   events going to the NDJSON sink in a temporary directory;
//! - `tracepost-http-only`: the HTTP layer without the tracing layer (no request span, no
//!   breadcrumbs), to tell the two costs apart;
//! - `access-log`: `tracepost` with `SnapshotPolicy::default().sample_rate(1.0)`, so every
//!   request becomes a `request` event with its snapshot in the NDJSON file (issue 18's mode);
//! - `spans`: `tracepost` with spans on (`span_level(INFO)`, every trace kept) and the
//!   handler inside one `info_span!`, so each request produces one `span` event (the cost of
//!   turning spans on; `tracepost-one-span` is the same handler with spans off);
//! - `tower-http`: tower-http's `TraceLayer::new_for_http()` with a tracing registry (the peer
//!   most axum apps already use), for comparison.

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tracepost::prelude::*;
use tracing_subscriber::prelude::*;

/// [`routes`] with the handler inside a span.
fn routes_with_span() -> Router {
    use tracing::Instrument;
    Router::new().route("/", get(|| async { "ok" })).route(
        "/users/{id}",
        get(|Path(id): Path<u32>| {
            async move { Json::<Value>(json!({ "id": id, "name": "ann" })) }
                .instrument(tracing::info_span!("load_user", user.id = id))
        }),
    )
}

fn routes() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/users/{id}",
        get(|Path(id): Path<u32>| async move { Json::<Value>(json!({ "id": id, "name": "ann" })) }),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3100".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // Ctrl-C or SIGTERM (`kill`, as scripts/bench-wrk.sh stops it): drain, flush, and
    // remove the temporary sink directory.
    let shutdown = shutdown_signal();
    match mode.as_str() {
        "bare" => {
            axum::serve(listener, routes())
                .with_graceful_shutdown(shutdown)
                .await?
        }
        "tracepost" | "tracepost-http-only" | "access-log" | "spans" | "tracepost-one-span" => {
            let dir = std::env::temp_dir().join(format!("tracepost-bench-{}", std::process::id()));
            let tp = tracepost::Tracepost::builder()
                .service("bench")
                .sink(tracepost::sinks::JsonlFile::new(&dir))
                .build()?;
            // `tracepost-http-only`: no tracing layer, so no breadcrumb routing.
            if mode == "spans" {
                tracing_subscriber::registry()
                    .with(tp.tracing_layer().span_level(tracing::Level::INFO))
                    .init();
            } else if mode != "tracepost-http-only" {
                tracing_subscriber::registry()
                    .with(tp.tracing_layer())
                    .init();
            }
            let layer = if mode == "access-log" {
                tp.layer()
                    .snapshot_policy(tracepost::tower::SnapshotPolicy::default().sample_rate(1.0))
            } else {
                tp.layer()
            };
            let routes = if matches!(mode.as_str(), "spans" | "tracepost-one-span") {
                routes_with_span()
            } else {
                routes()
            };
            let app = routes.merge(tp.metrics_router()).layer(layer);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
            tp.shutdown(Duration::from_secs(5)).await;
            let _ = std::fs::remove_dir_all(dir);
        }
        "tower-http" => {
            tracing_subscriber::registry().init();
            let app = routes().layer(tower_http::trace::TraceLayer::new_for_http());
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        other => {
            return Err(format!("unknown mode {other:?}: bare | tracepost | tracepost-http-only | access-log | spans | tracepost-one-span | tower-http").into())
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
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
