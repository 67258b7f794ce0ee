//! A log server for services in any language: OTLP/HTTP logs at
//! `POST /tracepost/v1/logs` and the JSON batch at `POST /tracepost/v1/batch`, with the
//! project key from `TRACEPOST_KEY` (make one with `openssl rand -hex 32` and prefix
//! `tpk_`), events written as NDJSON files under `logs/`.
//!
//! `TRACEPOST_KEY=tpk_… cargo run -p tracepost-ingest --example log_server` (port 4318,
//! OTLP's, or `PORT`). It stops on Ctrl-C or SIGTERM, after flushing what it accepted.

// ANCHOR: imports
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracepost_core::sinks::JsonlFile;
use tracepost_core::Tracepost;
use tracepost_ingest::logs::StaticKeys;
use tracepost_ingest::{LogIngest, LogIngestConfig};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No default key: a constant in the source would be public. Refuse to start instead.
    let key = std::env::var("TRACEPOST_KEY").map_err(|_| {
        "TRACEPOST_KEY is not set: make a key with `echo tpk_$(openssl rand -hex 32)`"
    })?;
    // A malformed key would only make every request a 401: refuse to start instead.
    if !tracepost_ingest::logs::keys::is_well_formed(&key) {
        return Err(
            "TRACEPOST_KEY must be tpk_ and 64 hex digits: make one with \
                    `echo tpk_$(openssl rand -hex 32)`"
                .into(),
        );
    }
    let port: u16 = std::env::var("PORT").map_or(Ok(4318), |p| p.parse())?;
    // ANCHOR: setup
    let tp = Tracepost::builder()
        .service("log-server")
        .sink(JsonlFile::new("logs"))
        .build()?;
    // Keys from configuration; with Postgres: `Arc::new(pg_store)` (feature `ingest` of
    // tracepost-postgres), managed with `tracepost keys create|list|rotate|revoke`.
    let keys = StaticKeys::new([("my-project", key)], false);
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new()
            .max_batch_events(250)
            .per_key_limit(100, 200),
        Arc::new(keys),
    )?;
    let app: axum::Router = tracepost_ingest::logs_router(logs);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    println!("log_server: listening on {}", listener.local_addr()?);
    // Ctrl-C or SIGTERM: stop accepting, finish the requests in flight, then flush every
    // accepted log to the sinks. A body has its read deadline (`408` after 10 s), but a
    // client trickling its request *head* is the server's to cut: give the requests in
    // flight a grace period (SHUTDOWN_GRACE_SECS, 10 s), then stop waiting for them.
    let grace =
        Duration::from_secs(std::env::var("SHUTDOWN_GRACE_SECS").map_or(Ok(10), |s| s.parse())?);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut signalled = stopping.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = signalled.wait_for(|s| *s).await;
    });
    let mut signalled = stopping;
    tokio::select! {
        served = server => served?,
        _ = async {
            let _ = signalled.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => eprintln!("log_server: connections still open {grace:?} after the signal; closing them"),
    }
    tp.shutdown(Duration::from_secs(5)).await;
    // ANCHOR_END: setup
    Ok(())
}

// ANCHOR: shutdown
/// Resolves on Ctrl-C (SIGINT) or SIGTERM — what `docker stop`, systemd and Kubernetes send
/// — so that the server drains and the pipeline flushes instead of the process dying with
/// accepted events still queued.
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
