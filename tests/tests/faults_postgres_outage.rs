//! Fault injection: PostgreSQL stopped for 60 s under load, then started again. Every event
//! tracepost accepted must end up in the table exactly once (the spool holds them meanwhile),
//! and requests must keep being served throughout.
//!
//! This test stops the machine's PostgreSQL server, so it lives in a test binary of its own
//! (cargo runs test binaries one after another). `TRACEPOST_FAULT_OUTAGE_SECS` shortens or
//! lengthens the outage (default 60).

mod support;

use std::time::{Duration, Instant};

use support::load::{percentile, Load};
use support::{pg, serve};
use tracepost::prelude::*;
use tracepost::{BatchOptions, RetryOptions, SinkOptions, Tracepost};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_minute_under_load_loses_and_duplicates_nothing() {
    if !pg::may_stop_server("outage") {
        return;
    }
    let Some(url) = pg::create_db("outage").await else {
        return;
    };
    let _restart = pg::EnsureRunning;
    let outage = Duration::from_secs(
        std::env::var("TRACEPOST_FAULT_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let data = tempfile::tempdir().unwrap();
    let sink = tracepost_postgres::PostgresSink::builder(url.clone())
        .connect_timeout(Duration::from_secs(1))
        .pool_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let tp = Tracepost::builder()
        .service("fault-outage")
        .data_dir(data.path())
        .sink_with(
            sink,
            SinkOptions::default()
                .batch(BatchOptions::new(500, 1 << 20, Duration::from_millis(50)))
                .retry(RetryOptions::new(
                    10,
                    Duration::from_millis(50),
                    Duration::from_secs(1),
                )),
        )
        .build()
        .unwrap();
    let handle = tp.handle();
    // /fail: a 500 per request, so one error event each (no tracing layer: exactly one).
    let addr = serve(quickstart::app().layer(tp.layer())).await;

    let load = Load::start(addr, "/fail", 8, 25.0); // ~200 requests/s
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_outage = handle.sink_counts()[0].1.sent;
    let lat_before = load.take_window();
    pg::stop_server().await;
    let stopped = Instant::now();
    tokio::time::sleep(outage).await;
    let during = handle.sink_counts()[0].1.clone();
    let health_during = handle.health();
    pg::start_server().await;
    let outage_len = stopped.elapsed();
    let lat_during = load.take_window();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ok, failed) = (load.ok.clone(), load.failed.clone());
    let latencies = load.finish().await;
    let ok = ok.load(std::sync::atomic::Ordering::Relaxed);
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);

    // Wait for the spool to drain, then shut down.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(120) {
        let c = &handle.sink_counts()[0].1;
        if c.sent + c.dropped_total() >= c.queued && handle.health().sinks[0].spool_bytes == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_in = drain.elapsed();
    let mut all: Vec<Duration> = lat_before
        .iter()
        .chain(&lat_during)
        .chain(&latencies)
        .copied()
        .collect();
    all.sort();
    let peak_rss_kib = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    println!(
        "request p99 before the outage {:?} (n={}), during it {:?} (n={}), after it {:?} (n={}); peak RSS {peak_rss_kib}",
        percentile(&lat_before, 0.99),
        lat_before.len(),
        percentile(&lat_during, 0.99),
        lat_during.len(),
        percentile(&latencies, 0.99),
        latencies.len(),
    );
    let report = tp.shutdown(Duration::from_secs(30)).await;
    let c = &report.sinks[0].1;
    let (rows, distinct) = pg::count_events(&url).await;

    println!(
        "outage {:.1}s | requests ok {ok} failed {failed} p50 {:?} p99 {:?} max {:?} | \
         events queued {} sent {} spooled {} replayed {} dropped {:?} | rows {rows} distinct {distinct} | \
         sent before outage {before_outage}, spooled during outage {}, drained in {:.1}s",
        outage_len.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
        c.queued,
        c.sent,
        c.spooled,
        c.replayed,
        c.dropped,
        during.spooled,
        drained_in.as_secs_f64(),
    );
    assert_eq!(failed, 0, "every request was answered during the outage");
    assert_eq!(health_during.state, tracepost::Health::Down);
    assert!(during.spooled > 0, "the outage was absorbed by the spool");
    assert_eq!(c.dropped_total(), 0, "nothing dropped");
    assert_eq!(rows, distinct, "no duplicates");
    assert_eq!(
        rows as u64, c.queued,
        "every accepted event is in the table"
    );
    assert!(
        ok <= c.queued + 1 && c.queued <= ok + 8,
        "one event per answered request"
    );
}
