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

/// One Chromium at a time: the scenarios time their waits.
static CHROMIUM_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Run {
    report: Value,
    stored: Vec<PathBuf>,
    events: Vec<tracepost_core::Event>,
    _dir: tempfile::TempDir,
}

/// Serves page.html (and its variants), tp.js, tp-replay.js and the routes into a fresh fs
/// store, runs one scenario of `replay.mjs`, and collects what was stored and indexed. With
/// `fail_first`, the first that many uploads are answered `503` (`Retry-After: 1`).
async fn run(scenario: &str, fail_first: usize) -> Run {
    let _one = CHROMIUM_LOCK.lock().await;
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
    let variant = |attrs: &str| {
        page.replace(
            r#"<script src="/tracepost/tp-replay.js">"#,
            &format!(r#"<script src="/tracepost/tp-replay.js" {attrs}>"#),
        )
    };
    let (errors, sample0) = (
        variant(r#"data-mode="errors""#),
        variant(r#"data-sample="0""#),
    );
    let rrweb =
        std::fs::read(Path::new(DRIVER_DIR).join("node_modules/rrweb/dist/rrweb.umd.min.cjs"))
            .unwrap();
    let html = |body: String| {
        move || async move { ([("content-type", "text/html; charset=utf-8")], body) }
    };
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
    let app: axum::Router = tracepost_ingest::events_router(ingest)
        .merge(tracepost_ingest::replay_router(replay))
        .route("/page.html", get(html(page.clone())))
        .route("/errors.html", get(html(errors)))
        .route("/sample0.html", get(html(sample0)))
        .route(
            "/rrweb.js",
            get(move || async move { ([("content-type", "text/javascript")], rrweb) }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let failures = failures.clone();
                async move {
                    use std::sync::atomic::Ordering;
                    let upload = req.uri().path().ends_with("/v1/replay");
                    if upload
                        && failures
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                    {
                        return axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "1")],
                            "down for the test",
                        ));
                    }
                    next.run(req).await
                }
            },
        ));
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

    let scenario_arg = scenario.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("replay.mjs")
            .arg(format!("http://{addr}"))
            .arg(scenario_arg)
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
        "replay.mjs {scenario} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{scenario}: no JSON report ({e}): {stdout}"));
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    // Uploads answered before the driver returned are stored; a keepalive one may still be
    // on its way: wait for the store to settle.
    let mut stored = files(dir.path());
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = files(dir.path());
        if now == stored && (!now.is_empty() || start.elapsed() > Duration::from_secs(2)) {
            break;
        }
        stored = now;
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    tp.shutdown(Duration::from_secs(5)).await;
    let events = sink
        .stored()
        .into_iter()
        .filter(|e| e.kind == Kind::Replay)
        .collect();
    Run {
        report,
        stored,
        events,
        _dir: dir,
    }
}

fn segment_numbers(stored: &[PathBuf]) -> Vec<u32> {
    stored
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.trim_end_matches(".json.gz").parse().unwrap()
        })
        .collect()
}

fn events_of(path: &Path) -> Vec<tracepost_rrweb::Event> {
    tracepost_rrweb::parse_segment(&gunzip(&std::fs::read(path).unwrap()), &Limits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_records_a_masked_session_into_the_store() {
    if !browser_available() {
        return;
    }
    let Run {
        report,
        stored,
        events,
        _dir: _keep,
    } = run("basic", 0).await;
    assert_eq!(report["state"], "recording", "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    let session = report["session"].as_str().unwrap().to_owned();

    // The explicit flush and the keepalive segment at close: at least two segments.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_only_mode_uploads_the_past_when_an_error_happens() {
    if !browser_available() {
        return;
    }
    let Run {
        report,
        stored,
        events,
        _dir: _keep,
    } = run("errors", 0).await;
    // Nothing for 6 s (longer than a flush period) before the error.
    assert_eq!(report["before"], 0, "{report}");
    assert_eq!(report["state"], "recording", "{report}");
    assert!(!stored.is_empty(), "{report}");
    // The first segment holds the time before the error: the page's snapshot and the click.
    let first = events_of(&stored[0]);
    assert!(first
        .iter()
        .any(|e| matches!(e.data, EventData::FullSnapshot(_))));
    assert!(first.iter().any(|e| matches!(
        &e.data,
        EventData::IncrementalSnapshot(IncrementalData::MouseInteraction(m))
            if m.kind == tracepost_rrweb::MouseInteractions::Click
    )));
    let e0 = events
        .iter()
        .find(|e| e.attributes["replay.segment"] == 0)
        .unwrap();
    assert_eq!(e0.attributes["replay.errors"], 1, "{:?}", e0.attributes);
    // Typed 6 s before the error, masked.
    let typed: Vec<&str> = first
        .iter()
        .filter_map(|e| match &e.data {
            EventData::IncrementalSnapshot(IncrementalData::Input(i)) => Some(i.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        typed
            .iter()
            .any(|t| !t.is_empty() && t.chars().all(|c| c == '*')),
        "{typed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbering_continues_across_the_pages_of_a_session() {
    if !browser_available() {
        return;
    }
    let Run {
        report,
        stored,
        events,
        _dir: _keep,
    } = run("pages", 0).await;
    // Page 1 flushed segment 0 and sent its last one (1) when it went away; page 2
    // continued at 2. No number was used twice (no duplicate answer).
    let numbers = segment_numbers(&stored);
    assert_eq!(
        numbers,
        (0..numbers.len() as u32).collect::<Vec<_>>(),
        "{report}"
    );
    assert!(numbers.len() >= 3, "{numbers:?} {report}");
    assert!(
        report["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == 202),
        "{report}"
    );
    assert_eq!(events.len(), numbers.len());
    let session = report["session"].as_str().unwrap();
    assert!(events
        .iter()
        .all(|e| e.session_id.as_deref() == Some(session)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sampled_out_is_not_recorded() {
    if !browser_available() {
        return;
    }
    let run = run("sample0", 0).await;
    assert_eq!(run.report["state"], "stopped", "{}", run.report);
    assert_eq!(run.report["uploads"], serde_json::json!([]));
    assert!(run.stored.is_empty());
    assert!(run.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_that_cannot_be_sent_is_counted_missing() {
    if !browser_available() {
        return;
    }
    let Run {
        report,
        stored,
        events,
        _dir: _keep,
    } = run("retry", 3).await;
    // Three tries of segment 0 (503, after Retry-After), then segment 1 is stored.
    assert_eq!(
        report["uploads"],
        serde_json::json!([503, 503, 503, 202]),
        "{report}"
    );
    assert_eq!(report["missing"], 1, "{report}");
    assert_eq!(segment_numbers(&stored), [1]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].attributes["replay.missing_segments"], 1);
}
