//! Session replay in a real Chromium (Debian's, driven by playwright-core from npm:
//! `tests/browser/replay.mjs`): a page with rrweb (npm), `tp.js` and `tp-replay.js` records
//! clicks and typing into a form; the segments land in a real `fs` object store, each parses
//! as rrweb events, the typed text appears nowhere in storage, and one replay index event per
//! segment reaches the sink with tp.js's session id.
//!
//! Needs `scripts/setup.sh` (Chromium and `npm ci` in `tests/browser`); skipped loudly
//! without them unless `CI=true`, where their absence fails the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::routing::get;
use serde_json::Value;
use tracepost_core::object_store::ReplayStore;
use tracepost_core::testing::MemorySink;
use tracepost_core::{Kind, Tracepost};
use tracepost_ingest::{Ingest, IngestConfig, ReplayConfig, ReplayIngest};
use tracepost_opendal::OpendalStore;
use tracepost_rrweb::{EventData, IncrementalData, Limits};

const DRIVER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
const CHROMIUM: &str = "/usr/bin/chromium";
/// What the driver types: none of it may reach storage.
const TYPED: [&str; 4] = [
    "Typed-Secret-Name",
    "pw-Typed-Secret-9",
    "Typed-Secret-Notes",
    "Typed-Secret-Later",
];

fn browser_available() -> bool {
    let missing = if !Path::new(CHROMIUM).exists() {
        "Debian's chromium (/usr/bin/chromium)"
    } else if !Path::new(DRIVER_DIR).join("node_modules/rrweb").exists() {
        "playwright-core and rrweb in crates/tracepost-ingest/tests/browser/node_modules"
    } else {
        return true;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{missing} is required under CI=true (scripts/setup.sh installs it)");
    }
    eprintln!("\n!!! SKIPPING the replay browser test: no {missing} (run scripts/setup.sh)\n");
    false
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(data), &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_records_a_masked_session_into_the_store() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("shop")
        .sink(sink.clone())
        .build()
        .unwrap();
    let ingest = Ingest::new(tp.handle(), IngestConfig::new().key("pk_test_1")).unwrap();
    let store = ReplayStore::new(OpendalStore::fs(dir.path()).unwrap());
    let replay = ReplayIngest::new(ingest.clone(), store, ReplayConfig::new()).unwrap();
    let page = std::fs::read_to_string(Path::new(DRIVER_DIR).join("page.html")).unwrap();
    let rrweb =
        std::fs::read(Path::new(DRIVER_DIR).join("node_modules/rrweb/dist/rrweb.umd.min.cjs"))
            .unwrap();
    let app: axum::Router = tracepost_ingest::events_router(ingest)
        .merge(tracepost_ingest::replay_router(replay))
        .route(
            "/page.html",
            get(move || async move { ([("content-type", "text/html; charset=utf-8")], page) }),
        )
        .route(
            "/rrweb.js",
            get(move || async move { ([("content-type", "text/javascript")], rrweb) }),
        );
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

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("replay.mjs")
            .arg(format!("http://{addr}"))
            .current_dir(DRIVER_DIR)
            .env("CHROMIUM", CHROMIUM)
            .output()
            .expect("node runs (scripts/setup.sh installs it)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "replay.mjs failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}"));
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["state"], "recording", "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    let session = report["session"].as_str().unwrap().to_owned();

    // The explicit flush and the keepalive segment at close: at least two segments.
    let start = Instant::now();
    let mut stored = files(dir.path());
    while stored.len() < 2 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stored = files(dir.path());
    }
    assert!(stored.len() >= 2, "{stored:?} {report}");
    let mut clicks = 0;
    let mut inputs = Vec::new();
    for (i, path) in stored.iter().enumerate() {
        let name = path.to_string_lossy();
        assert!(name.contains(&format!("/{session}/")), "{name}");
        assert!(name.ends_with(&format!("{i:06}.json.gz")), "{name}");
        let raw = std::fs::read(path).unwrap();
        let json = gunzip(&raw);
        let text = String::from_utf8_lossy(&json);
        for typed in TYPED {
            assert!(!text.contains(typed), "{typed} stored in {name}");
            assert!(!String::from_utf8_lossy(&raw).contains(typed));
        }
        // `.tp-mask` text is masked and `.tp-block` content not recorded.
        assert!(!text.contains("Card ending 4242"), "{name}");
        assert!(!text.contains("private-block-text"), "{name}");
        let events = tracepost_rrweb::parse_segment(&json, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if i == 0 {
            // Started before the document was ready (rrweb then emits DomContentLoaded and
            // Load first): the first segment holds the page's Meta and full snapshot.
            let meta = events
                .iter()
                .position(|e| matches!(e.data, EventData::Meta(_)))
                .unwrap_or_else(|| panic!("{name}: no Meta"));
            assert!(meta <= 2, "{name}: Meta at {meta}");
            assert!(
                matches!(events[meta + 1].data, EventData::FullSnapshot(_)),
                "{name}"
            );
        }
        for e in &events {
            match &e.data {
                EventData::IncrementalSnapshot(IncrementalData::MouseInteraction(m))
                    if m.kind == tracepost_rrweb::MouseInteractions::Click =>
                {
                    clicks += 1
                }
                EventData::IncrementalSnapshot(IncrementalData::Input(input)) => {
                    inputs.push(input.text.clone())
                }
                _ => {}
            }
        }
    }
    assert!(clicks >= 3, "{clicks} clicks");
    assert!(!inputs.is_empty());
    // Every input value recorded as asterisks.
    assert!(
        inputs
            .iter()
            .all(|t| !t.is_empty() && t.chars().all(|c| c == '*')),
        "{inputs:?}"
    );

    tp.shutdown(Duration::from_secs(5)).await;
    let events: Vec<_> = sink
        .stored()
        .into_iter()
        .filter(|e| e.kind == Kind::Replay)
        .collect();
    assert_eq!(events.len(), stored.len(), "{events:#?}");
    for e in &events {
        assert_eq!(e.session_id.as_deref(), Some(session.as_str()));
        assert!(e.attributes["visitor.id"]
            .as_str()
            .is_some_and(|v| v.len() == 32));
        assert_eq!(e.attributes["replay.missing_segments"], 0);
        assert_eq!(e.attributes["user_agent.name"], "Chrome");
    }
    let first = events
        .iter()
        .find(|e| e.attributes["replay.segment"] == 0)
        .unwrap();
    assert!(first.attributes["replay.first_url"]
        .as_str()
        .unwrap()
        .ends_with("/page.html"));
}
