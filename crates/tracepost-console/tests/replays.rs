//! Session replay in the console, over real parts: a real pipeline (with
//! `Builder::replay_console_url`) into a real SQLite store, segments in a real directory
//! through OpenDAL's `fs` service. The guard (401 JSON / login redirect without the admin
//! session), the session and segment routes (bytes as stored, gzip headers), path tricks
//! and bad numbers refused with a 400 naming the part, the viewer page (offset, missing
//! segments, timeline, CSP for the player's origin), the Sessions list and its filters,
//! the backend event's `replay.url` and the "Watch replay" link, and retention.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tracepost_console::Console;
use tracepost_core::object_store::{Day, ReplayStore, SegmentKey};
use tracepost_core::replay_index::{retain_replays, ReplayFilter};
use tracepost_core::store::EventFilter;
use tracepost_core::{ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp, Tracepost};
use tracepost_opendal::OpendalStore;
use tracepost_sqlite::{SqliteSink, SqliteStore};

const TOKEN: &str = "test-admin-token-0123456789";
const SESSION: &str = "0193f2a1-sess_A";
const CONSOLE: &str = "https://ops.example/tracepost/console";

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_nanos(ms as u64 * 1_000_000)
}

fn gzip(v: &Value) -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(v.to_string().as_bytes()).unwrap();
    Bytes::from(gz.finish().unwrap())
}

/// A small rrweb segment: Meta + FullSnapshot (segment 0) or mouse moves.
fn rrweb_segment(n: u32, start: i64) -> Value {
    if n == 0 {
        json!([
            {"type": 4, "data": {"href": "https://shop.example/cart", "width": 800, "height": 600}, "timestamp": start},
            {"type": 2, "data": {"node": {"type": 0, "childNodes": [], "id": 1}, "initialOffset": {"top": 0, "left": 0}}, "timestamp": start + 1},
        ])
    } else {
        json!([
            {"type": 3, "data": {"source": 1, "positions": [{"x": 10, "y": 20, "id": 1, "timeOffset": 0}]}, "timestamp": start},
        ])
    }
}

fn replay_event(session: &str, n: u32, start: i64, end: i64, session_start: i64) -> Event {
    let mut e = Event::new(Kind::Replay, Level::Info, format!("replay segment {n}"))
        .with_attribute("replay.segment", n)
        .with_attribute("replay.session_start", ts(session_start).to_string())
        .with_attribute("replay.start_ms", start)
        .with_attribute("replay.end_ms", end)
        .with_attribute("replay.events", 2)
        .with_attribute("replay.bytes", 100)
        .with_attribute("replay.missing_segments", 1)
        .with_attribute("replay.errors", i64::from(n == 0))
        .with_attribute("visitor.id", "visitor-1");
    if n == 0 {
        e = e.with_attribute("replay.first_url", "https://shop.example/cart");
    }
    e.session_id = Some(session.into());
    e.user_id = Some("ada".into());
    e
}

struct Fixture {
    _dir: tempfile::TempDir,
    _tp: Tracepost,
    store: SqliteStore,
    replays: ReplayStore<OpendalStore>,
    app: Router,
    t0: i64,
    backend_error: uuid::Uuid,
    segments: Vec<Bytes>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let store = sqlite.store().clone();
    let replays = ReplayStore::new(OpendalStore::fs(dir.path().join("objects")).unwrap());
    let tp = Tracepost::builder()
        .service("shop")
        .replay_console_url(CONSOLE)
        .sink(sqlite)
        .build()
        .unwrap();
    let h = tp.handle();
    // A session that started ten minutes ago; segment 2 never arrived.
    let t0 = (Timestamp::now().unix_nanos() / 1_000_000) as i64 - 600_000;
    let day = Day::of(ts(t0));
    let mut segments = Vec::new();
    for (n, start) in [(0u32, t0), (1, t0 + 30_000), (3, t0 + 90_000)] {
        let body = gzip(&rrweb_segment(n, start));
        replays
            .put_segment(&SegmentKey::new(SESSION, day, n).unwrap(), body.clone())
            .await
            .unwrap();
        segments.push(body);
        h.capture(replay_event(SESSION, n, start, start + 29_000, t0).with_timestamp(ts(start)));
    }
    // A browser error 5 s in, a backend 500 42 s in (carrying the session header's id).
    let mut browser = Event::new(Kind::Error, Level::Error, "TypeError: cart is null")
        .with_timestamp(ts(t0 + 5_000))
        .with_error(ErrorDetail {
            error_type: "TypeError".into(),
            message: "cart is null".into(),
            ..Default::default()
        });
    browser.session_id = Some(SESSION.into());
    let mut backend = Event::new(Kind::Error, Level::Error, "POST /checkout failed")
        .with_timestamp(ts(t0 + 42_000))
        .with_request(RequestSnapshot {
            method: "POST".into(),
            route: "/checkout".into(),
            path: "/checkout".into(),
            status: 500,
            duration_ms: 3.0,
            ..Default::default()
        });
    backend.session_id = Some(SESSION.into());
    let backend_error = backend.id;
    h.capture(browser);
    h.capture(backend);
    for _ in 0..200 {
        let n = store
            .events(&EventFilter::new(), 100, None)
            .await
            .map_or(0, |p| p.events.len());
        if n == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let console = Console::builder(Arc::new(store.clone()))
        .admin_token(TOKEN)
        .replays(replays.clone())
        .replay_player(
            "https://cdn.example.net/rrweb-player.min.js",
            "https://cdn.example.net/style.css",
        )
        .build()
        .unwrap();
    Fixture {
        _dir: dir,
        _tp: tp,
        store,
        replays,
        app: console.router(),
        t0,
        backend_error,
        segments,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

async fn get(app: &Router, path: &str, cookie: Option<&str>) -> Resp {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let r = app
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

async fn sign_in(app: &Router) -> String {
    let r = app
        .clone()
        .oneshot(
            Request::post("/tracepost/console/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={TOKEN}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

const C: &str = "/tracepost/console";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_routes_refuse_without_the_admin_session() {
    let f = fixture().await;
    for path in [
        format!("{C}/v1/replay/{SESSION}"),
        format!("{C}/v1/replay/{SESSION}/0"),
    ] {
        let r = get(&f.app, &path, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.json()["error"], "unauthorized", "{path}");
        let r = get(&f.app, &path, Some("tracepost_console=forged")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in [format!("{C}/replays/{SESSION}"), format!("{C}/sessions")] {
        let r = get(&f.app, &path, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers[header::LOCATION], format!("{C}/login"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_come_back_as_stored_and_the_session_lists_them() {
    let f = fixture().await;
    let cookie = sign_in(&f.app).await;
    for (n, stored) in [0u32, 1, 3].iter().zip(&f.segments) {
        let r = get(
            &f.app,
            &format!("{C}/v1/replay/{SESSION}/{n}"),
            Some(&cookie),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(&r.body, stored, "segment {n}: the bytes as stored");
        assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    }
    let r = get(&f.app, &format!("{C}/v1/replay/{SESSION}"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["segments"], json!([0, 1, 3]));
    assert_eq!(v["gaps"], json!([2]));
    let s = &v["session"];
    assert_eq!(s["session_id"], SESSION);
    assert_eq!(s["user_id"], "ada");
    assert_eq!(s["segment_count"], 3);
    assert_eq!(s["missing_segments"], 1);
    assert_eq!(s["error_count"], 1);
    assert_eq!(s["duration_ms"], 119_000);
    assert_eq!(s["first_url"], "https://shop.example/cart");
    assert_eq!(s["session_day"], Day::of(ts(f.t0)).to_string());
    let tl: Vec<(i64, String)> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["offset_ms"].as_i64().unwrap(),
                m["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tl,
        [
            (5_000, "TypeError: cart is null".to_owned()),
            (42_000, "POST /checkout → 500".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_and_bad_numbers_are_refused_by_name() {
    let f = fixture().await;
    let cookie = sign_in(&f.app).await;
    let cases = [
        (format!("{C}/v1/replay/..%2F..%2Fetc/0"), 400, "session_id"),
        (format!("{C}/v1/replay/a.b/0"), 400, "session_id"),
        (format!("{C}/v1/replay/%2e%2e"), 400, "session_id"),
        (
            format!("{C}/v1/replay/{}", "x".repeat(129)),
            400,
            "session_id",
        ),
        (format!("{C}/v1/replay/{SESSION}/abc"), 400, "segment"),
        (format!("{C}/v1/replay/{SESSION}/-1"), 400, "segment"),
        (
            format!("{C}/v1/replay/{SESSION}/99999999999"),
            400,
            "segment",
        ),
        (format!("{C}/v1/replay/{SESSION}/2"), 404, "segment"),
        (
            format!("{C}/v1/replay/unknown-session/0"),
            404,
            "session_id",
        ),
        (format!("{C}/v1/replay/unknown-session"), 404, "session_id"),
    ];
    for (path, status, field) in cases {
        let r = get(&f.app, &path, Some(&cookie)).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], field, "{path}");
    }
    // The viewer names the bad parameter too.
    for (q, field) in [("t=abc", "t"), ("t=-5", "t"), ("at=soon", "at")] {
        let r = get(&f.app, &format!("{C}/replays/{SESSION}?{q}"), Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(r.text().contains(&format!("Bad value for {field}")), "{q}");
    }
    let r = get(&f.app, &format!("{C}/replays/a.b"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = get(
        &f.app,
        &format!("{C}/replays/never-recorded"),
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("No replay was recorded for this session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_page_jumps_lists_and_warns() {
    let f = fixture().await;
    let cookie = sign_in(&f.app).await;
    let r = get(
        &f.app,
        &format!("{C}/replays/{SESSION}?t=42000"),
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    assert!(page.contains("data-t=\"42000\""), "{page}");
    assert!(page.contains("data-segments=\"0,1,3\""));
    assert!(page.contains("1 segment could not be uploaded by the browser"));
    assert!(page.contains("1 segment missing from storage (2)"));
    assert!(page.contains("src=\"https://cdn.example.net/rrweb-player.min.js\""));
    assert!(page.contains("/tracepost/console/static/replay.js"));
    // The side panel: both events, seekable, in time order.
    let error_at = page
        .find("data-offset=\"5000\"")
        .expect("browser error mark");
    let request_at = page
        .find("data-offset=\"42000\"")
        .expect("backend request mark");
    assert!(error_at < request_at);
    assert!(page.contains("0:42"));
    assert!(page.contains("POST /checkout → 500"));
    let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self' https://cdn.example.net;"),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    // `at` (Unix ms, what replay.url falls back to) becomes the offset; past the end clamps.
    let r = get(
        &f.app,
        &format!("{C}/replays/{SESSION}?at={}", f.t0 + 30_500),
        Some(&cookie),
    )
    .await;
    assert!(r.text().contains("data-t=\"30500\""));
    let r = get(
        &f.app,
        &format!("{C}/replays/{SESSION}?t=99999999"),
        Some(&cookie),
    )
    .await;
    assert!(r.text().contains("data-t=\"119000\""));
    let js = get(&f.app, &format!("{C}/static/replay.js"), None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.headers[header::CONTENT_TYPE], "text/javascript");
    // Other pages keep the strict policy.
    let r = get(&f.app, &format!("{C}/sessions"), Some(&cookie)).await;
    let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"),
        "{csp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_filters_and_backend_events_link_to_the_moment() {
    let f = fixture().await;
    let cookie = sign_in(&f.app).await;
    let watch = format!("href=\"{C}/replays/{SESSION}\"");
    for (q, listed) in [
        ("", true),
        ("?user=ada", true),
        ("?user=bob", false),
        ("?url=SHOP.example%2Fcart", true),
        ("?url=elsewhere", false),
        ("?since=1h", true),
        ("?until=2h", false),
    ] {
        let r = get(&f.app, &format!("{C}/sessions{q}"), Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text());
        assert_eq!(r.text().contains(&watch), listed, "{q}");
    }
    let r = get(
        &f.app,
        &format!("{C}/sessions?since=yesterdayish"),
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Bad value for since"));
    let r = get(&f.app, &format!("{C}/sessions?colour=red"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The backend error got its link in the pipeline (the replay segment went through
    // first, so the offset is known) …
    let e = f.store.event(f.backend_error).await.unwrap().unwrap();
    assert_eq!(
        e.attributes["replay.url"],
        format!("{CONSOLE}/replays/{SESSION}?t=42000")
    );
    // … and its page offers the replay at that moment.
    let r = get(
        &f.app,
        &format!("{C}/event/{}", f.backend_error),
        Some(&cookie),
    )
    .await;
    let page = r.text();
    assert!(
        page.contains(&format!("href=\"{C}/replays/{SESSION}?t=42000\"")),
        "{page}"
    );
    assert!(page.contains("Watch replay at 0:42"));
    // By error fingerprint: the sessions where that error happened.
    let fp = e.fingerprint.clone().expect("fingerprinted");
    let by_fp = f
        .store
        .replay_sessions(&ReplayFilter::new().fingerprint(fp.clone()), 10)
        .await
        .unwrap();
    assert_eq!(by_fp.len(), 1);
    let r = get(
        &f.app,
        &format!("{C}/sessions?fingerprint={fp}"),
        Some(&cookie),
    )
    .await;
    assert!(r.text().contains(&watch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_and_index_rows() {
    let f = fixture().await;
    // An old session: started three days ago (segments under that day), indexed through
    // the store like any other.
    let old_start = f.t0 - 3 * 86_400_000;
    let old_day = Day::of(ts(old_start));
    for n in 0..2u32 {
        f.replays
            .put_segment(
                &SegmentKey::new("old-session", old_day, n).unwrap(),
                gzip(&rrweb_segment(n, old_start)),
            )
            .await
            .unwrap();
    }
    f.store
        .write(vec![Arc::new(replay_event(
            "old-session",
            0,
            old_start,
            old_start + 60_000,
            old_start,
        ))])
        .await
        .unwrap();
    assert_eq!(
        f.store
            .replay_sessions(&ReplayFilter::new(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let report = retain_replays(&f.replays, &f.store, Duration::from_secs(2 * 86_400))
        .await
        .unwrap();
    assert_eq!((report.segments, report.sessions), (2, 1));
    assert!(f
        .replays
        .list_segments("old-session", old_day)
        .await
        .unwrap()
        .is_empty());
    let left = f
        .store
        .replay_sessions(&ReplayFilter::new(), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].session_id, SESSION);
    assert_eq!(
        f.replays
            .list_segments(SESSION, Day::of(ts(f.t0)))
            .await
            .unwrap()
            .len(),
        3,
        "recent segments stay"
    );
    // A second run has nothing left to delete.
    let again = retain_replays(&f.replays, &f.store, Duration::from_secs(2 * 86_400))
        .await
        .unwrap();
    assert_eq!((again.segments, again.sessions), (0, 0));
}
