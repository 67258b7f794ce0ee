//! The sink contract: refused-all keeps everything and resumes by itself, naming lets two
//! sinks of one kind run side by side, and the behaviour suite passes on the in-memory sink.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tracepost_core::testing::suite::{self, Capabilities, Harness, Stored};
use tracepost_core::testing::MemorySink;
use tracepost_core::{
    BatchOptions, DropReason, Event, Health, Kind, Level, RetryOptions, SinkOptions, Tracepost,
};

fn options() -> SinkOptions {
    SinkOptions::default()
        .batch(BatchOptions::new(100, 1 << 20, Duration::from_millis(5)))
        .retry(
            RetryOptions::new(2, Duration::from_millis(5), Duration::from_millis(20))
                .refused_interval(Duration::from_millis(150)),
        )
}

fn event(i: usize) -> Event {
    Event::new(Kind::Log, Level::Info, format!("event {i}"))
}

async fn wait_until(within: Duration, f: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// The fault from the issue: a sink answering "permission denied" to a batch of 1 000 got
/// 1 999 sends and lost all 1 000 events. Now: no bisection, no loss, slow retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batch_is_not_bisected_and_nothing_is_lost_in_memory() {
    let sink = MemorySink::new("refusing");
    sink.refuse(true);
    let tp = Tracepost::builder()
        .sink_with(
            sink.clone(),
            options().batch(BatchOptions::new(1000, 1 << 24, Duration::from_millis(50))),
        )
        .build()
        .unwrap();
    let h = tp.handle();
    for i in 0..1000 {
        h.capture(event(i));
    }
    assert!(wait_until(Duration::from_secs(5), || h.health().state == Health::Down).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // ~600 ms at one attempt per 150 ms (±10 %) per in-flight batch: a handful, not 1 999.
    let sends = sink.sends();
    assert!(sends <= 20, "{sends} sends while refused");
    let health = h.health();
    let error = health.sinks[0].last_error.clone().unwrap();
    assert!(error.contains("refused (permission_denied)"), "{error}");
    assert_eq!(h.sink_counts()[0].1.dropped_total(), 0);
    sink.refuse(false);
    assert!(wait_until(Duration::from_secs(5), || sink.stored().len() == 1000).await);
    assert!(wait_until(Duration::from_secs(2), || h.health().state == Health::Up).await);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let counts = &report.sinks[0].1;
    assert_eq!(counts.sent, 1000);
    assert_eq!(counts.dropped_total(), 0, "{counts:?}");
    let metrics = h.render_metrics();
    assert!(
        metrics.contains(
            "tracepost_sink_errors_total{sink=\"refusing\",class=\"refused\",kind=\"permission_denied\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_are_spooled_with_a_data_dir_and_replayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::new("refusing");
    sink.refuse(true);
    let tp = Tracepost::builder()
        .sink_with(sink.clone(), options())
        .data_dir(dir.path())
        .build()
        .unwrap();
    let h = tp.handle();
    for i in 0..300 {
        h.capture(event(i));
    }
    assert!(
        wait_until(Duration::from_secs(5), || h.sink_counts()[0].1.spooled
            == 300)
        .await,
        "{:?}",
        h.sink_counts()
    );
    assert_eq!(h.health().state, Health::Down);
    sink.refuse(false);
    assert!(wait_until(Duration::from_secs(5), || sink.stored().len() == 300).await);
    let messages: Vec<String> = sink.stored().into_iter().map(|e| e.message).collect();
    let want: Vec<String> = (0..300).map(|i| format!("event {i}")).collect();
    assert_eq!(messages, want);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.dropped_total(), 0);
}

/// Without a spool a refused batch is held in memory; the queue bounds what waits, and
/// what overflows it is counted (`queue_full`), never lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_a_spool_holds_up_to_the_queue_bound() {
    let sink = MemorySink::new("refusing");
    sink.refuse(true);
    let tp = Tracepost::builder()
        .sink_with(
            sink.clone(),
            options()
                .queue_capacity(100)
                .max_in_flight(1)
                .batch(BatchOptions::new(50, 1 << 20, Duration::from_millis(1))),
        )
        .build()
        .unwrap();
    let h = tp.handle();
    for i in 0..100 {
        h.capture(event(i));
    }
    assert!(wait_until(Duration::from_secs(5), || h.health().state == Health::Down).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 100..400 {
        h.capture(event(i));
    }
    let counts = h.sink_counts()[0].1.clone();
    let dropped = counts.dropped(DropReason::QueueFull);
    assert!(dropped > 0, "the queue bound applies: {counts:?}");
    sink.refuse(false);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let counts = &report.sinks[0].1;
    assert_eq!(
        counts.sent + counts.dropped_total(),
        400,
        "every event delivered or counted: {counts:?}"
    );
    assert_eq!(sink.stored().len() as u64, counts.sent);
}

/// Shutdown cuts a refused sink's long wait short and counts what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_refusing_sink() {
    let sink = MemorySink::new("refusing");
    sink.refuse(true);
    let tp = Tracepost::builder()
        .sink_with(
            sink.clone(),
            options().retry(RetryOptions::default().refused_interval(Duration::from_secs(600))),
        )
        .build()
        .unwrap();
    for i in 0..10 {
        tp.handle().capture(event(i));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let report = tp.shutdown(Duration::from_secs(1)).await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(report.sinks[0].1.dropped(DropReason::Shutdown), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_of_one_kind_run_side_by_side_under_their_names() {
    let (a, b) = (MemorySink::new("memory"), MemorySink::new("memory"));
    let dup = Tracepost::builder()
        .sink(a.clone())
        .sink(b.clone())
        .build()
        .unwrap_err();
    assert!(dup.to_string().contains("\"memory\""), "{dup}");
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .sink_named("recent", a.clone())
        .sink_named_with("archive", b.clone(), options())
        .data_dir(dir.path())
        .build()
        .unwrap();
    tp.handle().capture(event(1));
    let names: Vec<String> = tp
        .handle()
        .health()
        .sinks
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["recent", "archive"]);
    assert!(dir.path().join("spool/recent").is_dir());
    assert!(dir.path().join("spool/archive").is_dir());
    let metrics = tp.handle().render_metrics();
    assert!(
        metrics.contains("tracepost_events_queued_total{sink=\"archive\"} 1"),
        "{metrics}"
    );
    tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!((a.stored().len(), b.stored().len()), (1, 1));
}

#[tokio::test]
async fn sink_names_must_be_path_safe() {
    for bad in ["", "../escape", "a/b", "with space", &"x".repeat(65)] {
        let err = Tracepost::builder()
            .sink_named(bad, MemorySink::new("m"))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("sink name"), "{bad}: {err}");
    }
}

/// The behaviour suite against the in-memory sink: the suite's own check.
struct Memory {
    sink: MemorySink,
    bad: AtomicUsize,
}

impl Harness for Memory {
    type Sink = MemorySink;
    async fn sink(&self) -> MemorySink {
        self.sink.clone()
    }
    async fn read_back(&self) -> Vec<Stored> {
        self.sink.stored().iter().map(Stored::from).collect()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
    async fn set_refusing(&self, on: bool) {
        self.sink.refuse(on);
    }
    async fn set_reachable(&self, on: bool) {
        self.sink.unavailable(!on);
    }
    fn bad_event(&self, i: usize) -> Event {
        self.bad.fetch_add(1, Ordering::SeqCst);
        let e = suite::event("bad", i);
        self.sink.reject_ids([e.id]);
        e
    }
}

tracepost_core::sink_behaviour_suite!(async {
    Some(Memory {
        sink: MemorySink::new("memory"),
        bad: AtomicUsize::new(0),
    })
});
