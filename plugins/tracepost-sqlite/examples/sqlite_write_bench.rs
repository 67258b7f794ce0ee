//! The SQLite sink's write rate, in events per second: through [`Sink::send`] in the
//! pipeline's batches ([`SqliteSink::sink_options`]: 1 000 events), and through the whole
//! pipeline (`Tracepost` with only the SQLite sink: stages, queue, batching, the sink).
//!
//! Run: `cargo run --release -p tracepost-sqlite --example sqlite_write_bench -- [events] [rounds]`
//! (default 200 000 events, 3 rounds of each mode, each round into a fresh file in a
//! temporary directory). The events are the console benchmark's mix: 10 % errors (200
//! fingerprints, each with a request snapshot), 10 % kept requests (with snapshots), 2.5 %
//! metric windows, the rest logs; every event has an attribute, a trace and a user.
//!
//! Prints one line per round and mode, then the median per mode. To compare two builds,
//! run both binaries in turn (`scripts/sqlite-write-bench-compare` does that, rounds
//! interleaved).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracepost_core::{Event, Sink, Timestamp, Tracepost};
use tracepost_sqlite::SqliteSink;

mod common;
use common::event;

/// Events/s through `Sink::send`, in the pipeline's batch size.
async fn sink_round(events: &[Arc<Event>]) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = SqliteSink::new(dir.path());
    let batch = SqliteSink::sink_options().batch.max_events;
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        let out = sink.send(chunk.to_vec()).await.expect("write");
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    }
    let rate = events.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(sink.store().stats().inserted, events.len() as u64);
    rate
}

/// Events/s through `Tracepost::capture_all` → stages → queue → batches → the sink, until
/// the sink confirmed every event.
async fn pipeline_round(events: Vec<Event>) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let tp = Tracepost::builder()
        .service("bench")
        .sink(SqliteSink::new(dir.path()))
        .build()
        .expect("pipeline");
    let handle = tp.handle();
    let n = events.len() as u64;
    let started = Instant::now();
    let mut rest = events.into_iter();
    loop {
        let chunk: Vec<Event> = rest.by_ref().take(1_000).collect();
        if chunk.is_empty() {
            break;
        }
        // One producer: once the queue has room, `capture_all` takes the whole chunk.
        while handle.has_room_for(chunk.len()).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        handle.capture_all(chunk).expect("room was checked");
    }
    let sent = loop {
        let sent = handle.sink_counts()[0].1.sent;
        if sent >= n {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    tp.shutdown(Duration::from_secs(30)).await;
    rate
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let now_ns = Timestamp::now().unix_nanos();
    let events: Vec<Event> = (0..n).map(|i| event(i, n, now_ns)).collect();
    let shared: Vec<Arc<Event>> = events.iter().cloned().map(Arc::new).collect();
    println!("{n} events per round, {rounds} rounds");
    let (mut sink, mut pipe) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let s = sink_round(&shared).await;
        println!("round {round} sink.send  {s:>10.0} events/s");
        sink.push(s);
        let p = pipeline_round(events.clone()).await;
        println!("round {round} pipeline   {p:>10.0} events/s");
        pipe.push(p);
    }
    println!("median sink.send  {:>10.0} events/s", median(&mut sink));
    println!("median pipeline   {:>10.0} events/s", median(&mut pipe));
}
