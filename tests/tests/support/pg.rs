//! The local PostgreSQL for the fault-injection suite: a database per test, and stopping and
//! starting the server itself. Under `CI=true` a missing server is a failure.

#![allow(dead_code)]

use std::time::{Duration, Instant};

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub async fn client(url: &str) -> Option<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(c)
}

/// Whether this run may stop and start the machine's PostgreSQL: under `CI=true`, or when a
/// developer opts in with `TRACEPOST_FAULT_TESTS=1`. Otherwise the test is skipped loudly, so
/// that `cargo test` never takes down a developer's database.
pub fn may_stop_server(tag: &str) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let opted_in = std::env::var("TRACEPOST_FAULT_TESTS").as_deref() == Ok("1");
    if !(ci || opted_in) {
        eprintln!("!!! SKIPPING {tag}: it stops the local PostgreSQL; run with TRACEPOST_FAULT_TESTS=1 (CI always does)");
    }
    ci || opted_in
}

/// A fresh database (its URL), or `None` outside CI when no server runs.
pub async fn create_db(tag: &str) -> Option<String> {
    let Some(admin) = client(ADMIN_URL).await else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("PostgreSQL is required under CI=true but unreachable at {ADMIN_URL}");
        }
        eprintln!("!!! SKIPPING {tag}: no PostgreSQL at {ADMIN_URL}");
        return None;
    };
    let name = format!(
        "tp_fault_{tag}_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    Some(format!("postgres://postgres@127.0.0.1:5432/{name}"))
}

fn cluster_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
    versions.pop().unwrap_or_else(|| "15".into())
}

async fn pg_ctl(action: &str) {
    let mut args = vec![
        "--skip-systemctl-redirect".to_owned(),
        cluster_version(),
        "main".into(),
        action.into(),
    ];
    if action == "stop" {
        args.extend(["-m".into(), "fast".into()]);
    }
    let out = tokio::process::Command::new("pg_ctlcluster")
        .args(&args)
        .output()
        .await
        .expect("pg_ctlcluster");
    assert!(
        out.status.success(),
        "pg_ctlcluster {action}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the server (fast shutdown: connections are cut, as in a crash of the database).
pub async fn stop_server() {
    pg_ctl("stop").await;
}

/// Starts the server and waits until it answers.
pub async fn start_server() {
    pg_ctl("start").await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(c) = client(ADMIN_URL).await {
            if c.simple_query("SELECT 1").await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("PostgreSQL did not come back within 60 s");
}

/// Restarts the server if a test left it stopped (call in a drop guard).
pub struct EnsureRunning;

impl Drop for EnsureRunning {
    fn drop(&mut self) {
        let version = cluster_version();
        let _ = std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .output();
    }
}

/// (rows, distinct ids) in the events table.
pub async fn count_events(url: &str) -> (i64, i64) {
    let c = client(url).await.expect("database reachable");
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT id) FROM tracepost.events",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}
