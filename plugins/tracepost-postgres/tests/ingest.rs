//! Write path against the real server: round trips, idempotency, bad rows, issues,
//! retention, migrations, API keys, and the tracepost pipeline.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tracepost_core::{Event, Kind, Level, Sink, Tracepost};
use tracepost_postgres::{IngestMethod, PostgresSink};

macro_rules! db {
    ($tag:expr) => {
        match TestDb::new($tag).await {
            Some(db) => db,
            None => return,
        }
    };
}

#[tokio::test]
async fn every_kind_round_trips() {
    let db = db!("roundtrip");
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let events = every_kind();
    assert_eq!(events.len(), 7);
    let outcome = sink.send(arcs(events.clone())).await.unwrap();
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    for e in &events {
        let back = sink.store().event(e.id).await.unwrap().expect("stored");
        assert_eq!(&back, e, "kind {}", e.kind);
    }
    let c = db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM tracepost.events").await, 7);
    assert_eq!(
        count(&c, "SELECT count(*) FROM tracepost.request_snapshots").await,
        2
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM tracepost.metric_windows").await,
        1
    );
    assert_eq!(count(&c, "SELECT count(*) FROM tracepost.issues").await, 1);
    // The columns a person queries by hand hold plain values.
    let row = c
        .query_one(
            "SELECT method, route, status, duration_ms, request_headers->0->>1 \
             FROM tracepost.request_snapshots WHERE status = 503",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "POST");
    assert_eq!(row.get::<_, &str>(1), "/users/{id}");
    assert_eq!(row.get::<_, i32>(2), 503);
    assert_eq!(row.get::<_, f64>(3), 12.345);
    assert_eq!(row.get::<_, &str>(4), "application/json");
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn multirow_insert_method_round_trips_too() {
    let db = db!("roundtrip_insert");
    let sink = PostgresSink::builder(&db.url)
        .ingest_method(IngestMethod::MultiRowInsert)
        .connect()
        .await
        .unwrap();
    let events = every_kind();
    sink.send(arcs(events.clone())).await.unwrap();
    for e in &events {
        assert_eq!(sink.store().event(e.id).await.unwrap().as_ref(), Some(e));
    }
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn redelivering_a_batch_adds_no_rows() {
    let db = db!("redeliver");
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let mut events = Vec::new();
    for i in 0..400 {
        events.push(log(&format!("line {i}")));
        if i % 4 == 0 {
            let mut e = error(&format!("fp-{}", i % 3), "boom");
            e.request = Some(request_snapshot());
            events.push(e);
        }
    }
    let batch = arcs(events);
    let n = batch.len() as u64;
    let first = sink.store().write(&batch).await.unwrap();
    assert_eq!(first.inserted, n);
    assert_eq!(first.requests, 100);
    let c = db.client().await;
    let snapshot = |c: tokio_postgres::Client| async move {
        (
            count(&c, "SELECT count(*) FROM tracepost.events").await,
            count(&c, "SELECT count(*) FROM tracepost.request_snapshots").await,
            count(&c, "SELECT sum(count)::bigint FROM tracepost.issues").await,
            c,
        )
    };
    let (events1, requests1, issues1, c) = snapshot(c).await;
    assert_eq!((events1, requests1, issues1), (n as i64, 100, 100));

    // The same batch again, then a batch overlapping the first half with new events.
    let again = sink.store().write(&batch).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, n));
    let mut mixed: Vec<Arc<Event>> = batch[..50].to_vec();
    mixed.push(Arc::new(log("new one")));
    mixed.push(mixed[0].clone()); // repeated within the batch too
    let third = sink.send(mixed).await.unwrap();
    assert!(third.rejected.is_empty());

    let (events2, requests2, issues2, _c) = snapshot(c).await;
    assert_eq!(events2, events1 + 1);
    assert_eq!(requests2, requests1);
    assert_eq!(issues2, issues1, "redelivery must not count issues twice");
    let stats = sink.stats();
    assert_eq!(stats.inserted, n + 1);
    assert_eq!(stats.duplicates, n + 51);
    drop(sink);
    db.drop_db().await;
}

async fn bad_rows_case(method: IngestMethod, tag: &str) {
    let db = db!(tag);
    let sink = PostgresSink::builder(&db.url)
        .ingest_method(method)
        .connect()
        .await
        .unwrap();
    let mut events: Vec<Event> = (0..200).map(|i| log(&format!("good {i}"))).collect();
    // PostgreSQL can't store NUL: stored with U+FFFD in its place (a tester's input: a span
    // with a NUL in a field was lost from its kept trace), in the message and inside JSON.
    let nul = log("bad \0 message");
    let nul_json = log("bad attribute").with_attribute("x\0key", "a\u{0}b");
    // Refused by the server: an index row larger than a btree page allows (SQLSTATE 54000).
    let mut huge = error("x", "huge fingerprint");
    huge.fingerprint = Some(
        (0..40_000)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect(),
    );
    let (nul_id, nul_json_id) = (nul.id, nul_json.id);
    let bad_ids = [huge.id];
    events.insert(17, nul);
    events.insert(100, nul_json);
    events.insert(150, huge);
    let good_ids: Vec<_> = events
        .iter()
        .filter(|e| !bad_ids.contains(&e.id))
        .map(|e| e.id)
        .collect();

    let outcome = sink.send(arcs(events)).await.unwrap();
    let mut rejected: Vec<_> = outcome
        .rejected
        .iter()
        .map(|r| (r.id, r.reason.to_string()))
        .collect();
    rejected.sort();
    let expected = vec![(bad_ids[0], "too_large".to_string())];
    assert_eq!(rejected, expected, "{:?}", outcome.rejected);

    let c = db.client().await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM tracepost.events").await,
        202
    );
    let message: String = c
        .query_one(
            "SELECT message FROM tracepost.events WHERE id = $1",
            &[&nul_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(message, "bad \u{fffd} message");
    let attrs: String = c
        .query_one(
            "SELECT attributes::text FROM tracepost.events WHERE id = $1",
            &[&nul_json_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        attrs.contains("\"x\u{fffd}key\": \"a\u{fffd}b\""),
        "{attrs}"
    );
    for id in good_ids {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM tracepost.events WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }
    let stats = sink.stats();
    assert_eq!(stats.rejected_total(), 1);
    assert_eq!(stats.rejected, vec![("too_large".to_string(), 1)]);
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn a_bad_row_does_not_lose_the_good_ones_copy() {
    bad_rows_case(IngestMethod::Copy, "badrow_copy").await;
}

#[tokio::test]
async fn a_bad_row_does_not_lose_the_good_ones_insert() {
    bad_rows_case(IngestMethod::MultiRowInsert, "badrow_insert").await;
}

#[tokio::test]
async fn issue_counts_match_events() {
    let db = db!("issues");
    let sink = Arc::new(PostgresSink::connect(&db.url).await.unwrap());
    let base = now_secs() - 3600;
    // 3 fingerprints, events spread over an hour, written by 4 concurrent tasks in
    // batches, each batch delivered twice.
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..5u64 {
                let batch: Vec<Event> = (0..50u64)
                    .map(|i| {
                        let n = t * 1000 + b * 100 + i;
                        let fp = ["alpha", "beta", "gamma"][(n % 3) as usize];
                        error(fp, &format!("failure {n}")).with_timestamp(ts(base + n % 3600))
                    })
                    .collect();
                let batch = arcs(batch);
                sink.send(batch.clone()).await.unwrap();
                sink.send(batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = db.client().await;
    let rows = c
        .query(
            "SELECT i.fingerprint, i.count, e.n, i.first_seen = e.first, i.last_seen = e.last, \
                    i.last_event_id = e.last_id
             FROM tracepost.issues i
             JOIN (SELECT fingerprint, count(*) AS n, min(timestamp) AS first,
                          max(timestamp) AS last,
                          (array_agg(id ORDER BY timestamp DESC, id DESC))[1] AS last_id
                   FROM tracepost.events GROUP BY fingerprint) e USING (fingerprint)
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let mut total = 0;
    for r in &rows {
        let (fp, issue_count, events): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(issue_count, events, "issue {fp}");
        assert!(
            r.get::<_, bool>(3) && r.get::<_, bool>(4) && r.get::<_, bool>(5),
            "{fp}"
        );
        total += events;
    }
    assert_eq!(total, 1000);
    let top = sink.store().top_issues(None, 10).await.unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top.iter().map(|i| i.count).sum::<u64>(), 1000);
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn retention_drops_old_partitions_and_keeps_fresh_data() {
    let db = db!("retention");
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let now = now_secs();
    let day = 86_400;
    let mut events = Vec::new();
    for (age_days, n) in [(10u64, 5), (5, 7), (0, 11)] {
        for i in 0..n {
            let mut e =
                log(&format!("{age_days} days old")).with_timestamp(ts(now - age_days * day - i));
            if i == 0 {
                e.request = Some(request_snapshot());
            }
            events.push(e);
        }
    }
    events.push(error("old-issue", "old").with_timestamp(ts(now - 10 * day)));
    sink.send(arcs(events)).await.unwrap();
    let c = db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM tracepost.events").await, 24);
    let before = sink.store().partitions("events").await.unwrap();
    assert!(before.len() >= 6, "{before:?}"); // 2 old days + yesterday..today+3

    let report = sink.retain(Duration::from_secs(3 * day)).await.unwrap();
    assert_eq!(
        report.dropped_partitions.len(),
        6,
        "{:?}",
        report.dropped_partitions
    );
    assert_eq!(report.deleted_issues, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM tracepost.events").await, 11);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM tracepost.events WHERE timestamp > now() - interval '1 day'"
        )
        .await,
        11
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM tracepost.request_snapshots").await,
        1
    );
    let after = sink.store().partitions("events").await.unwrap();
    assert_eq!(after.len(), before.len() - 2);
    for name in &report.dropped_partitions {
        assert!(!after.contains(name));
    }

    // Writing old events again recreates their partition on demand.
    sink.send(arcs(vec![log("late").with_timestamp(ts(now - 10 * day))]))
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM tracepost.events").await, 12);
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn retention_runs_in_the_background() {
    let db = db!("retention_bg");
    {
        let sink = PostgresSink::connect(&db.url).await.unwrap();
        let old = log("old").with_timestamp(ts(now_secs() - 20 * 86_400));
        sink.send(arcs(vec![old, log("fresh")])).await.unwrap();
    }
    let sink = PostgresSink::builder(&db.url)
        .retention(Duration::from_secs(7 * 86_400))
        .maintenance_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let c = db.client().await;
    let mut left = 0;
    for _ in 0..100 {
        left = count(&c, "SELECT count(*) FROM tracepost.events").await;
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "the background task should drop the old partition");
    let msg: String = c
        .query_one("SELECT message FROM tracepost.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(msg, "fresh");
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn concurrent_connects_apply_migrations_once() {
    let db = db!("migrate");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            PostgresSink::builder(url).schema("shared").connect().await
        }));
    }
    let mut sinks = Vec::new();
    for t in tasks {
        sinks.push(t.await.unwrap().expect("connect"));
    }
    let c = db.client().await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM shared.schema_migrations").await,
        6
    );
    assert_eq!(sinks[0].store().schema_version().await.unwrap(), 6);
    // Applying again is a no-op.
    assert!(sinks[1].store().migrate().await.unwrap().is_empty());
    // Opting out of migrations on a fresh schema leaves it empty.
    let bare = PostgresSink::builder(&db.url)
        .schema("other")
        .migrate(false)
        .connect_store()
        .await
        .unwrap();
    assert!(bare.schema_version().await.is_err());
    drop(sinks);
    db.drop_db().await;
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let err = PostgresSink::builder("postgres://postgres@127.0.0.1/x")
        .schema("Robert'); DROP")
        .connect()
        .await
        .unwrap_err();
    assert!(!err.is_temporary());
    let err = PostgresSink::connect("not a url ::").await.unwrap_err();
    assert!(err.to_string().contains("URL"), "{err}");
    // Nothing listens on port 1: a temporary error, not a hang.
    let err = PostgresSink::builder("postgres://postgres@127.0.0.1:1/x")
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test]
async fn api_keys_are_hashed() {
    let db = db!("keys");
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let store = sink.store();
    let project = store.create_project("shop").await.unwrap();
    let key = store.create_api_key(project.id).await.unwrap();
    assert!(key.key.starts_with("tpk_") && key.key.len() == 68);
    assert_eq!(
        store.verify_api_key(&key.key).await.unwrap(),
        Some(project.clone())
    );
    assert_eq!(store.verify_api_key("tpk_wrong").await.unwrap(), None);
    let c = db.client().await;
    let stored: Vec<u8> = c
        .query_one("SELECT key_hash FROM tracepost.api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.len(), 32);
    let clear = count(
        &c,
        &format!(
            "SELECT count(*) FROM tracepost.api_keys k WHERE k::text LIKE '%{}%'",
            &key.key[4..]
        ),
    )
    .await;
    assert_eq!(clear, 0, "the key must not be stored in clear");
    assert!(store.revoke_api_key(key.id).await.unwrap());
    assert_eq!(store.verify_api_key(&key.key).await.unwrap(), None);
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn through_the_tracepost_pipeline() {
    let db = db!("pipeline");
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let store = sink.store().clone();
    let tp = Tracepost::builder()
        .service("checkout")
        .environment("test")
        .sink(sink)
        .build()
        .unwrap();
    let h = tp.handle();
    for i in 0..3000 {
        if i % 10 == 0 {
            h.capture(Event::new(
                Kind::Error,
                Level::Error,
                ["payment failed", "card declined", "timeout talking to bank"][(i / 10) % 3],
            ));
        } else {
            h.capture(
                Event::new(Kind::Log, Level::Info, format!("step {i}")).with_attribute("i", i),
            );
        }
    }
    let report = tp.shutdown(Duration::from_secs(30)).await;
    assert!(report.completed);
    let c = db.client().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM tracepost.events WHERE kind <> 'metric_window'"
        )
        .await,
        3000
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM tracepost.events WHERE service = 'checkout' AND environment = 'test'").await,
        count(&c, "SELECT count(*) FROM tracepost.events").await
    );
    // The pipeline fingerprints errors: 3 distinct messages → 3 issues of 100 each.
    let issues = store.top_issues(None, 10).await.unwrap();
    assert_eq!(issues.len(), 3);
    assert!(issues.iter().all(|i| i.count == 100), "{issues:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn a_cancelled_send_leaves_no_open_transaction() {
    let db = db!("cancel");
    let sink = PostgresSink::builder(&db.url)
        .pool_size(2)
        .connect()
        .await
        .unwrap();
    let batch = arcs((0..20_000).map(|i| log(&format!("line {i}"))).collect());
    // Cancel sends at various points: before, during and after the COPY.
    for ms in [1u64, 3, 10, 30, 60] {
        let _ = tokio::time::timeout(Duration::from_millis(ms), sink.send(batch.clone())).await;
    }
    let c = db.client().await;
    let mut open: i64 = -1;
    for _ in 0..50 {
        open = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        open, 0,
        "a cancelled send must not leave a transaction open"
    );
    // The pool still works, and the batch ends up stored exactly once.
    let outcome = sink.send(batch.clone()).await.unwrap();
    assert!(outcome.rejected.is_empty());
    assert_eq!(
        count(&c, "SELECT count(*) FROM tracepost.events").await,
        20_000
    );
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn pool_timeout_is_temporary() {
    let db = db!("pool_timeout");
    let sink = PostgresSink::builder(&db.url)
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let held = sink.store().pool().get().await.unwrap();
    let err = sink.send(arcs(vec![log("waits")])).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    drop(held);
    // Once the connection is free, the retry goes through.
    sink.send(arcs(vec![log("waits")])).await.unwrap();
    drop(sink);
    db.drop_db().await;
}
