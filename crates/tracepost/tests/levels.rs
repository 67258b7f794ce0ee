//! Level setters take `tracing::Level` as well as `tracepost::Level` (the configuration page
//! shows both): a sink filtered with `tracing::Level::WARN` gets WARN and ERROR events only.

use std::time::Duration;

use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::{Event, Kind, Level, SinkOptions, Tracepost};

#[tokio::test]
async fn sink_min_level_takes_a_tracing_level() {
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().min_level(tracing::Level::WARN),
        )
        .build()
        .unwrap();
    // The tracing layer's setters take either kind of level too.
    let _layer = tp
        .tracing_layer()
        .min_level(tracing::Level::WARN)
        .breadcrumb_level(Level::Trace);
    for level in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
        tp.handle()
            .capture(Event::new(Kind::Log, level, format!("at {level}")));
    }
    assert!(tp.shutdown(Duration::from_secs(5)).await.completed);

    let mut messages = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ndjson") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                messages.push(event["message"].as_str().unwrap().to_owned());
            }
        }
    }
    messages.sort();
    assert_eq!(messages, ["at error", "at warn"]);
}
