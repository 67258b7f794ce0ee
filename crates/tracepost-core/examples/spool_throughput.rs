//! Run: `cargo run --release -p tracepost-core --example spool_throughput`
//!
//! Disk spool throughput: writing realistic error events (with request snapshots) in batches
//! of 500, then replaying them (read, checksum, parse, acknowledge), in a temporary directory.

use std::sync::Arc;
use std::time::Instant;

use tracepost_core::pipeline::Spool;
use tracepost_core::{ErrorDetail, Event, Kind, Level, RequestSnapshot, SpoolOptions};

fn event(i: usize) -> Arc<Event> {
    let mut e = Event::new(
        Kind::Error,
        Level::Error,
        format!("HTTP 500 server error in GET /users/{{id}} #{i}"),
    )
    .with_error(ErrorDetail {
        error_type: "http_500".into(),
        message: "inventory unavailable".into(),
        ..Default::default()
    })
    .with_request(RequestSnapshot {
        method: "GET".into(),
        route: "/users/{id}".into(),
        path: format!("/users/{i}"),
        status: 500,
        duration_ms: 12.5,
        request_headers: vec![
            ("user-agent".into(), "curl/8".into()),
            ("authorization".into(), "[REDACTED]".into()),
        ],
        ..Default::default()
    })
    .with_attribute("user_id", i as u64);
    e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    e.request_id = Some(format!("req-{i}"));
    Arc::new(e)
}

fn main() -> std::io::Result<()> {
    let dir = std::env::temp_dir().join(format!("tracepost-spool-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spool = Spool::open(SpoolOptions::new(&dir).max_bytes(4 << 30))?;
    let batches: Vec<Vec<Arc<Event>>> = (0..200)
        .map(|b| (0..500).map(|i| event(b * 500 + i)).collect())
        .collect();
    let events = 200 * 500;

    let start = Instant::now();
    for b in &batches {
        spool.push(b)?;
    }
    let write = start.elapsed();
    let bytes = spool.bytes();

    let start = Instant::now();
    let mut replayed = 0;
    while let Some(batch) = spool.peek()? {
        replayed += batch.len();
        spool.ack()?;
    }
    let replay = start.elapsed();
    assert_eq!(replayed, events);
    println!(
        "spool write: {events} events, {:.1} MB in {:.2} s = {:.0} MB/s ({:.0} events/s)",
        bytes as f64 / 1e6,
        write.as_secs_f64(),
        bytes as f64 / 1e6 / write.as_secs_f64(),
        events as f64 / write.as_secs_f64()
    );
    println!(
        "spool replay: {replayed} events in {:.2} s = {:.0} events/s ({:.0} MB/s)",
        replay.as_secs_f64(),
        replayed as f64 / replay.as_secs_f64(),
        bytes as f64 / 1e6 / replay.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)
}
