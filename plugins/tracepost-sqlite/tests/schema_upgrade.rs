//! A database of the previous schema version (4) upgrades in place when a store opens it:
//! version 5 adds the per-minute event counts the histogram reads, filled from the events
//! already stored, and kept by later writes and by retention.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracepost_core::store::{bucket_start, ts_to_micros, EventFilter};
use tracepost_core::{Event, Kind, Level, Sink, Timestamp};
use tracepost_sqlite::{SqliteSink, SqliteStore, TimeRange, DB_FILE, SCHEMA_VERSION};

/// `n` events over the last two hours, off the minute, of three kinds, levels and services.
fn events(n: u64, salt: &str) -> Vec<Arc<Event>> {
    let now = Timestamp::now().unix_nanos();
    (0..n)
        .map(|i| {
            let ts = now - 7_200_000_000_000 + i * 7_200_000_000_000 / n + 1_234_567;
            let (kind, level) = [
                (Kind::Log, Level::Info),
                (Kind::Error, Level::Error),
                (Kind::Request, Level::Warn),
            ][(i % 3) as usize];
            let mut e = Event::new(kind, level, format!("{salt} event {i}"))
                .with_timestamp(Timestamp::from_unix_nanos(ts));
            e.resource.service = ["checkout", "search"][(i % 2) as usize].into();
            Arc::new(e)
        })
        .collect()
}

/// Counts per minute (Unix µs) of `events` matching `keep`, from the events themselves.
fn expected(events: &[Arc<Event>], keep: impl Fn(&Event) -> bool) -> BTreeMap<i64, u64> {
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| keep(e)) {
        *out.entry(bucket_start(ts_to_micros(e.timestamp), 60_000_000))
            .or_default() += 1;
    }
    out
}

async fn minutes(store: &SqliteStore, f: EventFilter) -> BTreeMap<i64, u64> {
    store
        .histogram(&f, Duration::from_secs(60))
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.count > 0)
        .map(|b| (ts_to_micros(b.start), b.count))
        .collect()
}

fn user_version(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_file_upgrades_in_place_and_its_histograms_count_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let old = events(600, "old");
    {
        let sink = SqliteSink::new(dir.path());
        assert!(sink.send(old.clone()).await.unwrap().rejected.is_empty());
    }
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    // Back to version 4: its schema is version 5's without the per-minute counts.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP TRIGGER events_counts_delete; DROP TABLE event_counts; PRAGMA user_version = 4;",
        )
        .unwrap();
    assert_eq!(user_version(&path), 4);

    // Opened by this version: upgraded, and the counts are filled from the stored events.
    let store = SqliteStore::new(&path, TimeRange::default(), None);
    assert_eq!(
        minutes(&store, EventFilter::new()).await,
        expected(&old, |_| true)
    );
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let errors_at_checkout = EventFilter::new()
        .kind(Kind::Error)
        .service("checkout")
        .since(Timestamp::from_unix_nanos(
            old[10].timestamp.unix_nanos() + 1_000,
        ))
        .until(old[500].timestamp);
    let want = expected(&old[11..500], |e| {
        e.kind == Kind::Error && e.resource.service == "checkout"
    });
    assert!(!want.is_empty());
    assert_eq!(minutes(&store, errors_at_checkout).await, want);

    // Later writes add to the counts; a redelivery doesn't.
    let new = events(300, "new");
    assert!(store.write(new.clone()).await.unwrap().rejected.is_empty());
    store.write(old[..50].to_vec()).await.unwrap();
    let all: Vec<Arc<Event>> = old.iter().chain(&new).cloned().collect();
    assert_eq!(
        minutes(&store, EventFilter::new()).await,
        expected(&all, |_| true)
    );
    assert_eq!(
        minutes(&store, EventFilter::new().level(Level::Warn)).await,
        expected(&all, |e| e.level == Level::Warn)
    );

    // Retention takes its events out of the counts.
    let cutoff = ts_to_micros(all[0].timestamp) + 3_600_000_000 + 30_000_000;
    let report = store.delete_before(cutoff).await.unwrap();
    let kept: Vec<Arc<Event>> = all
        .iter()
        .filter(|e| ts_to_micros(e.timestamp) >= cutoff)
        .cloned()
        .collect();
    assert_eq!(report.deleted_events as usize, all.len() - kept.len());
    assert!(report.deleted_events > 0);
    assert_eq!(
        minutes(&store, EventFilter::new()).await,
        expected(&kept, |_| true)
    );

    // Opening a current file again changes nothing.
    drop(store);
    let again = SqliteStore::new(&path, TimeRange::default(), None);
    assert_eq!(
        minutes(&again, EventFilter::new()).await,
        expected(&kept, |_| true)
    );
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

/// A tester's input: a file left at version 5 (a `kill -9` during a 4 → 6 upgrade stops
/// there) got the old per-event search trigger back on its upgrade to 6 — every new event
/// indexed twice and FTS5's integrity check failing. Every version a file can be left at
/// upgrades to a file with no insert trigger and a sound search index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_at_any_version_upgrades_to_a_sound_search_index() {
    for from in [4, 5] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let sink = SqliteSink::new(dir.path());
            assert!(sink
                .send(events(200, "old"))
                .await
                .unwrap()
                .rejected
                .is_empty());
        }
        let c = rusqlite::Connection::open(&path).unwrap();
        let down = match from {
            4 => {
                "DROP TRIGGER events_counts_delete; DROP TABLE event_counts; DROP TABLE analytics;"
            }
            _ => "DROP TABLE analytics;",
        };
        c.execute_batch(&format!("{down} PRAGMA user_version = {from};"))
            .unwrap();
        drop(c);
        let store = SqliteStore::new(&path, TimeRange::default(), None);
        assert!(store
            .write(events(100, "new"))
            .await
            .unwrap()
            .rejected
            .is_empty());
        let found = store
            .events(&EventFilter::new().message_contains("new"), 1000, None)
            .await
            .unwrap();
        assert_eq!(found.events.len(), 100, "from {from}");
        let c = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let triggers: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'events_fts_insert'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0, "from {from}: the per-event trigger is back");
        c.execute(
            "INSERT INTO events_fts (events_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("the search index is sound");
        let indexed: i64 = c
            .query_row("SELECT count(*) FROM events_fts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 300, "from {from}: each event indexed once");
    }
}

/// A file written by a newer tracepost (a schema version above this build's) is refused with
/// an error naming both versions — by the store's queries and by the sink, which keeps the
/// batch (a refusal of the destination, not of the events) — and left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_a_newer_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    // A sink that has the file open when a newer tracepost upgrades it (a rolling upgrade)
    // stops writing into it too.
    let open_sink = SqliteSink::new(dir.path());
    open_sink.send(events(10, "current")).await.unwrap();
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let err = open_sink.send(events(10, "after")).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    assert!(err.to_string().contains("newer than this build's"), "{err}");
    let store = SqliteStore::new(&path, TimeRange::default(), None);
    let err = store
        .events(&EventFilter::new(), 10, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "schema version {newer}, newer than this build's {SCHEMA_VERSION}"
        )),
        "{err}"
    );
    let err = SqliteSink::new(dir.path())
        .send(events(10, "refused"))
        .await
        .unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    assert!(err.to_string().contains("newer than this build's"), "{err}");
    assert_eq!(user_version(&path), newer);
}
