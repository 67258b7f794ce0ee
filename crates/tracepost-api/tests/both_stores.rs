//! One HTTP suite for both stores: the same events written through the SQLite sink and the
//! Postgres sink (127.0.0.1:5432, `TRACEPOST_PG_URL` to change it), the same HTTP questions
//! asked of the query API over each, and the same answers expected — which must also be what
//! the data set holds (the filter applied in memory), so two stores returning the same
//! nothing would fail.

mod common;

use std::sync::Arc;

use common::{dataset, get, serve, PgDb, TOKEN};
use serde_json::{json, Value};
use tracepost_api::ApiConfig;
use tracepost_core::store::{EventFilter, Store};
use tracepost_core::{Event, Kind, Level, Sink, Timestamp};
use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteSink;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn rfc3339(ns: u64) -> String {
    serde_json::to_value(Timestamp::from_unix_nanos(ns))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every page of `/events?{query}` with `limit` events a page: the ids in order.
async fn all_ids(base: &str, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut url = format!("{base}/tracepost/api/events?limit={limit}&{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", enc(c)));
        }
        let (status, body) = get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        for e in body["events"].as_array().unwrap() {
            ids.push(e["id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("{query}: pages never ended");
}

fn expected_ids(events: &[Event], f: &EventFilter) -> Vec<String> {
    let mut hits: Vec<&Event> = events.iter().filter(|e| f.matches(e)).collect();
    hits.sort_by_key(|e| std::cmp::Reverse((e.timestamp.unix_nanos() / 1000, e.id)));
    hits.iter().map(|e| e.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_answer_the_same_over_http() {
    let Some(db) = PgDb::new("the query API's two-store suite").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let pg = PostgresSink::builder(db.url()).connect().await.unwrap();

    // An hour of events ending 10 minutes ago, starting on a whole hour.
    let now = Timestamp::now().unix_nanos();
    let base_ns = now - 70 * 60_000_000_000;
    let base_ns = base_ns - base_ns % 3_600_000_000_000;
    let events = dataset(base_ns);
    let batch: Vec<Arc<Event>> = events.iter().cloned().map(Arc::new).collect();
    assert!(sqlite
        .send(batch.clone())
        .await
        .unwrap()
        .rejected
        .is_empty());
    assert!(pg.send(batch).await.unwrap().rejected.is_empty());

    let sqlite_store: Arc<dyn Store> = Arc::new(sqlite.store().clone());
    let pg_store: Arc<dyn Store> = Arc::new(pg.store().clone());
    let servers = [
        ("sqlite", serve(sqlite_store, ApiConfig::new(TOKEN)).await),
        ("postgres", serve(pg_store, ApiConfig::new(TOKEN)).await),
    ];

    let since = rfc3339(base_ns + 10 * 60_000_000_000);
    let until = rfc3339(base_ns + 40 * 60_000_000_000);
    // The same `since` with another UTC offset reads as the same instant.
    let since_offset = {
        let t = base_ns + 10 * 60_000_000_000;
        let secs = (t / 1_000_000_000) as i64;
        let dt = time::OffsetDateTime::from_unix_timestamp(secs + 2 * 3600).unwrap();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+02:00",
            dt.year(),
            dt.month() as u8,
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    };
    let ts = |s: &str| -> Timestamp { serde_json::from_value(json!(s)).unwrap() };
    let questions: Vec<(String, EventFilter)> = vec![
        (String::new(), EventFilter::new()),
        ("kind=error".into(), EventFilter::new().kind(Kind::Error)),
        (
            "kind=error,request&service=checkout".into(),
            EventFilter::new()
                .kind(Kind::Error)
                .kind(Kind::Request)
                .service("checkout"),
        ),
        (
            "level=warn,error".into(),
            EventFilter::new().level(Level::Warn).level(Level::Error),
        ),
        (
            "min_level=info".into(),
            EventFilter::new().min_level(Level::Info),
        ),
        (
            format!("since={}&until={}", enc(&since), enc(&until)),
            EventFilter::new().since(ts(&since)).until(ts(&until)),
        ),
        (
            format!("since={}", enc(&since_offset)),
            EventFilter::new().since(ts(&since)),
        ),
        (
            "q=timeout".into(),
            EventFilter::new().message_contains("timeout"),
        ),
        (
            format!("attrs={}", enc(r#"{"tenant":"acme","attempt":2}"#)),
            EventFilter::new()
                .attribute("tenant", "acme")
                .attribute("attempt", 2),
        ),
        (
            "fingerprint=fp-1".into(),
            EventFilter::new().fingerprint("fp-1"),
        ),
        (
            "trace_id=trace-3".into(),
            EventFilter::new().trace_id("trace-3"),
        ),
        (
            "user_id=user-2".into(),
            EventFilter::new().user_id("user-2"),
        ),
        (
            "request_id=req-5".into(),
            EventFilter::new().request_id("req-5"),
        ),
        (
            "session_id=sess-1".into(),
            EventFilter::new().session_id("sess-1"),
        ),
    ];
    for (query, filter) in &questions {
        let want = expected_ids(&events, filter);
        assert!(!want.is_empty(), "{query}: the data set has matches");
        for (name, base) in &servers {
            for limit in [7, 100] {
                let got = all_ids(base, query, limit).await;
                assert_eq!(got, want, "{name} /events?{query} (limit {limit})");
            }
        }
    }

    // Everything else: the two stores' answers are equal, and checked against the data.
    let e0 = &events[17];
    let asks = [
        format!("/events/{}", e0.id),
        format!(
            "/histogram?since={}&until={}&bucket_secs=600",
            enc(&rfc3339(base_ns)),
            enc(&rfc3339(base_ns + 3_600_000_000_000))
        ),
        format!(
            "/histogram?kind=error&since={}&until={}&bucket_secs=900",
            enc(&rfc3339(base_ns)),
            enc(&rfc3339(base_ns + 3_600_000_000_000))
        ),
        "/issues".into(),
        format!("/issues?since={}&limit=2", enc(&since)),
        "/issues/fp-1".into(),
    ];
    let mut answers: Vec<Vec<Value>> = vec![Vec::new(), Vec::new()];
    for (i, (name, base)) in servers.iter().enumerate() {
        for ask in &asks {
            let (status, body) = get(&format!("{base}/tracepost/api{ask}")).await;
            assert_eq!(status, 200, "{name} {ask}: {body}");
            answers[i].push(body);
        }
    }
    for ((ask, a), b) in asks.iter().zip(&answers[0]).zip(&answers[1]) {
        assert_eq!(a, b, "{ask}: sqlite and postgres disagree");
    }
    let a = &answers[0];
    assert_eq!(a[0]["id"], e0.id.to_string());
    assert_eq!(a[0]["message"], e0.message);
    let counts = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(counts(&a[1]), [10; 6]);
    assert_eq!(counts(&a[2]), [5; 4]);
    let errors = events.iter().filter(|e| e.kind == Kind::Error).count() as u64;
    let issue_counts: u64 = a[3]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["count"].as_u64().unwrap())
        .sum();
    assert_eq!(issue_counts, errors, "every error is in an issue");
    assert_eq!(a[4].as_array().unwrap().len(), 2);
    let fp1 = events
        .iter()
        .filter(|e| e.fingerprint.as_deref() == Some("fp-1"))
        .count() as u64;
    assert_eq!(a[5]["count"], fp1);
    assert_eq!(a[5]["status"], "unresolved");

    // Issue status, through both.
    for (name, base) in &servers {
        let r = common::client()
            .post(format!("{base}/tracepost/api/issues/fp-1/status"))
            .bearer_auth(TOKEN)
            .json(&json!({"status": "resolved"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "resolved", "{name}");
        let (_, again) = get(&format!("{base}/tracepost/api/issues/fp-1")).await;
        assert_eq!(again["status"], "resolved", "{name}: kept");
        let (status, body) = get(&format!("{base}/tracepost/api/issues/fp-404")).await;
        assert_eq!(
            (status, &body["field"]),
            (404, &json!("fingerprint")),
            "{name}"
        );
    }

    // Analytics: browser page views and a track, written last (the questions above count
    // every event): three visitors, one from a search engine through pricing to signup.
    let at = |min: u64| Timestamp::from_unix_nanos(base_ns + min * 60_000_000_000 + 5);
    let view = |min: u64, visitor: &str, url: &str, referrer: Option<&str>| {
        let mut e = Event::new(Kind::Analytics, Level::Info, "pageview")
            .with_timestamp(at(min))
            .with_attribute("analytics.event", "pageview")
            .with_attribute("url.full", url)
            .with_attribute("visitor.id", visitor);
        if let Some(r) = referrer {
            e = e.with_attribute("page.referrer", r);
        }
        Arc::new(e)
    };
    let signup = Arc::new(
        Event::new(Kind::Analytics, Level::Info, "track signup")
            .with_timestamp(at(13))
            .with_attribute("analytics.event", "track")
            .with_attribute("event.name", "signup")
            .with_attribute("visitor.id", "v1"),
    );
    let browser = vec![
        view(
            11,
            "v1",
            "https://shop.example/?token=x",
            Some("https://www.google.com/"),
        ),
        view(
            12,
            "v1",
            "https://shop.example/pricing",
            Some("https://shop.example/"),
        ),
        signup,
        view(21, "v2", "https://shop.example/", None),
        view(
            22,
            "v2",
            "https://shop.example/pricing#plans",
            Some("https://shop.example/"),
        ),
        view(
            31,
            "v3",
            "https://shop.example/docs",
            Some("https://news.example/a"),
        ),
    ];
    assert!(sqlite
        .send(browser.clone())
        .await
        .unwrap()
        .rejected
        .is_empty());
    assert!(pg.send(browser).await.unwrap().rejected.is_empty());
    let range = format!(
        "since={}&until={}",
        enc(&rfc3339(base_ns)),
        enc(&rfc3339(base_ns + 3_600_000_000_000))
    );
    let asks = [
        format!("/analytics?{range}&bucket_secs=1800&limit=5"),
        format!(
            "/analytics/funnel?{range}&steps={}",
            enc("/,/pricing,signup")
        ),
    ];
    let mut answers: Vec<Vec<Value>> = vec![Vec::new(), Vec::new()];
    for (i, (name, base)) in servers.iter().enumerate() {
        for ask in &asks {
            let (status, body) = get(&format!("{base}/tracepost/api{ask}")).await;
            assert_eq!(status, 200, "{name} {ask}: {body}");
            answers[i].push(body);
        }
    }
    for ((ask, a), b) in asks.iter().zip(&answers[0]).zip(&answers[1]) {
        assert_eq!(a, b, "{ask}: sqlite and postgres disagree");
    }
    let a = &answers[0][0];
    assert_eq!(
        (&a["pageviews"], &a["visitors"], &a["tracks"]),
        (&json!(5), &json!(3), &json!(1))
    );
    assert_eq!(
        (&a["internal_views"], &a["direct_views"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(
        a["top_pages"],
        json!([
            {"key": "/", "views": 2, "visitors": 2},
            {"key": "/pricing", "views": 2, "visitors": 2},
            {"key": "/docs", "views": 1, "visitors": 1},
        ])
    );
    assert_eq!(
        a["referrers"],
        json!([
            {"key": "news.example", "views": 1, "visitors": 1},
            {"key": "www.google.com", "views": 1, "visitors": 1},
        ])
    );
    let halves: Vec<(u64, u64)> = a["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["pageviews"].as_u64().unwrap(),
                b["visitors"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(halves, [(4, 2), (1, 1)]);
    let steps: Vec<u64> = answers[0][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["visitors"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 2, 1], "v3 never saw /");
    for (name, base) in &servers {
        for (ask, field) in [
            ("/analytics/funnel".to_owned(), "steps"),
            (
                format!("/analytics/funnel?steps={}", enc(&["/a"; 11].join(","))),
                "steps",
            ),
            ("/analytics?bucket_secs=1".to_owned(), "bucket_secs"),
            (
                format!("/analytics?since={0}&until={0}", enc(&rfc3339(base_ns))),
                "until",
            ),
        ] {
            let (status, body) = get(&format!("{base}/tracepost/api{ask}")).await;
            assert_eq!(
                (status, &body["field"]),
                (400, &json!(field)),
                "{name} {ask}: {body}"
            );
        }
    }

    drop(pg);
    db.drop_db().await;
}
