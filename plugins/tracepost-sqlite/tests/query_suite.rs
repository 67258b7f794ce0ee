//! The query behaviour suite: the same events written through the SQLite sink and the
//! Postgres sink (a real server at 127.0.0.1:5432, `TRACEPOST_PG_URL` to change it), the same
//! questions asked of both through [`Store`], and the answers compared one by one.
//!
//! Questions cover every filter (kind, level, service, time range, text with case, accents,
//! LIKE metacharacters and too-short-for-trigrams, attributes of every JSON type,
//! fingerprint, trace/request/user/session id, combinations), keyset pagination across ties
//! on the microsecond, histograms with and without gaps, top issues all time and recent, one
//! issue, issue status and its reopening, one event. Besides agreeing, the answers are
//! checked against what the data holds (counts from the data set itself), so two stores
//! returning the same nothing would fail.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracepost_core::store::{Cursor, EventFilter, IssueStatus, Store};
use tracepost_core::{
    ErrorDetail, Event, Kind, Level, MetricWindow, RequestSnapshot, Sink, SpanDetail, SpanStatus,
    Timestamp,
};
use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteSink;
use uuid::Uuid;

const N: usize = 240;
const STEP_SECS: u64 = 30;

fn pg_url() -> String {
    std::env::var("TRACEPOST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own on the test server, dropped at the end; `None` (skipped, loudly)
/// without a server unless `CI=true`.
struct PgDb {
    admin: tokio_postgres::Client,
    name: String,
}

impl PgDb {
    async fn new() -> Option<PgDb> {
        let (admin, conn) = match tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "PostgreSQL is required under CI=true: {e}"
                );
                eprintln!(
                    "!!! SKIPPING the query suite: no PostgreSQL at {} ({e})",
                    pg_url()
                );
                return None;
            }
        };
        tokio::spawn(conn);
        let name = format!("tp_query_suite_{}", Uuid::now_v7().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Some(PgDb { admin, name })
    }

    fn url(&self) -> String {
        let base = pg_url();
        let cut = base.rfind('/').unwrap();
        format!("{}/{}", &base[..cut], self.name)
    }

    async fn drop_db(self) {
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

const MESSAGES: [&str; 6] = [
    "payment Timeout after {i} ms",
    "user {i} logged in",
    "Crème brûlée #{i} served",
    "search for 'ab' {i}",
    "100% done_{i}",
    "CRÈME fraîche {i} TIMEOUT",
];

/// 240 events over two hours, ending 10 minutes ago: every kind the stores keep apart,
/// three services, five levels, texts with case and accents, attributes of every JSON type,
/// ids to filter on, request snapshots and metric windows, five fingerprints with unequal
/// counts, and every tenth event in the same microsecond as the one before it.
fn dataset(base_ns: u64) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(N);
    for i in 0..N {
        let mut ts = base_ns + i as u64 * STEP_SECS * 1_000_000_000 + 123_456_789;
        if i % 10 == 9 {
            // Same microsecond as the previous event, other nanoseconds: pages tie-break on id.
            // (Every timestamp ends in …789 ns, so +100 ns stays in the microsecond.)
            ts = out[i - 1].timestamp.unix_nanos() + 100;
        }
        let kind = match i % 4 {
            0 => Kind::Error,
            1 => Kind::Request,
            2 if i % 8 == 6 => Kind::Span,
            2 => Kind::Log,
            _ => Kind::MetricWindow,
        };
        let level = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ][i % 5];
        let message = MESSAGES[i % MESSAGES.len()].replace("{i}", &i.to_string());
        let mut e = Event::new(kind, level, message)
            .with_timestamp(Timestamp::from_unix_nanos(ts))
            .with_attribute("tenant", ["acme", "globex"][i % 2])
            .with_attribute("attempt", (i % 3) as i64)
            .with_attribute("retry", i % 2 == 0);
        if i % 5 == 0 {
            e = e.with_attribute("ratio", 0.5);
        }
        if i % 7 == 0 {
            e = e.with_attribute("tags", json!(["a", "b"]));
        }
        e.resource.service = ["checkout", "search", "billing"][i % 3].into();
        e.resource.environment = Some("test".into());
        e.trace_id = Some(format!("trace-{}", i / 6));
        e.span_id = Some(format!("span-{i}"));
        e.user_id = Some(format!("user-{}", i % 4));
        e.session_id = Some(format!("sess-{}", i % 3));
        match kind {
            Kind::Error => {
                // fp-0 … fp-4 with unequal counts: i/4 squared mod 5.
                let n = (i / 4) * (i / 4) % 5;
                e.fingerprint = Some(format!("fp-{n}"));
                e = e.with_error(ErrorDetail {
                    error_type: format!("Error{n}"),
                    message: format!("failure {i}"),
                    backtrace: Some(format!("at frame {i}")),
                    location: Some("src/lib.rs:1".into()),
                });
            }
            Kind::Request => {
                e.request_id = Some(format!("req-{i}"));
                e = e.with_request(RequestSnapshot {
                    method: "GET".into(),
                    route: "/users/{id}".into(),
                    path: format!("/users/{i}"),
                    query: Some("q=1".into()),
                    status: 200 + (i % 3) as u16,
                    duration_ms: i as f64 * 1.25,
                    request_headers: vec![("accept".into(), "*/*".into())],
                    response_headers: vec![("content-type".into(), "text/plain".into())],
                    request_body: None,
                    response_body: None,
                    request_bytes: i as u64,
                    response_bytes: 2 * i as u64,
                    client_address: Some("127.0.0.1".into()),
                    http_version: Some("HTTP/1.1".into()),
                });
            }
            Kind::MetricWindow => {
                e.metric = Some(MetricWindow {
                    start: Timestamp::from_unix_nanos(ts - 10_000_000_000),
                    seconds: 10,
                    method: "GET".into(),
                    route: "/users/{id}".into(),
                    count: i as u64,
                    errors: (i % 3) as u64,
                    p50_ms: 1.5,
                    p95_ms: 7.25,
                    p99_ms: 9.0,
                    max_ms: 12.0,
                    bytes_in: 10,
                    bytes_out: 20,
                });
            }
            Kind::Span => {
                // The spans of one trace: each hangs from the span of the event before it.
                e.span = Some(SpanDetail {
                    name: format!("step_{}", i % 3),
                    parent_span_id: (i % 6 != 0).then(|| format!("span-{}", i - 1)),
                    duration_ms: i as f64 * 0.5 + 0.125,
                    status: if i % 16 == 14 {
                        SpanStatus::Error
                    } else {
                        SpanStatus::Unset
                    },
                });
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

/// Every page of `filter` with `limit` events a page: the events as JSON, and where each
/// page ended.
async fn all_pages(store: &dyn Store, filter: &EventFilter, limit: usize) -> Value {
    let mut events = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store.events(filter, limit, after).await.unwrap();
        pages.push(page.events.len());
        events.extend(page.events.iter().map(|e| serde_json::to_value(e).unwrap()));
        match page.next {
            Some(c) => {
                // The cursor survives its text form.
                after = Some(c.to_string().parse().unwrap());
            }
            None => break,
        }
        assert!(pages.len() <= N + 1, "pagination never ends");
    }
    json!({ "pages": pages, "events": events })
}

fn filters(base: Timestamp) -> Vec<(&'static str, EventFilter)> {
    let at = |mins: u64| Timestamp::from_unix_nanos(base.unix_nanos() + mins * 60_000_000_000);
    vec![
        ("everything", EventFilter::new()),
        ("kind error", EventFilter::new().kind(Kind::Error)),
        ("kind span", EventFilter::new().kind(Kind::Span)),
        ("a trace's events", EventFilter::new().trace_id("trace-1")),
        (
            "kinds error or request",
            EventFilter::new().kind(Kind::Error).kind(Kind::Request),
        ),
        (
            "level warn and up",
            EventFilter::new().min_level(Level::Warn),
        ),
        ("level debug only", EventFilter::new().level(Level::Debug)),
        ("service search", EventFilter::new().service("search")),
        ("service nobody", EventFilter::new().service("nobody")),
        (
            "time window",
            EventFilter::new().since(at(30)).until(at(70)),
        ),
        ("since only", EventFilter::new().since(at(100))),
        ("until only", EventFilter::new().until(at(5))),
        (
            "text timeout, any case",
            EventFilter::new().message_contains("timeout"),
        ),
        (
            "text CRÈME, accented case",
            EventFilter::new().message_contains("crème"),
        ),
        (
            "text ab, too short for trigrams",
            EventFilter::new().message_contains("ab"),
        ),
        (
            "text 100%, a LIKE wildcard",
            EventFilter::new().message_contains("100%"),
        ),
        (
            "text _1, a LIKE wildcard",
            EventFilter::new().message_contains("done_1"),
        ),
        ("text quote", EventFilter::new().message_contains("'ab'")),
        (
            "text absent",
            EventFilter::new().message_contains("zzz-none"),
        ),
        (
            "attribute string",
            EventFilter::new().attribute("tenant", "acme"),
        ),
        ("attribute int", EventFilter::new().attribute("attempt", 2)),
        (
            "attribute bool",
            EventFilter::new().attribute("retry", true),
        ),
        (
            "attribute float",
            EventFilter::new().attribute("ratio", 0.5),
        ),
        (
            "attribute array",
            EventFilter::new().attribute("tags", json!(["a", "b"])),
        ),
        (
            "attribute wrong type",
            EventFilter::new().attribute("attempt", "2"),
        ),
        (
            "attributes two",
            EventFilter::new()
                .attribute("tenant", "acme")
                .attribute("attempt", 0),
        ),
        ("fingerprint", EventFilter::new().fingerprint("fp-1")),
        ("trace id", EventFilter::new().trace_id("trace-3")),
        ("request id", EventFilter::new().request_id("req-5")),
        (
            "user id with a range",
            EventFilter::new().user_id("user-1").since(at(60)),
        ),
        ("session id", EventFilter::new().session_id("sess-2")),
        (
            "error at checkout with timeout",
            EventFilter::new()
                .kind(Kind::Error)
                .service("checkout")
                .message_contains("TIMEOUT"),
        ),
    ]
}

/// The answers of one store to every question, in order, named.
async fn transcript(store: &dyn Store, base: Timestamp, ids: &[Uuid]) -> Vec<(String, Value)> {
    let at = |mins: u64| Timestamp::from_unix_nanos(base.unix_nanos() + mins * 60_000_000_000);
    let mut out = Vec::new();
    for (name, f) in filters(base) {
        out.push((
            format!("events: {name} (pages of 7)"),
            all_pages(store, &f, 7).await,
        ));
        out.push((
            format!("events: {name} (one page)"),
            all_pages(store, &f, 1000).await,
        ));
    }
    let hist = |b: Vec<tracepost_core::store::HistogramBucket>| {
        json!(b
            .iter()
            .map(|b| json!([b.start, b.count]))
            .collect::<Vec<_>>())
    };
    let window = EventFilter::new().since(at(3)).until(at(100));
    out.push((
        "histogram 10 min, gaps filled".into(),
        hist(
            store
                .histogram(&window, Duration::from_secs(600))
                .await
                .unwrap(),
        ),
    ));
    out.push((
        "histogram 7 min of errors, no range".into(),
        hist(
            store
                .histogram(
                    &EventFilter::new().kind(Kind::Error),
                    Duration::from_secs(420),
                )
                .await
                .unwrap(),
        ),
    ));
    out.push((
        "histogram 90 s of search, range".into(),
        hist(
            store
                .histogram(
                    &EventFilter::new()
                        .service("search")
                        .since(at(0))
                        .until(at(30)),
                    Duration::from_secs(90),
                )
                .await
                .unwrap(),
        ),
    ));
    // Bounds off the minute: SQLite sums its per-minute counts for the whole minutes and
    // counts the events of the part minutes at either end.
    let off = |mins: u64, secs: u64| {
        Timestamp::from_unix_nanos(at(mins).unix_nanos() + secs * 1_000_000_000 + 7_000)
    };
    for (name, f, width) in [
        (
            "histogram 5 min, bounds off the minute",
            EventFilter::new().since(off(1, 30)).until(off(100, 45)),
            300,
        ),
        (
            "histogram hourly of errors at error level, bounds off the minute",
            EventFilter::new()
                .kind(Kind::Error)
                .level(Level::Error)
                .since(off(0, 1))
                .until(off(119, 59)),
            3600,
        ),
        (
            "histogram 2 min of billing, since only, off the minute",
            EventFilter::new().service("billing").since(off(50, 20)),
            120,
        ),
        (
            "histogram 1 min, until only, off the minute",
            EventFilter::new().until(off(20, 10)),
            60,
        ),
        (
            "histogram 1 min, within one minute",
            EventFilter::new().since(off(30, 5)).until(off(30, 50)),
            60,
        ),
    ] {
        out.push((
            name.into(),
            hist(
                store
                    .histogram(&f, Duration::from_secs(width))
                    .await
                    .unwrap(),
            ),
        ));
    }
    let windows = |v: Vec<tracepost_core::MetricWindow>| serde_json::to_value(v).unwrap();
    out.push((
        "metric windows since the start".into(),
        windows(store.metric_windows(at(0), None, 100_000).await.unwrap()),
    ));
    out.push((
        "metric windows, the newest 5 in a range".into(),
        windows(
            store
                .metric_windows(off(10, 3), Some(off(90, 0)), 5)
                .await
                .unwrap(),
        ),
    ));
    let issues = |v: Vec<tracepost_core::store::Issue>| {
        json!(v
            .iter()
            .map(|i| json!({
                "fingerprint": i.fingerprint, "service": i.service, "error_type": i.error_type,
                "title": i.title, "first_seen": i.first_seen, "last_seen": i.last_seen,
                "count": i.count, "recent": i.recent, "last_event_id": i.last_event_id,
                "status": i.status.as_str(), "users": i.users, "regressed_at": i.regressed_at,
            }))
            .collect::<Vec<_>>())
    };
    out.push((
        "top issues, all time".into(),
        issues(store.top_issues(None, 10).await.unwrap()),
    ));
    out.push((
        "top issues, 3, last hour".into(),
        issues(store.top_issues(Some(at(60)), 3).await.unwrap()),
    ));
    out.push((
        "one issue".into(),
        issues(store.issue("fp-1").await.unwrap().into_iter().collect()),
    ));
    out.push((
        "no such issue".into(),
        json!(store.issue("fp-none").await.unwrap().is_some()),
    ));
    for (n, id) in [ids[0], ids[N / 2], ids[N - 1], Uuid::now_v7()]
        .into_iter()
        .enumerate()
    {
        out.push((
            format!("event by id #{n}"),
            serde_json::to_value(store.event(id).await.unwrap()).unwrap(),
        ));
    }
    out
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_give_the_same_answers() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let pg = PostgresSink::builder(db.url()).connect().await.unwrap();

    let base_ns = Timestamp::now().unix_nanos() - (N as u64 * STEP_SECS + 600) * 1_000_000_000;
    // Start the time range on a whole minute so the questions' bounds fall between events.
    let base_ns = base_ns - base_ns % 60_000_000_000;
    let base = Timestamp::from_unix_nanos(base_ns);
    let events = dataset(base_ns);
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let batch: Vec<Arc<Event>> = events.iter().cloned().map(Arc::new).collect();
    for chunk in batch.chunks(100) {
        assert!(sqlite
            .send(chunk.to_vec())
            .await
            .unwrap()
            .rejected
            .is_empty());
        assert!(pg.send(chunk.to_vec()).await.unwrap().rejected.is_empty());
    }
    // Redelivery changes nothing in either.
    sqlite.send(batch[..10].to_vec()).await.unwrap();
    pg.send(batch[..10].to_vec()).await.unwrap();

    let stores: [(&str, &dyn Store); 2] = [("sqlite", sqlite.store()), ("postgres", pg.store())];
    let a = transcript(stores[0].1, base, &ids).await;
    let b = transcript(stores[1].1, base, &ids).await;
    assert_eq!(a.len(), b.len());
    for ((question, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{question}: the stores disagree\nsqlite:   {:.2000}\npostgres: {:.2000}",
            x.to_string(),
            y.to_string()
        );
    }

    // The answers are the data's, not an agreement on nothing.
    let answer = |q: &str| {
        a.iter()
            .find(|(n, _)| n == q)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let n_of = |q: &str| answer(q)["events"].as_array().unwrap().len();
    assert_eq!(n_of("events: everything (pages of 7)"), N);
    assert_eq!(
        answer("events: everything (pages of 7)")["pages"]
            .as_array()
            .unwrap()
            .len(),
        N / 7 + 1
    );
    assert_eq!(
        n_of("events: kind error (one page)"),
        count(&events, |e| e.kind == Kind::Error)
    );
    assert_eq!(
        n_of("events: text timeout, any case (one page)"),
        count(&events, |e| e.message.to_lowercase().contains("timeout"))
    );
    assert_eq!(
        n_of("events: text CRÈME, accented case (one page)"),
        count(&events, |e| e.message.to_lowercase().contains("crème"))
    );
    assert_eq!(
        n_of("events: text _1, a LIKE wildcard (one page)"),
        count(&events, |e| e.message.contains("done_1"))
    );
    assert_eq!(
        n_of("events: attribute int (one page)"),
        count(&events, |e| e.attributes["attempt"] == json!(2))
    );
    assert_eq!(n_of("events: attribute wrong type (one page)"), 0);
    // Spans come back whole (parent, duration, status), and with the rest of their trace.
    let spans = answer("events: kind span (one page)");
    assert_eq!(
        spans["events"].as_array().unwrap().len(),
        count(&events, |e| e.kind == Kind::Span)
    );
    for got in spans["events"].as_array().unwrap() {
        let sent = events
            .iter()
            .find(|e| e.id.to_string() == got["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(got["span"], serde_json::to_value(&sent.span).unwrap());
    }
    assert_eq!(
        n_of("events: a trace's events (one page)"),
        count(&events, |e| e.trace_id.as_deref() == Some("trace-1"))
    );
    assert_eq!(n_of("events: session id (one page)"), N / 3);
    // Newest first, ties in the microsecond broken by id, descending.
    let order: Vec<(i64, String)> = answer("events: everything (one page)")["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let t: Timestamp = serde_json::from_value(e["timestamp"].clone()).unwrap();
            (
                (t.unix_nanos() / 1000) as i64,
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(order, sorted);
    let hist = answer("histogram 10 min, gaps filled");
    let total: u64 = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    let (from, to) = (
        base.unix_nanos() + 3 * 60_000_000_000,
        base.unix_nanos() + 100 * 60_000_000_000,
    );
    assert_eq!(
        total as usize,
        count(&events, |e| (from..to).contains(&e.timestamp.unix_nanos()))
    );
    let first = tracepost_core::store::bucket_start((from / 1000) as i64, 600_000_000);
    let buckets = ((to / 1000) as i64 - first + 599_999_999) / 600_000_000;
    assert_eq!(hist.as_array().unwrap().len() as i64, buckets);
    // Off the minute too, the counts are the events' (the part minutes are counted).
    let total = |q: &str| -> u64 {
        answer(q)
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[1].as_u64().unwrap())
            .sum()
    };
    let off = |mins: u64, secs: u64| {
        base.unix_nanos() + mins * 60_000_000_000 + secs * 1_000_000_000 + 7_000
    };
    assert_eq!(
        total("histogram 5 min, bounds off the minute") as usize,
        count(&events, |e| (off(1, 30)..off(100, 45))
            .contains(&e.timestamp.unix_nanos()))
    );
    assert_eq!(
        total("histogram 1 min, within one minute") as usize,
        count(&events, |e| (off(30, 5)..off(30, 50))
            .contains(&e.timestamp.unix_nanos()))
    );
    let windows = answer("metric windows since the start");
    assert_eq!(
        windows.as_array().unwrap().len(),
        count(&events, |e| e.metric.is_some())
    );
    assert_eq!(
        answer("metric windows, the newest 5 in a range")
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let top = answer("top issues, all time");
    let counts: u64 = top
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counts as usize, count(&events, |e| e.kind == Kind::Error));
    assert_eq!(answer("event by id #1")["id"], json!(ids[N / 2]));
    // Users affected: the distinct user ids of each issue's events.
    for i in answer("top issues, all time").as_array().unwrap() {
        let fp = i["fingerprint"].as_str().unwrap();
        let users: std::collections::HashSet<_> = events
            .iter()
            .filter(|e| e.kind == Kind::Error && e.fingerprint.as_deref() == Some(fp))
            .filter_map(|e| e.user_id.clone())
            .collect();
        assert_eq!(i["users"], json!(users.len()), "{fp}");
        assert_eq!(i["regressed_at"], Value::Null, "{fp}");
    }
    assert_eq!(answer("event by id #3"), Value::Null);

    // Triage, then a regression: both reopen the resolved issue and count the new event.
    for (name, store) in stores {
        assert!(
            store
                .set_issue_status("fp-0", IssueStatus::Resolved)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !store
                .set_issue_status("fp-none", IssueStatus::Ignored)
                .await
                .unwrap(),
            "{name}"
        );
        let issue = store.issue("fp-0").await.unwrap().unwrap();
        assert_eq!(issue.status, IssueStatus::Resolved, "{name}");
    }
    let before = sqlite.store().issue("fp-0").await.unwrap().unwrap().count;
    let mut again = events[0].clone();
    again.id = Uuid::now_v7();
    again.timestamp = Timestamp::now();
    again.message = "fp-0 is back".into();
    sqlite.send(vec![Arc::new(again.clone())]).await.unwrap();
    pg.send(vec![Arc::new(again.clone())]).await.unwrap();
    let reopened = (
        sqlite.store().issue("fp-0").await.unwrap().unwrap(),
        pg.store().issue("fp-0").await.unwrap().unwrap(),
    );
    assert_eq!(reopened.0, reopened.1);
    assert_eq!(
        (
            reopened.0.status,
            reopened.0.count,
            reopened.0.title.as_str(),
            reopened.0.last_event_id
        ),
        (
            IssueStatus::Unresolved,
            before + 1,
            "fp-0 is back",
            again.id
        )
    );
    // Marked as a regression at the new event's time (whole microseconds), until the status
    // is set by hand again.
    let micros = |t: Timestamp| Timestamp::from_unix_nanos(t.unix_nanos() / 1000 * 1000);
    assert_eq!(reopened.0.regressed_at, Some(micros(again.timestamp)));
    for (name, store) in stores {
        store
            .set_issue_status("fp-0", IssueStatus::Resolved)
            .await
            .unwrap();
        let issue = store.issue("fp-0").await.unwrap().unwrap();
        assert_eq!(issue.regressed_at, None, "{name}");
    }

    drop(pg);
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------
// Analytics: page views, visitors, top pages, referrers, funnels.

const PAGES: [&str; 6] = [
    "https://shop.example/",
    "https://shop.example/pricing?token=s3cret&plan=pro",
    "https://shop.example/signup#form",
    "https://Shop.Example:8443/docs/a?x=<script>",
    "/relative/page",
    "https://shop.example/pricing",
];
const REFERRERS: [Option<&str>; 5] = [
    None,
    Some("https://shop.example/"),
    Some("https://www.google.com/search?q=secret"),
    Some("https://News.Example:443/item?id=1"),
    Some("not a url"),
];

/// 300 browser events over 100 minutes (every 20 s) from 23 visitors, six of them known
/// only by their session; pageviews of six URLs (query strings, fragments, ports, case,
/// a relative URL), referrers of every class, `track` events, and logs carrying the same
/// attributes (not analytics: never counted).
fn analytics_dataset(base_ns: u64) -> Vec<Event> {
    (0..300u64)
        .map(|i| {
            let ts = Timestamp::from_unix_nanos(base_ns + i * 20_000_000_000 + 123_456_789);
            let v = (i * 7) % 23;
            let kind = if i % 50 == 49 {
                Kind::Log
            } else {
                Kind::Analytics
            };
            let mut e = if i % 6 == 5 {
                Event::new(kind, Level::Info, "track")
                    .with_attribute("analytics.event", "track")
                    .with_attribute(
                        "event.name",
                        ["signup", "add_to_cart"][(i / 6 % 2) as usize],
                    )
                    .with_attribute("url.full", PAGES[(i % 4) as usize])
            } else {
                let mut e = Event::new(kind, Level::Info, "pageview")
                    .with_attribute("analytics.event", "pageview")
                    .with_attribute("url.full", PAGES[((i * 5 + i / 7) % 6) as usize])
                    .with_attribute("page.title", "<script>alert(1)</script>");
                if let Some(r) = REFERRERS[(i % 5) as usize] {
                    e = e.with_attribute("page.referrer", r);
                }
                e
            }
            .with_timestamp(ts);
            if v % 4 != 0 {
                e = e.with_attribute("visitor.id", format!("c_{v:02}"));
            }
            e.session_id = Some(format!("sess-{v}"));
            e.resource.service = "web".into();
            e
        })
        .collect()
}

/// The analytics answers worked out in plain Rust from the events (the reference the SQL
/// must agree with).
fn expected_analytics(events: &[Event], since_ns: u64, until_ns: u64) -> Value {
    use std::collections::{BTreeMap, BTreeSet};
    use tracepost_core::store::analytics::AnalyticsFacts;
    let facts: Vec<(u64, AnalyticsFacts)> = events
        .iter()
        .filter(|e| (since_ns..until_ns).contains(&e.timestamp.unix_nanos()))
        .filter_map(|e| AnalyticsFacts::of(e).map(|f| (e.timestamp.unix_nanos(), f)))
        .collect();
    let pv: Vec<&AnalyticsFacts> = facts
        .iter()
        .map(|f| &f.1)
        .filter(|f| f.event.as_deref() == Some("pageview"))
        .collect();
    let top = |key: &dyn Fn(&AnalyticsFacts) -> Option<String>| {
        let mut m: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
        for f in &pv {
            if let Some(k) = key(f) {
                let r = m.entry(k).or_default();
                r.0 += 1;
                r.1.extend(f.visitor.clone());
            }
        }
        let mut rows: Vec<(String, u64, u64)> = m
            .into_iter()
            .map(|(k, (n, v))| (k, n, v.len() as u64))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        json!(rows)
    };
    let visitors: BTreeSet<&String> = pv.iter().filter_map(|f| f.visitor.as_ref()).collect();
    json!({
        "pageviews": pv.len(),
        "visitors": visitors.len(),
        "tracks": facts.iter().filter(|f| f.1.event.as_deref() == Some("track")).count(),
        "internal": pv.iter().filter(|f| f.referrer_host.is_some() && f.referrer_host == f.host).count(),
        "direct": pv.iter().filter(|f| f.referrer_host.is_none()).count(),
        "pages": top(&|f| f.path.clone()),
        "referrers": top(&|f| f.referrer_host.clone().filter(|r| Some(r) != f.host.as_ref())),
    })
}

fn expected_funnel(
    events: &[Event],
    steps: &[tracepost_core::store::analytics::FunnelStep],
) -> Vec<u64> {
    use std::collections::BTreeMap;
    use tracepost_core::store::analytics::{AnalyticsFacts, FunnelStep};
    let mut by_visitor: BTreeMap<String, Vec<(u64, AnalyticsFacts)>> = BTreeMap::new();
    for e in events {
        if let Some(f) = AnalyticsFacts::of(e) {
            if let Some(v) = f.visitor.clone() {
                by_visitor
                    .entry(v)
                    .or_default()
                    .push((e.timestamp.unix_nanos() / 1000, f));
            }
        }
    }
    let mut counts = vec![0u64; steps.len()];
    for evs in by_visitor.values() {
        let mut t = 0u64;
        for (i, step) in steps.iter().enumerate() {
            let hit = evs
                .iter()
                .filter(|(ts, f)| {
                    *ts >= t
                        && match step {
                            FunnelStep::Page(p) => {
                                f.event.as_deref() == Some("pageview") && f.path.as_ref() == Some(p)
                            }
                            FunnelStep::Event(n) => {
                                f.event.as_deref() == Some("track") && f.name.as_ref() == Some(n)
                            }
                        }
                })
                .map(|(ts, _)| *ts)
                .min();
            match hit {
                Some(ts) => {
                    counts[i] += 1;
                    t = ts;
                }
                None => break,
            }
        }
    }
    counts
}

fn summary_json(s: &tracepost_core::store::analytics::AnalyticsSummary) -> Value {
    let rows = |r: &[tracepost_core::store::analytics::TopRow]| {
        json!(r
            .iter()
            .map(|r| json!([r.key, r.views, r.visitors]))
            .collect::<Vec<_>>())
    };
    json!({
        "pageviews": s.pageviews, "visitors": s.visitors, "tracks": s.tracks,
        "internal": s.internal_views, "direct": s.direct_views,
        "pages": rows(&s.top_pages), "referrers": rows(&s.referrers),
        "series": s.series.iter().map(|b| json!([b.start, b.pageviews, b.visitors])).collect::<Vec<_>>(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_answers_agree_and_match_the_data() {
    use tracepost_core::store::analytics::{AnalyticsQuery, FunnelQuery, FunnelStep};
    use tracepost_core::store::StoreError;
    let Some(db) = PgDb::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let pg = PostgresSink::builder(db.url()).connect().await.unwrap();
    let base_ns = Timestamp::now().unix_nanos() - 3 * 3600 * 1_000_000_000;
    let base_ns = base_ns - base_ns % 3_600_000_000_000;
    let events = analytics_dataset(base_ns);
    let batch: Vec<Arc<Event>> = events.iter().cloned().map(Arc::new).collect();
    for chunk in batch.chunks(64) {
        assert!(sqlite
            .send(chunk.to_vec())
            .await
            .unwrap()
            .rejected
            .is_empty());
        assert!(pg.send(chunk.to_vec()).await.unwrap().rejected.is_empty());
    }
    let at = |mins: u64| Timestamp::from_unix_nanos(base_ns + mins * 60_000_000_000);
    let questions = [
        ("everything, hourly", AnalyticsQuery::new(at(0), at(180))),
        (
            "minutes 17 to 61, 10 min buckets, top 2",
            AnalyticsQuery::new(at(17), at(61))
                .bucket(Duration::from_secs(600))
                .limit(2),
        ),
        ("nothing there", AnalyticsQuery::new(at(120), at(180))),
    ];
    let funnels = [
        "/,/pricing,/signup",
        "/pricing?any=1,signup,/docs/a",
        "signup",
        "/,/,/",
        "/nowhere,/",
    ];
    let stores: [(&str, &dyn Store); 2] = [("sqlite", sqlite.store()), ("postgres", pg.store())];
    for (name, q) in &questions {
        let a = summary_json(&stores[0].1.analytics(q).await.unwrap());
        let b = summary_json(&stores[1].1.analytics(q).await.unwrap());
        assert_eq!(a, b, "{name}: the stores disagree");
        let mut want = expected_analytics(&events, q.since.unix_nanos(), q.until.unix_nanos());
        for k in ["pages", "referrers"] {
            want[k] = json!(want[k]
                .as_array()
                .unwrap()
                .iter()
                .take(q.limit)
                .collect::<Vec<_>>());
        }
        for k in [
            "pageviews",
            "visitors",
            "tracks",
            "internal",
            "direct",
            "pages",
            "referrers",
        ] {
            assert_eq!(a[k], want[k], "{name}: {k}");
        }
        let series_views: u64 = a["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[1].as_u64().unwrap())
            .sum();
        assert_eq!(
            series_views,
            a["pageviews"].as_u64().unwrap(),
            "{name}: series"
        );
    }
    // The data is what the questions are about, not an agreement on nothing.
    let all = summary_json(&sqlite.store().analytics(&questions[0].1).await.unwrap());
    assert_eq!(all["series"].as_array().unwrap().len(), 3);
    assert!(all["pageviews"].as_u64().unwrap() > 200);
    assert_eq!(all["visitors"], 23, "17 visitor ids and 6 sessions");
    let pages: Vec<&str> = all["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(pages.contains(&"/pricing") && pages.contains(&"/relative/page"));
    assert!(
        pages.iter().all(|p| !p.contains('?') && !p.contains('#')),
        "{pages:?}"
    );
    let refs: Vec<&str> = all["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    let mut sorted = refs.clone();
    sorted.sort_unstable();
    // Lower case, without port; shop.example only from the relative page (no host to
    // compare with): from shop.example's own pages it is internal.
    assert_eq!(sorted, ["news.example", "shop.example", "www.google.com"]);
    let relative_from_shop = events
        .iter()
        .filter(|e| {
            e.kind == Kind::Analytics
                && e.attributes.get("url.full") == Some(&json!("/relative/page"))
                && e.attributes.get("page.referrer") == Some(&json!("https://shop.example/"))
        })
        .count() as u64;
    let shop = all["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "shop.example")
        .unwrap();
    assert_eq!(shop[1].as_u64().unwrap(), relative_from_shop);
    assert!(all["internal"].as_u64().unwrap() > 0);

    for f in funnels {
        let steps = FunnelStep::parse_list(f).unwrap();
        let q = FunnelQuery::new(at(0), at(180), steps.clone());
        let a = stores[0].1.funnel(&q).await.unwrap();
        let b = stores[1].1.funnel(&q).await.unwrap();
        assert_eq!(a, b, "funnel {f}: the stores disagree");
        assert_eq!(a, expected_funnel(&events, &steps), "funnel {f}");
        assert!(a.windows(2).all(|w| w[0] >= w[1]), "funnel {f}: {a:?}");
    }
    let first = sqlite
        .store()
        .funnel(&FunnelQuery::new(
            at(0),
            at(180),
            FunnelStep::parse_list("/,/pricing,/signup").unwrap(),
        ))
        .await
        .unwrap();
    assert!(first[0] > first[2] && first[2] > 0, "{first:?}");

    // Bad questions are refused the same way.
    for (name, store) in stores {
        let empty = store.analytics(&AnalyticsQuery::new(at(5), at(5))).await;
        assert!(
            matches!(empty, Err(StoreError::InvalidQuery(_))),
            "{name}: {empty:?}"
        );
        let tiny = store
            .analytics(&AnalyticsQuery::new(at(0), at(180)).bucket(Duration::from_micros(1)))
            .await;
        assert!(
            matches!(tiny, Err(StoreError::InvalidQuery(_))),
            "{name}: {tiny:?}"
        );
        let none = store.funnel(&FunnelQuery::new(at(0), at(5), vec![])).await;
        assert!(
            matches!(none, Err(StoreError::InvalidQuery(_))),
            "{name}: {none:?}"
        );
    }

    // A file written before the analytics table existed is filled from its events on open.
    drop(sqlite);
    let path = dir.path().join(tracepost_sqlite::DB_FILE);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("DELETE FROM analytics; PRAGMA user_version = 4;")
            .unwrap();
    }
    let reopened = SqliteSink::new(dir.path());
    let again = summary_json(&reopened.store().analytics(&questions[0].1).await.unwrap());
    assert_eq!(again, all);

    drop(pg);
    db.drop_db().await;
}
