//! Replay upload benchmark over real HTTP on loopback, into the OpenDAL `fs` store (or, from
//! `plugins/tracepost-opendal/examples/replay_bench_s3.rs`, which reuses [`run`], into S3).
//!
//! `cargo run --release -p tracepost-ingest --example replay_bench [SECONDS]` (default 10):
//!
//! 1. one client, 1 MB segments (rrweb JSON, gzipped by the client) back to back → upload
//!    latency p50, p99, max;
//! 2. 8 clients, the same segments back to back → segments/s, MB/s of rrweb JSON accepted
//!    and MB/s of gzip stored, latency p99;
//! 3. 50 uploads of 5 MB segments at once (plain JSON, the worst case for memory) → the peak
//!    RSS of the process (`VmHWM`, reset before the burst) and how long the burst took.
//!
//! Every segment passes the whole route: admission, decoding, `parse_segment`, the redactor
//! over every string, gzip, the store, the index event into a memory sink. Client and server
//! share the machine: the numbers include the client's cost.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tracepost_core::object_store::{ObjectStore, ReplayStore};
use tracepost_core::testing::MemorySink;
use tracepost_core::Tracepost;
use tracepost_ingest::{Ingest, IngestConfig, ReplayConfig, ReplayIngest};
use tracepost_opendal::OpendalStore;

const KEY: &str = "pk_bench";
const START: u64 = 1_764_450_000_000;

/// A segment of about `bytes` of rrweb JSON: a full snapshot of a page of paragraphs, then
/// mouse moves, clicks, inputs and text mutations.
fn segment(bytes: usize) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut events = vec![
        json!({"type": 4, "data": {"href": "https://shop.example/cart", "width": 1280, "height": 720}, "timestamp": START}),
    ];
    let mut size = 0;
    let mut i = 0u64;
    while size < bytes / 2 {
        let text = format!(
            "Item {i}: {} — qty {} at {}.{:02} EUR, ships in {} days",
            ["socks", "shirt", "lamp", "chair", "mug"][i as usize % 5],
            i % 7 + 1,
            i * 37 % 500,
            i % 100,
            i % 9
        );
        size += text.len() + 90;
        nodes.push(json!({"type": 2, "id": 10 + i * 2, "tagName": "p", "attributes": {"class": format!("row r{}", i % 13)},
                          "childNodes": [{"type": 3, "id": 11 + i * 2, "textContent": text}]}));
        i += 1;
    }
    events.push(
        json!({"type": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
        {"type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [
            {"type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": nodes}]}]},
        "initialOffset": {"top": 0, "left": 0}}, "timestamp": START + 1}),
    );
    let mut t = START + 2;
    let mut j = 0u64;
    while size < bytes {
        let e = match j % 4 {
            0 => {
                json!({"type": 3, "data": {"source": 1, "positions": (0..10).map(|k| json!({"x": (j * 13 + k) % 1280, "y": (j * 7 + k) % 720, "id": 10 + (j % 500) * 2, "timeOffset": -(k as i64) * 50})).collect::<Vec<Value>>()}, "timestamp": t})
            }
            1 => {
                json!({"type": 3, "data": {"source": 2, "type": 2, "id": 10 + (j % 500) * 2, "x": j % 1280, "y": j % 720}, "timestamp": t})
            }
            2 => {
                json!({"type": 3, "data": {"source": 5, "id": 10 + (j % 500) * 2, "text": "*".repeat((j % 20) as usize + 1), "isChecked": false}, "timestamp": t})
            }
            _ => {
                json!({"type": 3, "data": {"source": 0, "texts": [{"id": 11 + (j % 500) * 2, "value": format!("Item {j} updated")}], "attributes": [], "removes": [], "adds": []}, "timestamp": t})
            }
        };
        size += e.to_string().len();
        events.push(e);
        t += 37;
        j += 1;
    }
    serde_json::to_vec(&events).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

struct Upload {
    client: reqwest::Client,
    base: String,
}

impl Upload {
    async fn send(&self, session: &str, segment: u32, body: Bytes, gzip: bool) -> u16 {
        let mut req = self
            .client
            .post(format!(
                "{}/v1/replay?key={KEY}&session={session}&segment={segment}&session_start={START}",
                self.base
            ))
            .header("content-type", "text/plain");
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        match req.body(body).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

#[allow(dead_code)] // replay_bench_s3 includes this file for `run`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    run(ReplayStore::new(OpendalStore::fs(dir.path())?), seconds).await
}

/// The three measurements (see the top of the file), with the route storing into `store`.
pub async fn run<S: ObjectStore>(
    store: ReplayStore<S>,
    seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder().service("bench").sink(sink).build()?;
    let ingest = Ingest::new(
        tp.handle(),
        IngestConfig::new()
            .key(KEY)
            .per_client_limit(100_000, 100_000)
            .per_key_limit(100_000, 100_000),
    )?;
    let replay = ReplayIngest::new(
        ingest,
        store,
        // REPLAY_BENCH_REDACT=0 measures without the redactor pass.
        ReplayConfig::new().redact(std::env::var("REPLAY_BENCH_REDACT").as_deref() != Ok("0")),
    )?;
    let app: axum::Router = tracepost_ingest::replay_router(replay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let up = Arc::new(Upload {
        client: reqwest::Client::new(),
        base: format!("http://{addr}/tracepost"),
    });

    let one_mb = segment(1_000_000);
    let one_mb_gz = Bytes::from(gzip(&one_mb));
    println!(
        "1 MB segment: {} bytes of JSON, {} bytes gzipped",
        one_mb.len(),
        one_mb_gz.len()
    );

    // 1. One client, back to back.
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds / 2);
    let mut n = 0;
    while Instant::now() < end {
        let t = Instant::now();
        let s = up.send("single", n, one_mb_gz.clone(), true).await;
        assert_eq!(s, 202);
        lat.push(t.elapsed());
        n += 1;
    }
    lat.sort();
    println!(
        "1 client, 1 MB segments: {n} uploads, p50 {}, p99 {}, max {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );

    // 2. Eight clients.
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (up, done, body) = (up.clone(), done.clone(), one_mb_gz.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seg = 0;
            while Instant::now() < end {
                let t = Instant::now();
                let s = up.send(&format!("c{c}"), seg, body.clone(), true).await;
                assert_eq!(s, 202);
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
                seg += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let count = done.load(Ordering::Relaxed) as f64;
    println!(
        "8 clients, 1 MB segments: {:.1} segments/s, {:.1} MB/s of rrweb JSON, {:.1} MB/s of gzip stored; p50 {}, p99 {}",
        count / elapsed,
        count * one_mb.len() as f64 / elapsed / 1e6,
        count * one_mb_gz.len() as f64 / elapsed / 1e6,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
    );

    // 3. 50 uploads of 5 MB at once.
    // Shared, not copied: the client holds one 5 MB body, not fifty.
    let five_mb = Bytes::from(segment(5_000_000));
    let before = status_mib("VmRSS:");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..50 {
        let (up, body) = (up.clone(), five_mb.clone());
        tasks.push(tokio::spawn(async move {
            up.send(&format!("burst{c}"), 0, body, false).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await?, 202);
    }
    let took = started.elapsed();
    println!(
        "50 x 5 MB at once ({} bytes of plain JSON each): all stored in {}; RSS before {before} MiB, peak {} MiB{} (the 50 bodies together are {} MiB)",
        five_mb.len(),
        ms(took),
        status_mib("VmHWM:"),
        if reset { "" } else { " (peak since start: clear_refs unavailable)" },
        50 * five_mb.len() / (1 << 20),
    );
    tp.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
