//! The benchmarks' events: the console benchmark's mix (`tracepost-console`'s
//! `console_bench`), so the write rate, the query times and the page times are measured
//! over the same data.

use tracepost_core::{ErrorDetail, Event, Kind, Level, MetricWindow, RequestSnapshot, Timestamp};

/// Event `i` of `n`, spread over the 23 hours before `now_ns`, oldest first: 10 % errors
/// (every tenth event; 200 fingerprints, `(i / 10) % 200`, each with a request snapshot),
/// 10 % kept requests (with snapshots), 2.5 % metric windows (20 routes), the rest logs;
/// every event has an attribute (`tenant`, 50 values), a trace, a user (5 000) and one of
/// three services.
pub fn event(i: u64, n: u64, now_ns: u64) -> Event {
    let span = 23 * 3600 * 1_000_000_000u64;
    let ts = now_ns - span + span / n * i;
    let (kind, level) = match (i % 10, i % 40) {
        (0, _) => (Kind::Error, Level::Error),
        (1, _) => (Kind::Request, Level::Info),
        (_, 2) => (Kind::MetricWindow, Level::Info),
        (3, _) => (Kind::Log, Level::Warn),
        _ => (Kind::Log, Level::Info),
    };
    let route = format!("/api/r{}/{{id}}", i % 20);
    let msg = match kind {
        Kind::Error => format!(
            "timeout talking to upstream {} after {} ms",
            (i / 10) % 200,
            i % 997
        ),
        Kind::Request => format!("GET {route} 200"),
        Kind::MetricWindow => format!("GET {route}: window"),
        _ => format!("processed order {i} for tenant {}", i % 50),
    };
    let mut e = Event::new(kind, level, msg)
        .with_timestamp(Timestamp::from_unix_nanos(ts))
        .with_attribute("tenant", format!("t{}", i % 50))
        .with_trace(format!("{:032x}", i / 4), Some(format!("{i:016x}")));
    e.resource.service = ["checkout", "search", "billing"][(i % 3) as usize].into();
    e.user_id = Some(format!("user-{}", i % 5000));
    let snapshot = || RequestSnapshot {
        method: "GET".into(),
        route: route.clone(),
        path: route.replace("{id}", &(i % 1000).to_string()),
        status: if kind == Kind::Error { 500 } else { 200 },
        duration_ms: (i % 400) as f64,
        request_headers: vec![
            ("accept".into(), "application/json".into()),
            ("user-agent".into(), "bench/1.0".into()),
        ],
        ..Default::default()
    };
    match kind {
        Kind::Error => {
            e.fingerprint = Some(format!("fp-{:03}", (i / 10) % 200));
            e = e
                .with_error(ErrorDetail {
                    error_type: "upstream_timeout".into(),
                    message: "timeout".into(),
                    ..Default::default()
                })
                .with_request(snapshot());
        }
        Kind::Request => e = e.with_request(snapshot()),
        Kind::MetricWindow => {
            e.metric = Some(MetricWindow {
                start: Timestamp::from_unix_nanos(ts),
                seconds: 60,
                method: "GET".into(),
                route: route.clone(),
                count: 100 + i % 50,
                errors: i % 3,
                p50_ms: 10.0,
                p95_ms: 40.0,
                p99_ms: 90.0,
                max_ms: 120.0,
                bytes_in: 0,
                bytes_out: 1000,
            })
        }
        _ => {}
    }
    e
}
