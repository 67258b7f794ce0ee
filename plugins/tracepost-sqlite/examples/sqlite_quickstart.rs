//! The SQLite store end to end: capture, flush, query.
//!
//! `cargo run -p tracepost-sqlite --example sqlite_quickstart [DIR]` (default: a scratch
//! directory under the system's temp dir).

// ANCHOR: imports
use std::sync::Arc;
use std::time::Duration;

use tracepost_core::store::{EventFilter, Store};
use tracepost_core::{ErrorDetail, Event, Kind, Level, Tracepost};
use tracepost_sqlite::SqliteSink;
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("tracepost-sqlite-{}", std::process::id())),
        Into::into,
    );
    // ANCHOR: setup
    let sink = SqliteSink::builder(&dir) // the file: <dir>/tracepost.sqlite3
        .retention(Duration::from_secs(7 * 86_400)) // deleted in the background
        .build(); // no I/O yet: a bad directory never stops the app from starting
    let store: Arc<dyn Store> = Arc::new(sink.store().clone()); // for queries
    let tp = Tracepost::builder()
        .service("checkout")
        .sink(sink)
        .build()?;
    // ANCHOR_END: setup

    for i in 0..3 {
        tp.handle().capture(
            Event::new(Kind::Error, Level::Error, format!("payment timeout #{i}")).with_error(
                ErrorDetail {
                    error_type: "Timeout".into(),
                    message: "upstream took 30 s".into(),
                    backtrace: None,
                    location: None,
                },
            ),
        );
    }
    tp.shutdown(Duration::from_secs(5)).await;

    // ANCHOR: query
    // Full-text search (case-insensitive substrings), newest first, 50 a page.
    let filter = EventFilter::new()
        .kind(Kind::Error)
        .service("checkout")
        .message_contains("TIMEOUT");
    let page = store.events(&filter, 50, None).await?;
    for e in &page.events {
        println!("{} {} {}", e.timestamp, e.level, e.message);
    }
    // The next page starts after the cursor (also as text: `next.to_string()`).
    if let Some(next) = page.next {
        let _older = store.events(&filter, 50, Some(next)).await?;
    }
    // Errors grouped by fingerprint, most frequent first; events per minute.
    for issue in store.top_issues(None, 10).await? {
        println!("{} × {}: {}", issue.count, issue.fingerprint, issue.title);
    }
    let per_minute = store.histogram(&filter, Duration::from_secs(60)).await?;
    // ANCHOR_END: query
    assert_eq!(page.events.len(), 3);
    assert_eq!(per_minute.iter().map(|b| b.count).sum::<u64>(), 3);
    println!(
        "stored in {}",
        dir.join(tracepost_sqlite::DB_FILE).display()
    );
    Ok(())
}
