//! The browser script in a real Chromium (Debian's, driven by playwright-core from npm:
//! `tests/browser/drive.mjs`, installed by scripts/setup.sh) against the quickstart binary:
//! the demo page's errors, page views and events reach the NDJSON sink through the ingest
//! routes, the backend's 500 carries the browser's session id, the page keeps working, and an
//! ingest route that is down never shows in the page; and session replay end to end: rrweb
//! (from npm) records the demo page while Chromium types into its form and triggers the
//! backend 500, the typed text is stored nowhere, the 500's event links to the replay, and the
//! console's viewer (rrweb-player from npm) plays it to the end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DRIVER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
const CHROMIUM: &str = "/usr/bin/chromium";
/// The console's admin token for these runs.
const TOKEN: &str = "quickstart-browser-test-token";

/// Kills the child on drop, so a failing assertion leaves no process behind.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether Chromium and the driver's npm packages are there; under `CI=true` their absence
/// fails the test instead of skipping it.
fn browser_available() -> bool {
    let missing = if !Path::new(CHROMIUM).exists() {
        "Debian's chromium (/usr/bin/chromium)"
    } else if !Path::new(DRIVER_DIR)
        .join("node_modules/playwright-core")
        .exists()
    {
        "playwright-core in examples/quickstart/tests/browser/node_modules"
    } else if !Path::new(DRIVER_DIR)
        .join("node_modules/rrweb/dist/rrweb.umd.min.cjs")
        .exists()
        || !Path::new(DRIVER_DIR)
            .join("node_modules/rrweb-player/umd/rrweb-player.min.js")
            .exists()
    {
        "rrweb and rrweb-player in examples/quickstart/tests/browser/node_modules"
    } else {
        return true;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{missing} is required under CI=true (scripts/setup.sh installs it)");
    }
    eprintln!("\n!!! SKIPPING the browser test: no {missing} (run scripts/setup.sh)\n");
    false
}

struct Quickstart {
    addr: String,
    data: tempfile::TempDir,
    _child: Killed,
}

fn start_quickstart() -> Quickstart {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("QUICKSTART_ADDR", "127.0.0.1:0")
        .env("TRACEPOST_DATA", data.path())
        .env("RUST_LOG", "warn")
        .env("TRACEPOST_CONSOLE_TOKEN", TOKEN)
        // rrweb and rrweb-player from npm, so that the tests run offline.
        .env(
            "QUICKSTART_RRWEB_JS",
            Path::new(DRIVER_DIR).join("node_modules/rrweb/dist/rrweb.umd.min.cjs"),
        )
        .env(
            "QUICKSTART_RRWEB_PLAYER",
            Path::new(DRIVER_DIR).join("node_modules/rrweb-player"),
        )
        .env_remove("DATABASE_URL")
        .env_remove("LOKI_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
        addr = line
            .split("listening on http://")
            .nth(1)
            .map(|a| a.trim().to_owned());
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Quickstart {
        addr: addr.expect("the banner names the address"),
        data,
        _child: Killed(child),
    }
}

/// Runs one scenario of `drive.mjs` and returns its JSON report.
fn drive(scenario: &str, base: &str, out: &Path) -> Value {
    let output = Command::new("node")
        .arg("drive.mjs")
        .args([scenario, base])
        .arg(out)
        .current_dir(DRIVER_DIR)
        .env("CHROMIUM", CHROMIUM)
        .env("TP_TOKEN", TOKEN)
        .output()
        .expect("node runs (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "drive.mjs {scenario} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("drive.mjs {scenario}: no JSON report ({e}): {stdout}"))
}

fn read_events(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for f in tracepost::sinks::JsonlFile::files(dir).unwrap_or_default() {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // A line being written may be incomplete: skip it, the next poll reads it whole.
        out.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    out
}

/// Polls the NDJSON files until `done` accepts the events (at most 15 s).
fn wait_for_events(dir: &Path, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let events = read_events(dir);
        if done(&events) {
            return events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what} never reached the NDJSON sink: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn in_session<'a>(events: &'a [Value], session: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["session_id"] == session)
        .collect()
}

fn find<'a>(events: &[&'a Value], what: impl Fn(&Value) -> bool) -> Option<&'a Value> {
    events.iter().copied().find(|e| what(e))
}

fn analytics<'a>(events: &[&'a Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .copied()
        .filter(|e| e["attributes"]["analytics.event"] == kind)
        .collect()
}

fn path_of(url: &Value) -> String {
    let url = url.as_str().unwrap_or("");
    let after = url.split("://").nth(1).unwrap_or(url);
    after
        .find('/')
        .map_or("/".into(), |i| after[i..].to_owned())
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn demo_page_errors_views_and_events_reach_the_sink_with_the_backend_500() {
    if !browser_available() {
        return;
    }
    let qs = start_quickstart();
    let out = screenshot_dir();
    let report = drive("demo", &format!("http://{}", qs.addr), &out);
    println!("screenshot: {}", out.join("demo.png").display());

    // The page saw its own two errors and nothing else, and kept working after them.
    assert_eq!(
        report["pageErrors"],
        serde_json::json!(["the cart is empty", "payment declined"])
    );
    assert_eq!(report["countText"], "Clicked 2 times");
    assert_eq!(report["route"], "/demo/checkout");
    // Every batch was accepted, and sent as a CORS-safelisted request (no preflight).
    let answers = report["answers"].as_array().unwrap();
    assert!(
        !answers.is_empty() && answers.iter().all(|a| a == 202),
        "{report}"
    );
    for ct in report["contentTypes"].as_array().unwrap() {
        assert_eq!(ct, "text/plain;charset=UTF-8");
    }

    let session = report["sessionId"].as_str().unwrap().to_owned();
    let visitor = report["visitorId"].as_str().unwrap();
    assert_eq!(session.len(), 32, "{session}");
    let events = wait_for_events(qs.data.path(), "the demo page's events", |events| {
        let s = in_session(events, &session);
        analytics(&s, "pageview").len() >= 2
            && analytics(&s, "track").len() == 1
            && s.iter().filter(|e| e["kind"] == "error").count() >= 3
    });
    let s = in_session(&events, &session);

    let views: Vec<(String, &Value)> = analytics(&s, "pageview")
        .iter()
        .map(|e| {
            (
                path_of(&e["attributes"]["url.full"]),
                &e["attributes"]["navigation.type"],
            )
        })
        .collect();
    assert_eq!(
        views,
        [
            ("/".into(), &"load".into()),
            ("/demo/checkout".into(), &"push".into())
        ],
        "the load and the SPA navigation"
    );

    let thrown = find(&s, |e| e["error"]["type"] == "TypeError").expect("the thrown error");
    assert_eq!(thrown["error"]["message"], "the cart is empty");
    assert_eq!(thrown["attributes"]["exception.mechanism"], "onerror");
    assert_eq!(thrown["attributes"]["exception.handled"], false);
    // The raw stack was parsed into frames on the server.
    let frame = &thrown["attributes"]["exception.frames"][0];
    assert!(frame["line"].as_u64().unwrap() > 0, "{thrown:#}");
    assert_eq!(thrown["attributes"]["visitor.id"], visitor);
    assert_eq!(thrown["attributes"]["user_agent.name"], "Chrome");

    let rejected =
        find(&s, |e| e["error"]["message"] == "payment declined").expect("the unhandled rejection");
    assert_eq!(
        rejected["attributes"]["exception.mechanism"],
        "unhandledrejection"
    );

    let track = analytics(&s, "track")[0];
    assert_eq!(track["attributes"]["event.name"], "signup");
    assert_eq!(track["attributes"]["analytics.props"]["plan"], "pro");

    // The backend's 500 for the page's fetch('/fail'): the session id came with the request
    // (x-tracepost-session), and so did the trace (traceparent).
    let backend = find(&s, |e| e["request"]["route"] == "/fail").expect("the backend's 500");
    assert_eq!(backend["kind"], "error");
    assert_eq!(backend["request"]["status"], 500);
    let traceparent = backend["request"]["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "traceparent")
        .expect("the request carried a traceparent")[1]
        .as_str()
        .unwrap();
    assert_eq!(
        traceparent.split('-').nth(1),
        backend["trace_id"].as_str(),
        "{backend:#}"
    );
}

#[test]
fn an_ingest_route_that_is_down_never_shows_in_the_page() {
    if !browser_available() {
        return;
    }
    let qs = start_quickstart();
    let report = drive("down", &format!("http://{}", qs.addr), &screenshot_dir());
    for (mode, tries) in [
        ("status500", 3),
        ("status429", 3),
        ("network", 3),
        ("status400", 1),
    ] {
        let r = &report["modes"][mode];
        assert_eq!(r["pageErrors"], serde_json::json!([]), "{mode}: {r}");
        assert_eq!(r["countText"], "Clicked 1 times", "{mode}: the page works");
        // Each batch is sent `tries` times, always with its own batch_id (the idempotency
        // key); 4xx other than 429 is not retried.
        let mut by_batch: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for a in r["attempts"].as_array().unwrap() {
            by_batch
                .entry(a["batchId"].as_str().unwrap())
                .or_default()
                .push(a["at"].as_f64().unwrap());
        }
        assert!(!by_batch.is_empty(), "{mode}: {r}");
        for (batch, at) in &by_batch {
            assert_eq!(at.len(), tries, "{mode}: batch {batch}: {r}");
            if mode == "status429" {
                // Retry-After: 2 was honoured (the first wait without it is 1 s).
                assert!(at[1] - at[0] >= 1900.0, "{mode}: {at:?}");
            }
        }
    }
}

#[test]
fn a_batch_over_the_beacon_quota_is_split_and_arrives_whole() {
    if !browser_available() {
        return;
    }
    let qs = start_quickstart();
    let report = drive("beacon", &format!("http://{}", qs.addr), &screenshot_dir());
    assert_eq!(report["pageErrors"], serde_json::json!([]));
    let requests = report["requests"].as_array().unwrap();
    assert!(
        requests.iter().any(|r| r["type"] == "ping"),
        "sent by sendBeacon: {report}"
    );
    for r in requests {
        assert!(r["bytes"].as_u64().unwrap() <= 60_000, "{report}");
    }
    // 45 events of 3 KB: every one arrives, once (what a beacon could not take, over the
    // browser's quota, went by fetch instead).
    let events = wait_for_events(qs.data.path(), "the 45 tracked events", |events| {
        events
            .iter()
            .filter(|e| e["attributes"]["event.name"] == "bulk")
            .count()
            >= 45
    });
    let bulk: Vec<u64> = events
        .iter()
        .filter(|e| e["attributes"]["event.name"] == "bulk")
        .map(|e| e["attributes"]["analytics.props"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(bulk.len(), 45, "no duplicates");
    assert_eq!(
        bulk.into_iter().collect::<BTreeSet<_>>(),
        (0..45).collect::<BTreeSet<_>>()
    );
}

/// Every file under `dir` (the data dir: objects, NDJSON, SQLite with its WAL, spools), gzip
/// ones decompressed.
fn stored_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                todo.push(p);
                continue;
            }
            let raw = std::fs::read(&p).unwrap();
            let bytes = if p.extension().is_some_and(|e| e == "gz") {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::MultiGzDecoder::new(&raw[..]),
                    &mut plain,
                )
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                plain
            } else {
                raw
            };
            out.push((p, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The screenshot's directory: `book/src/console` (`SCREENSHOTS` to change it).
fn book_screenshots() -> PathBuf {
    let dir = std::env::var("SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src/console"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_recorded_session_is_masked_linked_from_the_backend_500_and_plays_in_the_console() {
    if !browser_available() {
        return;
    }
    // What drive.mjs types into the demo form.
    const TYPED: [&str; 2] = ["Typed-Secret-Name", "typed-secret@example.org"];
    let qs = start_quickstart();
    let base = format!("http://{}", qs.addr);
    let report = drive("record", &base, &screenshot_dir());
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{report}");
    assert_eq!(report["missing"], 0, "no segment lost: {report}");
    let uploads = report["uploads"].as_array().unwrap();
    assert!(
        uploads.len() >= 2 && uploads.iter().all(|s| s == 202),
        "{report}"
    );
    let session = report["sessionId"].as_str().unwrap().to_owned();

    // The backend 500's event carries the session and links to its moment in the replay.
    let events = wait_for_events(
        qs.data.path(),
        "the backend 500 and the replay index",
        |e| {
            let s = in_session(e, &session);
            find(&s, |e| e["request"]["route"] == "/fail").is_some()
                && s.iter().filter(|e| e["kind"] == "replay").count() >= uploads.len()
        },
    );
    let s = in_session(&events, &session);
    let backend = find(&s, |e| e["request"]["route"] == "/fail").unwrap();
    assert_eq!(backend["kind"], "error");
    assert_eq!(backend["request"]["status"], 500);
    let replay_url = backend["attributes"]["replay.url"]
        .as_str()
        .unwrap_or_else(|| panic!("no replay.url: {backend:#}"))
        .to_owned();
    let prefix = format!("{base}/tracepost/console/replays/{session}?t=");
    assert!(replay_url.starts_with(&prefix), "{replay_url}");
    let offset: u64 = replay_url[prefix.len()..].parse().unwrap();
    assert!(offset > 0, "{replay_url}");

    // The typed text is nowhere in storage; the recording has the inputs, masked.
    let files = stored_files(qs.data.path());
    for (path, bytes) in &files {
        for typed in TYPED {
            assert!(
                !contains(bytes, typed),
                "{typed:?} is in {}",
                path.display()
            );
        }
    }
    let segments: Vec<Value> = files
        .iter()
        .filter(|(p, _)| {
            p.to_string_lossy().contains("/replays/") && p.to_string_lossy().contains(&session)
        })
        .flat_map(|(_, b)| serde_json::from_slice::<Vec<Value>>(b).unwrap())
        .collect();
    assert!(
        segments.len() > 10,
        "{} rrweb events stored",
        segments.len()
    );
    let inputs: Vec<&str> = segments
        .iter()
        .filter(|e| e["type"] == 3 && e["data"]["source"] == 5)
        .filter_map(|e| e["data"]["text"].as_str())
        .collect();
    assert!(
        inputs.contains(&"*".repeat("Ada Typed-Secret-Name".len()).as_str())
            && inputs
                .iter()
                .all(|t| !t.is_empty() && t.chars().all(|c| c == '*')),
        "the form's input, masked: {inputs:?}"
    );

    // Chromium signs in to the console and opens the link: the viewer plays to the end.
    let shot = book_screenshots().join("quickstart-replay.png");
    let viewer = drive("viewer", &replay_url, &shot);
    println!("screenshot: {}", shot.display());
    assert_eq!(
        viewer["signIn"], true,
        "the viewer asks to sign in: {viewer}"
    );
    assert_eq!(viewer["status"], 200, "{viewer}");
    assert_eq!(viewer["problems"], serde_json::json!([]), "{viewer}");
    assert!(
        viewer["sandboxNotes"].as_u64() <= viewer["reopens"].as_u64(),
        "{viewer}"
    );
    assert!(viewer["events"].as_u64().unwrap() > 10, "{viewer}");
    // Opened at the 500's moment.
    assert!(
        viewer["startedAt"].as_f64().unwrap() + 100.0 >= offset as f64,
        "{offset}: {viewer}"
    );
    // Mid-replay, the form is rebuilt with its values masked.
    let replayed = &viewer["replayed"];
    for field in ["name", "email"] {
        let v = replayed[field]
            .as_str()
            .unwrap_or_else(|| panic!("{viewer}"));
        assert!(v.chars().all(|c| c == '*'), "{field}: {v:?}");
    }
    for typed in TYPED {
        assert!(
            !replayed["text"].as_str().unwrap().contains(typed),
            "{viewer}"
        );
    }
}
