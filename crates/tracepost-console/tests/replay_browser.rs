//! The replay viewer in Chromium with a real recording: rrweb 2.x records a session in
//! Chromium (`crates/tracepost-rrweb/tests/browser/record.mjs`), the recording is cut into
//! three gzipped segments stored in a real directory (OpenDAL `fs`) and indexed through a
//! real pipeline into SQLite, with a browser error and a backend 500 of the same session;
//! then `tests/browser/viewer.mjs` opens the viewer (rrweb-player from npm, served by the
//! test), which must play to the end without a console error, seek from the side panel and
//! open at `?t=`. The screenshot taken mid-replay goes to `book/src/console/session-replay.png`
//! (`SCREENSHOTS` to change the directory).
//!
//! Needs `scripts/setup.sh` (Chromium, `npm ci` in `tests/browser` here and in
//! `crates/tracepost-rrweb/tests/browser`); skipped without them unless `CI=true`, where
//! their absence fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use tracepost_console::Console;
use tracepost_core::object_store::{Day, ReplayStore, SegmentKey};
use tracepost_core::store::EventFilter;
use tracepost_core::{ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp, Tracepost};
use tracepost_opendal::OpendalStore;
use tracepost_sqlite::SqliteSink;

const TOKEN: &str = "viewer-test-token-0123456789";
const SESSION: &str = "chromium-recorded-session";

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rrweb_dir() -> PathBuf {
    here().join("../tracepost-rrweb/tests/browser")
}

fn viewer_dir() -> PathBuf {
    here().join("tests/browser")
}

/// The tools, or `None` (skip) outside CI.
fn ready() -> Option<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ok = Path::new(&chromium).exists()
        && rrweb_dir().join("node_modules/rrweb-v2").exists()
        && viewer_dir().join("node_modules/rrweb-player/umd").exists()
        && viewer_dir().join("node_modules/playwright-core").exists();
    if !ok {
        let why = "Chromium or the npm packages of crates/tracepost-console/tests/browser and \
                   crates/tracepost-rrweb/tests/browser are missing: run scripts/setup.sh";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(())
}

/// A real rrweb 2.x recording made in Chromium now, with every input masked.
fn record() -> Vec<Value> {
    let out = tempfile::tempdir().unwrap();
    // Inputs masked as tp-replay.js records them: the book's screenshot shows no typed text.
    let status = Command::new("node")
        .arg(rrweb_dir().join("record.mjs"))
        .arg(out.path())
        .env("RRWEB_MASK_ALL_INPUTS", "1")
        .status()
        .expect("run node");
    assert!(status.success(), "record.mjs failed: {status}");
    let file = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rrweb-2.")
        })
        .expect("an rrweb 2.x recording");
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

fn gzip(v: &[Value]) -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(serde_json::to_string(v).unwrap().as_bytes())
        .unwrap();
    Bytes::from(gz.finish().unwrap())
}

fn ms(e: &Value) -> i64 {
    e["timestamp"].as_f64().unwrap() as i64
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_nanos(ms as u64 * 1_000_000)
}

fn file(path: PathBuf, content_type: &'static str) -> axum::routing::MethodRouter {
    get(move || {
        let path = path.clone();
        async move {
            (
                [(header::CONTENT_TYPE, content_type)],
                std::fs::read(path).unwrap(),
            )
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_plays_a_real_recording_in_chromium() {
    if ready().is_none() {
        return;
    }
    let events = tokio::task::spawn_blocking(record).await.unwrap();
    assert!(events.len() > 20, "{} events recorded", events.len());
    let first = ms(&events[0]);
    let last = ms(events.last().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let store = sqlite.store().clone();
    let replays = ReplayStore::new(OpendalStore::fs(dir.path().join("objects")).unwrap());
    let tp = Tracepost::builder()
        .service("shop")
        .sink(sqlite)
        .build()
        .unwrap();
    let h = tp.handle();
    // Three segments, as the upload route would store and index them.
    let day = Day::of(at(first));
    let third = events.len() / 3;
    let parts = [
        &events[..third],
        &events[third..2 * third],
        &events[2 * third..],
    ];
    for (n, part) in parts.iter().enumerate() {
        let body = gzip(part);
        let key = SegmentKey::new(SESSION, day, n as u32).unwrap();
        replays.put_segment(&key, body.clone()).await.unwrap();
        let (start, end) = (ms(&part[0]), ms(part.last().unwrap()));
        let mut e = Event::new(Kind::Replay, Level::Info, format!("replay segment {n}"))
            .with_timestamp(at(start))
            .with_attribute("replay.segment", n as u32)
            .with_attribute("replay.session_start", at(first).to_string())
            .with_attribute("replay.start_ms", start)
            .with_attribute("replay.end_ms", end)
            .with_attribute("replay.events", part.len())
            .with_attribute("replay.bytes", body.len())
            .with_attribute("replay.missing_segments", 0)
            .with_attribute("replay.errors", i64::from(n == 1));
        if n == 0 {
            e = e.with_attribute("replay.first_url", events[0]["data"]["href"].clone());
        }
        e.session_id = Some(SESSION.into());
        h.capture(e);
    }
    // A browser error and a backend 500 during the session.
    let mid = first + (last - first) / 2;
    let mut browser = Event::new(Kind::Error, Level::Error, "TypeError: total is NaN")
        .with_timestamp(at(first + (last - first) / 4))
        .with_error(ErrorDetail {
            error_type: "TypeError".into(),
            message: "total is NaN".into(),
            ..Default::default()
        });
    browser.session_id = Some(SESSION.into());
    let mut backend = Event::new(Kind::Error, Level::Error, "POST /orders failed")
        .with_timestamp(at(mid))
        .with_request(RequestSnapshot {
            method: "POST".into(),
            route: "/orders".into(),
            path: "/orders".into(),
            status: 500,
            duration_ms: 8.0,
            ..Default::default()
        });
    backend.session_id = Some(SESSION.into());
    h.capture(browser);
    h.capture(backend);
    for _ in 0..200 {
        if store
            .events(&EventFilter::new(), 10, None)
            .await
            .map_or(0, |p| p.events.len())
            == 5
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let console = Console::builder(Arc::new(store.clone()))
        .admin_token(TOKEN)
        .replays(replays)
        .replay_player("/assets/rrweb-player.min.js", "/assets/rrweb-player.css")
        .build()
        .unwrap();
    let player = viewer_dir().join("node_modules/rrweb-player");
    let app = Router::new()
        .route(
            "/assets/rrweb-player.min.js",
            file(player.join("umd/rrweb-player.min.js"), "text/javascript"),
        )
        .route(
            "/assets/rrweb-player.css",
            file(player.join("dist/style.css"), "text/css"),
        )
        .merge(console.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let shots = std::env::var("SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| here().join("../../book/src/console"));
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("session-replay.png");
    let base = format!("http://{addr}/tracepost/console");
    let offset = (mid - first).to_string();
    let status = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(
                std::env::var("VIEWER_MJS")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| viewer_dir().join("viewer.mjs")),
            )
            .args([&base, TOKEN, SESSION])
            .arg(&shot)
            .arg(&offset)
            .status()
            .expect("run node")
    })
    .await
    .unwrap();
    assert!(status.success(), "viewer.mjs failed: {status}");
    drop(tp);
}
