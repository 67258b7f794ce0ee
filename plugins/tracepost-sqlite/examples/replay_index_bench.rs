//! What the replay index costs on the write path: the same number of events written as log
//! events and as replay events (each folded into `replay_sessions` in the write's
//! transaction), into SQLite and, when reachable, PostgreSQL (`TRACEPOST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a scratch database is created and dropped).
//!
//! Run: `cargo run --release -p tracepost-sqlite --example replay_index_bench -- [events] [sessions]`
//! (default 20 000 events over 500 sessions, batches of 500).

use std::sync::Arc;
use std::time::Instant;

use tracepost_core::{Event, Kind, Level, Sink, Timestamp};
use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteSink;

const BATCH: usize = 500;

fn events(n: usize, sessions: usize, replay: bool) -> Vec<Arc<Event>> {
    let t0 = (Timestamp::now().unix_nanos() / 1_000_000) as i64 - 3_600_000;
    (0..n)
        .map(|i| {
            let session = format!("bench-session-{}", i % sessions);
            let segment = (i / sessions) as i64;
            let start = t0 + segment * 5_000;
            let mut e = if replay {
                Event::new(Kind::Replay, Level::Info, "replay segment")
                    .with_attribute("replay.segment", segment)
                    .with_attribute("replay.session_start", "2026-11-29T10:00:00Z")
                    .with_attribute("replay.start_ms", start)
                    .with_attribute("replay.end_ms", start + 4_999)
                    .with_attribute("replay.events", 120)
                    .with_attribute("replay.bytes", 40_000)
                    .with_attribute("replay.missing_segments", 0)
                    .with_attribute("replay.errors", 0)
                    .with_attribute(
                        "replay.first_url",
                        format!("https://shop.example/p/{}", i % 7),
                    )
                    .with_attribute("visitor.id", "v-1")
            } else {
                Event::new(Kind::Log, Level::Info, "replay segment")
                    .with_attribute("replay.segment", segment)
                    .with_attribute("replay.start_ms", start)
            };
            e.session_id = Some(session);
            Arc::new(e)
        })
        .collect()
}

async fn run<S: Sink>(name: &str, sink: &S, batch: Vec<Arc<Event>>) -> f64 {
    let n = batch.len();
    let started = Instant::now();
    for chunk in batch.chunks(BATCH) {
        let out = sink.send(chunk.to_vec()).await.expect("write");
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!("{name:<28} {n:>7} events  {rate:>10.0} events/s");
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    println!("{n} events over {sessions} sessions, batches of {BATCH}");

    for replay in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteSink::new(dir.path());
        let label = if replay {
            "sqlite, replay (indexed)"
        } else {
            "sqlite, log"
        };
        run(label, &sqlite, events(n, sessions, replay)).await;
    }

    let url = std::env::var("TRACEPOST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok((admin, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
        println!("postgres: not reachable at {url}, skipped");
        return;
    };
    tokio::spawn(conn);
    let db = format!("tp_replay_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let db_url = format!("{}/{db}", &url[..url.rfind('/').unwrap()]);
    for replay in [false, true] {
        let pg = PostgresSink::builder(&db_url).connect().await.unwrap();
        let label = if replay {
            "postgres, replay (indexed)"
        } else {
            "postgres, log"
        };
        run(label, &pg, events(n, sessions, replay)).await;
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}
