//! What the sink puts on the wire, decoded the way Loki decodes it.

mod receiver;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use receiver::{sample_event, Receiver};
use tracepost_core::{Event, Kind, Level, Sink, Timestamp};
use tracepost_loki::{Limits, LineFormat, LokiConfig, LokiSink, PushEncoding, TRUNCATED_KEY};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn arc(events: Vec<Event>) -> Vec<Arc<Event>> {
    events.into_iter().map(Arc::new).collect()
}

#[tokio::test]
async fn protobuf_snappy_push_decodes_byte_exact_with_lokis_proto() {
    let rx = Receiver::start().await;
    let sink = LokiSink::with_config(
        LokiConfig::new(rx.url())
            .tenant("team-a")
            .basic_auth("loki-user", "pa55")
            .header("X-Extra", "yes")
            .static_label("cluster", "eu-1"),
    )
    .unwrap();
    let base = now_ns() - 60_000_000_000;
    // Shuffled timestamps: the sink must sort within each stream.
    let mut events: Vec<Event> = [5u64, 1, 9, 3, 0, 7, 2, 8, 4, 6]
        .iter()
        .map(|&i| {
            let mut e = Event::new(
                if i % 2 == 0 { Kind::Error } else { Kind::Log },
                if i % 2 == 0 {
                    Level::Error
                } else {
                    Level::Info
                },
                format!("message {i}"),
            )
            .with_timestamp(Timestamp::from_unix_nanos(base + i * 1_000_000_123));
            e.resource.service = "shop-api".into();
            e.resource.environment = Some("prod".into());
            e.user_id = Some(format!("user-{i}"));
            e
        })
        .collect();
    events[0] = events[0]
        .clone()
        .with_trace("4bf92f3577b34da6a3ce929d0e0e4736", None);
    events[0].fingerprint = Some("fp-5".into());
    let outcome = sink.send(arc(events.clone())).await.unwrap();
    assert!(outcome.rejected.is_empty());

    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.status, 204);
    assert!(
        req.byte_exact,
        "re-encoding the decoded PushRequest must give the same bytes"
    );
    let h = &req.headers;
    assert_eq!(h["content-type"], "application/x-protobuf");
    assert!(
        h.get("content-encoding").is_none(),
        "snappy is implied, not a content-encoding"
    );
    assert_eq!(h["x-scope-orgid"], "team-a");
    assert_eq!(h["authorization"], "Basic bG9raS11c2VyOnBhNTU="); // loki-user:pa55
    assert_eq!(h["x-extra"], "yes");
    assert!(h["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("tracepost-loki/"));

    let streams = req.push.as_ref().unwrap();
    let labels: Vec<_> = streams.iter().map(|s| s.labels.as_str()).collect();
    assert_eq!(
        labels,
        [
            r#"{cluster="eu-1", environment="prod", kind="log", level="info", service="shop-api"}"#,
            r#"{cluster="eu-1", environment="prod", kind="error", level="error", service="shop-api"}"#,
        ]
    );
    for (stream, parity) in streams.iter().zip([1u64, 0]) {
        let expected_ts: Vec<u64> = (0..10u64)
            .filter(|i| i % 2 == parity)
            .map(|i| base + i * 1_000_000_123)
            .collect();
        let got_ts: Vec<u64> = stream.entries.iter().map(|e| e.ts_ns).collect();
        assert_eq!(got_ts, expected_ts, "exact ns timestamps, oldest first");
        for entry in &stream.entries {
            let i = (entry.ts_ns - base) / 1_000_000_123;
            let line: serde_json::Value = serde_json::from_str(&entry.line).unwrap();
            let event = events
                .iter()
                .find(|e| e.timestamp.unix_nanos() == entry.ts_ns)
                .unwrap();
            assert_eq!(line["id"], event.id.to_string());
            assert_eq!(line["message"], format!("message {i}"));
            assert_eq!(line["user_id"], format!("user-{i}"));
            let mut want = vec![];
            if i == 5 {
                want.push((
                    "trace_id".to_string(),
                    "4bf92f3577b34da6a3ce929d0e0e4736".to_string(),
                ));
            }
            want.push(("user_id".into(), format!("user-{i}")));
            if i == 5 {
                want.push(("fingerprint".into(), "fp-5".into()));
            }
            assert_eq!(entry.metadata, want);
        }
    }
    let stats = sink.stats().snapshot();
    assert_eq!((stats.pushes, stats.lines), (1, 10));
    assert!(stats.body_bytes > 0 && stats.body_bytes < stats.raw_bytes);
}

#[tokio::test]
async fn labels_stay_bounded_whatever_the_routes_users_and_messages() {
    let rx = Receiver::start().await;
    let sink = LokiSink::new(rx.url()).unwrap();
    let base = now_ns() - 3_600_000_000_000;
    let n = 3000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let batch = arc(chunk.iter().map(|&i| sample_event(i, base)).collect());
        sink.send(batch).await.unwrap();
    }
    let accepted = rx.accepted();
    assert_eq!(accepted.len(), n as usize);
    let label_sets: BTreeSet<&str> = accepted.iter().map(|(l, _)| l.as_str()).collect();
    // service × environment × (level, kind) combinations actually used: 4.
    assert_eq!(label_sets.len(), 4, "{label_sets:#?}");
    for l in &label_sets {
        assert!(!l.contains("user-") && !l.contains("/orders") && !l.contains("order "));
        assert!(l.starts_with(r#"{environment="test", kind="#), "{l}");
    }
    // …and every high-cardinality value is still there, in metadata and in the line.
    let users: BTreeSet<&str> = accepted
        .iter()
        .flat_map(|(_, e)| &e.metadata)
        .filter(|(k, _)| k == "user_id")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(users.len(), n as usize);
    let routes: BTreeSet<&str> = accepted
        .iter()
        .flat_map(|(_, e)| &e.metadata)
        .filter(|(k, _)| k == "route")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(routes.len(), 50);
    let names: BTreeSet<&str> = accepted
        .iter()
        .flat_map(|(_, e)| &e.metadata)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "fingerprint",
            "request_id",
            "route",
            "session_id",
            "span_id",
            "trace_id",
            "user_id"
        ])
    );
    assert!(accepted
        .iter()
        .all(|(_, e)| e.line.contains("\"request_id\":\"req-")));
}

#[tokio::test]
async fn structured_metadata_can_be_turned_off_for_old_loki() {
    let rx = Receiver::start().await;
    let sink = LokiSink::with_config(
        LokiConfig::new(rx.url())
            .structured_metadata(false)
            .line_format(LineFormat::Logfmt),
    )
    .unwrap();
    sink.send(arc((0..8).map(|i| sample_event(i, now_ns())).collect()))
        .await
        .unwrap();
    let accepted = rx.accepted();
    assert_eq!(accepted.len(), 8);
    for (_, e) in &accepted {
        assert!(e.metadata.is_empty());
        assert!(e.line.starts_with("message=\"order "), "{}", e.line);
        assert!(e.line.contains(" trace_id=") && e.line.contains(" user_id=user-"));
    }
    assert!(accepted
        .iter()
        .any(|(_, e)| e.line.contains(" request_route=/orders/")));
}

#[tokio::test]
async fn json_fallback_with_gzip() {
    let rx = Receiver::start().await;
    let sink = LokiSink::with_config(
        LokiConfig::new(rx.url()).encoding(PushEncoding::Json { gzip: true }),
    )
    .unwrap();
    let base = now_ns() - 1_000_000_000;
    let events: Vec<_> = (0..20).rev().map(|i| sample_event(i, base)).collect();
    sink.send(arc(events.clone())).await.unwrap();
    let req = &rx.requests()[0];
    assert_eq!(req.headers["content-type"], "application/json");
    assert_eq!(req.headers["content-encoding"], "gzip");
    let streams = req.push.as_ref().unwrap();
    assert_eq!(streams.iter().map(|s| s.entries.len()).sum::<usize>(), 20);
    for s in streams {
        assert!(s.entries.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        for e in &s.entries {
            let ev = events
                .iter()
                .find(|x| x.timestamp.unix_nanos() == e.ts_ns)
                .unwrap();
            assert!(e
                .metadata
                .contains(&("user_id".into(), ev.user_id.clone().unwrap())));
            let line: serde_json::Value = serde_json::from_str(&e.line).unwrap();
            assert_eq!(line["id"], ev.id.to_string());
        }
    }
    // Plain JSON works too.
    let plain = LokiSink::with_config(
        LokiConfig::new(rx.url()).encoding(PushEncoding::Json { gzip: false }),
    )
    .unwrap();
    plain.send(arc(vec![sample_event(1, base)])).await.unwrap();
    let req = rx.requests().pop().unwrap();
    assert!(req.headers.get("content-encoding").is_none());
    assert_eq!(req.status, 204);
}

#[tokio::test]
async fn big_batches_are_split_into_pushes_under_the_size_limit() {
    let rx = Receiver::start().await;
    let sink = LokiSink::with_config(
        LokiConfig::new(rx.url()).limits(Limits::default().max_push_bytes(64 * 1024)),
    )
    .unwrap();
    let events: Vec<_> = (0..2000).map(|i| sample_event(i, now_ns())).collect();
    sink.send(arc(events.clone())).await.unwrap();
    let requests = rx.requests();
    assert!(requests.len() > 5, "{} pushes", requests.len());
    for r in &requests {
        let raw: usize = r
            .push
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| {
                e.line.len()
                    + e.metadata
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        assert!(raw <= 64 * 1024, "{raw}");
    }
    let ids: BTreeSet<String> = rx
        .accepted()
        .iter()
        .map(|(_, e)| {
            serde_json::from_str::<serde_json::Value>(&e.line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2000);
}

#[tokio::test]
async fn oversized_lines_and_values_are_fixed_before_sending() {
    let rx = Receiver::start().await;
    let sink = LokiSink::new(rx.url()).unwrap();
    let mut e = Event::new(Kind::Error, Level::Error, "y".repeat(400_000));
    e.resource.service = "s".repeat(5000); // longer than a label value may be
    e.user_id = Some("u".repeat(5000));
    sink.send(arc(vec![e])).await.unwrap();
    let (labels, entry) = rx.accepted().pop().unwrap();
    assert!(entry.line.len() <= 256 * 1024);
    let line: serde_json::Value = serde_json::from_str(&entry.line).unwrap();
    assert!(line[TRUNCATED_KEY].as_str().unwrap().contains("shortened"));
    assert!(line["message"]
        .as_str()
        .unwrap()
        .ends_with("bytes truncated]"));
    assert!(labels.len() < 2048 + 100, "label value cut to 2048 bytes");
    let user = entry.metadata.iter().find(|(k, _)| k == "user_id").unwrap();
    assert_eq!(user.1.len(), 1024);
    let stats = sink.stats().snapshot();
    assert_eq!(stats.truncated_lines, 1);
    assert_eq!(stats.values_cut, 2);
}

#[tokio::test]
async fn events_loki_would_refuse_for_their_age_are_rejected_up_front() {
    let rx = Receiver::start().await;
    let sink = LokiSink::new(rx.url()).unwrap();
    let now = now_ns();
    let old = sample_event(1, now - 8 * 24 * 3600 * 1_000_000_000);
    let future = sample_event(2, now + 3600 * 1_000_000_000);
    let fine = sample_event(3, now);
    let outcome = sink
        .send(arc(vec![old.clone(), future.clone(), fine]))
        .await
        .unwrap();
    let mut reasons: Vec<_> = outcome
        .rejected
        .iter()
        .map(|r| (r.id, r.reason.to_string()))
        .collect();
    reasons.sort();
    let mut want = vec![
        (old.id, "too_old".to_string()),
        (future.id, "too_new".to_string()),
    ];
    want.sort();
    assert_eq!(reasons, want);
    assert_eq!(rx.accepted_count(), 1);
    let stats = sink.stats();
    assert_eq!(
        (stats.rejected_for("too_old"), stats.rejected_for("too_new")),
        (1, 1)
    );
}
