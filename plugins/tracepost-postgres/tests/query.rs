//! The query API against the real server: every filter, keyset pagination, the histogram
//! and top issues return exactly the expected rows.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tracepost_core::{Event, Kind, Level, Sink, Timestamp};
use tracepost_postgres::{EventFilter, IssueStatus, PgStore, PostgresSink};
use uuid::Uuid;

/// 60 events one minute apart from `t0`, and one odd one after them.
fn dataset(t0: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..60u64 {
        let at = Timestamp::from_unix_nanos((t0 + i * 60) * 1_000_000_000 + i * 1_000_000);
        let mut e = if i % 3 == 0 {
            error(
                &format!("fp-{}", i % 2),
                &format!("Payment failed for order {i}"),
            )
        } else {
            let level = if i % 3 == 1 { Level::Info } else { Level::Warn };
            Event::new(Kind::Log, level, format!("order {i} processed"))
        }
        .with_timestamp(at)
        .with_attribute("shard", i % 4)
        .with_attribute("region", if i % 2 == 0 { "eu" } else { "us" });
        e.resource.service = if i < 30 { "api" } else { "worker" }.into();
        if (10..15).contains(&i) {
            e.trace_id = Some("trace-a".into());
        }
        e.user_id = Some(format!("u{}", i % 5));
        out.push(e);
    }
    let mut odd = Event::new(Kind::Log, Level::Debug, "50% off_sale today")
        .with_timestamp(Timestamp::from_unix_nanos((t0 + 3600 + 30) * 1_000_000_000));
    odd.resource.service = "api".into();
    out.push(odd);
    out
}

fn i_of(e: &Event) -> Option<u64> {
    e.attributes.get("shard")?;
    e.message
        .split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
}

type Pred = Box<dyn Fn(&Event) -> bool>;

/// Ids of the events matching `pred`, newest first (what the API must return).
fn expected(data: &[Event], pred: impl Fn(&Event) -> bool) -> Vec<Uuid> {
    let mut v: Vec<&Event> = data.iter().filter(|e| pred(e)).collect();
    v.sort_by_key(|e| std::cmp::Reverse((e.timestamp, e.id)));
    v.iter().map(|e| e.id).collect()
}

async fn all_ids(store: &PgStore, filter: &EventFilter) -> Vec<Uuid> {
    let page = store.events(filter, 10_000, None).await.unwrap();
    assert!(page.next.is_none());
    page.events.iter().map(|e| e.id).collect()
}

struct Fixture {
    db: TestDb,
    sink: PostgresSink,
    data: Vec<Event>,
    t0: u64,
}

async fn fixture(tag: &str) -> Option<Fixture> {
    let db = TestDb::new(tag).await?;
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let t0 = (now_secs() - 3 * 3600) / 3600 * 3600;
    let data = dataset(t0);
    let outcome = sink.send(arcs(data.clone())).await.unwrap();
    assert!(outcome.rejected.is_empty());
    Some(Fixture { db, sink, data, t0 })
}

macro_rules! fixture {
    ($tag:expr) => {
        match fixture($tag).await {
            Some(f) => f,
            None => return,
        }
    };
}

#[tokio::test]
async fn filters_return_exactly_the_matching_events() {
    let f = fixture!("filters");
    let store = f.sink.store();
    let data = &f.data;
    let at = |s: u64| Timestamp::from_unix_nanos(s * 1_000_000_000);

    let cases: Vec<(EventFilter, Pred)> = vec![
        (EventFilter::new(), Box::new(|_| true)),
        (
            EventFilter::new().kind(Kind::Error),
            Box::new(|e| e.kind == Kind::Error),
        ),
        (
            EventFilter::new().level(Level::Warn),
            Box::new(|e| e.level == Level::Warn),
        ),
        (
            EventFilter::new().min_level(Level::Warn),
            Box::new(|e| e.level >= Level::Warn),
        ),
        (
            EventFilter::new().level(Level::Debug).level(Level::Info),
            Box::new(|e| matches!(e.level, Level::Debug | Level::Info)),
        ),
        (
            EventFilter::new().service("worker"),
            Box::new(|e| e.resource.service == "worker"),
        ),
        (
            EventFilter::new()
                .since(at(f.t0 + 600))
                .until(at(f.t0 + 1200)),
            Box::new(move |e| (10..20).contains(&i_of(e).unwrap_or(99))),
        ),
        (
            EventFilter::new().message_contains("PAYMENT failed"),
            Box::new(|e| e.message.starts_with("Payment failed")),
        ),
        (
            EventFilter::new().message_contains("0% off_"),
            Box::new(|e| e.message.contains("0% off_")),
        ),
        (
            EventFilter::new().message_contains("%"),
            Box::new(|e| e.message.contains('%')),
        ),
        (
            EventFilter::new()
                .attribute("region", "eu")
                .attribute("shard", 2),
            Box::new(|e| {
                e.attributes.get("region") == Some(&json!("eu"))
                    && e.attributes.get("shard") == Some(&json!(2))
            }),
        ),
        (
            EventFilter::new().attribute("shard", "2"), // a string is not the number 2
            Box::new(|_| false),
        ),
        (
            EventFilter::new().fingerprint("fp-1"),
            Box::new(|e| e.fingerprint.as_deref() == Some("fp-1")),
        ),
        (
            EventFilter::new().trace_id("trace-a"),
            Box::new(|e| e.trace_id.as_deref() == Some("trace-a")),
        ),
        (
            EventFilter::new().user_id("u3"),
            Box::new(|e| e.user_id.as_deref() == Some("u3")),
        ),
        (
            EventFilter::new()
                .kind(Kind::Error)
                .service("api")
                .attribute("region", "us")
                .since(at(f.t0 + 300)),
            Box::new(|e| {
                e.kind == Kind::Error
                    && e.resource.service == "api"
                    && e.attributes.get("region") == Some(&json!("us"))
                    && i_of(e).unwrap_or(0) >= 5
            }),
        ),
    ];
    for (filter, pred) in cases {
        let want = expected(data, pred);
        let got = all_ids(store, &filter).await;
        assert_eq!(got, want, "filter {filter:?}");
    }
    // Events come back whole.
    let page = store
        .events(&EventFilter::new().trace_id("trace-a"), 100, None)
        .await
        .unwrap();
    for e in &page.events {
        assert!(data.contains(e));
    }
    f.db.drop_db().await;
}

#[tokio::test]
async fn keyset_pagination_walks_every_event_once() {
    let f = fixture!("pages");
    let store = f.sink.store();
    for (filter, pred) in [
        (EventFilter::new(), Box::new(|_: &Event| true) as Pred),
        (
            EventFilter::new().kind(Kind::Log),
            Box::new(|e: &Event| e.kind == Kind::Log),
        ),
    ] {
        let want = expected(&f.data, pred);
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = store.events(&filter, 7, cursor).await.unwrap();
            assert!(page.events.len() <= 7);
            got.extend(page.events.iter().map(|e| e.id));
            pages += 1;
            // The cursor survives its text form (as in a URL).
            match page.next {
                Some(c) => cursor = Some(c.to_string().parse().unwrap()),
                None => break,
            }
        }
        assert_eq!(got, want);
        assert_eq!(pages, want.len().div_ceil(7));
    }

    // New events arriving between pages don't shift later pages.
    let first = store.events(&EventFilter::new(), 10, None).await.unwrap();
    f.sink.send(arcs(vec![log("newest")])).await.unwrap();
    let second = store
        .events(&EventFilter::new(), 10, first.next)
        .await
        .unwrap();
    let want = expected(&f.data, |_| true);
    assert_eq!(
        second.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        want[10..20].to_vec()
    );
    f.db.drop_db().await;
}

#[tokio::test]
async fn histogram_counts_per_bucket() {
    let f = fixture!("histogram");
    let store = f.sink.store();
    let at = |s: u64| Timestamp::from_unix_nanos(s * 1_000_000_000);
    let ten_min = Duration::from_secs(600);

    // Zero-filled over [t0, t0 + 70 min): six buckets of 10 events, then the odd one.
    let filter = EventFilter::new().since(at(f.t0)).until(at(f.t0 + 4200));
    let h = store.histogram(&filter, ten_min).await.unwrap();
    let got: Vec<(u64, u64)> = h
        .iter()
        .map(|b| (b.start.unix_nanos() / 1_000_000_000 - f.t0, b.count))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 10),
            (600, 10),
            (1200, 10),
            (1800, 10),
            (2400, 10),
            (3000, 10),
            (3600, 1)
        ]
    );

    // Errors only, with an empty bucket at the end kept as 0.
    let filter = EventFilter::new()
        .kind(Kind::Error)
        .since(at(f.t0))
        .until(at(f.t0 + 4200));
    let h = store.histogram(&filter, ten_min).await.unwrap();
    let mut want = vec![0u64; 7];
    for i in (0..60).step_by(3) {
        want[i / 10] += 1;
    }
    assert_eq!(h.iter().map(|b| b.count).collect::<Vec<_>>(), want);

    // Without a time range: only buckets that have events.
    let h = store
        .histogram(
            &EventFilter::new().service("worker"),
            Duration::from_secs(1800),
        )
        .await
        .unwrap();
    let got: Vec<(u64, u64)> = h
        .iter()
        .map(|b| (b.start.unix_nanos() / 1_000_000_000 - f.t0, b.count))
        .collect();
    assert_eq!(got, vec![(1800, 30)]);
    f.db.drop_db().await;
}

#[tokio::test]
async fn top_issues_rank_by_count() {
    let f = fixture!("top_issues");
    let store = f.sink.store();
    // More fp-1 errors, later.
    let extra: Vec<Event> = (0..5)
        .map(|_| error("fp-1", "Payment failed for order 7"))
        .collect();
    f.sink.send(arcs(extra)).await.unwrap();

    let all = store.top_issues(None, 10).await.unwrap();
    let got: Vec<(&str, u64)> = all
        .iter()
        .map(|i| (i.fingerprint.as_str(), i.count))
        .collect();
    assert_eq!(got, vec![("fp-1", 15), ("fp-0", 10)]);
    assert_eq!(all[0].status, IssueStatus::Unresolved);
    assert_eq!(all[0].error_type.as_deref(), Some("io::Error"));

    // Since t0 + 30 min: i in 30..60 step 3 → fp-0 for even i (5), fp-1 for odd (5), +5.
    let since = Timestamp::from_unix_nanos((f.t0 + 1800) * 1_000_000_000);
    let recent = store.top_issues(Some(since), 1).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(
        (
            recent[0].fingerprint.as_str(),
            recent[0].recent,
            recent[0].count
        ),
        ("fp-1", 10, 15)
    );

    // Triage: resolving, then a new event reopens it.
    assert!(store
        .set_issue_status("fp-0", IssueStatus::Resolved)
        .await
        .unwrap());
    assert_eq!(
        store.issue("fp-0").await.unwrap().unwrap().status,
        IssueStatus::Resolved
    );
    f.sink
        .send(arcs(vec![error("fp-0", "again")]))
        .await
        .unwrap();
    let issue = store.issue("fp-0").await.unwrap().unwrap();
    assert_eq!(
        (issue.status, issue.count, issue.title.as_str()),
        (IssueStatus::Unresolved, 11, "again")
    );
    assert!(store.issue("nope").await.unwrap().is_none());
    f.db.drop_db().await;
}
