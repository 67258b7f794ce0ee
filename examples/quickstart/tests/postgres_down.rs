//! Issue 19's startup fault: the quickstart with `DATABASE_URL` pointing at a PostgreSQL that
//! is down. The app must serve at once, `/health` must say postgres is down, and once the
//! server is back every event captured meanwhile must be in the table.
//!
//! "Down" is a TCP proxy in front of the local PostgreSQL that refuses connections until
//! switched on (stopping the shared server would disturb other tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracepost_core::testing::TcpProxy;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn http(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

async fn admin() -> Option<tokio_postgres::Client> {
    match tokio_postgres::connect(ADMIN, tokio_postgres::NoTls).await {
        Ok((c, conn)) => {
            tokio::spawn(conn);
            Some(c)
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL is required under CI=true: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPING: no PostgreSQL at {ADMIN} ({e})");
            None
        }
    }
}

/// Drops the test database even when an assertion fails.
struct DropDb(String);

impl Drop for DropDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(ADMIN, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = c.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_with_postgres_down_and_stores_everything_once_it_is_up() {
    let Some(admin) = admin().await else { return };
    let db = format!("tp_quickstart_down_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let _cleanup = DropDb(db.clone());
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap(), false)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("QUICKSTART_ADDR", "127.0.0.1:0")
        .env("TRACEPOST_DATA", data.path())
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@{}/{db}", proxy.addr()),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let addr = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            if let Some(a) = line.split("listening on http://").nth(1) {
                let a = a.trim().to_owned();
                std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
                return Some(a);
            }
            line.clear();
        }
        None
    })
    .await
    .unwrap()
    .expect("the quickstart starts and prints its address although Postgres is down");
    assert!(started.elapsed() < Duration::from_secs(10));

    // It serves; errors are captured meanwhile.
    for _ in 0..3 {
        let addr = addr.clone();
        let r = tokio::task::spawn_blocking(move || http(&addr, "/fail"))
            .await
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 500"), "{r}");
    }
    let postgres_state = |response: &str| {
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("{}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        v["sinks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == "postgres")
            .map(|s| {
                (
                    s["state"].as_str().unwrap_or("").to_owned(),
                    s["last_error"].clone(),
                )
            })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let a = addr.clone();
        let h = tokio::task::spawn_blocking(move || http(&a, "/health"))
            .await
            .unwrap();
        if postgres_state(&h).is_some_and(|(s, _)| s == "down") || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    let (state, error) = postgres_state(&health).expect("postgres in /health");
    assert_eq!(state, "down", "{health}");
    assert!(error.is_string(), "the reason is shown: {health}");

    // PostgreSQL comes back: the spooled events are stored.
    proxy.set_up(true);
    let (c, conn) = tokio_postgres::connect(
        &format!("postgres://postgres@127.0.0.1:5432/{db}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let n: i64 = match c
            .query_one(
                "SELECT count(*) FROM tracepost.events WHERE message LIKE '%/fail%'",
                &[],
            )
            .await
        {
            Ok(row) => row.get(0),
            Err(_) => 0, // not migrated yet
        };
        if n >= 3 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        stored >= 3,
        "the 3 failures captured while down were not stored: {stored}"
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    drop(c);
}
