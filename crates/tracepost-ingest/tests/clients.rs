//! The copy-paste clients (`clients/python/logger.py`, `clients/javascript/logger.js`,
//! `clients/go/logger.go`) for real, against the log routes on a loopback port: each sends
//! 1,000 signed logs that must all arrive exactly once (through redaction), gets 401 for a
//! wrong key and for a stale signature, and meets 429s (a per-key limit of 4/s, burst 3)
//! that it honours (it retries after `Retry-After` and loses nothing).
//!
//! Needs `python3`, `node` (18+) and `go` (scripts/setup.sh installs them); without one the
//! test says so and skips that client, except under `CI=true`, where it fails.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracepost_core::testing::MemorySink;
use tracepost_core::Tracepost;
use tracepost_ingest::logs::StaticKeys;
use tracepost_ingest::{LogIngest, LogIngestConfig};

const PY: &str = "tpk_1111111111111111111111111111111111111111111111111111111111111111";
const JS: &str = "tpk_2222222222222222222222222222222222222222222222222222222222222222";
const GO: &str = "tpk_3333333333333333333333333333333333333333333333333333333333333333";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients")
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok();
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{tool} is missing (scripts/setup.sh installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed (scripts/setup.sh installs it)");
    }
    ok
}

/// The JSON stats line a client's check program printed.
fn stats(out: std::process::Output, marker: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(marker))
        .unwrap_or_else(|| panic!("no stats in:\n{stdout}\nstderr:\n{stderr}"));
    serde_json::from_str(line.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_send_1000_logs_exactly_once() {
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("host-app")
        .sink(sink.clone())
        .build()
        .unwrap();
    let store = StaticKeys::new([("py", PY), ("js", JS), ("go", GO)], false);
    let config = LogIngestConfig::new().per_key_limit(4, 3);
    let logs = LogIngest::new(tp.handle(), config, Arc::new(store)).unwrap();
    let app: axum::Router = tracepost_ingest::logs_router(logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let url = format!("http://{addr}/tracepost");
    let dir = clients_dir();

    let mut ran = Vec::new();
    let run = |mut cmd: Command, key: &str| {
        cmd.env("TP_URL", &url).env("TP_KEY", key);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    if have("python3") {
        let mut c = Command::new("python3");
        c.arg(dir.join("python/check.py"));
        ran.push(("python", "py", "", run(c, PY).await.unwrap()));
    }
    if have("node") {
        let mut c = Command::new("node");
        c.arg(dir.join("javascript/check.js"));
        ran.push(("javascript", "js", "", run(c, JS).await.unwrap()));
    }
    if have("go") {
        let mut c = Command::new("go");
        c.args(["test", "-count=1", "-v", "-run", "TestAgainstServer", "."])
            .current_dir(dir.join("go"));
        ran.push(("go", "go", "STATS ", run(c, GO).await.unwrap()));
    }

    tp.shutdown(Duration::from_secs(5)).await;
    let events = sink.stored();
    for (name, project, marker, out) in ran {
        let s = stats(out, marker);
        assert_eq!(s["wrong_key"], 401, "{name}: {s}");
        assert_eq!(s["stale"], 401, "{name}: {s}");
        assert_eq!(s["dropped"], 0, "{name}: {s}");
        // 10 batches against a burst of 3 at 4/s: some were refused and sent again.
        assert!(s["retries"].as_u64().unwrap() > 0, "{name}: {s}");
        let prefix = format!("{name}-");
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.message.starts_with(&prefix))
            .collect();
        let unique: HashSet<_> = mine.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(mine.len(), 1000, "{name}: every log exactly once");
        assert_eq!(unique.len(), 1000, "{name}");
        for i in 0..1000 {
            assert!(
                unique.contains(format!("{name}-{i}").as_str()),
                "{name}-{i}"
            );
        }
        for e in &mine {
            assert_eq!(e.attributes["ingest.project"], project);
            assert_ne!(e.attributes["password"], "hunter2-planted");
        }
        println!("{name}: {s}");
    }
}
