//! Benchmark of the log routes over real HTTP on loopback, into Postgres.
//!
//! `cargo run --release -p tracepost-ingest --example log_bench [SECONDS]` (default 10;
//! `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; writes into the
//! schema `tracepost_log_bench`: drop it afterwards with
//! `psql -c 'DROP SCHEMA tracepost_log_bench CASCADE'`):
//!
//! 1. a 300 KB / 200-event batch, 300 times one after the other → p50, p99 of the `202`;
//! 2. open loop: 1 000 requests/s of 20-log batches → p50, p99, max;
//! 3. closed loop: 16 clients sending 250-log batches back to back → accepted events/s, and
//!    events/s the Postgres sink stored (counted by the sink, until its queue drained).
//!
//! Client, server and Postgres share the machine: the numbers include their costs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracepost_core::{SinkOptions, Tracepost};
use tracepost_ingest::logs::StaticKeys;
use tracepost_ingest::{LogIngest, LogIngestConfig};
use tracepost_postgres::PostgresSink;

const KEY: &str = "tpk_5555555555555555555555555555555555555555555555555555555555555555";

/// A batch of `n` logs of about `bytes_each` bytes.
fn batch(n: usize, bytes_each: usize, id: u64) -> Vec<u8> {
    let pad = "x".repeat(bytes_each.saturating_sub(260));
    let logs: Vec<_> = (0..n)
        .map(|i| {
            json!({"timestamp": "2026-11-29T10:00:00.123Z", "level": if i % 10 == 0 { "error" } else { "info" },
                   "message": format!("order {id}-{i} charged: card declined, retrying with the backup processor"),
                   "context": {"order_id": i, "user_id": format!("u-{}", i % 97), "region": "eu-west-1",
                               "trace": "4bf92f3577b34da6a3ce929d0e0e4736", "detail": pad}})
        })
        .collect();
    serde_json::to_vec(&json!({"service": "billing", "environment": "bench", "logs": logs}))
        .unwrap()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let sink = PostgresSink::builder(&url)
        .schema("tracepost_log_bench")
        .connect()
        .await?;
    let tp = Tracepost::builder()
        .service("bench")
        .sink_with(sink, SinkOptions::default().queue_capacity(200_000))
        .build()?;
    let config = LogIngestConfig::new()
        .per_key_limit(1_000_000, 1_000_000)
        .per_client_limit(1_000_000, 1_000_000);
    let keys = StaticKeys::new([("bench", KEY)], false);
    let logs = LogIngest::new(tp.handle(), config, Arc::new(keys))?;
    let app: axum::Router = tracepost_ingest::logs_router(logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let url = format!("http://{addr}/tracepost/v1/batch");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let post = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-tracepost-key", KEY)
            .body(body)
            .send()
    };

    // 1. 300 KB / 200 events, sequential.
    let big = batch(200, 1500, 0);
    println!("batch of 200 logs: {} bytes", big.len());
    let mut lat = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let r = post(big.clone()).await?;
        assert_eq!(r.status(), 202);
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "300 KB / 200-event batch, 300 sequential: p50 {:.2} ms, p99 {:.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. Open loop at 1 000 requests/s.
    let small = batch(20, 300, 1);
    let total = seconds * 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let f = post(small.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = matches!(f.await, Ok(r) if r.status() == 202);
            (t.elapsed(), ok)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (d, ok) = t.await?;
        lat.push(d);
        failed += u64::from(!ok);
    }
    let el = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "open loop: {} requests of 20 logs in {el:.1} s ({:.0} req/s), failed {failed}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        lat.len() as f64 / el,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 3. Closed loop into Postgres.
    let before: u64 = tp.handle().sink_counts().iter().map(|(_, c)| c.sent).sum();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let body = batch(250, 300, 2);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, url, stop, accepted, body) = (
            client.clone(),
            url.clone(),
            stop.clone(),
            accepted.clone(),
            body.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-tracepost-key", KEY)
                    .body(body.clone())
                    .send()
                    .await;
                if matches!(&r, Ok(r) if r.status() == 202) {
                    accepted.fetch_add(250, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    let sending = started.elapsed().as_secs_f64();
    let report = tp.shutdown(Duration::from_secs(120)).await;
    let drained = started.elapsed().as_secs_f64();
    let sent: u64 = report.sinks.iter().map(|(_, c)| c.sent).sum();
    let dropped: u64 = report
        .sinks
        .iter()
        .flat_map(|(_, c)| c.dropped.iter().map(|(_, n)| *n))
        .sum();
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "closed loop: {accepted} logs accepted in {sending:.1} s = {:.0}/s; Postgres stored {} by {drained:.1} s = {:.0} events/s; dropped (whole run) {dropped}",
        accepted as f64 / sending,
        sent - before,
        (sent - before) as f64 / drained
    );
    Ok(())
}
