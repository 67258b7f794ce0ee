//! Run: `cargo run -p tracepost --example spawn_in_request`, then
//! `curl -X POST localhost:3000/orders` and watch the console.
//!
//! Work a handler hands to another task stays part of its request: its logs become the
//! request's breadcrumbs, and a panic in it is an error event with the request's ids.

// ANCHOR: imports
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use tracepost::prelude::*;
use tracing_subscriber::prelude::*;
// ANCHOR_END: imports

// ANCHOR: handler
async fn create_order() -> &'static str {
    tracing::info!("order accepted");
    // `tracepost::spawn` is `tokio::spawn` that carries the current request's context.
    tracepost::spawn(async {
        let receipt = send_confirmation_email().await;
        // Reported as a `panic` error event, with this request's trace and request ids.
        receipt.expect("the mailer returned no receipt");
    });
    "accepted"
}
// ANCHOR_END: handler

/// A stand-in for a mail client that fails.
async fn send_confirmation_email() -> Option<String> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    None
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tp = tracepost::Tracepost::builder()
        .service("orders")
        .sink(tracepost::sinks::Console::default())
        .build()?;
    tracing_subscriber::registry()
        .with(tp.tracing_layer())
        .init();
    let app = Router::new()
        .route("/orders", post(create_order))
        .layer(tp.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tp.shutdown(Duration::from_secs(5)).await;
    Ok(())
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
