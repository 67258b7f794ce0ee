//! Every setting of the Loki sink, and its own counters. Builds the sink without sending
//! anything (nothing connects until the first push):
//!
//! ```text
//! cargo run -p tracepost-loki --example loki_config
//! ```
//!
//! The book's *Send events to Loki* page includes this file.

// ANCHOR: imports
use std::time::Duration;

use tracepost_loki::{Limits, LineFormat, LokiConfig, LokiSink, PushEncoding};
// ANCHOR_END: imports

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An https:// URL (Grafana Cloud) needs the sink's `rustls` feature.
    let url = std::env::var("LOKI_URL").unwrap_or_else(|_| "http://localhost:3100".into());
    let token = std::env::var("GRAFANA_CLOUD_TOKEN").unwrap_or_default();
    // ANCHOR: config
    let sink = LokiSink::with_config(
        LokiConfig::new(url)
            .basic_auth("123456", token) // or .bearer_token(..)
            .tenant("team-a") // X-Scope-OrgID
            .header("X-Custom", "value")
            .static_label("cluster", "eu-1") // constant per process; at most 11 of them
            .line_format(LineFormat::Logfmt) // default: Json
            .encoding(PushEncoding::Json { gzip: true }) // default: Protobuf (+ snappy)
            .structured_metadata(true)
            .timeout(Duration::from_secs(10)) // whole push; connect_timeout(3 s) separately
            .limits(Limits::default().max_line_bytes(128 * 1024).max_labels(15)),
    )?;
    // ANCHOR_END: config

    drop(sink);

    // ANCHOR: stats
    let sink = LokiSink::new("http://loki:3100")?;
    // Keep this Arc: the sink itself moves into the pipeline.
    let loki_stats = sink.stats();
    // … later:
    let s = loki_stats.snapshot();
    println!(
        "{} lines in {} pushes; rejected: {:?}",
        s.lines, s.pushes, s.rejected
    );
    // Served on tracepost's /metrics already; for a sink used outside a pipeline:
    // tracepost_loki_rejected_total{sink="loki",reason="too_old"} …
    let text = loki_stats.render_prometheus();
    // ANCHOR_END: stats
    println!("{text}");
    Ok(())
}
