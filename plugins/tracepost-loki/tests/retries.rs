//! Failure handling through the real tracepost pipeline: what is retried, how long it waits,
//! and what is dropped.

mod receiver;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use receiver::{sample_event, Receiver, Reply};
use tracepost_core::{
    BatchOptions, DropReason, RetryOptions, Sink, SinkErrorKind, SinkOptions, Tracepost,
};
use tracepost_loki::{LokiConfig, LokiSink};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Fast batching and backoff so the tests take well under a few seconds.
fn options() -> SinkOptions {
    SinkOptions::default()
        .batch(BatchOptions::new(1000, 1 << 20, Duration::from_millis(50)))
        .retry(RetryOptions::new(
            5,
            Duration::from_millis(10),
            Duration::from_secs(5),
        ))
        .max_in_flight(1)
}

fn ids(rx: &Receiver) -> Vec<String> {
    rx.accepted()
        .iter()
        .map(|(_, e)| {
            serde_json::from_str::<serde_json::Value>(&e.line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_for_one_entry_loses_only_that_entry() {
    let rx = Receiver::start().await;
    rx.reject_lines_containing(
        "POISON",
        "entry for stream '{service=\"shop-api\"}' has timestamp too old: 1970-01-01T00:00:00Z",
    );
    let sink = LokiSink::new(rx.url()).unwrap();
    let stats = sink.stats();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options())
        .build()
        .unwrap();
    let handle = tp.handle();
    let base = now_ns();
    let mut poison_id = None;
    for i in 0..64 {
        let mut e = sample_event(i, base);
        if i == 37 {
            e.message = "POISON".into();
            poison_id = Some(e.id.to_string());
        }
        handle.capture(e);
    }
    let report = tp.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed);

    let got = ids(&rx);
    let unique: BTreeSet<_> = got.iter().collect();
    assert_eq!(unique.len(), 63, "all but the poisoned entry are delivered");
    assert!(!unique.contains(poison_id.as_ref().unwrap()));
    let (_, counts) = &report.sinks[0];
    assert_eq!(counts.sent, 63);
    assert_eq!(counts.dropped(DropReason::Rejected), 1);
    assert_eq!(counts.dropped(DropReason::RetriesExhausted), 0);
    // Counted by the reason Loki gave.
    assert_eq!(stats.rejected_for("too_old"), 1);
    // Bisection, not an endless loop: 1 + 2·log2(64) requests at most.
    let requests = rx.requests().len();
    assert!(requests <= 13, "{requests} requests");
    assert!(rx.requests().iter().filter(|r| r.status == 400).count() <= 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_delays_the_retry_by_that_long() {
    let rx = Receiver::start().await;
    rx.script([Reply::Status(
        429,
        Some("1"),
        "Ingestion rate limit exceeded",
    )]);
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(LokiSink::new(rx.url()).unwrap(), options())
        .build()
        .unwrap();
    for i in 0..10 {
        tp.handle().capture(sample_event(i, now_ns()));
    }
    assert!(rx.wait_for(10, Duration::from_secs(5)).await);
    let requests = rx.requests();
    // The retry is sent in smaller requests (the 429 halved the request size).
    assert!(requests.len() >= 2);
    assert_eq!(requests[0].status, 429);
    assert!(requests[1..].iter().all(|r| r.status == 204));
    let waited = requests[1].at - requests[0].at;
    // The pipeline's own backoff here is ≤ 10 ms; only Retry-After explains a 1 s wait.
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.sent, 10);
    assert_eq!(report.sinks[0].1.retried, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let rx = Receiver::start().await;
    rx.script([
        Reply::Status(500, None, "internal"),
        Reply::Status(503, None, "ingester unavailable"),
    ]);
    let sink = LokiSink::new(rx.url()).unwrap();
    let stats = sink.stats();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options())
        .build()
        .unwrap();
    for i in 0..10 {
        tp.handle().capture(sample_event(i, now_ns()));
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.sent, 10);
    assert_eq!(report.sinks[0].1.retried, 2);
    assert_eq!(stats.snapshot().temporary_failures, 2);
    assert_eq!(ids(&rx).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out_and_is_retried() {
    let rx = Receiver::start().await;
    rx.script([Reply::Hang]);
    let sink = LokiSink::with_config(LokiConfig::new(rx.url()).timeout(Duration::from_millis(300)))
        .unwrap();
    let stats = sink.stats();
    let started = Instant::now();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options())
        .build()
        .unwrap();
    for i in 0..10 {
        tp.handle().capture(sample_event(i, now_ns()));
    }
    assert!(rx.wait_for(10, Duration::from_secs(5)).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    let requests = rx.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[0].status, requests[1].status), (0, 204));
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(300));
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.sent, 10);
    assert_eq!(stats.snapshot().temporary_failures, 1);
}

#[tokio::test]
async fn connection_errors_are_temporary() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there now
    let sink = LokiSink::new(format!("http://{addr}")).unwrap();
    let err = sink
        .send(vec![Arc::new(sample_event(1, now_ns()))])
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.message().contains("push to Loki failed"), "{err}");
}

#[tokio::test]
async fn status_classification() {
    let rx = Receiver::start().await;
    let sink = LokiSink::new(rx.url()).unwrap();
    let batch = || {
        (0..4)
            .map(|i| Arc::new(sample_event(i, now_ns())))
            .collect::<Vec<_>>()
    };

    rx.script([Reply::Status(408, None, "")]);
    assert!(sink.send(batch()).await.unwrap_err().is_temporary());

    rx.script([Reply::Status(400, None, "bad")]);
    let e = sink.send(batch()).await.unwrap_err();
    assert!(
        !e.is_temporary(),
        "a 400 on several entries is permanent: the pipeline splits it"
    );

    // A 400 for a single entry drops just that entry, with the reason.
    rx.script([Reply::Status(
        400,
        None,
        "Max entry size '262144' bytes exceeded",
    )]);
    let one = vec![Arc::new(sample_event(9, now_ns()))];
    let outcome = sink.send(one.clone()).await.unwrap();
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].id, one[0].id);
    assert_eq!(outcome.rejected[0].reason, "line_too_long");

    // Wrong credentials, tenant or URL: the whole push is refused (no bisection storm, and
    // nothing dropped: the pipeline keeps the events until Loki accepts them).
    for (status, kind) in [
        (401, SinkErrorKind::Unauthenticated),
        (403, SinkErrorKind::PermissionDenied),
        (404, SinkErrorKind::NotFound),
        (405, SinkErrorKind::NotFound),
    ] {
        rx.script([Reply::Status(status, None, "no org id")]);
        let before = rx.requests().len();
        let e = sink.send(batch()).await.unwrap_err();
        assert_eq!(rx.requests().len(), before + 1);
        assert!(e.is_refused(), "{status}: {e}");
        assert_eq!(e.kind(), kind, "{status}");
        assert!(
            e.message().contains(&format!("HTTP {status}: no org id")),
            "{e}"
        );
    }
    // Last: a 429 also halves the next requests (see tests/limits.rs).
    rx.script([Reply::Status(429, Some("3"), "slow down")]);
    let e = sink.send(batch()).await.unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

    assert_eq!(
        sink.stats().snapshot().rejected.len(),
        1,
        "only the line_too_long entry"
    );

    let text = sink.stats().render_prometheus();
    for line in [
        "tracepost_loki_push_failures_total{sink=\"loki\",kind=\"refused\"} 4",
        "tracepost_loki_rejected_total{sink=\"loki\",reason=\"line_too_long\"} 1",
        "tracepost_loki_push_failures_total{sink=\"loki\",kind=\"temporary\"} 2",
        "tracepost_loki_push_failures_total{sink=\"loki\",kind=\"permanent\"} 1",
        "# TYPE tracepost_loki_lines_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommended_options_batch_by_time_into_few_streams() {
    let rx = Receiver::start().await;
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(LokiSink::new(rx.url()).unwrap(), LokiSink::sink_options())
        .build()
        .unwrap();
    let started = Instant::now();
    // 40 events over ~200 ms: all within one 1 s linger window, so one push.
    for i in 0..40 {
        tp.handle().capture(sample_event(i, now_ns()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rx.wait_for(40, Duration::from_secs(5)).await);
    let elapsed = started.elapsed();
    let requests = rx.requests();
    assert_eq!(requests.len(), 1, "one push for the whole window");
    assert!(
        elapsed >= Duration::from_millis(900),
        "{elapsed:?}: sent before the linger"
    );
    // 4 label sets (level × kind combinations), one stream each, in that single push.
    assert_eq!(requests[0].push.as_ref().unwrap().len(), 4);
    tp.shutdown(Duration::from_secs(5)).await;
}

/// A batch sent as several pushes: the first is stored, then Loki goes down for good. The
/// stored events count as sent (not dropped) and are never sent again; only the rest is
/// retried and, when the retries run out, dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stored_in_part_counts_that_part_as_sent() {
    let rx = Receiver::start().await;
    rx.script([Reply::Accept]);
    rx.standing(Some(Reply::Status(503, None, "ingester unavailable")));
    let limits = tracepost_loki::Limits::default().max_push_bytes(16 * 1024);
    let sink = LokiSink::with_config(LokiConfig::new(rx.url()).limits(limits)).unwrap();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(sink, options())
        .build()
        .unwrap();
    for i in 0..60 {
        let mut e = sample_event(i, now_ns());
        e.message = format!("{} {}", e.message, "x".repeat(600));
        tp.handle().capture(e);
    }
    let report = tp.shutdown(Duration::from_secs(10)).await;
    let stored = ids(&rx);
    let unique: BTreeSet<_> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "nothing stored twice");
    assert!(!stored.is_empty() && stored.len() < 60, "{}", stored.len());
    let c = &report.sinks[0].1;
    assert_eq!(c.sent, stored.len() as u64);
    assert_eq!(
        c.dropped(DropReason::RetriesExhausted),
        60 - stored.len() as u64
    );
    // No request after the first carried a stored event.
    for r in rx.requests().iter().skip(1) {
        for s in r.push.as_ref().unwrap() {
            for e in &s.entries {
                let id = serde_json::from_str::<serde_json::Value>(&e.line).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(!unique.contains(&id), "{id} sent again");
            }
        }
    }
}

/// A proxy in front of Loki answers 400 with an HTML page (nginx's "Request Header Or Cookie
/// Too Large"): no entry is at fault. The batch is neither split nor dropped; the sink is
/// down with the proxy's words, and once the proxy lets pushes through, everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxys_html_400_refuses_the_push_and_loses_nothing() {
    let rx = Receiver::start().await;
    rx.standing(Some(Reply::Status(
        400,
        None,
        "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    )));
    let sink = LokiSink::new(rx.url()).unwrap();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink_with(
            sink,
            options().retry(
                RetryOptions::new(5, Duration::from_millis(10), Duration::from_secs(5))
                    .refused_interval(Duration::from_millis(100)),
            ),
        )
        .build()
        .unwrap();
    for i in 0..10 {
        tp.handle().capture(sample_event(i, now_ns()));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while rx.requests().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every request carried the whole batch: never split.
    for r in rx.requests() {
        let n: usize = r
            .push
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.entries.len())
            .sum();
        assert_eq!(n, 10);
    }
    let health = tp.handle().health();
    let text = format!("{health:?}");
    assert!(
        text.contains("Request Header Or Cookie Too Large"),
        "{text}"
    );
    rx.standing(None);
    assert!(rx.wait_for(10, Duration::from_secs(5)).await);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    let c = &report.sinks[0].1;
    assert_eq!((c.sent, c.dropped_total()), (10, 0));
    assert_eq!(ids(&rx).len(), 10);
}
