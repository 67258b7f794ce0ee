//! Run: `DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/… ADMIN_TOKEN=choose-one
//! cargo run -p alerts-example`, then `curl localhost:3002/orders/0` (a 500: a "New issue"
//! message in Discord) and `curl -X POST -H 'authorization: Bearer choose-one'
//! localhost:3002/admin/alerts/test` (a test alert).

// ANCHOR: main
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DISCORD_WEBHOOK_URL")
        .map_err(|_| "set DISCORD_WEBHOOK_URL to a Discord webhook URL")?;
    let token = std::env::var("ADMIN_TOKEN").map_err(|_| "set ADMIN_TOKEN")?;
    let data_dir = std::path::Path::new("./tracepost-data");
    let engine = alerts_example::alert_engine(&url, data_dir)?;
    let tp = alerts_example::pipeline(&engine, data_dir)?;
    let app = alerts_example::app(&tp, &token);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tp.shutdown(Duration::from_secs(5)).await; // delivers the alerts still queued
    Ok(())
}
// ANCHOR_END: main

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
