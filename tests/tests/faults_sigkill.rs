//! Fault injection: the process is killed with SIGKILL mid-load while PostgreSQL is down,
//! then started again on the same data directory. Every event that reached the spool is
//! delivered exactly once.
//!
//! Stops the machine's PostgreSQL server: a test binary of its own.

mod support;

use std::collections::HashSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::load::Load;
use support::pg;
use tracepost::pipeline::Spool;
use tracepost::SpoolOptions;

fn start_app(url: &str, data: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fault-app"))
        .arg("127.0.0.1:0")
        .env("TRACEPOST_PG_URL", url)
        .env("TRACEPOST_DATA", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("fault-app printed its address")
            .unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// The ids waiting in a spool directory, read the way the app reads them (after repairing a
/// torn tail), from a copy so the original is untouched.
fn spooled_ids(dir: &std::path::Path) -> (Vec<String>, u64) {
    let copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.path().join(f.file_name())).unwrap();
    }
    let mut spool = Spool::open(SpoolOptions::new(copy.path())).unwrap();
    let corrupt = spool.corrupt_records;
    let mut ids = Vec::new();
    while let Some(batch) = spool.peek().unwrap() {
        ids.extend(batch.iter().map(|e| e.id.to_string()));
        spool.ack().unwrap();
    }
    (ids, corrupt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_then_restart_delivers_the_spool_exactly_once() {
    if !pg::may_stop_server("sigkill") {
        return;
    }
    let Some(url) = pg::create_db("sigkill").await else {
        return;
    };
    let _restart = pg::EnsureRunning;
    let data = tempfile::tempdir().unwrap();

    let (mut app, addr) = start_app(&url, data.path());
    let load = Load::start(addr, "/fail", 8, 50.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg::stop_server().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // SIGKILL: no shutdown, no flush, possibly mid-write.
    app.kill().unwrap();
    app.wait().unwrap();
    let _ = load.finish().await;

    let spool_dir = data.path().join("spool").join("postgres");
    let (ids, corrupt) = spooled_ids(&spool_dir);
    assert!(!ids.is_empty(), "events reached the spool before the kill");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());

    pg::start_server().await;
    let (rows_before, _) = pg::count_events(&url).await;
    let started = Instant::now();
    let (mut app, _) = start_app(&url, data.path());
    // The restarted app delivers its spool on its own.
    let mut delivered = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let c = pg::client(&url).await.unwrap();
        let id_list: Vec<&str> = ids.iter().map(String::as_str).collect();
        let row = c
            .query_one(
                "SELECT count(*) FROM tracepost.events WHERE id::text = ANY($1)",
                &[&id_list],
            )
            .await
            .unwrap();
        delivered = row.get::<_, i64>(0) as usize;
        if delivered >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let replay_secs = started.elapsed().as_secs_f64();
    Command::new("kill")
        .args(["-INT", &app.id().to_string()])
        .status()
        .unwrap();
    app.wait().unwrap();
    let (rows, distinct) = pg::count_events(&url).await;
    println!(
        "spooled before SIGKILL: {} events ({corrupt} torn record(s) cut) | in the table before restart {rows_before} | \
         delivered after restart {delivered} in {replay_secs:.1}s ({:.0} events/s) | rows {rows} distinct {distinct}",
        ids.len(),
        ids.len() as f64 / replay_secs
    );
    assert_eq!(delivered, ids.len(), "every spooled event was delivered");
    assert_eq!(rows, distinct, "exactly once");
    assert!(std::fs::read_dir(&spool_dir).unwrap().all(|f| !f
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("seg-")));
}
