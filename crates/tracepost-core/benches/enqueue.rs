//! Event capture: enrich, fingerprint (for errors) and enqueue into one sink's queue.
//!
//! Run: `cargo bench -p tracepost-core --bench enqueue`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tracepost_core::{
    Batch, Event, Kind, Level, Sink, SinkError, SinkOptions, SinkOutcome, Tracepost,
};

struct Discard;

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn send(&self, _batch: Batch) -> Result<SinkOutcome, SinkError> {
        Ok(SinkOutcome::default())
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tp = rt.block_on(async {
        Tracepost::builder()
            .service("bench")
            .sink_with(Discard, SinkOptions::default().queue_capacity(1 << 20))
            .build()
            .unwrap()
    });
    let handle = tp.handle();
    let mut group = c.benchmark_group("capture");
    group.throughput(Throughput::Elements(1));
    group.bench_function("log_event", |b| {
        b.iter(|| {
            handle.capture(
                Event::new(Kind::Log, Level::Info, "user logged in").with_attribute("user_id", 42),
            );
        })
    });
    group.bench_function("error_event_with_fingerprint", |b| {
        b.iter(|| {
            handle.capture(Event::new(
                Kind::Error,
                Level::Error,
                "order 1234 failed: timeout after 30s",
            ))
        })
    });
    group.finish();
    let report = rt.block_on(tp.shutdown(Duration::from_secs(10)));
    let c = &report.sinks[0].1;
    println!(
        "queued {}, sent {}, dropped {}",
        c.queued,
        c.sent,
        c.dropped_total()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
