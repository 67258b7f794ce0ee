//! A Loki whose limits are smaller than what the sink sends: the tenant's rate limiter (429
//! naming its limit), entries too long or too old (400 naming them, the rest stored). The
//! receiver applies the limits as Loki's distributor does (see `receiver::LokiLimits`).

mod receiver;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use receiver::{sample_event, LokiLimits, Receiver, Reply};
use tracepost_core::{BatchOptions, DropReason, RetryOptions, SinkOptions, Tracepost};
use tracepost_loki::{Limits, LokiConfig, LokiSink, TRUNCATED_KEY};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn options(batch_bytes: usize) -> SinkOptions {
    SinkOptions::default()
        .batch(BatchOptions::new(
            10_000,
            batch_bytes,
            Duration::from_millis(50),
        ))
        .retry(RetryOptions::new(
            10,
            Duration::from_millis(50),
            Duration::from_secs(2),
        ))
        .max_in_flight(1)
}

fn line_id(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How many refused (429) requests each event was in.
fn refusals_per_event(rx: &Receiver) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for r in rx.requests().iter().filter(|r| r.status == 429) {
        for s in r.push.as_ref().unwrap() {
            for e in &s.entries {
                *out.entry(line_id(&e.line)).or_default() += 1;
            }
        }
    }
    out
}

/// Events of ~`size` bytes each.
fn padded(i: u64, size: usize) -> tracepost_core::Event {
    let mut e = sample_event(i, now_ns());
    e.message = format!("{} {}", e.message, "x".repeat(size.saturating_sub(500)));
    e
}

async fn deliver_under_rate_limit(rate: f64, burst: f64, events: u64, batch_bytes: usize) {
    let rx = Receiver::start().await;
    rx.limits(LokiLimits {
        rate,
        burst,
        ..LokiLimits::none()
    });
    let sink = LokiSink::new(rx.url()).unwrap();
    let stats = sink.stats();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options(batch_bytes))
        .build()
        .unwrap();
    let started = Instant::now();
    for i in 0..events {
        tp.handle().capture(padded(i, 1000));
    }
    let all = rx.wait_for(events as usize, Duration::from_secs(60)).await;
    let took = started.elapsed();
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let requests = rx.requests();
    let refused = requests.iter().filter(|r| r.status == 429).count();
    let worst = refusals_per_event(&rx).into_values().max().unwrap_or(0);
    let s = stats.snapshot();
    eprintln!(
        "rate {rate} B/s, burst {burst} B, {events} events of ~1 KB in {batch_bytes}-byte batches: \
         {took:?}, {} requests, {refused} refused (429), an event in at most {worst} refused \
         requests; request size now {} B, learned rate {:?}",
        requests.len(),
        s.request_bytes,
        s.learned_rate
    );
    assert!(all, "{} of {events} delivered", rx.accepted_count());
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(report.sinks[0].1.sent, events);
    assert_eq!(rx.accepted_count(), events as usize, "nothing twice");
    assert!(worst <= 4, "an event was in {worst} refused requests");
    assert!(refused <= 8, "{refused} refused requests");
    assert_eq!(s.learned_rate, Some(rate as u64));
}

/// Loki's tenant burst (10 KB) is far below the pipeline's batches (120 KB): every batch as
/// one push would be refused forever. The sink halves its requests and paces them at the rate
/// Loki names. (A rate of 40 KB/s keeps the test short; the burst is what batches exceed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_smaller_than_a_batch_delivers_everything_with_few_refusals() {
    deliver_under_rate_limit(40_000.0, 10_000.0, 160, 120_000).await;
}

/// The issue's own limits: `ingestion_rate_mb: 0.01`, `ingestion_burst_size_mb: 0.01`
/// (10 485 bytes/s, 10 485 bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_limits_deliver_everything() {
    deliver_under_rate_limit(10_485.0, 10_485.0, 30, 120_000).await;
}

/// One entry too long and one too old among 100: Loki stores the 98 others and answers 400
/// naming the two. The sink counts the two by reason and sends nothing again; it learns
/// Loki's line limit and shortens later lines to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_400_stores_98_and_resends_nothing() {
    let rx = Receiver::start().await;
    rx.limits(LokiLimits {
        max_line_size: Some(4096),
        reject_old_max_age: Some(Duration::from_secs(3600)),
        ..LokiLimits::none()
    });
    // The sink's own limits are Loki's defaults (256 KB lines, a week): looser than this Loki.
    let sink = LokiSink::new(rx.url()).unwrap();
    let stats = sink.stats();
    let tp = Tracepost::builder()
        .service("quickstart")
        .sink_with(sink, options(1 << 20))
        .build()
        .unwrap();
    let base = now_ns();
    for i in 0..100 {
        let mut e = sample_event(i, base);
        if i == 10 {
            e.message = "y".repeat(21_000);
        }
        if i == 20 {
            e.timestamp =
                tracepost_core::Timestamp::from_unix_nanos(base - 2 * 3600 * 1_000_000_000);
        }
        tp.handle().capture(e);
    }
    assert!(rx.wait_for(98, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 1, "0 re-sent");
    assert_eq!(requests[0].status, 400);
    assert_eq!(rx.accepted_count(), 98);
    assert_eq!(stats.rejected_for("line_too_long"), 1);
    assert_eq!(stats.rejected_for("too_old"), 1);
    assert_eq!(stats.snapshot().partial_pushes, 1);

    // Loki's 4096 is now the sink's line limit: a long line is shortened, not refused.
    let mut long = sample_event(100, now_ns());
    long.message = "z".repeat(21_000);
    tp.handle().capture(long);
    assert!(rx.wait_for(99, Duration::from_secs(5)).await);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let (_, counts) = &report.sinks[0];
    assert_eq!(counts.sent, 99);
    assert_eq!(counts.dropped(DropReason::Rejected), 2);
    let (_, last) = rx.accepted().pop().unwrap();
    assert!(last.line.len() <= 4096 && last.line.contains(TRUNCATED_KEY));
    assert_eq!(rx.requests().len(), 2);
}

/// A stream whose newest entry is recent, then 25 entries two hours older with 5 fresh
/// ones: the ingester refuses the 25 as "too far behind" (listing 10, counting 25) and
/// stores the 5. The sink counts the 25 as refused, the 5 as sent, and sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_too_far_behind_are_counted_and_nothing_is_sent_again() {
    let rx = Receiver::start().await;
    rx.limits(LokiLimits {
        out_of_order_window: Some(Duration::from_secs(3600)),
        ..LokiLimits::none()
    });
    let sink = LokiSink::new(rx.url()).unwrap();
    let stats = sink.stats();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options(1 << 20))
        .build()
        .unwrap();
    let base = now_ns();
    // sample_event(i) puts every 4th event at info level: use those, one stream.
    let event = |i: u64, ts: u64| {
        let mut e = sample_event(i * 4 + 3, ts);
        e.timestamp = tracepost_core::Timestamp::from_unix_nanos(ts);
        e
    };
    tp.handle().capture(event(0, base));
    assert!(rx.wait_for(1, Duration::from_secs(5)).await);
    for i in 1..=25 {
        tp.handle()
            .capture(event(i, base - 7200 * 1_000_000_000 + i * 1_000_000));
    }
    for i in 26..=30 {
        tp.handle().capture(event(i, base + i));
    }
    assert!(rx.wait_for(6, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let requests = rx.requests();
    let mut sent: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        for s in r.push.as_ref().unwrap() {
            for e in &s.entries {
                *sent.entry(line_id(&e.line)).or_default() += 1;
            }
        }
    }
    assert_eq!(sent.len(), 31);
    assert!(sent.values().all(|n| *n == 1), "nothing sent again");
    // Loki lists 10 refused entries of a stream and counts the rest.
    assert!(requests
        .iter()
        .any(|r| r.status == 400 && r.answer.matches("entry with timestamp").count() == 10));
    assert_eq!(rx.accepted_count(), 6);
    assert_eq!(stats.rejected_for("too_far_behind"), 25);
    let (_, counts) = &report.sinks[0];
    assert_eq!(counts.sent, 6);
    assert_eq!(counts.dropped(DropReason::Rejected), 25);
}

/// The receiver's bodies are Loki's, word for word (the issue's examples).
#[tokio::test]
async fn the_receiver_answers_in_lokis_words() {
    let rx = Receiver::start().await;
    rx.limits(LokiLimits {
        rate: 10_485.0,
        burst: 10_485.0,
        max_line_size: Some(4096),
        reject_old_max_age: Some(Duration::from_secs(3600)),
        out_of_order_window: None,
    });
    let sink = LokiSink::new(rx.url()).unwrap();
    let event = |i: u64, message: String| {
        let mut e = sample_event(i, now_ns());
        e.resource.service = "quickstart".into();
        e.resource.environment = None;
        e.message = message;
        std::sync::Arc::new(e)
    };
    let send = |batch| tracepost_core::Sink::send(&sink, batch);

    // One entry, too long for Loki (not for the sink): refused alone.
    let long = event(0, "m".repeat(21_000));
    let _ = send(vec![long]).await;
    let line_len = rx.requests()[0].push.as_ref().unwrap()[0].entries[0]
        .line
        .len();
    assert_eq!(
        rx.requests()[0].answer,
        format!("Max entry size '4096' bytes exceeded for stream '{{kind=\"error\", level=\"error\", service=\"quickstart\", service_name=\"quickstart\"}}' while adding an entry with length '{line_len}' bytes\n")
    );

    // Too old (index 3: a log line at info level).
    let mut old = (*event(3, "old".into())).clone();
    let ts = now_ns() - 7200 * 1_000_000_000;
    old.timestamp = tracepost_core::Timestamp::from_unix_nanos(ts);
    let _ = send(vec![std::sync::Arc::new(old)]).await;
    let answer = rx.requests()[1].answer.clone();
    let want = format!(
        "entry for stream '{{kind=\"log\", level=\"info\", service=\"quickstart\"}}' has timestamp too old: {}, oldest acceptable timestamp is: ",
        receiver::rfc3339(ts)
    );
    assert!(answer.starts_with(&want), "{answer}");

    // More bytes than the burst in one push: 429, the issue's body.
    let batch: Vec<_> = (4..12).map(|i| event(i, "x".repeat(3000))).collect();
    let _ = send(batch).await;
    let refused = rx.requests().into_iter().find(|r| r.status == 429).unwrap();
    let entries: Vec<_> = refused
        .push
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|s| &s.entries)
        .collect();
    let bytes: usize = entries
        .iter()
        .map(|e| {
            e.line.len()
                + e.metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    assert_eq!(
        refused.answer,
        format!("Ingestion rate limit exceeded for user fake (limit: 10485 bytes/sec) while attempting to ingest '{}' lines totaling '{bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n", entries.len())
    );
}

/// Validation before sending: with `truncate_lines` off, a line over the limit is refused by
/// the sink (counted as `line_too_long`), never sent; with it on (the default) it is shortened
/// with a marker.
#[tokio::test]
async fn long_lines_are_shortened_or_refused_before_sending() {
    let rx = Receiver::start().await;
    let batch = || {
        let mut long = sample_event(1, now_ns());
        long.message = "l".repeat(5000);
        vec![
            std::sync::Arc::new(sample_event(0, now_ns())),
            std::sync::Arc::new(long),
        ]
    };
    let strict = Limits::default().max_line_bytes(2048).truncate_lines(false);
    let sink = LokiSink::with_config(LokiConfig::new(rx.url()).limits(strict)).unwrap();
    let outcome = tracepost_core::Sink::send(&sink, batch()).await.unwrap();
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].reason, "line_too_long");
    assert_eq!(sink.stats().rejected_for("line_too_long"), 1);
    assert_eq!(rx.accepted_count(), 1);

    let lenient = Limits::default().max_line_bytes(2048);
    let sink = LokiSink::with_config(LokiConfig::new(rx.url()).limits(lenient)).unwrap();
    let outcome = tracepost_core::Sink::send(&sink, batch()).await.unwrap();
    assert!(outcome.rejected.is_empty());
    assert_eq!(rx.accepted_count(), 3);
    let (_, last) = rx.accepted().pop().unwrap();
    assert!(last.line.len() <= 2048 && last.line.contains(TRUNCATED_KEY));
}

/// A batch sent as several pushes, the second refused with a `Retry-After`: the pipeline
/// retries the batch after the wait, and the entries of the first push, already stored, are
/// not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_skips_what_was_already_stored() {
    let rx = Receiver::start().await;
    rx.script([
        Reply::Accept,
        Reply::Status(429, Some("1"), "Ingestion rate limit exceeded"),
    ]);
    let sink = LokiSink::with_config(
        LokiConfig::new(rx.url()).limits(Limits::default().max_push_bytes(8192)),
    )
    .unwrap();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options(1 << 20))
        .build()
        .unwrap();
    for i in 0..60 {
        tp.handle().capture(padded(i, 600));
    }
    assert!(rx.wait_for(60, Duration::from_secs(10)).await);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let requests = rx.requests();
    assert!(requests.len() >= 3, "{} requests", requests.len());
    assert_eq!((requests[0].status, requests[1].status), (204, 429));
    let ids: Vec<String> = rx
        .accepted()
        .iter()
        .map(|(_, e)| line_id(&e.line))
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 60, "each entry stored once");
    assert_eq!(unique.len(), 60);
    assert_eq!(report.sinks[0].1.sent, 60);
    assert_eq!(report.sinks[0].1.retried, 1);
}

/// Label values with quotes, backslashes, newlines and non-ASCII text, as Loki quotes them in
/// its 400 (and with the `service_name` it adds): the sink still finds the one refused entry,
/// counts it, and treats the other nine as stored.
#[tokio::test]
async fn a_partial_400_names_streams_with_escaped_label_values() {
    for service in ["svc \"q\"", "svc \\b", "svc\nnl", "сервис-日本😀"] {
        let rx = Receiver::start().await;
        rx.limits(LokiLimits {
            max_line_size: Some(4096),
            ..LokiLimits::none()
        });
        let sink = LokiSink::new(rx.url()).unwrap();
        let batch = (0..10u64)
            .map(|i| {
                let mut e = sample_event(i, now_ns());
                e.resource.service = service.into();
                if i == 3 {
                    e.message = "y".repeat(10_000);
                }
                std::sync::Arc::new(e)
            })
            .collect();
        let outcome = tracepost_core::Sink::send(&sink, batch)
            .await
            .unwrap_or_else(|e| panic!("{service:?}: {e}"));
        assert_eq!(outcome.rejected.len(), 1, "{service:?}");
        assert_eq!(outcome.rejected[0].reason, "line_too_long");
        assert_eq!(rx.accepted_count(), 9, "{service:?}");
        assert_eq!(rx.requests().len(), 1, "{service:?}: nothing re-sent");
    }
}
