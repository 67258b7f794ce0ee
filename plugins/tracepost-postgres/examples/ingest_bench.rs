//! Sustained ingest of realistic log and error events into a local PostgreSQL, binary COPY
//! (the sink's path), COPY into a staging table + merge (its path for redelivered batches),
//! and a multi-row INSERT baseline, in the same run.
//!
//! ```text
//! cargo run --release -p tracepost-postgres --example ingest_bench -- \
//!     [--events 600000] [--batch 5000] [--concurrency 2] \
//!     [--url postgres://postgres@127.0.0.1:5432/postgres]
//! ```
//!
//! It creates (and afterwards drops) a database `tracepost_bench`, writes the same events
//! with each method into its own fresh schema, and prints events/s and how much CPU the
//! Postgres server processes used (from `/proc/<pid>/stat`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracepost_core::{ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp, Tracepost};
use tracepost_postgres::{IngestMethod, PgStore, PostgresSink};

struct Args {
    events: usize,
    batch: usize,
    concurrency: usize,
    url: String,
    errors_every: usize,
    drop_indexes: Vec<String>,
    methods: String,
}

fn args() -> Args {
    let mut a = Args {
        events: 600_000,
        batch: 5000,
        concurrency: 2,
        url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        errors_every: 10,
        drop_indexes: Vec::new(),
        methods: "copy,merge,insert,pipeline".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--events" => a.events = value.parse().expect("--events N"),
            "--batch" => a.batch = value.parse().expect("--batch N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--url" => a.url = value,
            "--errors-every" => a.errors_every = value.parse().expect("--errors-every N"),
            "--methods" => a.methods = value,
            "--drop-indexes" => a.drop_indexes = value.split(',').map(str::to_owned).collect(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

const ROUTES: [&str; 8] = [
    "/api/users/{id}",
    "/api/orders",
    "/api/orders/{id}",
    "/api/cart",
    "/api/search",
    "/health",
    "/api/payments/{id}/capture",
    "/static/{file}",
];

/// ~90 % logs with a handful of attributes, ~10 % errors with a backtrace and a request
/// snapshot; timestamps in capture order over the last 10 minutes, a little out of order
/// (as batches from several threads are).
fn make_events(n: usize, errors_every: usize) -> Vec<Arc<Event>> {
    let now = Timestamp::now().unix_nanos();
    (0..n)
        .map(|i| {
            let route = ROUTES[i % ROUTES.len()];
            let step = 600_000_000_000 / n.max(1) as u64;
            let jitter = (i as u64 * 7_919) % 50 * step;
            let at = Timestamp::from_unix_nanos(now - 600_000_000_000 + i as u64 * step + jitter);
            let trace = format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut e = if errors_every > 0 && i % errors_every == errors_every - 1 {
                let fp = i % 50;
                let mut e = Event::new(
                    Kind::Error,
                    Level::Error,
                    format!("database error: connection reset while running query {fp} for tenant {}", i % 97),
                )
                .with_error(ErrorDetail {
                    error_type: "sqlx::Error".into(),
                    message: format!("connection reset by peer (os error 104) [query {fp}]"),
                    backtrace: Some(
                        (0..12)
                            .map(|f| format!("{f}: app::handlers::orders::handler_{f}\n             at src/handlers/orders.rs:{}", 100 + f * 7))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    location: Some("src/handlers/orders.rs:142".into()),
                })
                .with_request(RequestSnapshot {
                    method: "POST".into(),
                    route: route.into(),
                    path: route.replace("{id}", &(i % 10_000).to_string()),
                    query: Some("expand=items".into()),
                    status: 500,
                    duration_ms: 20.0 + (i % 300) as f64 * 0.7,
                    request_headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("user-agent".into(), "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0".into()),
                        ("authorization".into(), "[redacted]".into()),
                    ],
                    response_headers: vec![("content-type".into(), "application/json".into())],
                    request_body: None,
                    response_body: None,
                    request_bytes: 312,
                    response_bytes: 87,
                    client_address: Some(format!("10.1.{}.{}", i % 250, i % 200)),
                    http_version: Some("HTTP/1.1".into()),
                });
                e.fingerprint = Some(format!("{:016x}", fp * 0x1234_5678_9abc));
                e
            } else {
                let level = if i % 7 == 0 { Level::Warn } else { Level::Info };
                Event::new(
                    Kind::Log,
                    level,
                    format!("handled request to {route} in {} ms for user {}", i % 250, i % 5000),
                )
                .with_attribute("http.route", route)
                .with_attribute("http.status", if i % 7 == 0 { 404 } else { 200 })
                .with_attribute("latency_ms", (i % 250) as f64 + 0.25)
                .with_attribute("region", ["eu-west-1", "us-east-1", "ap-south-1"][i % 3])
                .with_attribute("target", "app::handlers")
            }
            .with_timestamp(at);
            e.resource.service = "shop-api".into();
            e.resource.environment = Some("production".into());
            e.resource.release = Some("2026.11.3".into());
            e.resource.host = Some(format!("shop-api-{}", i % 6));
            e.trace_id = Some(trace);
            e.span_id = Some(format!("{:016x}", i * 31 + 7));
            e.request_id = Some(format!("req-{i:08x}"));
            e.user_id = Some(format!("user-{}", i % 5000));
            Arc::new(e)
        })
        .collect()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime, in ticks, of one process.
fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of every process named `postgres`, by pid.
fn postgres_ticks() -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            if let Some(t) = proc_ticks(&pid) {
                out.insert(pid, t);
            }
        }
    }
    out
}

struct Run {
    secs: f64,
    server_cpu: f64,
    client_cpu: f64,
    machine_cpu: f64,
}

/// Busy ticks of the whole machine (all CPUs), from /proc/stat.
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0;
    };
    let f: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    f.iter().take(8).sum::<u64>() - f.get(3).copied().unwrap_or(0) - f.get(4).copied().unwrap_or(0)
}

async fn measure(work: impl std::future::Future<Output = ()>) -> Run {
    let tck = clock_ticks();
    let server0 = postgres_ticks();
    let client0 = proc_ticks("self").unwrap_or(0);
    let machine0 = machine_ticks();
    let started = Instant::now();
    work.await;
    let secs = started.elapsed().as_secs_f64();
    let server1 = postgres_ticks();
    let server: u64 = server1
        .iter()
        .map(|(pid, t)| t.saturating_sub(*server0.get(pid).unwrap_or(&0)))
        .sum();
    let client = proc_ticks("self").unwrap_or(0) - client0;
    let machine = machine_ticks() - machine0;
    Run {
        secs,
        server_cpu: server as f64 / tck,
        client_cpu: client as f64 / tck,
        machine_cpu: machine as f64 / tck,
    }
}

/// `concurrency` writers calling the store directly, batch after batch.
async fn run(
    store: &PgStore,
    batches: &[Vec<Arc<Event>>],
    method: IngestMethod,
    concurrency: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let batches = Arc::new(batches.to_vec());
    measure(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (store, next, batches) = (store.clone(), next.clone(), batches.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    let r = store.write_with(batch, method).await.expect("write");
                    assert!(r.rejected.is_empty());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
}

/// Through the tracepost pipeline: capture every event, then shut down (which waits until
/// everything is delivered), with `PostgresSink::sink_options()`.
async fn run_pipeline(sink: PostgresSink, events: Vec<Event>) -> Run {
    let n = events.len();
    measure(async move {
        let tp = Tracepost::builder()
            .service("shop-api")
            .sink_with(sink, PostgresSink::sink_options().queue_capacity(n + 1000))
            .build()
            .expect("pipeline");
        let handle = tp.handle();
        for e in events {
            handle.capture(e);
        }
        let report = tp.shutdown(Duration::from_secs(600)).await;
        assert!(report.completed, "{report:?}");
        assert_eq!(report.sinks[0].1.sent as usize, n, "{report:?}");
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    let (admin, conn) = tokio_postgres::connect(&a.url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute("DROP DATABASE IF EXISTS tracepost_bench WITH (FORCE)")
        .await?;
    admin
        .batch_execute("CREATE DATABASE tracepost_bench")
        .await?;
    // Same server, database `tracepost_bench`, keeping any `?options` of the URL.
    let (base, params) = a.url.split_once('?').unwrap_or((&a.url, ""));
    let url = match base.rfind('/') {
        Some(i) if params.is_empty() => format!("{}/tracepost_bench", &base[..i]),
        Some(i) => format!("{}/tracepost_bench?{params}", &base[..i]),
        None => a.url.clone(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    eprintln!("generating {} events…", a.events);
    let events = make_events(a.events, a.errors_every);
    let bytes: usize = events.iter().map(|e| e.approx_size()).sum();
    let batches: Vec<Vec<Arc<Event>>> = events.chunks(a.batch).map(|c| c.to_vec()).collect();
    println!(
        "{} events (90% logs, 10% errors with request snapshots), ~{} bytes/event, batch {} events, {} writers, {} cores",
        a.events,
        bytes / a.events.max(1),
        a.batch,
        a.concurrency,
        cores
    );
    println!(
        "{:<18} {:>8} {:>10} {:>32} {:>11} {:>16} {:>15}",
        "method",
        "seconds",
        "events/s",
        "Postgres server CPU",
        "bench CPU",
        "everything else",
        "server µs/event"
    );
    let mut results = Vec::new();
    for (key, name, method, schema) in [
        ("copy", "binary COPY", IngestMethod::Copy, "bench_copy"),
        (
            "merge",
            "COPY + merge",
            IngestMethod::CopyMerge,
            "bench_copy_merge",
        ),
        (
            "insert",
            "multi-row INSERT",
            IngestMethod::MultiRowInsert,
            "bench_insert",
        ),
        (
            "pipeline",
            "COPY via pipeline",
            IngestMethod::Copy,
            "bench_pipeline",
        ),
    ] {
        if !a.methods.split(',').any(|m| m == key) {
            continue;
        }
        let sink = PostgresSink::builder(&url)
            .schema(schema)
            .pool_size(a.concurrency + 1)
            .pool_timeout(Duration::from_secs(60))
            .connect()
            .await?;
        for index in &a.drop_indexes {
            sink.store()
                .pool()
                .get()
                .await?
                .batch_execute(&format!("DROP INDEX IF EXISTS {schema}.{index}"))
                .await?;
        }
        // Warm up: connections, prepared statements, partitions.
        let warm_up = Arc::new(Event::new(Kind::Log, Level::Info, "warm-up"));
        sink.store().write_with(&[warm_up], method).await?;
        let store = sink.store().clone();
        let r = if key == "pipeline" {
            // Owned copies made before the clock starts; capture takes events by value.
            let owned: Vec<Event> = events.iter().map(|e| (**e).clone()).collect();
            run_pipeline(sink, owned).await
        } else {
            let r = run(&store, &batches, method, a.concurrency).await;
            drop(sink);
            r
        };
        let rate = a.events as f64 / r.secs;
        println!(
            "{:<18} {:>8.2} {:>10.0} {:>10.2} cores ({:>3.0}% of machine) {:>5.2} cores {:>10.2} cores {:>15.1}",
            name,
            r.secs,
            rate,
            r.server_cpu / r.secs,
            100.0 * r.server_cpu / r.secs / cores as f64,
            r.client_cpu / r.secs,
            ((r.machine_cpu - r.server_cpu - r.client_cpu) / r.secs).max(0.0),
            r.server_cpu * 1e6 / a.events as f64,
        );
        let stored: i64 = store
            .pool()
            .get()
            .await?
            .query_one(&format!("SELECT count(*) FROM {schema}.events"), &[])
            .await?
            .get(0);
        assert_eq!(stored as usize, a.events + 1, "every event stored");
        results.push(rate);
    }
    if results.len() >= 3 {
        println!(
            "COPY / multi-row INSERT: {:.2}×   (COPY + merge is the path for redelivered batches)",
            results[0] / results[2]
        );
    }
    admin
        .batch_execute("DROP DATABASE IF EXISTS tracepost_bench WITH (FORCE)")
        .await?;
    Ok(())
}
