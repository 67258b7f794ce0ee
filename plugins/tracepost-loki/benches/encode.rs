//! Lines/s through encoding + compression: `cargo bench -p tracepost-loki --bench encode`.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

#[path = "../tests/receiver/mod.rs"]
mod receiver;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tracepost_loki::{Encoder, LineFormat, LokiConfig, PushEncoding};

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    let base = now.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 - 10_000_000_000;
    let batch: Vec<_> = (0..1000)
        .map(|i| Arc::new(receiver::sample_event(i, base)))
        .collect();
    let mut group = c.benchmark_group("encode_1000_lines");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.measurement_time(Duration::from_secs(5));
    let variants = [
        (
            "protobuf_snappy_json_lines",
            PushEncoding::Protobuf,
            LineFormat::Json,
        ),
        (
            "protobuf_snappy_logfmt_lines",
            PushEncoding::Protobuf,
            LineFormat::Logfmt,
        ),
        (
            "json_gzip_json_lines",
            PushEncoding::Json { gzip: true },
            LineFormat::Json,
        ),
    ];
    for (name, encoding, format) in variants {
        let encoder = Encoder::new(
            &LokiConfig::new("http://127.0.0.1:3100")
                .encoding(encoding)
                .line_format(format),
        );
        group.bench_function(name, |b| b.iter(|| encoder.encode(&batch, now)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
