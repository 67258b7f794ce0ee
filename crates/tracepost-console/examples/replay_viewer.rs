//! The console with session replay: recorded sessions indexed in SQLite, segments in a local
//! directory, backend events linked to their moment in the replay, and retention in the
//! background. The book's "Watch recorded sessions" page includes the marked parts.
//!
//! Run: `TRACEPOST_CONSOLE_TOKEN=<16+ characters> cargo run -p tracepost-console --example
//! replay_viewer`, then open <http://127.0.0.1:3000/tracepost/console/sessions>. Sessions appear
//! once the browser script records them and the upload route stores their segments in
//! `./tracepost-data/objects` (the same `ReplayStore`).

// ANCHOR: imports
use std::sync::Arc;
use std::time::Duration;

use tracepost_console::Console;
use tracepost_core::object_store::ReplayStore;
use tracepost_core::replay_index::spawn_replay_retention;
use tracepost_core::Tracepost;
use tracepost_opendal::OpendalStore;
use tracepost_sqlite::SqliteSink;
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("TRACEPOST_CONSOLE_TOKEN")
        .map_err(|_| "set TRACEPOST_CONSOLE_TOKEN (at least 16 characters)")?;
    // ANCHOR: setup
    let sqlite = SqliteSink::new("./tracepost-data");
    let store = sqlite.store().clone();
    // The same store the replay upload route writes segments to.
    let replays = ReplayStore::new(OpendalStore::fs("./tracepost-data/objects")?);

    let tp = Tracepost::builder()
        .service("shop")
        // Backend request/error events of a recorded session get `replay.url`.
        .replay_console_url("http://127.0.0.1:3000/tracepost/console")
        .sink(sqlite)
        .build()?;

    let console = Console::builder(Arc::new(store.clone()))
        .admin_token(token)
        .replays(replays.clone())
        .build()?;

    // Retention without cron: segments and index rows older than 30 days, checked hourly.
    let retention = spawn_replay_retention(
        replays,
        Arc::new(store),
        Duration::from_secs(30 * 86_400),
        Duration::from_secs(3600),
    );
    // ANCHOR_END: setup

    let app: axum::Router = console.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("console on http://127.0.0.1:3000/tracepost/console/sessions");
    let served = axum::serve(listener, app).await;
    retention.abort();
    tp.shutdown(Duration::from_secs(5)).await;
    Ok(served?)
}
