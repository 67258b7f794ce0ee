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
