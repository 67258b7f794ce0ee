//! The sink behaviour suite on a real SQLite file, plus what is SQLite-specific: the accepted
//! time range, a file deleted under the sink, retention, the config file, startup without
//! I/O.

// ANCHOR: imports
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tracepost_core::store::EventFilter;
use tracepost_core::testing::suite::{self, Capabilities, Harness, Stored};
use tracepost_core::{Event, Health, Kind, Level, Sink, Timestamp, Tracepost};
use tracepost_sqlite::{OutOfRange, SqliteConfig, SqliteSink, TimeRange, DB_FILE};
use uuid::Uuid;
// ANCHOR_END: imports

// ANCHOR: harness
/// The sink in a scratch directory. An outage replaces the directory with a plain file (a
/// volume gone); a refusal puts a file that is not a database in place of the database.
struct File {
    root: tempfile::TempDir,
}

impl File {
    fn new() -> File {
        File {
            root: tempfile::tempdir().unwrap(),
        }
    }
    fn dir(&self) -> PathBuf {
        self.root.path().join("data")
    }
    fn db(&self) -> PathBuf {
        self.dir().join(DB_FILE)
    }
    fn parked(&self) -> PathBuf {
        self.root.path().join("data.unmounted")
    }
}

impl Harness for File {
    type Sink = SqliteSink;
    async fn sink(&self) -> SqliteSink {
        SqliteSink::new(self.dir())
    }
    async fn read_back(&self) -> Vec<Stored> {
        let Ok(c) = Connection::open_with_flags(self.db(), OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return Vec::new();
        };
        let Ok(mut stmt) = c.prepare("SELECT id, message FROM events ORDER BY rowid") else {
            return Vec::new(); // not a database (refusing) or no schema yet
        };
        stmt.query_map([], |r| {
            let id: Vec<u8> = r.get(0)?;
            Ok(Stored {
                id: Uuid::from_slice(&id).unwrap(),
                message: r.get(1)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }
    fn capabilities(&self) -> Capabilities {
        // Idempotent on the id; rowids follow arrival order; an event out of the accepted
        // time range is the bad event.
        Capabilities::all()
    }
    async fn set_refusing(&self, on: bool) {
        let (db, aside) = (self.db(), self.dir().join("real.sqlite3"));
        std::fs::create_dir_all(self.dir()).unwrap();
        if on {
            if db.exists() {
                std::fs::rename(&db, &aside).unwrap();
            }
            std::fs::write(&db, vec![b'x'; 4096]).unwrap();
        } else {
            std::fs::remove_file(&db).unwrap();
            if aside.exists() {
                std::fs::rename(&aside, &db).unwrap();
            }
        }
    }
    async fn set_reachable(&self, on: bool) {
        let (dir, parked) = (self.dir(), self.parked());
        if on {
            std::fs::remove_file(&dir).unwrap();
            if parked.exists() {
                std::fs::rename(&parked, &dir).unwrap();
            }
        } else {
            if dir.exists() {
                std::fs::rename(&dir, &parked).unwrap();
            }
            std::fs::write(&dir, b"not a directory").unwrap();
        }
    }
    fn bad_event(&self, i: usize) -> Event {
        // Older than the accepted range (30 days by default): rejected alone, `too_old`.
        suite::event("too-old", i).with_timestamp(Timestamp::from_unix_nanos(
            Timestamp::now().unix_nanos() - 40 * 86_400 * 1_000_000_000,
        ))
    }
}

tracepost_core::sink_behaviour_suite!(async { Some(File::new()) });
// ANCHOR_END: harness

fn at(offset_secs: i64, msg: &str) -> Event {
    let now = Timestamp::now().unix_nanos() as i64;
    Event::new(Kind::Log, Level::Info, msg).with_timestamp(Timestamp::from_unix_nanos(
        (now + offset_secs * 1_000_000_000) as u64,
    ))
}

/// The Postgres sink's time range: too old and too far ahead are rejected with their
/// reasons and counted; inside the edges is stored; restamping keeps the original time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_events_are_rejected_with_reasons_or_restamped() {
    let f = File::new();
    let sink = SqliteSink::builder(f.dir())
        .time_range(
            TimeRange::new()
                .max_age(Duration::from_secs(3600))
                .max_ahead(Duration::from_secs(60)),
        )
        .build();
    let events = vec![
        at(-7200, "too old"),
        at(-3500, "old but kept"),
        at(30, "ahead but kept"),
        at(600, "too far ahead"),
    ];
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let out = sink
        .send(events.into_iter().map(std::sync::Arc::new).collect())
        .await
        .unwrap();
    let reasons: Vec<(Uuid, &str)> = out
        .rejected
        .iter()
        .map(|r| (r.id, r.reason.as_ref()))
        .collect();
    assert_eq!(
        reasons,
        [(ids[0], "too_old"), (ids[3], "too_far_in_future")]
    );
    let stats = sink.store().stats();
    assert_eq!(
        (stats.inserted, stats.too_old, stats.too_far_in_future),
        (2, 1, 1)
    );
    let stored: Vec<Uuid> = f.read_back().await.iter().map(|s| s.id).collect();
    assert_eq!(stored, [ids[1], ids[2]]);

    let g = File::new();
    let restamp = SqliteSink::builder(g.dir())
        .time_range(
            TimeRange::new()
                .max_age(Duration::from_secs(60))
                .outside(OutOfRange::Restamp),
        )
        .build();
    let old = at(-7200, "restamped");
    let original = old.timestamp;
    let out = restamp
        .send(vec![std::sync::Arc::new(old.clone())])
        .await
        .unwrap();
    assert!(out.rejected.is_empty());
    let got = restamp.store().event(old.id).await.unwrap().unwrap();
    assert!(got.timestamp.unix_nanos() > original.unix_nanos() + 7_000_000_000_000);
    assert_eq!(
        got.attributes[tracepost_sqlite::ORIGINAL_TIMESTAMP_ATTRIBUTE],
        original.to_string()
    );
}

/// A database file deleted under the running sink: the next batch goes to a new file at the
/// same path instead of the unlinked one (where it would be lost without a word).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_is_reopened_not_written_into_the_void() {
    let f = File::new();
    let sink = SqliteSink::new(f.dir());
    let first = at(0, "before");
    sink.send(vec![std::sync::Arc::new(first)]).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", f.db().display()));
    }
    let second = at(0, "after the delete");
    let id = second.id;
    sink.send(vec![std::sync::Arc::new(second)]).await.unwrap();
    let stored: Vec<Uuid> = f.read_back().await.iter().map(|s| s.id).collect();
    assert_eq!(stored, [id]);
}

/// Retention deletes old events with their snapshots, and the issues not seen since; full
/// text search forgets the deleted messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_events_issues_and_their_search_entries() {
    let f = File::new();
    let sink = SqliteSink::builder(f.dir())
        .retention(Duration::from_secs(3600))
        .build();
    let mut old = at(-3000, "stale failure zebra").with_error(tracepost_core::ErrorDetail {
        error_type: "Stale".into(),
        message: "stale".into(),
        backtrace: None,
        location: None,
    });
    old.kind = Kind::Error;
    old.fingerprint = Some("fp-old".into());
    let fresh = at(0, "fresh zebra");
    sink.send(vec![
        std::sync::Arc::new(old),
        std::sync::Arc::new(fresh.clone()),
    ])
    .await
    .unwrap();
    let store = sink.store();
    let zebras = EventFilter::new().message_contains("ZEBRA");
    assert_eq!(
        store.events(&zebras, 10, None).await.unwrap().events.len(),
        2
    );
    assert!(store.issue("fp-old").await.unwrap().is_some());
    let cutoff = tracepost_core::store::ts_to_micros(Timestamp::now()) - 1_000_000_000;
    let report = store.delete_before(cutoff).await.unwrap();
    assert_eq!((report.deleted_events, report.deleted_issues), (1, 1));
    let left = store.events(&zebras, 10, None).await.unwrap().events;
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [fresh.id]);
    assert!(store.issue("fp-old").await.unwrap().is_none());
    // Within the retention: nothing more to delete.
    assert_eq!(store.retain().await.unwrap().deleted_events, 0);
}

/// Building the sink and the pipeline does no I/O: a directory that cannot be created (a
/// file in its way) leaves startup instant and the sink `down` with the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_directory_never_blocks_startup() {
    let f = File::new();
    std::fs::write(f.dir(), b"a file where the directory should be").unwrap();
    let started = Instant::now();
    let tp = Tracepost::builder()
        .sink_with(
            SqliteSink::new(f.dir()),
            SqliteSink::sink_options().retry(tracepost_core::RetryOptions::new(
                1,
                Duration::from_millis(10),
                Duration::from_millis(20),
            )),
        )
        .build()
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
    tp.handle().capture(at(0, "kept in memory"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let h = tp.handle().health();
        if h.state == Health::Down {
            break h.sinks[0].last_error.clone().unwrap();
        }
        assert!(Instant::now() < deadline, "never reported down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(error.starts_with("temporary (io): sqlite"), "{error}");
    tp.shutdown(Duration::from_millis(200)).await;
}

#[test]
fn config_from_toml_builds_and_typos_name_the_field() {
    // ANCHOR: config
    let c: SqliteConfig = toml::from_str(
        r#"
        dir = "./tracepost-data"
        retention = "7days"
        max_ahead = "5m"
        out_of_range = "restamp"
        "#,
    )
    .unwrap();
    assert_eq!(c.retention, Some(Duration::from_secs(7 * 86_400)));
    let sink = c.build(); // no I/O: the file is created on the first delivery
    assert_eq!(
        sink.store().path(),
        std::path::Path::new("./tracepost-data/tracepost.sqlite3")
    );
    let e = toml::from_str::<SqliteConfig>("dir = \"x\"\nretension = \"1d\"").unwrap_err();
    assert!(e.to_string().contains("unknown field `retension`"), "{e}");
    // ANCHOR_END: config
    let e = toml::from_str::<SqliteConfig>("dir = \"x\"\nretention = \"soon\"").unwrap_err();
    assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
    let e = toml::from_str::<SqliteConfig>("dir = \"x\"\nout_of_range = \"drop\"").unwrap_err();
    assert!(e.to_string().contains("drop"), "{e}");
    let e = serde_json::from_str::<SqliteConfig>("{}").unwrap_err();
    assert!(e.to_string().contains("missing field `dir`"), "{e}");
    assert_eq!(
        SqliteConfig::new("x"),
        toml::from_str("dir = \"x\"").unwrap()
    );
}
