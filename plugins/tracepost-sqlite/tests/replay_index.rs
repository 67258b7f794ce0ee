//! The replay index in both stores: the same replay events (one per stored segment, as the
//! upload route submits them) and the same errors written through the SQLite sink and the
//! Postgres sink (a real server at 127.0.0.1:5432, `TRACEPOST_PG_URL` to change it), the
//! same questions asked through [`Store::replay_sessions`] / [`Store::replay_session`], and
//! the answers compared — and checked against what the data says.
//!
//! Covers: segments folded into one row (min start, max end, sums, max missing, first URL
//! of the earliest segment, distinct URLs), segments arriving out of order and across
//! batches, two segments of one session in one batch, a redelivered segment counted once
//! (Postgres: the COPY path falls back to the merging path for the whole batch), replay
//! events that can't be indexed, every filter (user, URL ignoring case, time range, error
//! fingerprint joined on the session id, combinations), ordering, and retention; and every
//! `sql` block of the book's replay page runs on the Postgres data and returns rows.

use std::sync::Arc;

use serde_json::{json, Value};
use tracepost_core::replay_index::{ReplayFilter, ReplaySession};
use tracepost_core::store::Store;
use tracepost_core::{ErrorDetail, Event, Kind, Level, Sink, Timestamp};
use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteSink;
use uuid::Uuid;

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
                eprintln!("!!! SKIPPING: no PostgreSQL at {} ({e})", pg_url());
                return None;
            }
        };
        tokio::spawn(conn);
        let name = format!("tp_replay_index_{}", Uuid::now_v7().simple());
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

/// One segment's replay event, as the contract has the upload route submit it.
#[allow(clippy::too_many_arguments)]
fn segment(
    session: &str,
    user: Option<&str>,
    n: u32,
    start_ms: i64,
    end_ms: i64,
    url: Option<&str>,
    errors: i64,
    missing: i64,
) -> Event {
    let mut e = Event::new(Kind::Replay, Level::Info, format!("replay segment {n}"))
        .with_timestamp(Timestamp::from_unix_nanos(start_ms as u64 * 1_000_000))
        .with_attribute("replay.segment", n)
        .with_attribute("replay.session_start", "2026-11-28T23:59:58Z")
        .with_attribute("replay.start_ms", start_ms)
        .with_attribute("replay.end_ms", end_ms)
        .with_attribute("replay.events", 40 + n)
        .with_attribute("replay.bytes", 1000 + i64::from(n))
        .with_attribute("replay.missing_segments", missing)
        .with_attribute("replay.errors", errors)
        .with_attribute("visitor.id", format!("v-{session}"));
    if let Some(u) = url {
        e = e.with_attribute("replay.first_url", u);
    }
    e.session_id = Some(session.into());
    e.user_id = user.map(str::to_owned);
    e
}

fn error(session: &str, fingerprint: &str, at_ms: i64) -> Event {
    let mut e = Event::new(Kind::Error, Level::Error, "TypeError: x is undefined")
        .with_timestamp(Timestamp::from_unix_nanos(at_ms as u64 * 1_000_000))
        // As `Builder::replay_console_url` adds it.
        .with_attribute(
            "replay.url",
            format!("https://ops.example/tracepost/console/replays/{session}?at={at_ms}"),
        );
    e.session_id = Some(session.into());
    e.fingerprint = Some(fingerprint.into());
    e.with_error(ErrorDetail {
        error_type: "TypeError".into(),
        message: "x is undefined".into(),
        backtrace: None,
        location: None,
    })
}

fn as_json(sessions: &[ReplaySession]) -> Value {
    serde_json::to_value(sessions).unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_index_replays_alike() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let pg = PostgresSink::builder(db.url()).connect().await.unwrap();

    // Three sessions in the last hour (times in whole ms).
    let t0 = (Timestamp::now().unix_nanos() / 1_000_000) as i64 - 3_600_000;
    let a = "sess-A_1";
    let b = "sess-B_2";
    let c = "sess-C_3";
    let seg_a = [
        segment(
            a,
            None,
            0,
            t0,
            t0 + 5_000,
            Some("https://shop.example/"),
            0,
            0,
        ),
        segment(a, Some("ada"), 2, t0 + 10_000, t0 + 15_000, None, 2, 1),
        segment(
            a,
            Some("ada"),
            1,
            t0 + 5_000,
            t0 + 10_000,
            Some("https://shop.example/Cart"),
            1,
            0,
        ),
        segment(
            a,
            Some("ada"),
            3,
            t0 + 15_000,
            t0 + 42_000,
            Some("https://shop.example/"),
            0,
            1,
        ),
    ];
    let seg_b = [
        segment(
            b,
            Some("bob"),
            0,
            t0 + 600_000,
            t0 + 605_000,
            Some("https://shop.example/login"),
            0,
            0,
        ),
        segment(b, Some("bob"), 1, t0 + 605_000, t0 + 700_000, None, 0, 3),
    ];
    // Written out of order: segment 1 (which carries the earlier start) arrives last.
    let seg_c = [
        segment(
            c,
            None,
            1,
            t0 + 1_800_000,
            t0 + 1_810_000,
            Some("https://docs.example/b"),
            0,
            0,
        ),
        segment(
            c,
            None,
            0,
            t0 + 1_790_000,
            t0 + 1_800_000,
            Some("https://docs.example/a"),
            0,
            0,
        ),
    ];
    // Not indexed (stored as events only): no start, an id that can't name a segment.
    let mut no_start = segment("sess-D", None, 0, t0, t0 + 1, None, 0, 0);
    no_start.attributes.remove("replay.start_ms");
    let bad_id = segment("../etc", None, 0, t0, t0 + 1, None, 0, 0);
    let errors = [
        error(a, "fp-checkout", t0 + 12_000),
        error(c, "fp-checkout", t0 + 1_795_000),
        error(b, "fp-login", t0 + 650_000),
        // An error with the fingerprint in a session that has no replay.
        error("sess-unrecorded", "fp-login", t0 + 1_000),
    ];

    let arc = |v: &[Event]| v.iter().cloned().map(Arc::new).collect::<Vec<_>>();
    let batches: Vec<Vec<Arc<Event>>> = vec![
        arc(&seg_a[..2]), // two segments of A in one batch
        arc(&[seg_a[2].clone(), seg_b[0].clone(), no_start, bad_id]),
        arc(&[seg_c[0].clone()]),
        // A redelivered segment next to new ones: counted once.
        arc(&[seg_a[1].clone(), seg_a[3].clone(), seg_b[1].clone()]),
        arc(&[seg_c[1].clone()]),
        arc(&errors),
        // A whole batch delivered again changes nothing.
        arc(&seg_a[..2]),
    ];
    for batch in &batches {
        let s = sqlite.send(batch.clone()).await.unwrap();
        assert!(s.rejected.is_empty(), "sqlite: {:?}", s.rejected);
        let p = pg.send(batch.clone()).await.unwrap();
        assert!(p.rejected.is_empty(), "postgres: {:?}", p.rejected);
    }

    let hour_ago = Timestamp::from_unix_nanos(t0 as u64 * 1_000_000);
    let at = |ms: i64| Timestamp::from_unix_nanos((t0 + ms) as u64 * 1_000_000);
    let questions: Vec<(&str, ReplayFilter)> = vec![
        ("all", ReplayFilter::new()),
        ("user ada", ReplayFilter::new().user_id("ada")),
        ("user nobody", ReplayFilter::new().user_id("nobody")),
        (
            "url cart, other case",
            ReplayFilter::new().url_contains("CART"),
        ),
        (
            "url shop.example",
            ReplayFilter::new().url_contains("shop.example"),
        ),
        (
            "url docs.example/a",
            ReplayFilter::new().url_contains("docs.example/a"),
        ),
        ("since 10 min in", ReplayFilter::new().since(at(600_000))),
        ("until 10 min in", ReplayFilter::new().until(at(600_000))),
        (
            "between 1 min and 20 min",
            ReplayFilter::new().since(at(60_000)).until(at(1_200_000)),
        ),
        (
            "fingerprint checkout",
            ReplayFilter::new().fingerprint("fp-checkout"),
        ),
        (
            "fingerprint login",
            ReplayFilter::new().fingerprint("fp-login"),
        ),
        (
            "fingerprint checkout, user ada, since the start",
            ReplayFilter::new()
                .fingerprint("fp-checkout")
                .user_id("ada")
                .since(hour_ago),
        ),
    ];
    let stores: [(&str, &dyn Store); 2] = [("sqlite", sqlite.store()), ("postgres", pg.store())];
    let mut answers: Vec<Vec<(String, Value)>> = Vec::new();
    for (name, store) in stores {
        let mut out = Vec::new();
        for (q, f) in &questions {
            let got = store
                .replay_sessions(f, 100)
                .await
                .unwrap_or_else(|e| panic!("{name}: {q}: {e}"));
            out.push((q.to_string(), as_json(&got)));
        }
        for id in [a, b, c, "sess-D", "missing"] {
            let one = store.replay_session(id).await.unwrap();
            out.push((format!("one {id}"), serde_json::to_value(one).unwrap()));
        }
        out.push((
            "limit 2".into(),
            as_json(
                &store
                    .replay_sessions(&ReplayFilter::new(), 2)
                    .await
                    .unwrap(),
            ),
        ));
        answers.push(out);
    }
    for ((q, x), (_, y)) in answers[0].iter().zip(&answers[1]) {
        assert_eq!(x, y, "{q}: the stores disagree");
    }

    // The answers are the data's.
    let answer = |q: &str| {
        answers[0]
            .iter()
            .find(|(n, _)| n == q)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(ids(&answer("all")), [c, b, a], "newest first");
    assert_eq!(ids(&answer("limit 2")), [c, b]);
    assert_eq!(ids(&answer("user ada")), [a]);
    assert_eq!(ids(&answer("user nobody")), Vec::<String>::new());
    assert_eq!(ids(&answer("url cart, other case")), [a]);
    assert_eq!(ids(&answer("url shop.example")), [b, a]);
    assert_eq!(ids(&answer("url docs.example/a")), [c]);
    assert_eq!(ids(&answer("since 10 min in")), [c, b]);
    assert_eq!(ids(&answer("until 10 min in")), [a]);
    assert_eq!(ids(&answer("between 1 min and 20 min")), [b]);
    assert_eq!(ids(&answer("fingerprint checkout")), [c, a]);
    assert_eq!(ids(&answer("fingerprint login")), [b]);
    assert_eq!(
        ids(&answer("fingerprint checkout, user ada, since the start")),
        [a]
    );
    let one_a = answer(&format!("one {a}"));
    let started = Timestamp::from_unix_nanos(t0 as u64 * 1_000_000).to_string();
    let ended = Timestamp::from_unix_nanos((t0 + 42_000) as u64 * 1_000_000).to_string();
    assert_eq!(
        one_a,
        json!({
            "session_id": a, "visitor_id": format!("v-{a}"), "user_id": "ada",
            "started_at": started, "ended_at": ended, "duration_ms": 42_000,
            "first_url": "https://shop.example/", "page_count": 2, "segment_count": 4,
            "error_count": 3, "bytes": 4006, "missing_segments": 1,
            "session_day": "2026-11-28",
        })
    );
    let one_c = answer(&format!("one {c}"));
    assert_eq!(
        one_c["first_url"], "https://docs.example/a",
        "the earliest segment's URL"
    );
    assert_eq!(one_c["page_count"], 2);
    assert_eq!(one_c["duration_ms"], 20_000);
    assert_eq!(answer(&format!("one {b}"))["missing_segments"], 3);
    assert_eq!(answer("one sess-D"), Value::Null);
    assert_eq!(answer("one missing"), Value::Null);

    // Every `sql` block of the book's replay page runs on this data and returns rows.
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let book = include_str!("../../../book/src/replay-viewer.md");
    let mut blocks = 0;
    for block in book.split("```sql\n").skip(1) {
        let sql = block.split("```").next().unwrap();
        let rows = client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}\nfailed: {e:?}"));
        assert!(!rows.is_empty(), "no rows from the book's\n{sql}");
        blocks += 1;
    }
    assert_eq!(blocks, 3, "the book's replay SQL blocks");
    drop(client);

    // Retention: rows of sessions that ended before the cutoff go — with the SQLite store's
    // own event retention, and through the Store API.
    let report = sqlite
        .store()
        .delete_before((t0 + 650_000) * 1000)
        .await
        .unwrap();
    assert_eq!(
        report.deleted_replay_sessions, 1,
        "sqlite retention: only A"
    );
    for (name, store) in stores {
        let n = store
            .delete_replay_sessions_before(at(650_000))
            .await
            .unwrap();
        let expected = if name == "sqlite" { 0 } else { 1 };
        assert_eq!(n, expected, "{name}: only A ended before 10m50s");
        assert_eq!(
            ids(&as_json(
                &store
                    .replay_sessions(&ReplayFilter::new(), 10)
                    .await
                    .unwrap()
            )),
            [c, b],
            "{name}"
        );
    }
    db.drop_db().await;
}

/// Four writers at once, each with segments of the same ten sessions in its own order: no
/// deadlock, no lost update — every session ends with all its segments counted, in both
/// stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_count_every_segment() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteSink::new(dir.path()));
    let pg = Arc::new(PostgresSink::builder(db.url()).connect().await.unwrap());
    let t0 = (Timestamp::now().unix_nanos() / 1_000_000) as i64 - 600_000;
    let sessions: Vec<String> = (0..10).map(|i| format!("concurrent-{i}")).collect();
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        // Writer w holds segments w, w+4, w+8, … of every session; odd writers go backwards.
        let mut batch: Vec<Arc<Event>> = Vec::new();
        for n in (w..20).step_by(4) {
            for s in &sessions {
                let start = t0 + i64::from(n) * 1000;
                batch.push(Arc::new(segment(
                    s,
                    None,
                    n,
                    start,
                    start + 999,
                    None,
                    1,
                    0,
                )));
            }
        }
        if w % 2 == 1 {
            batch.reverse();
        }
        let (sqlite, pg) = (sqlite.clone(), pg.clone());
        tasks.push(tokio::spawn(async move {
            for chunk in batch.chunks(7) {
                let p = pg.send(chunk.to_vec()).await.unwrap();
                assert!(p.rejected.is_empty(), "{:?}", p.rejected);
                let s = sqlite.send(chunk.to_vec()).await.unwrap();
                assert!(s.rejected.is_empty(), "{:?}", s.rejected);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stores: [(&str, &dyn Store); 2] = [("sqlite", sqlite.store()), ("postgres", pg.store())];
    for (name, store) in stores {
        let all = store
            .replay_sessions(&ReplayFilter::new(), 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 10, "{name}");
        for s in &all {
            assert_eq!(s.segment_count, 20, "{name}: {}", s.session_id);
            assert_eq!(s.error_count, 20, "{name}: {}", s.session_id);
            assert_eq!(s.duration_ms, 19_999, "{name}: {}", s.session_id);
        }
    }
    db.drop_db().await;
}
