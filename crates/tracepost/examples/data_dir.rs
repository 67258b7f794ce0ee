//! Run: `cargo run -p tracepost --example data_dir`
//!
//! The disk spool: with a data directory every sink spools what it cannot deliver at once to
//! `<data_dir>/spool/<sink>/`, unless its options say `memory_only()`; one sink can have a
//! spool of its own with other settings. The book's *Delivery guarantees* page includes this.

// ANCHOR: imports
use std::time::Duration;

use tracepost::sinks::{Console, JsonlFile};
use tracepost::{
    Event, FsyncPolicy, Kind, Level, SinkOptions, SpoolFullPolicy, SpoolOptions, Tracepost,
};
// ANCHOR_END: imports

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join("tracepost-data-dir-example");
    // ANCHOR: spool
    let tp = Tracepost::builder()
        .service("shop-api")
        .data_dir(&data) // every sink spools to <data>/spool/<sink>/ ...
        .sink(JsonlFile::new(data.join("events")))
        .sink_with(Console::default(), SinkOptions::default().memory_only()) // ... except this one
        .sink_named_with(
            "archive",
            JsonlFile::new(data.join("archive")),
            // A spool of its own: bigger, fsynced after every batch, refusing new batches when
            // full instead of deleting the oldest.
            SinkOptions::default().spool(
                SpoolOptions::new(data.join("archive-spool"))
                    .max_bytes(1024 * 1024 * 1024)
                    .segment_bytes(16 * 1024 * 1024)
                    .fsync(FsyncPolicy::Always)
                    .when_full(SpoolFullPolicy::DropNewest),
            ),
        )
        .build()?;
    // ANCHOR_END: spool

    tp.handle().capture(Event::new(
        Kind::Log,
        Level::Warn,
        "spooled if the sink is down",
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(tp.shutdown(Duration::from_secs(5)));
    println!(
        "flushed: {}; spools under {}",
        report.completed,
        data.display()
    );
    Ok(())
}
