//! The book's "Add tracepost to your app" chapter: the README's integration, plus a route
//! that panics on purpose. `cargo run -p my-app`, then `curl -i localhost:3000/boom`.

use std::time::Duration;

use axum::{routing::get, Router};
use tracepost::prelude::*; // adds .layer(), .tracing_layer(), .metrics_router(), .health_router()
use tracing_subscriber::{prelude::*, EnvFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tp = tracepost::Tracepost::builder()
        .service("my-app")
        .sink(tracepost::sinks::Console::default())
        .sink(tracepost::sinks::JsonlFile::new("./tracepost-data"))
        .data_dir("./tracepost-data")
        .build()?;
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::fmt::layer())
        .with(tp.tracing_layer())
        .init();

    let app = Router::new()
        .route("/users/{id}", get(|| async { "ann" }))
        .route("/boom", get(boom))
        .merge(tp.metrics_router())
        .merge(tp.health_router())
        .layer(tp.layer());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tp.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// Panics on purpose, to see tracepost capture it.
async fn boom() -> &'static str {
    tracing::info!("about to fail on purpose");
    panic!("this route fails on purpose")
}

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
