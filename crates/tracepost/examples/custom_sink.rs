//! Run: `cargo run -p tracepost --example custom_sink`
//!
//! A custom sink that counts error events per fingerprint, registered beside the console.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tracepost::{Batch, Event, Kind, Level, Sink, SinkError, SinkOptions, SinkOutcome, Tracepost};

// ANCHOR: sink
/// Counts error events per fingerprint (a stand-in for an alerting backend).
#[derive(Default)]
struct ErrorCounter {
    counts: Mutex<HashMap<String, u64>>,
}

impl Sink for ErrorCounter {
    fn name(&self) -> &str {
        "error-counter"
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let mut counts = self
            .counts
            .lock()
            .map_err(|_| SinkError::temporary("lock poisoned"))?;
        for event in batch.iter().filter(|e| e.kind == Kind::Error) {
            let key = event.fingerprint.clone().unwrap_or_default();
            *counts.entry(key).or_default() += 1;
        }
        Ok(SinkOutcome::default())
    }
}
// ANCHOR_END: sink

#[tokio::main]
async fn main() -> Result<(), tracepost::BuildError> {
    // ANCHOR: register
    let tp = Tracepost::builder()
        .service("custom-sink-demo")
        .sink(tracepost::sinks::Console::default())
        .sink_with(
            ErrorCounter::default(),
            SinkOptions::default()
                .kinds([Kind::Error])
                .queue_capacity(1_000),
        )
        .build()?;
    // ANCHOR_END: register
    let handle = tp.handle();
    for user in [7, 42, 7] {
        handle.capture(Event::new(
            Kind::Error,
            Level::Error,
            format!("user {user} not found"),
        ));
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    for (sink, counts) in report.sinks {
        println!(
            "{sink}: sent {} dropped {}",
            counts.sent,
            counts.dropped_total()
        );
    }
    Ok(())
}
