//! Delivery guarantees with a disk spool: outage, recovery order, restart, panics, health.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracepost_core::{
    Batch, BatchOptions, Event, Health, Kind, Level, RetryOptions, Sink, SinkError, SinkOptions,
    SinkOutcome, Tracepost,
};
use uuid::Uuid;

/// A destination that can be switched off, and that panics on request.
#[derive(Clone, Default)]
struct Switchable {
    down: Arc<AtomicBool>,
    panics_left: Arc<AtomicU32>,
    received: Arc<Mutex<Vec<Uuid>>>,
}

impl Sink for Switchable {
    fn name(&self) -> &str {
        "switchable"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        if self.panics_left.load(Ordering::SeqCst) > 0 {
            self.panics_left.fetch_sub(1, Ordering::SeqCst);
            panic!("bug in the sink");
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::temporary("connection refused"));
        }
        self.received.lock().extend(batch.iter().map(|e| e.id));
        Ok(SinkOutcome::default())
    }
}

fn options() -> SinkOptions {
    SinkOptions::default()
        .batch(BatchOptions::new(10, 1 << 20, Duration::from_millis(5)))
        .retry(RetryOptions::new(
            2,
            Duration::from_millis(5),
            Duration::from_millis(50),
        ))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_spooled_and_replayed_oldest_first_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Switchable::default();
    sink.down.store(true, Ordering::SeqCst);
    let tp = Tracepost::builder()
        .data_dir(dir.path())
        .sink_with(sink.clone(), options())
        .build()
        .unwrap();
    let h = tp.handle();
    let mut ids = Vec::new();
    for i in 0..300 {
        let e = event(i);
        ids.push(e.id);
        h.capture(e);
    }
    assert!(
        wait_until(Duration::from_secs(5), || h.sink_counts()[0].1.spooled
            == 300)
        .await,
        "{:?}",
        h.sink_counts()
    );
    assert_eq!(h.health().state, Health::Down);
    assert!(h.health().sinks[0].spool_bytes > 0);
    assert!(h
        .render_metrics()
        .contains("tracepost_sink_health{sink=\"switchable\",state=\"down\"} 1"));

    sink.down.store(false, Ordering::SeqCst);
    for i in 300..350 {
        let e = event(i);
        ids.push(e.id);
        h.capture(e);
    }
    assert!(
        wait_until(Duration::from_secs(10), || sink.received.lock().len()
            >= 350)
        .await
    );
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let got = sink.received.lock().clone();
    // Exactly once: same ids, no duplicates.
    let (mut sorted_got, mut sorted_ids) = (got.clone(), ids.clone());
    sorted_got.sort();
    sorted_ids.sort();
    assert!(
        sorted_got == sorted_ids,
        "{} received for {} sent",
        got.len(),
        ids.len()
    );
    // Everything spooled during the outage arrives before anything captured after it. (Within
    // the outage, two batches in flight at once may reach the spool in either order.)
    let position = |id: &Uuid| got.iter().position(|g| g == id).unwrap();
    let last_old = ids[..300].iter().map(position).max().unwrap();
    let first_new = ids[300..].iter().map(position).min().unwrap();
    assert!(
        last_old < first_new,
        "spooled events must be replayed before newer ones"
    );
    let c = &report.sinks[0].1;
    assert_eq!((c.sent, c.dropped_total()), (350, 0));
    assert!(
        std::fs::read_dir(dir.path().join("spool/switchable"))
            .unwrap()
            .all(|f| { !f.unwrap().file_name().to_string_lossy().starts_with("seg-") }),
        "delivered segments are deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_delivered_by_shutdown_is_delivered_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Switchable::default();
    sink.down.store(true, Ordering::SeqCst);
    let tp = Tracepost::builder()
        .data_dir(dir.path())
        .sink_with(sink.clone(), options())
        .build()
        .unwrap();
    let ids: Vec<Uuid> = (0..100)
        .map(|i| {
            let e = event(i);
            let id = e.id;
            tp.handle().capture(e);
            id
        })
        .collect();
    let start = Instant::now();
    let report = tp.shutdown(Duration::from_secs(2)).await;
    assert!(start.elapsed() <= Duration::from_millis(2500));
    let c = &report.sinks[0].1;
    assert_eq!(
        (c.sent, c.spooled, c.dropped_total()),
        (0, 100, 0),
        "nothing lost at shutdown"
    );

    // The next start, on the same data directory, with the destination back.
    let sink2 = Switchable::default();
    let tp = Tracepost::builder()
        .data_dir(dir.path())
        .sink_with(sink2.clone(), options())
        .build()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || sink2.received.lock().len()
            == 100)
        .await
    );
    tp.shutdown(Duration::from_secs(5)).await;
    let mut got = sink2.received.lock().clone();
    let mut want = ids.clone();
    got.sort();
    want.sort();
    assert!(got == want, "{} delivered of {}", got.len(), want.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_is_caught_counted_and_keeps_working() {
    let sink = Switchable::default();
    sink.panics_left.store(1, Ordering::SeqCst);
    let tp = Tracepost::builder()
        .sink_with(sink.clone(), options())
        .build()
        .unwrap();
    for i in 0..20 {
        tp.handle().capture(event(i));
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let c = &report.sinks[0].1;
    assert_eq!((c.panics, c.sent, c.dropped_total()), (1, 20, 0));
    assert_eq!(sink.received.lock().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_only_sinks_drop_and_count_instead_of_spooling() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Switchable::default();
    sink.down.store(true, Ordering::SeqCst);
    let tp = Tracepost::builder()
        .data_dir(dir.path())
        .sink_with(sink.clone(), options().memory_only())
        .build()
        .unwrap();
    for i in 0..30 {
        tp.handle().capture(event(i));
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let c = &report.sinks[0].1;
    assert_eq!((c.spooled, c.dropped_total()), (0, 30));
    assert!(!dir.path().join("spool").exists());
}
