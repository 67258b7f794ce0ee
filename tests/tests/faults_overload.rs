//! Fault injection: ten times more events than the sink can take, memory-only. Requests stay
//! fast, memory stays bounded, and every drop is counted exactly.
//!
//! Latency here is measured in a debug build on a shared 2-core machine, where p99 doubles
//! when another build runs (CI's rehearsal on a busy machine saw 9.8 → 18.7 ms). So what is
//! asserted is the property, not a speed: no request waits for the sink — one that did would
//! take at least one of its 500 ms sends, and with the queue full most would. The figures
//! printed (p99 against the baseline of the same run) are what the closing notes report.

mod support;

use std::time::Duration;

use support::load::{percentile, Load};
use support::serve;
use tracepost::prelude::*;
use tracepost::{Batch, BatchOptions, Sink, SinkError, SinkOptions, SinkOutcome, Tracepost};

/// How long the sink takes per batch.
const SINK_SEND: Duration = Duration::from_millis(500);

/// Takes 100 events per 500 ms: 200 events/s, a tenth of what the load produces.
struct Slow;

impl Sink for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn send(&self, _batch: Batch) -> Result<SinkOutcome, SinkError> {
        tokio::time::sleep(SINK_SEND).await;
        Ok(SinkOutcome::default())
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// (p50, p99) of `/fail` under the same load, with and without the overloaded sink.
async fn run(with_sink: bool) -> (Duration, Duration, Option<tracepost::SinkCounts>, u64) {
    let mut builder = Tracepost::builder().service("overload");
    if with_sink {
        builder = builder.sink_with(
            Slow,
            SinkOptions::default()
                .queue_capacity(1_000)
                .batch(BatchOptions::new(100, 1 << 20, Duration::from_millis(10)))
                .max_in_flight(1)
                .memory_only(),
        );
    }
    let tp = builder.build().unwrap();
    let app = quickstart::app().layer(tp.layer());
    let addr = serve(app).await;
    let rss_before = rss_kib();
    // ~2 000 events/s: /fail yields one error event per request.
    let load = Load::start(addr, "/fail", 10, 200.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let latencies = load.finish().await;
    let rss_growth = rss_kib().saturating_sub(rss_before);
    let report = tp.shutdown(Duration::from_secs(10)).await;
    let counts = report.sinks.first().map(|(_, c)| c.clone());
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        counts,
        rss_growth,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_overload_keeps_requests_fast_memory_bounded_and_drops_counted() {
    // Rounds alternate so that drift on the machine hits both alike; medians are compared.
    let (mut base, mut loaded, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let mut rss = 0;
    for _ in 0..3 {
        let (_, p99, _, _) = run(false).await;
        base.push(p99);
        let (_, p99, counts, growth) = run(true).await;
        loaded.push(p99);
        all.push(counts.unwrap());
        rss = rss.max(growth);
    }
    base.sort();
    loaded.sort();
    let (base_p99, p99) = (base[1], loaded[1]);
    for c in &all {
        let produced = c.queued + c.dropped(tracepost::DropReason::QueueFull);
        println!(
            "overloaded round: events produced {produced}, sent {}, dropped {:?}",
            c.sent, c.dropped
        );
        assert!(
            c.dropped(tracepost::DropReason::QueueFull) * 2 > produced,
            "the sink really was overloaded"
        );
        let shutdown = c.dropped(tracepost::DropReason::Shutdown);
        assert_eq!(
            c.queued,
            c.sent + shutdown,
            "what was queued was delivered, or counted at shutdown"
        );
        assert_eq!(
            c.dropped_total(),
            c.dropped(tracepost::DropReason::QueueFull) + shutdown,
            "drops are counted by reason"
        );
    }
    println!(
        "request p99 (median of 3 rounds): baseline {base_p99:?}, overloaded {p99:?} ({:+.1} %); max RSS growth {rss} KiB",
        (p99.as_secs_f64() / base_p99.as_secs_f64() - 1.0) * 100.0
    );
    assert!(
        p99 < SINK_SEND / 2,
        "p99 {p99:?} (baseline {base_p99:?}): requests waited for the sink's {SINK_SEND:?} sends"
    );
    // 1 000 queued events of ~2 KiB at most, plus the runtime's own churn.
    assert!(rss < 32 * 1024, "RSS grew by {rss} KiB");
}
