//! Events into Postgres, then read back with the query API.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run -p tracepost-postgres --example postgres_quickstart
//! ```

// ANCHOR: imports
use std::time::Duration;

use tracepost_core::{ErrorDetail, Event, Kind, Level, Timestamp, Tracepost};
use tracepost_postgres::{EventFilter, PostgresSink};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());

    // ANCHOR: setup
    let sink = PostgresSink::builder(&url)
        .retention(Duration::from_secs(14 * 24 * 3600)) // drop day partitions after 14 days
        .build()?; // no I/O: the first delivery connects, migrates and creates partitions
    let store = sink.store().clone(); // queries, retention, API keys

    let tp = Tracepost::builder()
        .service("checkout")
        .environment("dev")
        .sink(sink) // with PostgresSink::sink_options(): batches of up to 5 000 events
        .build()?;
    // ANCHOR_END: setup

    let h = tp.handle();
    h.capture(
        Event::new(Kind::Log, Level::Info, "order placed")
            .with_attribute("order_id", 9812)
            .with_attribute("region", "eu"),
    );
    h.capture(
        Event::new(Kind::Error, Level::Error, "could not save order").with_error(ErrorDetail {
            error_type: "sqlx::Error".into(),
            message: "connection reset by peer".into(),
            backtrace: None,
            location: Some("src/orders.rs:42".into()),
        }),
    );

    // ANCHOR: shutdown
    // Delivers what is queued (retrying through connection losses) before returning.
    tp.shutdown(Duration::from_secs(10)).await;
    // ANCHOR_END: shutdown

    // ANCHOR: query
    let last_hour = Timestamp::from(std::time::SystemTime::now() - Duration::from_secs(3600));
    let filter = EventFilter::new()
        .service("checkout")
        .since(last_hour)
        .attribute("region", "eu"); // JSONB containment: attributes @> '{"region":"eu"}'
    let page = store.events(&filter, 50, None).await?;
    for e in &page.events {
        println!("{} {} {} {}", e.timestamp, e.level, e.kind, e.message);
    }
    // page.next is the cursor for the next 50 (keyset pagination).

    for issue in store.top_issues(Some(last_hour), 10).await? {
        println!(
            "{:>6}× {} ({})",
            issue.recent, issue.title, issue.fingerprint
        );
    }
    let per_minute = store
        .histogram(
            &EventFilter::new().since(last_hour),
            Duration::from_secs(60),
        )
        .await?;
    println!("{} one-minute buckets", per_minute.len());
    // ANCHOR_END: query
    Ok(())
}
