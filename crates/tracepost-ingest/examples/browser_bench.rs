//! Ingest benchmark over real HTTP on loopback, into the NDJSON sink.
//!
//! `cargo run --release -p tracepost-ingest --example browser_bench [SECONDS]` (default 10):
//!
//! 1. open loop: 1 000 requests/s of 20-event batches (each a page view, a track, an error
//!    with a stack and a vital, repeated), latency of each request → p50, p99, max;
//! 2. closed loop: 32 clients sending 50-event batches back to back → accepted events/s, and
//!    events/s the NDJSON sink wrote (and dropped, if it could not keep up).
//!
//! Client and server share the machine: the numbers include the client's cost.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracepost_core::sinks::JsonlFile;
use tracepost_core::Tracepost;
use tracepost_ingest::{Ingest, IngestConfig};

fn batch(id: u64, events: usize) -> String {
    let ts = 1_732_900_000_000u64;
    let kinds = [
        json!({"type": "pageview", "ts": ts, "url": "https://shop.example/cart?ref=mail", "nav": "push", "title": "Cart"}),
        json!({"type": "track", "ts": ts, "name": "add_to_cart", "props": {"sku": "A-1", "qty": 2, "price": 9.5}}),
        json!({"type": "error", "ts": ts, "name": "TypeError", "message": "Cannot read properties of undefined (reading 'id')",
               "stack": "TypeError: Cannot read properties of undefined (reading 'id')\n    at render (https://shop.example/assets/app.js:1:5234)\n    at update (https://shop.example/assets/app.js:1:9120)\n    at https://shop.example/assets/vendor.js:2:100", "mechanism": "onerror"}),
        json!({"type": "vital", "ts": ts, "name": "LCP", "value": 1834.2, "rating": "needs-improvement"}),
    ];
    let events: Vec<_> = (0..events)
        .map(|i| kinds[i % kinds.len()].clone())
        .collect();
    json!({
        "batch_id": format!("bench-{id}"), "sent_at": ts, "session_id": format!("s-{}", id % 500),
        "visitor_id": format!("v-{}", id % 300), "page": {"url": "https://shop.example/cart"},
        "screen": "1920x1080", "language": "en-US", "events": events
    })
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let tp = Tracepost::builder()
        .service("bench")
        .sink(JsonlFile::new(dir.path()).max_file_bytes(1 << 30))
        .build()?;
    let config = IngestConfig::new()
        .key("pk_bench")
        .per_client_limit(1_000_000, 1_000_000)
        .per_key_limit(1_000_000, 1_000_000)
        .dedup(1_000_000, Duration::from_secs(600));
    let ingest = Ingest::new(tp.handle(), config)?;
    let app: axum::Router = tracepost_ingest::router(ingest);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let url = format!("http://{addr}/tracepost/v1/events?key=pk_bench");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let ids = Arc::new(AtomicU64::new(0));

    // Warm-up: connections, caches.
    for _ in 0..200 {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        client
            .post(&url)
            .header("content-type", "text/plain")
            .body(batch(id, 20))
            .send()
            .await?;
    }

    // 1. Open loop at 1 000 requests/s.
    let total = seconds * 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    let started = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let body = batch(id, 20);
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "text/plain")
                .body(body)
                .send()
                .await;
            let ok = matches!(&r, Ok(r) if r.status() == 202);
            (t.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for t in tasks {
        let (d, ok) = t.await?;
        latencies.push(d);
        failed += u64::from(!ok);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "open loop: {} requests of 20 events in {:.1} s ({:.0} req/s), failed {failed}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // 2. Closed loop: as fast as 32 clients can send 50-event batches.
    let before = sent_and_dropped(&tp);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (client, url, stop, accepted, ids) = (
            client.clone(),
            url.clone(),
            stop.clone(),
            accepted.clone(),
            ids.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let r = client
                    .post(&url)
                    .header("content-type", "text/plain")
                    .body(batch(id, 50))
                    .send()
                    .await;
                if matches!(&r, Ok(r) if r.status() == 202) {
                    accepted.fetch_add(50, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    let sending = started.elapsed();
    // Let the sink drain what is queued, then count what it wrote.
    let report = tp.shutdown(Duration::from_secs(60)).await;
    let drained = started.elapsed();
    let after = report.sinks.iter().fold((0, 0), |acc, (_, c)| {
        (
            acc.0 + c.sent,
            acc.1 + c.dropped.iter().map(|(_, n)| n).sum::<u64>(),
        )
    });
    let accepted = accepted.load(Ordering::Relaxed);
    let written = after.0 - before.0;
    println!(
        "closed loop: {accepted} events accepted in {:.1} s = {:.0} events/s; the NDJSON sink wrote {written} by {:.1} s = {:.0} events/s, dropped {}",
        sending.as_secs_f64(),
        accepted as f64 / sending.as_secs_f64(),
        drained.as_secs_f64(),
        written as f64 / drained.as_secs_f64(),
        after.1 - before.1,
    );
    Ok(())
}

fn sent_and_dropped(tp: &Tracepost) -> (u64, u64) {
    tp.handle()
        .sink_counts()
        .iter()
        .fold((0, 0), |acc, (_, c)| {
            (
                acc.0 + c.sent,
                acc.1 + c.dropped.iter().map(|(_, n)| n).sum::<u64>(),
            )
        })
}
