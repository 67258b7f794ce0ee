//! Run: `cargo run -p tracepost --example custom_sink`
//!
//! A custom sink that counts error events per fingerprint, registered beside the console.

// ANCHOR: imports
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tracepost::{
    Batch, Event, Kind, Level, Sink, SinkError, SinkErrorKind, SinkOptions, SinkOutcome, Tracepost,
};
// ANCHOR_END: imports

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

// ANCHOR: errors
/// How a sink that talks to a service reports a failed request: what went wrong (the kind)
/// and whether retrying helps (the class).
fn classify(status: u16, body: &str) -> SinkError {
    match status {
        // Our API key is wrong: every event would fail the same way. *Refused*: the pipeline
        // keeps the batch, reports the sink down and tries again every `refused_interval`.
        401 => SinkError::refused(format!("bad API key: {body}"))
            .with_kind(SinkErrorKind::Unauthenticated),
        // This service answers 422 about one event's data: *permanent*, so the pipeline
        // splits the batch to find that event and drops only it.
        422 => SinkError::permanent(format!("invalid event: {body}")),
        // Everything else by the usual HTTP rules: 403/404 refused, 408/429/5xx temporary
        // (with `Retry-After` when given), other 4xx permanent.
        _ => SinkError::from_http_status(status, body),
    }
}
// ANCHOR_END: errors

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
        // A second sink of the same type needs a name of its own (its metric label,
        // health entry and spool directory).
        .sink_named_with(
            "warning-counter",
            ErrorCounter::default(),
            SinkOptions::default().min_level(Level::Warn),
        )
        .build()?;
    // ANCHOR_END: register
    assert!(classify(401, "expired").is_refused());
    assert!(classify(503, "maintenance").is_temporary());
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
