//! Query latency over a big SQLite store, through the `Store` trait: the console's views.
//!
//! Run: `cargo run --release -p tracepost-sqlite --example sqlite_query_bench -- [events] [dir] [runs]`
//! (default 1 000 000 events in `/tmp/tracepost-sqlite-query-bench`, 60 runs per query).
//! The first run generates the events (the console benchmark's mix, `common/mod.rs`) into
//! `<dir>/tracepost.sqlite3`, in the pipeline's batches of 1 000; later runs reuse the file
//! when it holds as many (a file of an older schema is upgraded in place on open, and the
//! time that took is printed). Each query then runs `runs` times, the queries interleaved
//! round by round, and p50 / p99 / max are printed in milliseconds (p99 is the
//! nearest-rank percentile: with fewer than 100 runs, the slowest run).
//!
//! The queries:
//! * **issue list**: `top_issues(None, 500)` (what the console's Issues page asks);
//! * **issue sparklines**: a 24 h histogram, hourly, of each of 100 issues (the page's
//!   sparklines), all 100 in turn;
//! * **event page**: level + service + text + the last 6 h, 50 events, then the keyset
//!   next page (both timed together, and the first page alone);
//! * **histogram 24 h**: every event in the last 24 h, in hourly buckets; and the errors of
//!   one service, in 15-minute buckets;
//! * **metric windows 24 h**: the Routes page's read (every metric window of the last 24 h).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracepost_core::store::{EventFilter, Store};
use tracepost_core::{Kind, Level, Timestamp};
use tracepost_sqlite::{SqliteStore, TimeRange};

mod common;

fn store(dir: &str) -> SqliteStore {
    SqliteStore::new(
        std::path::Path::new(dir).join(tracepost_sqlite::DB_FILE),
        TimeRange::default(),
        None,
    )
}

type Query = Box<dyn Fn(Arc<dyn Store>) -> futures_util::future::BoxFuture<'static, usize>>;

fn ago(secs: u64) -> Timestamp {
    Timestamp::from(std::time::SystemTime::now() - Duration::from_secs(secs))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = args
        .next()
        .unwrap_or_else(|| "/tmp/tracepost-sqlite-query-bench".into());
    let runs: usize = args.next().map_or(Ok(60), |s| s.parse())?;
    let opened = Instant::now();
    let have = store(&dir)
        .histogram(&EventFilter::new(), Duration::from_secs(365 * 86_400))
        .await?
        .iter()
        .map(|b| b.count)
        .sum::<u64>();
    if have < n {
        let _ = std::fs::remove_dir_all(&dir);
        let s = store(&dir);
        let started = Instant::now();
        let now_ns = Timestamp::now().unix_nanos();
        let mut i = 0;
        while i < n {
            let batch: Vec<_> = (i..(i + 1_000).min(n))
                .map(|k| Arc::new(common::event(k, n, now_ns)))
                .collect();
            i += batch.len() as u64;
            s.write(batch).await?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "generated {n} events in {secs:.1} s ({:.0} events/s)",
            n as f64 / secs
        );
    } else {
        println!(
            "reusing {have} events in {dir} (opened and counted in {:.1} s)",
            opened.elapsed().as_secs_f64()
        );
    }
    let s: Arc<dyn Store> = Arc::new(store(&dir));
    let fingerprints: Vec<String> = s
        .top_issues(None, 100)
        .await?
        .into_iter()
        .map(|i| i.fingerprint)
        .collect();
    let fingerprints = Arc::new(fingerprints);
    let page = || {
        EventFilter::new()
            .level(Level::Error)
            .service("billing")
            .message_contains("upstream 17")
            .since(ago(6 * 3600))
            .until(Timestamp::now())
    };
    let queries: Vec<(&str, Query)> = vec![
        (
            "issue list",
            Box::new(|s| {
                Box::pin(async move { s.top_issues(None, 500).await.expect("issues").len() })
            }),
        ),
        (
            "issue sparklines ×100",
            Box::new(move |s| {
                let fps = fingerprints.clone();
                Box::pin(async move {
                    let mut n = 0;
                    for fp in fps.iter() {
                        let f = EventFilter::new()
                            .fingerprint(fp.clone())
                            .since(ago(86_400))
                            .until(Timestamp::now());
                        n += s
                            .histogram(&f, Duration::from_secs(3600))
                            .await
                            .expect("spark")
                            .len();
                    }
                    n
                })
            }),
        ),
        (
            "event page 1",
            Box::new(move |s| {
                Box::pin(async move {
                    let f = page();
                    s.events(&f, 50, None).await.expect("page").events.len()
                })
            }),
        ),
        (
            "event page 1+2",
            Box::new(move |s| {
                Box::pin(async move {
                    let f = page();
                    let p1 = s.events(&f, 50, None).await.expect("page 1");
                    let p2 = s.events(&f, 50, p1.next).await.expect("page 2");
                    p1.events.len() + p2.events.len()
                })
            }),
        ),
        (
            "event page, no filter",
            Box::new(|s| {
                Box::pin(async move {
                    let p1 = s.events(&EventFilter::new(), 50, None).await.expect("p1");
                    p1.events.len()
                })
            }),
        ),
        (
            "histogram 24h",
            Box::new(|s| {
                Box::pin(async move {
                    let f = EventFilter::new()
                        .since(ago(86_400))
                        .until(Timestamp::now());
                    s.histogram(&f, Duration::from_secs(3600))
                        .await
                        .expect("histogram")
                        .len()
                })
            }),
        ),
        (
            "histogram 24h errors",
            Box::new(|s| {
                Box::pin(async move {
                    let f = EventFilter::new()
                        .kind(Kind::Error)
                        .service("checkout")
                        .since(ago(86_400))
                        .until(Timestamp::now());
                    s.histogram(&f, Duration::from_secs(900))
                        .await
                        .expect("histogram")
                        .len()
                })
            }),
        ),
        (
            "metric windows 24h",
            Box::new(|s| {
                Box::pin(async move {
                    s.metric_windows(ago(86_400), None, 200_000)
                        .await
                        .expect("windows")
                        .len()
                })
            }),
        ),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    let mut rows = vec![0usize; queries.len()];
    for _ in 0..runs {
        for (i, (_, q)) in queries.iter().enumerate() {
            let started = Instant::now();
            rows[i] = q(s.clone()).await;
            times[i].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>7}",
        "query", "p50 ms", "p99 ms", "max ms", "rows"
    );
    for (i, (name, _)) in queries.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| t[((t.len() as f64 * q).ceil() as usize).clamp(1, t.len()) - 1];
        println!(
            "{name:<24} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            p(0.5),
            p(0.99),
            t[t.len() - 1],
            rows[i]
        );
    }
    Ok(())
}
