//! The copy-paste clients (`clients/python/logger.py`, `clients/javascript/logger.js`,
//! `clients/go/logger.go`) for real, against the quickstart binary's log routes: each sends
//! 1,000 signed logs that must all arrive exactly once in the quickstart's NDJSON file (through
//! redaction), with three bad logs among them (unserialisable, oversized) that are dropped
//! alone and counted; gets 401 for a wrong key and for a stale signature; meets 429s (a
//! per-key limit of 4/s, burst 3) that it honours (it retries after `Retry-After` and loses
//! nothing); and, logging to a server that is down, never holds the caller (5,000 logs in
//! well under a second, every one counted as dropped, `close` within its 0.5 s timeout though
//! it comes in the middle of a 2 s retry backoff, and a
//! log after `close` counted too). To a server that accepts the connection and never answers,
//! `close` still ends by its timeout (the request in flight is abandoned) and every log is
//! counted as dropped. A log the server would refuse alone (an unknown level such as
//! `verbose`, a lone UTF-16 surrogate in the message or a context key or value) is mended by
//! the client so the rest of its batch arrives; bad settings (no key, a short key with
//! signing, a zero interval, no service) never crash or throw into the host: every log is
//! counted; a batch size over the server's 250 is capped, so its 300 logs arrive. A key
//! created in the quickstart's SQLite file (as `tracepost keys create --sqlite` does) is
//! accepted besides `TRACEPOST_API_KEY`.
//!
//! Needs `python3`, `node` (18+) and `go` (scripts/setup.sh installs them); without one the
//! test says so and skips that client, except under `CI=true`, where it fails.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{have, post, Quickstart};
use serde_json::Value;

const KEY: &str = "tpk_1111111111111111111111111111111111111111111111111111111111111111";

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

#[test]
fn clients_send_1000_logs_exactly_once_to_the_quickstart() {
    // A key in the quickstart's SQLite file, created before it starts.
    let data = tempfile::tempdir().unwrap();
    let store = tracepost::sinks::sqlite::SqliteSink::new(data.path())
        .store()
        .clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored_key = rt.block_on(async {
        let project = store.create_project("shop").await.unwrap();
        store.create_api_key(project.id).await.unwrap()
    });
    let qs = Quickstart::start_in(
        data,
        &[
            ("TRACEPOST_API_KEY", KEY),
            ("TRACEPOST_LOG_KEY_RATE", "4"),
            ("TRACEPOST_LOG_KEY_BURST", "3"),
        ],
    );
    let url = format!("http://{}/tracepost", qs.addr);
    // A port nobody listens on: the server that is down.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/tracepost", l.local_addr().unwrap())
    };
    // A listener that accepts connections (the kernel's backlog) and never answers.
    let hang_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = format!("http://{}/tracepost", hang_listener.local_addr().unwrap());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients");
    let run = |mut cmd: Command| {
        cmd.env("TP_URL", &url)
            .env("TP_KEY", KEY)
            .env("TP_DOWN_URL", &down)
            .env("TP_HANG_URL", &hang)
            .output()
            .unwrap()
    };

    let mut ran = Vec::new();
    if have("python3") {
        let mut c = Command::new("python3");
        c.arg(dir.join("python/check.py"));
        ran.push(("python", "py-client", "", 3, run(c)));
    }
    if have("node") {
        let mut c = Command::new("node");
        c.arg(dir.join("javascript/check.js"));
        ran.push(("javascript", "js-client", "", 4, run(c)));
    }
    if have("go") {
        let mut c = Command::new("go");
        c.args(["test", "-count=1", "-v", "-run", "TestAgainstServer", "."])
            .current_dir(dir.join("go"));
        ran.push(("go", "go-client", "STATS ", 3, run(c)));
    }

    for (name, service, marker, invalid, out) in ran {
        let s = stats(out, marker);
        assert_eq!(s["wrong_key"], 401, "{name}: {s}");
        assert_eq!(s["stale"], 401, "{name}: {s}");
        assert_eq!(s["dropped"], 0, "{name}: {s}");
        assert_eq!(s["invalid"], invalid, "{name}: the bad logs alone: {s}");
        // 10 batches against a burst of 3 at 4/s: some were refused and sent again.
        assert!(s["retries"].as_u64().unwrap() > 0, "{name}: {s}");
        // The server is down: the caller is never held, and nothing is lost uncounted.
        assert!(s["down_log_ms"].as_u64().unwrap() < 1000, "{name}: {s}");
        // close() came at ~1.85 s, in the 2 s backoff from 1.5 s to 3.5 s: it ends by its 0.5 s
        // deadline, not the backoff's.
        assert!(s["down_close_ms"].as_u64().unwrap() < 1200, "{name}: {s}");
        // 5,000 and one logged after close.
        assert_eq!(s["down_dropped"], 5001, "{name}: {s}");
        // The server never answers: close ends by its 0.5 s deadline; all 250 are counted.
        assert!(s["hang_close_ms"].as_u64().unwrap() < 1200, "{name}: {s}");
        assert_eq!(s["hang_dropped"], 250, "{name}: {s}");
        // No key, a short one with signing and a zero interval, no service: 3 × 3 logs counted.
        assert_eq!(s["bad_config_dropped"], 9, "{name}: {s}");
        // A batch size of 1,000 (the server takes 250): capped, all 300 arrive.
        assert_eq!(s["clamp_dropped"], 0, "{name}: {s}");
        let clamp = format!("clamp-{name}-");
        let got = qs.wait_for(300, Duration::from_secs(10), |e| {
            e["message"].as_str().unwrap_or("").starts_with(&clamp)
        });
        assert_eq!(got.len(), 300, "{name}");

        let prefix = format!("{name}-");
        let mine = qs.wait_for(1000, Duration::from_secs(10), |e| {
            e["service"] == service && e["message"].as_str().unwrap_or("").starts_with(&prefix)
        });
        let unique: HashSet<_> = mine
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(mine.len(), 1000, "{name}: every log exactly once");
        assert_eq!(unique.len(), 1000, "{name}");
        for i in 0..1000 {
            assert!(
                unique.contains(format!("{name}-{i}").as_str()),
                "{name}-{i}"
            );
        }
        for e in &mine {
            assert_eq!(e["attributes"]["ingest.project"], "quickstart", "{e}");
            assert_ne!(e["attributes"]["password"], "hunter2-planted", "{e}");
        }
        // Logged with the level "verbose", which the server refuses: sent as info.
        let verbose = mine
            .iter()
            .find(|e| e["message"] == format!("{name}-10"))
            .unwrap();
        assert_eq!(verbose["level"], "info", "{verbose}");
        if name != "go" {
            // Lone surrogates (Go strings cannot hold one) became U+FFFD; the log arrived.
            let msg = format!("surrogate-{name}-\u{FFFD}");
            let got = qs.wait_for(1, Duration::from_secs(5), |e| e["message"] == msg.as_str());
            assert_eq!(got.len(), 1, "{name}");
            assert_eq!(got[0]["attributes"]["k\u{FFFD}"], "v\u{FFFD}", "{}", got[0]);
        }
        if name == "javascript" {
            // An Error in the context keeps its name, message and stack.
            let got = qs.wait_for(1, Duration::from_secs(5), |e| {
                e["message"] == "error-javascript"
            });
            assert_eq!(got.len(), 1);
            let err = &got[0]["attributes"]["err"];
            assert_eq!(err["name"], "TypeError", "{err}");
            assert_eq!(err["message"], "boom", "{err}");
            assert!(err["stack"].as_str().unwrap().contains("boom"), "{err}");
        }
        println!("{name}: {s}");
    }
    // The stored key, and a wrong one.
    let batch = br#"{"service":"shop-api","logs":[{"message":"from a stored key"}]}"#;
    let path = "/tracepost/v1/batch";
    let json = ("content-type", "application/json");
    let r = post(
        &qs.addr,
        path,
        &[json, ("x-tracepost-key", &stored_key.key)],
        batch,
    );
    assert!(r.starts_with("HTTP/1.1 202"), "{r}");
    let wrong = tracepost::ingest::logs::keys::generate();
    let r = post(&qs.addr, path, &[json, ("x-tracepost-key", &wrong)], batch);
    assert!(
        r.starts_with("HTTP/1.1 401") && r.contains("invalid_key"),
        "{r}"
    );
    let got = qs.wait_for(1, Duration::from_secs(5), |e| {
        e["message"] == "from a stored key"
    });
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["attributes"]["ingest.project"], "shop");
    assert_eq!(
        got[0]["attributes"]["ingest.key"],
        stored_key.prefix.as_str()
    );

    let all = qs.ndjson();
    assert!(
        !all.iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("bad-"))),
        "the bad logs were dropped by the clients"
    );
}
