//! Run: `cargo run -p app-metrics`, then `curl -d '{"payment":"card","euros":42}' -H
//! 'content-type: application/json' localhost:3001/orders`, `curl 'localhost:3001/search?q=s'`
//! and `curl localhost:3001/metrics`: `shop_*` next to `http_server_*` and `tracepost_*`.

// ANCHOR: imports
use std::time::Duration;

use tracepost::prelude::*;
// ANCHOR_END: imports

// ANCHOR: main
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tp = tracepost::Tracepost::builder()
        .service("shop")
        .sink(tracepost::sinks::Console::default())
        .build()?;
    let shop_metrics = app_metrics::ShopMetrics::register(&tp);
    app_metrics::install_metrics_facade(&tp)?;

    let app = app_metrics::app(shop_metrics)
        .merge(tp.metrics_router())
        .layer(tp.layer());
    let addr = std::env::var("APP_METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tp.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
// ANCHOR_END: main

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
