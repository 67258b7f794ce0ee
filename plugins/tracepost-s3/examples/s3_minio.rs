//! Replay segments and the event archive in MinIO (or S3) through aws-sdk-s3.
//!
//! `docker compose up -d minio minio-init`, then
//! `cargo run -p tracepost-s3 --example s3_minio` (endpoint from `S3_ENDPOINT`, default
//! `http://127.0.0.1:9000`; the compose file's credentials).

// ANCHOR: imports
use std::time::Duration;

use bytes::Bytes;
use tracepost_core::{Event, Kind, Level, Timestamp, Tracepost};
use tracepost_s3::{ArchiveSink, Day, ReplayStore, S3Config, S3Store, SegmentKey};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned());
    // ANCHOR: setup
    let store = S3Store::new(
        S3Config::new("tracepost")
            .endpoint(endpoint) // MinIO; leave it out for AWS
            .force_path_style(true) // MinIO and most self-hosted servers
            .credentials("tracepost", "tracepost-secret") // or AWS_ACCESS_KEY_ID/…
            .prefix("prod/"), // optional: everything under prod/
    )?; // no request yet: an unreachable server never stops the app
    let tp = Tracepost::builder()
        .service("checkout")
        .sink(ArchiveSink::new(store.clone()))
        .build()?;
    let replays = ReplayStore::new(store);
    // ANCHOR_END: setup

    let key = SegmentKey::new("demo-session", Day::of(Timestamp::now()), 0)?;
    replays
        .put_segment(&key, Bytes::from_static(b"\x1f\x8b..."))
        .await?;
    println!("stored {}", key.key());
    tp.handle()
        .capture(Event::new(Kind::Log, Level::Warn, "archived in MinIO"));
    tp.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
