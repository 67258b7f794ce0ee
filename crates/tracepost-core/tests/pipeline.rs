//! Pipeline behaviour: delivery, shutdown, retries, permanent-error isolation, overflow.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracepost_core::sinks::JsonlFile;
use tracepost_core::{
    Batch, BatchOptions, DropReason, Event, Kind, Level, Rejection, RetryOptions, Settled, Sink,
    SinkError, SinkOptions, SinkOutcome, Tracepost,
};
use uuid::Uuid;

/// Records what it receives; fails according to `behaviour`.
#[derive(Clone, Default)]
struct Recording {
    name: &'static str,
    received: Arc<Mutex<Vec<Uuid>>>,
    calls: Arc<Mutex<Vec<(Instant, usize)>>>,
    behaviour: Behaviour,
}

#[derive(Clone, Default)]
enum Behaviour {
    #[default]
    Accept,
    AlwaysTemporary,
    Hang,
    /// Fails permanently whenever the batch holds an event with this message.
    RejectMessage(&'static str),
    /// Fails with 429 + Retry-After the first `n` times.
    RetryAfter(Arc<AtomicU32>, Duration),
    /// Stores the first half of each batch, refuses its first event of that half for good,
    /// then fails temporarily for the rest, saying so ([`SinkError::with_settled`]).
    HalfThenDown,
}

impl Sink for Recording {
    fn name(&self) -> &str {
        self.name
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.calls.lock().push((Instant::now(), batch.len()));
        match &self.behaviour {
            Behaviour::Accept => {}
            Behaviour::AlwaysTemporary => return Err(SinkError::temporary("down")),
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::RejectMessage(m) => {
                if batch.iter().any(|e| e.message == *m) {
                    return Err(SinkError::permanent("HTTP 400: bad entry"));
                }
            }
            Behaviour::HalfThenDown => {
                let half = batch.len() / 2;
                let (stored, _) = batch.split_at(half);
                if stored.is_empty() {
                    return Err(SinkError::temporary("down"));
                }
                self.received
                    .lock()
                    .extend(stored[1..].iter().map(|e| e.id));
                return Err(
                    SinkError::temporary("down after half").with_settled(Settled {
                        delivered: stored[1..].iter().map(|e| e.id).collect(),
                        rejected: vec![Rejection {
                            id: stored[0].id,
                            reason: "bad_entry".into(),
                            detail: "refused".into(),
                        }],
                    }),
                );
            }
            Behaviour::RetryAfter(left, after) => {
                if left.load(Ordering::SeqCst) > 0 {
                    left.fetch_sub(1, Ordering::SeqCst);
                    return Err(
                        SinkError::from_http_status(429, "slow down").with_retry_after(*after)
                    );
                }
            }
        }
        self.received.lock().extend(batch.iter().map(|e| e.id));
        Ok(SinkOutcome::default())
    }
}

fn log(i: usize) -> Event {
    Event::new(Kind::Log, Level::Info, format!("event {i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_enqueued_before_shutdown_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording {
        name: "rec",
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .service("test")
        .sink(rec.clone())
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(100, 1 << 20, Duration::from_secs(10))),
        )
        .build()
        .unwrap();
    let h = tp.handle();
    let mut ids = Vec::new();
    for i in 0..5000 {
        let e = log(i);
        ids.push(e.id);
        h.capture(e);
    }
    let report = tp.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed);
    let mut got = rec.received.lock().clone();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let lines: usize = JsonlFile::files(dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 5000);
    for (name, c) in &report.sinks {
        assert_eq!(
            (c.queued, c.sent, c.dropped_total()),
            (5000, 5000, 0),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_by_its_deadline_when_a_sink_hangs() {
    let hang = Recording {
        name: "hang",
        behaviour: Behaviour::Hang,
        ..Default::default()
    };
    let ok = Recording {
        name: "ok",
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .sink_with(
            hang,
            SinkOptions::default().send_timeout(Duration::from_secs(3600)),
        )
        .sink(ok.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        tp.handle().capture(log(i));
    }
    let start = Instant::now();
    let report = tp.shutdown(Duration::from_millis(500)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    // Delivery attempts stop at the deadline (less a margin for spooling), so the workers
    // finish in time and count what they could not deliver.
    assert!(report.completed);
    let hang = &report.sinks.iter().find(|(n, _)| n == "hang").unwrap().1;
    assert_eq!(
        hang.dropped(DropReason::Shutdown),
        10,
        "undelivered events are counted"
    );
    assert_eq!(
        ok.received.lock().len(),
        10,
        "the healthy sink still delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_never_blocks_capture_and_every_drop_is_counted() {
    let down = Recording {
        name: "down",
        behaviour: Behaviour::AlwaysTemporary,
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .sink_with(
            down,
            SinkOptions::default()
                .queue_capacity(100)
                .batch(BatchOptions::new(10, 1 << 20, Duration::from_millis(1)))
                .max_in_flight(1)
                .retry(RetryOptions::new(
                    2,
                    Duration::from_millis(1),
                    Duration::from_millis(5),
                )),
        )
        .build()
        .unwrap();
    let h = tp.handle();
    let start = Instant::now();
    for i in 0..10_000 {
        h.capture(log(i));
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "capture must not wait: {:?}",
        start.elapsed()
    );
    let report = tp.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed);
    let c = &report.sinks[0].1;
    assert_eq!(c.sent, 0);
    assert!(c.dropped(DropReason::QueueFull) > 0);
    assert_eq!(
        c.queued + c.dropped(DropReason::QueueFull),
        10_000,
        "every event is accounted for"
    );
    assert_eq!(
        c.dropped(DropReason::RetriesExhausted),
        c.queued,
        "every queued event ended as a counted drop"
    );
    assert!(c.retried > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_drops_only_the_offending_event() {
    let picky = Recording {
        name: "picky",
        behaviour: Behaviour::RejectMessage("event 37"),
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .sink_with(
            picky.clone(),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(50),
            )),
        )
        .build()
        .unwrap();
    let events: Vec<Event> = (0..100).map(log).collect();
    let bad = events[37].id;
    for e in events {
        tp.handle().capture(e);
    }
    let h = tp.handle();
    let report = tp.shutdown(Duration::from_secs(10)).await;
    let c = &report.sinks[0].1;
    assert_eq!((c.sent, c.dropped(DropReason::Rejected)), (99, 1));
    let got = picky.received.lock().clone();
    assert_eq!(got.len(), 99);
    assert!(!got.contains(&bad));
    assert!(h
        .render_metrics()
        .contains("tracepost_events_rejected_total{sink=\"picky\",reason=\"permanent_error\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_delays_the_retry_by_that_long() {
    let left = Arc::new(AtomicU32::new(1));
    let rec = Recording {
        name: "limited",
        behaviour: Behaviour::RetryAfter(left, Duration::from_millis(700)),
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .sink_with(
            rec.clone(),
            SinkOptions::default().batch(BatchOptions::new(10, 1 << 20, Duration::from_millis(1))),
        )
        .build()
        .unwrap();
    tp.handle().capture(log(1));
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let calls = rec.calls.lock().clone();
    assert_eq!(calls.len(), 2);
    let gap = calls[1].0 - calls[0].0;
    assert!(
        gap >= Duration::from_millis(700) && gap < Duration::from_millis(1500),
        "{gap:?}"
    );
    assert_eq!(report.sinks[0].1.sent, 1);
    assert_eq!(report.sinks[0].1.retried, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_filter_by_kind_and_level_and_errors_get_fingerprints() {
    let errors = Recording {
        name: "errors",
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .service("svc")
        .sink_with(errors.clone(), SinkOptions::default().kinds([Kind::Error]))
        .build()
        .unwrap();
    let h = tp.handle();
    h.capture(log(1));
    let err = Event::new(Kind::Error, Level::Error, "boom 42");
    let id = err.id;
    h.capture(err);
    tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(*errors.received.lock(), vec![id]);
}

#[tokio::test]
async fn build_rejects_duplicate_sink_names() {
    let a = Recording {
        name: "same",
        ..Default::default()
    };
    let err = Tracepost::builder()
        .sink(a.clone())
        .sink(a)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("same"));
}

#[test]
fn build_outside_a_runtime_works_on_the_own_runtime_and_is_a_clear_error_on_the_current_one() {
    let err = Tracepost::builder()
        .worker_runtime(tracepost_core::pipeline::WorkerRuntime::Current)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"));

    // A synchronous program: the workers run on tracepost's own runtime, and dropping the
    // owner flushes.
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .sink(JsonlFile::new(dir.path()))
        .build()
        .unwrap();
    tp.handle()
        .capture(Event::new(Kind::Log, Level::Info, "from sync code"));
    drop(tp);
    let files = JsonlFile::files(dir.path()).unwrap();
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(text.contains("from sync code"), "{text}");
}

#[test]
fn dropping_the_tracepost_flushes_best_effort() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = Tracepost::builder()
            .sink_with(
                JsonlFile::new(dir.path()),
                SinkOptions::default().batch(BatchOptions::new(
                    1000,
                    1 << 20,
                    Duration::from_secs(60),
                )),
            )
            .build()
            .unwrap();
        for i in 0..100 {
            tp.handle().capture(log(i));
        }
        drop(tp); // no shutdown(): the guard's Drop waits (block_in_place) for the workers
    });
    let lines: usize = JsonlFile::files(dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 100);
}

/// A test (or app) that pauses Tokio's clock: the workers run on tracepost's own runtime,
/// whose clock is not paused, so batches still linger for real time only, and the shutdown
/// deadline is not skipped over while the caller's runtime idles.
#[tokio::test(start_paused = true)]
async fn a_paused_caller_clock_neither_stalls_delivery_nor_cuts_shutdown_short() {
    let sink = Recording {
        name: "paused",
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .sink_with(
            sink.clone(),
            SinkOptions::default().batch(BatchOptions::new(
                1000,
                1 << 20,
                Duration::from_millis(300),
            )),
        )
        .build()
        .unwrap();
    for i in 0..50 {
        tp.handle().capture(log(i));
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);
    assert_eq!(sink.received.lock().len(), 50);
}

/// A send that stored part of a batch before failing says so: the pipeline counts that part
/// as sent (and its refused event as rejected), retries only the rest, and drops only the
/// rest when the retries run out — nothing stored is counted as dropped or sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_failed_send_settled_is_counted_once_and_not_sent_again() {
    let rec = Recording {
        name: "half",
        behaviour: Behaviour::HalfThenDown,
        ..Default::default()
    };
    let tp = Tracepost::builder()
        .sink_with(
            rec.clone(),
            SinkOptions::default()
                .batch(BatchOptions::new(16, 1 << 20, Duration::from_secs(10)))
                .max_in_flight(1)
                .retry(RetryOptions::new(
                    2,
                    Duration::from_millis(1),
                    Duration::from_millis(5),
                )),
        )
        .build()
        .unwrap();
    for i in 0..16 {
        tp.handle().capture(log(i));
    }
    let report = tp.shutdown(Duration::from_secs(10)).await;
    // Sends of 16, 8 and 4 events: each stores half but its first, refuses that one.
    let calls: Vec<usize> = rec.calls.lock().iter().map(|c| c.1).collect();
    assert_eq!(calls, vec![16, 8, 4]);
    let received = rec.received.lock().clone();
    let mut unique = received.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), received.len(), "nothing sent twice");
    let c = &report.sinks[0].1;
    assert_eq!(c.sent, 7 + 3 + 1);
    assert_eq!(c.dropped(DropReason::Rejected), 3);
    assert_eq!(c.dropped(DropReason::RetriesExhausted), 2);
    assert_eq!(c.sent + c.dropped_total(), 16);
}
