//! Throughput of the Loki sink, rerunnable:
//!
//! ```text
//! cargo run --release -p tracepost-loki --example loki_e2e_bench [events] [--url URL]
//! ```
//!
//! With `--url http://loki:3100` the end-to-end part pushes to that Loki (a real one; the
//! `LOKI_*` limit variables of `Limits::from_env` apply, and `LOKI_TENANT` sets
//! `X-Scope-OrgID`) instead of the in-process receiver, and counts what Loki accepted from the
//! sink's own statistics.
//!
//! 1. Encoding + compression alone: lines/s through `Encoder::encode` (JSON lines, protobuf,
//!    snappy) on batches of 1 000 events, single thread.
//! 2. End to end: events/s from `TracepostHandle::capture` through the pipeline and the sink
//!    into a local receiver on 127.0.0.1 that decompresses and decodes every push (with prost,
//!    as Loki's generated code does; the tests' dynamic push.proto decoder is much slower and
//!    its rate is printed separately). The generator, pipeline, sink and receiver share this
//!    machine's cores.

#[path = "../tests/receiver/mod.rs"]
mod receiver;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracepost_core::Tracepost;
use tracepost_loki::{Encoder, Limits, LineFormat, LokiConfig, LokiSink, PushEncoding};

#[tokio::main]
async fn main() {
    let mut total: u64 = 200_000;
    let mut url: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = Some(args.next().expect("--url needs a URL")),
            other if other.starts_with("--url=") => url = Some(other[6..].to_owned()),
            n => {
                total = n
                    .parse()
                    .unwrap_or_else(|_| panic!("expected a number of events or --url, got {n:?}"))
            }
        }
    }
    let now = SystemTime::now();
    let base = now.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 - 60_000_000_000;

    // 1. Encoding + compression.
    let batch: Vec<_> = (0..1000)
        .map(|i| Arc::new(receiver::sample_event(i, base)))
        .collect();
    for (name, encoding, format) in [
        (
            "protobuf+snappy, JSON lines  ",
            PushEncoding::Protobuf,
            LineFormat::Json,
        ),
        (
            "protobuf+snappy, logfmt lines",
            PushEncoding::Protobuf,
            LineFormat::Logfmt,
        ),
        (
            "JSON+gzip, JSON lines        ",
            PushEncoding::Json { gzip: true },
            LineFormat::Json,
        ),
    ] {
        let encoder = Encoder::new(
            &LokiConfig::new("http://127.0.0.1:3100")
                .encoding(encoding)
                .line_format(format),
        );
        let (mut lines, mut raw, mut wire) = (0usize, 0usize, 0usize);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let encoded = encoder.encode(&batch, now);
            lines += encoded.lines();
            raw += encoded.pushes.iter().map(|p| p.raw_bytes).sum::<usize>();
            wire += encoded.pushes.iter().map(|p| p.body.len()).sum::<usize>();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "encode {name}: {:>9.0} lines/s  ({:.0} MB/s of lines, {:.1}x compression)",
            lines as f64 / secs,
            raw as f64 / secs / 1e6,
            raw as f64 / wire as f64
        );
    }

    // What the receiver spends decoding one push (part of the end-to-end figure below).
    let desc = receiver::push_request_descriptor();
    let encoded = Encoder::new(&LokiConfig::new("http://127.0.0.1:3100")).encode(&batch, now);
    let started = Instant::now();
    let mut decoded = 0;
    while started.elapsed() < Duration::from_secs(2) {
        for push in &encoded.pushes {
            let (streams, exact) = receiver::decode_protobuf(&desc, &push.body).expect("decodes");
            assert!(exact);
            decoded += streams.iter().map(|s| s.entries.len()).sum::<usize>();
        }
    }
    println!(
        "test receiver's verifying decode (snappy + dynamic push.proto + re-encode): {:.0} lines/s",
        decoded as f64 / started.elapsed().as_secs_f64()
    );

    // 2. End to end into the decoding receiver, or the Loki at --url.
    let rx = match &url {
        Some(_) => None,
        None => Some(receiver::Receiver::start_fast().await),
    };
    let target = url.clone().unwrap_or_else(|| rx.as_ref().unwrap().url());
    let mut config =
        LokiConfig::new(&target).limits(Limits::default().from_env().expect("LOKI_* limits"));
    if let Ok(tenant) = std::env::var("LOKI_TENANT") {
        config = config.tenant(tenant);
    }
    let sink = LokiSink::with_config(config).expect("a valid Loki URL");
    let stats = sink.stats();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(
            sink,
            LokiSink::sink_options().queue_capacity(total as usize + 1),
        )
        .build()
        .expect("pipeline");
    let events: Vec<_> = (0..total)
        .map(|i| receiver::sample_event(i, base))
        .collect();
    let handle = tp.handle();
    let started = Instant::now();
    for e in events {
        handle.capture(e);
    }
    let captured = started.elapsed();
    let report = tp.shutdown(Duration::from_secs(120)).await;
    let secs = started.elapsed().as_secs_f64();
    let s = stats.snapshot();
    let accepted = match &rx {
        Some(rx) => rx.accepted_count(),
        None => s.lines as usize,
    };
    println!(
        "end to end ({target}): {total} events in {secs:.2} s = {:.0} events/s (capture loop {:.2} s); \
         accepted {accepted}, {} pushes, {:.1} MB on the wire, {} refused for size/rate (request \
         size now {} B, learned rate {:?}), {} partial 400s, rejected {:?}, completed={}",
        accepted as f64 / secs,
        captured.as_secs_f64(),
        s.pushes,
        s.body_bytes as f64 / 1e6,
        s.shrinks,
        s.request_bytes,
        s.learned_rate,
        s.partial_pushes,
        s.rejected,
        report.completed,
    );
    if rx.is_some() {
        assert_eq!(accepted as u64, total, "every event reaches the receiver");
    }
}
