//! Replay segments and the NDJSON.gz archive in a local directory (OpenDAL's `fs` service):
//! store a segment, list the session, read it back, archive events, expire old days.
//!
//! `cargo run -p tracepost-opendal --example object_storage [DIR]` (default: a scratch
//! directory under the system's temp dir).

// ANCHOR: imports
use std::time::Duration;

use bytes::Bytes;
use tracepost_core::{Event, Kind, Level, Timestamp, Tracepost};
use tracepost_opendal::{ArchiveSink, Day, OpendalStore, ReplayStore, SegmentKey};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("tracepost-objects-{}", std::process::id())),
        Into::into,
    );
    // ANCHOR: setup
    let store = OpendalStore::fs(dir.join("objects"))?; // <data dir>/objects
    let tp = Tracepost::builder()
        .service("checkout")
        .sink(ArchiveSink::new(store.clone())) // events/yyyy/mm/dd/hh/*.ndjson.gz
        .build()?;
    let replays = ReplayStore::new(store);
    // ANCHOR_END: setup

    // ANCHOR: replay
    let gzipped_segment = Bytes::from_static(b"\x1f\x8b..."); // as the browser uploaded it
    let key = SegmentKey::new("0193f1c2-7a1e-7cc0", Day::of(Timestamp::now()), 0)?;
    replays.put_segment(&key, gzipped_segment).await?; // the same key again replaces it
    for segment in replays.list_segments(key.session_id(), key.day()).await? {
        let bytes = replays.get_segment(&segment).await?.expect("just listed");
        println!("{} ({} bytes)", segment.key(), bytes.len());
    }
    // ANCHOR_END: replay

    tp.handle()
        .capture(Event::new(Kind::Log, Level::Warn, "archived"));
    tp.shutdown(Duration::from_secs(5)).await;

    // ANCHOR: retention
    let today = Day::of(Timestamp::now());
    let thirty_days_ago = Day::of(Timestamp::from_unix_nanos(
        Timestamp::now().unix_nanos() - 30 * 86_400 * 1_000_000_000,
    ));
    let deleted = replays.delete_before(thirty_days_ago).await?; // whole days, by prefix
                                                                 // ANCHOR_END: retention
    println!(
        "deleted {deleted} segments older than {}; today is {}",
        thirty_days_ago.path(),
        today.path()
    );
    println!("objects under {}", dir.join("objects").display());
    Ok(())
}
