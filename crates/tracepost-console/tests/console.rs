//! The console's router over a real SQLite store fed by a real pipeline: sign-in, CSRF,
//! escaping, filters and keyset pages, issue state, replay safety against a real HTTP
//! server, and the live tail (over a real socket, and with a client that never reads).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tower::ServiceExt;
use tracepost_console::tail::TailItem;
use tracepost_console::{Console, LiveTail};
use tracepost_core::store::{EventFilter, IssueStatus, Store};
use tracepost_core::{
    CapturedBody, ErrorDetail, Event, Kind, Level, RequestSnapshot, Sink, SpanDetail, SpanStatus,
    Timestamp, Tracepost,
};
use tracepost_sqlite::{SqliteSink, SqliteStore};

const TOKEN: &str = "test-admin-token-0123456789";
const XSS: &str = "<script>alert('xss')</script>";

/// What the replay target saw: (method, path, authorization header present).
type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

struct Fixture {
    _dir: tempfile::TempDir,
    tp: Tracepost,
    store: SqliteStore,
    app: Router,
    seen: Seen,
    ids: Ids,
}

struct Ids {
    get: uuid::Uuid,
    post: uuid::Uuid,
    denied: uuid::Uuid,
    fingerprint: String,
}

/// A real app to replay against: records what reaches it.
async fn target() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(move |req: Request<Body>| {
        let s = s.clone();
        async move {
            s.lock().push((
                req.method().to_string(),
                req.uri().path().to_owned(),
                req.headers().contains_key(header::AUTHORIZATION),
            ));
            (StatusCode::OK, "replayed fine")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn request_error(method: &str, path: &str, status: u16) -> Event {
    let mut e = Event::new(
        Kind::Error,
        Level::Error,
        format!("{XSS} failed {method} {path}"),
    )
    .with_error(ErrorDetail {
        error_type: "http_500".into(),
        message: "boom".into(),
        ..Default::default()
    })
    .with_request(RequestSnapshot {
        method: method.into(),
        route: path.into(),
        path: path.into(),
        status,
        duration_ms: 12.5,
        request_headers: vec![
            ("authorization".into(), "Bearer abc.secret-value".into()),
            ("x-evil".into(), XSS.into()),
            ("accept".into(), "text/plain".into()),
        ],
        response_body: Some(CapturedBody {
            text: "{\"error\":\"boom\"}".into(),
            encoding: "utf8".into(),
            truncated: false,
            content_type: Some("application/json".into()),
        }),
        ..Default::default()
    });
    e.request_id = Some(format!("req-{path}"));
    e.with_trace("4bf92f3577b34da6a3ce929d0e0e4736", None)
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let store = sqlite.store().clone();
    let tail = LiveTail::default();
    let tp = Tracepost::builder()
        .service("shop")
        .sink(sqlite)
        .sink(tail.sink())
        .build()
        .unwrap();
    let h = tp.handle();
    let get = request_error("GET", "/items/7", 500);
    let post = request_error("POST", "/orders", 500);
    let denied = request_error("GET", "/tracepost/console/issues", 500);
    let ids = Ids {
        get: get.id,
        post: post.id,
        denied: denied.id,
        fingerprint: String::new(),
    };
    for i in 0..60 {
        h.capture(
            Event::new(Kind::Log, Level::Info, format!("page row {i}"))
                .with_attribute("tenant", "acme"),
        );
    }
    h.capture(denied);
    h.capture(post);
    h.capture(get);
    let mut stored = 0;
    for _ in 0..100 {
        stored = store
            .events(&EventFilter::new(), 1000, None)
            .await
            .map_or(0, |p| p.events.len());
        if stored == 63 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, 63, "events stored");
    let got = store.event(ids.get).await.unwrap().unwrap();
    let ids = Ids {
        fingerprint: got.fingerprint.clone().expect("fingerprinted"),
        ..ids
    };
    let (addr, seen) = target().await;
    let console = Console::builder(Arc::new(store.clone()))
        .admin_token(TOKEN)
        .pipeline(tp.handle())
        .live_tail(tail)
        .replay_base_url(&format!("http://{addr}/"))
        .unwrap()
        .build()
        .unwrap();
    Fixture {
        _dir: dir,
        tp,
        store,
        app: console.router(),
        seen,
        ids,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body =
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

/// Signs in: (cookie, CSRF token).
async fn sign_in(app: &Router) -> (String, String) {
    let r = send(
        app,
        Request::post("/tracepost/console/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={TOKEN}")))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/tracepost/console"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = send(app, get("/tracepost/console/issues", Some(&cookie))).await;
    let csrf = page
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf meta")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_build_open_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteSink::new(dir.path()).store().clone());
    let e = Console::builder(store.clone()).build().unwrap_err();
    assert_eq!(e.field, "admin_token");
    let e = Console::builder(store.clone())
        .admin_token("short")
        .build()
        .unwrap_err();
    assert_eq!(e.field, "admin_token");
    let e = Console::builder(store.clone())
        .admin_token(TOKEN)
        .trust_host_auth()
        .build()
        .unwrap_err();
    assert_eq!(e.field, "admin_token");
    let e = Console::builder(store.clone())
        .replay_base_url("ftp://x/")
        .unwrap_err();
    assert_eq!(e.field, "replay_base_url");
    // The token never shows in Debug.
    let b = Console::builder(store).admin_token(TOKEN);
    assert!(!format!("{b:?}").contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_guards_every_page() {
    let f = fixture().await;
    let r = send(&f.app, get("/tracepost/console/issues", None)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/tracepost/console/login");
    let r = send(&f.app, get("/tracepost/console/api/tail", None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("\"error\":\"unauthorized\""), "{}", r.body);
    let r = send(
        &f.app,
        get(
            "/tracepost/console/issues",
            Some("tracepost_console=forged"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let wrong = send(
        &f.app,
        Request::post("/tracepost/console/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("token=not-the-token-at-all"))
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    assert_eq!(
        wrong.headers[header::LOCATION],
        "/tracepost/console/login?failed=1"
    );
    assert!(!wrong.headers.contains_key(header::SET_COOKIE));

    let (cookie, csrf) = sign_in(&f.app).await;
    for p in [
        "issues",
        "events",
        "live",
        "traces",
        "routes",
        "sessions",
        "analytics",
        "health",
    ] {
        let r = send(
            &f.app,
            get(&format!("/tracepost/console/{p}"), Some(&cookie)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }
    let health = send(&f.app, get("/tracepost/console/health", Some(&cookie))).await;
    assert!(health.body.contains("sqlite") && health.body.contains("live_tail"));
    // Sign out (CSRF-checked) ends the session.
    let r = send(
        &f.app,
        post("/tracepost/console/logout", &cookie, "csrf=wrong"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &f.app,
        post(
            "/tracepost/console/logout",
            &cookie,
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = send(&f.app, get("/tracepost/console/issues", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    drop(f.tp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_markup_stays_text_and_secrets_stay_redacted() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.app).await;
    let pages = [
        "/tracepost/console/issues".to_owned(),
        format!("/tracepost/console/issue/{}", f.ids.fingerprint),
        format!("/tracepost/console/event/{}", f.ids.get),
        "/tracepost/console/events?kind=error".to_owned(),
        "/tracepost/console/traces".to_owned(),
    ];
    for p in pages {
        let r = send(&f.app, get(&p, Some(&cookie))).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert!(
            !r.body.contains("<script>alert"),
            "{p} renders captured markup"
        );
        assert!(
            r.body.contains("&lt;script&gt;alert"),
            "{p} shows it as text"
        );
        assert!(
            !r.body.contains("secret-value"),
            "{p} shows a redacted secret"
        );
    }
    let ev = send(
        &f.app,
        get(
            &format!("/tracepost/console/event/{}", f.ids.get),
            Some(&cookie),
        ),
    )
    .await;
    // The redaction is visible as such, and copy-as-curl leaves a placeholder.
    assert!(ev.body.contains("class=\"redacted\""));
    assert!(
        ev.body
            .contains("-H &quot;authorization: ${AUTHORIZATION}&quot;"),
        "{}",
        ev.body
    );
    assert!(
        ev.body.contains("&quot;error&quot;: &quot;boom&quot;"),
        "pretty-printed JSON body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_keyset_pages() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.app).await;
    let rows = |b: &str| b.matches("<tr><td class=\"mono dim\">").count();
    let first = send(
        &f.app,
        get("/tracepost/console/events?kind=log", Some(&cookie)),
    )
    .await;
    assert_eq!(rows(&first.body), 50);
    let next = first
        .body
        .split("class=\"more-link\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a next-page link")
        .replace("&amp;", "&");
    assert!(
        next.contains("kind=log") && next.contains("after="),
        "{next}"
    );
    let rest = send(&f.app, get(&format!("{next}&fragment=1"), Some(&cookie))).await;
    assert_eq!(rows(&rest.body), 10);
    assert!(!rest.body.contains("<html"), "a fragment");
    assert!(!rest.body.contains("more-link"), "the last page");
    let attr = send(
        &f.app,
        get(
            "/tracepost/console/events?attr=tenant%3Dacme&q=row+1",
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(rows(&attr.body), 11, "row 1, 10..19");
    let none = send(
        &f.app,
        get(
            "/tracepost/console/events?attr=tenant%3Dother",
            Some(&cookie),
        ),
    )
    .await;
    assert!(none.body.contains("No events match."));
    for (q, field) in [
        ("since=yesterday-ish", "since"),
        ("level=loud", "level"),
        ("kind=nope", "kind"),
        ("after=zzz", "after"),
        ("attr=novalue", "attr"),
    ] {
        let r = send(
            &f.app,
            get(&format!("/tracepost/console/events?{q}"), Some(&cookie)),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(
            r.body.contains(&format!("Bad value for {field}")),
            "{q}: {}",
            r.body
        );
    }
    let r = send(
        &f.app,
        get("/tracepost/console/api/tail?level=loud", Some(&cookie)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("\"error\":\"level\""), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_state_changes_need_the_csrf_token() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.app).await;
    let path = format!("/tracepost/console/issue/{}/status", f.ids.fingerprint);
    for form in [
        "status=resolved".to_owned(),
        "status=resolved&csrf=forged".to_owned(),
    ] {
        let r = send(&f.app, post(&path, &cookie, &form)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form}");
    }
    let mut cross = post(&path, &cookie, &format!("status=resolved&csrf={csrf}"));
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&f.app, cross).await.status, StatusCode::FORBIDDEN);
    let issue = f.store.issue(&f.ids.fingerprint).await.unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Unresolved, "nothing changed");

    let r = send(
        &f.app,
        post(&path, &cookie, &format!("status=resolved&csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let issue = f.store.issue(&f.ids.fingerprint).await.unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Resolved);
    let open = send(&f.app, get("/tracepost/console/issues", Some(&cookie))).await;
    assert!(
        !open.body.contains(&f.ids.fingerprint),
        "not among the open issues"
    );
    let resolved = send(
        &f.app,
        get("/tracepost/console/issues?status=resolved", Some(&cookie)),
    )
    .await;
    assert!(resolved.body.contains(&f.ids.fingerprint));
    // It happens again: open again, marked as a regression on the list.
    f.tp.handle().capture(request_error("GET", "/items/7", 500));
    for _ in 0..100 {
        let i = f.store.issue(&f.ids.fingerprint).await.unwrap().unwrap();
        if i.status == IssueStatus::Unresolved {
            assert!(i.regressed_at.is_some());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open = send(&f.app, get("/tracepost/console/issues", Some(&cookie))).await;
    assert!(open.body.contains(&f.ids.fingerprint), "open again");
    assert!(open.body.contains("badge regressed"), "marked");
    let bad = send(
        &f.app,
        post(&path, &cookie, &format!("status=gone&csrf={csrf}")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_runs_only_what_the_rules_allow() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.app).await;
    let replay = |id: uuid::Uuid, form: String| {
        post(
            &format!("/tracepost/console/event/{id}/replay"),
            &cookie,
            &form,
        )
    };

    let r = send(&f.app, replay(f.ids.get, "csrf=forged".into())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(f.seen.lock().is_empty(), "a forged replay sends nothing");

    let r = send(&f.app, replay(f.ids.get, format!("csrf={csrf}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("New response") && r.body.contains("replayed fine"));
    assert_eq!(
        *f.seen.lock(),
        [("GET".to_owned(), "/items/7".to_owned(), false)],
        "sent once, without the redacted Authorization"
    );

    let r = send(&f.app, replay(f.ids.post, format!("csrf={csrf}"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("replay refused (method)"), "{}", r.body);
    let r = send(&f.app, replay(f.ids.denied, format!("csrf={csrf}"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("deny-list"), "{}", r.body);
    assert_eq!(f.seen.lock().len(), 1, "nothing else reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_streams_filtered_events_over_sse() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let mut resp = client
        .get(format!(
            "http://{addr}/tracepost/console/api/tail?kind=error&q=needle"
        ))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let h = f.tp.handle();
    // The stream is subscribed once its headers are out; events from then on arrive.
    h.capture(Event::new(Kind::Log, Level::Info, "needle but a log"));
    h.capture(Event::new(Kind::Error, Level::Error, "haystack error"));
    h.capture(
        Event::new(
            Kind::Error,
            Level::Error,
            "needle error token=abc123secretvalue",
        )
        .with_attribute("password", "hunter2"),
    );
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("needle error") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("an event in 10 s");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    assert!(text.contains("event: event"), "{text}");
    assert!(
        !text.contains("haystack") && !text.contains("but a log"),
        "filtered: {text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("abc123secretvalue"),
        "after redaction: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_client_that_never_reads_slows_no_one() {
    let tail = LiveTail::with_limits(16, 3);
    let sink = tail.sink();
    let stalled = tail.subscribe().unwrap();
    let counts: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut readers = Vec::new();
    for i in 0..2 {
        let mut sub = tail.subscribe().unwrap();
        let counts = counts.clone();
        readers.push(tokio::spawn(async move {
            while let Some(item) = sub.next().await {
                match item {
                    TailItem::Event(_) => counts[i].fetch_add(1, Ordering::SeqCst),
                    TailItem::Missed(n) => panic!("reader {i} missed {n}"),
                };
                if counts[i].load(Ordering::SeqCst) == 1000 {
                    break;
                }
            }
        }));
    }
    assert!(tail.subscribe().is_none(), "the fourth client is refused");
    // 1000 events in batches of 8 (half the ring): each send returns at once; the readers
    // keep up, the stalled client falls behind.
    for b in 0..125 {
        let batch = (0..8)
            .map(|i| {
                Arc::new(Event::new(
                    Kind::Log,
                    Level::Info,
                    format!("e{}", b * 8 + i),
                ))
            })
            .collect();
        sink.send(batch).await.unwrap();
        for _ in 0..1000 {
            if counts
                .iter()
                .all(|c| c.load(Ordering::SeqCst) >= (b + 1) * 8)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(counts[0].load(Ordering::SeqCst), 1000);
    assert_eq!(counts[1].load(Ordering::SeqCst), 1000);
    let mut stalled = stalled;
    match stalled.next().await {
        Some(TailItem::Missed(n)) => assert_eq!(n, 1000 - 16),
        other => panic!("expected a missed notice, got {other:?}"),
    }
    let s = tail.stats();
    assert_eq!((s.published, s.missed, s.refused), (1000, 984, 1));
    drop(stalled);
    assert_eq!(tail.stats().clients, 0, "slots released");
}

/// The Routes page sums the stored metric windows per route over the asked range (read with
/// `Store::metric_windows`): requests, error rate, and only the windows in the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_sum_the_metric_windows_in_the_range() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.app).await;
    let now = tracepost_core::Timestamp::now().unix_nanos();
    let window = |mins_ago: u64, method: &str, route: &str, count: u64, errors: u64| {
        let at = tracepost_core::Timestamp::from_unix_nanos(now - mins_ago * 60_000_000_000);
        let mut e = Event::new(Kind::MetricWindow, Level::Info, format!("{method} {route}"))
            .with_timestamp(at);
        e.metric = Some(tracepost_core::MetricWindow {
            start: at,
            seconds: 60,
            method: method.into(),
            route: route.into(),
            count,
            errors,
            p50_ms: 10.0,
            p95_ms: 40.0,
            p99_ms: 90.0,
            max_ms: 120.0,
            bytes_in: 0,
            bytes_out: 0,
        });
        Arc::new(e)
    };
    f.store
        .write(vec![
            window(5, "GET", "/api/a/{id}", 100, 5),
            window(3, "GET", "/api/a/{id}", 50, 5),
            window(4, "POST", "/api/b", 10, 0),
            window(120, "GET", "/api/a/{id}", 1000, 0),
        ])
        .await
        .unwrap();
    let hour = send(&f.app, get("/tracepost/console/routes", Some(&cookie))).await;
    assert_eq!(hour.status, StatusCode::OK);
    let row = |body: &str, route: &str| -> String {
        body.split(route)
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("a row for {route}"))
            .to_owned()
    };
    let a = row(&hour.body, "GET /api/a/{id}");
    assert!(a.contains(">150<") && a.contains("6.7 %"), "{a}");
    let b = row(&hour.body, "POST /api/b");
    assert!(b.contains(">10<") && b.contains("0.0 %"), "{b}");
    let day = send(
        &f.app,
        get("/tracepost/console/routes?since=24h", Some(&cookie)),
    )
    .await;
    let a = row(&day.body, "GET /api/a/{id}");
    assert!(a.contains(">1150<") && a.contains("0.9 %"), "{a}");
}

/// A span event as the `tracing` layer writes one: start `at_ms` after `t0`, `ms` long.
fn span_event(
    t0: u64,
    name: &str,
    id: &str,
    parent: &str,
    at_ms: u64,
    ms: f64,
    status: SpanStatus,
) -> Event {
    let mut e = Event::new(Kind::Span, Level::Info, name)
        .with_timestamp(Timestamp::from_unix_nanos(t0 + at_ms * 1_000_000))
        .with_trace(TRACE, Some(id.into()));
    e.span = Some(SpanDetail {
        name: name.into(),
        parent_span_id: Some(parent.into()),
        duration_ms: ms,
        status,
    });
    e
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_page_draws_spans_as_a_waterfall_with_what_happened_inside() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSink::new(dir.path());
    let t0 = Timestamp::now().unix_nanos() - 60_000_000_000;
    // The request (its own span id is the outermost span's parent), two spans under it, one
    // under those; a log inside the query, an error inside `charge`.
    let mut request = Event::new(Kind::Request, Level::Info, "GET /orders/{id} 200")
        .with_timestamp(Timestamp::from_unix_nanos(t0))
        .with_trace(TRACE, Some("aaaaaaaaaaaaaaaa".into()))
        .with_request(RequestSnapshot {
            method: "GET".into(),
            route: "/orders/{id}".into(),
            path: "/orders/7".into(),
            status: 200,
            duration_ms: 40.0,
            ..Default::default()
        });
    request.request_id = Some("req-1".into());
    let load = span_event(
        t0,
        "load_order",
        "bbbbbbbbbbbbbbbb",
        "aaaaaaaaaaaaaaaa",
        2,
        30.0,
        SpanStatus::Unset,
    )
    .with_attribute("order.id", 7);
    let query = span_event(
        t0,
        "db.query",
        "cccccccccccccccc",
        "bbbbbbbbbbbbbbbb",
        5,
        10.0,
        SpanStatus::Unset,
    )
    .with_attribute("db.table", XSS);
    let charge = span_event(
        t0,
        "charge",
        "dddddddddddddddd",
        "aaaaaaaaaaaaaaaa",
        33,
        5.0,
        SpanStatus::Error,
    );
    let log = Event::new(Kind::Log, Level::Info, "row read")
        .with_timestamp(Timestamp::from_unix_nanos(t0 + 8_000_000))
        .with_trace(TRACE, Some("cccccccccccccccc".into()));
    let error = Event::new(Kind::Error, Level::Error, "card declined")
        .with_timestamp(Timestamp::from_unix_nanos(t0 + 35_000_000))
        .with_trace(TRACE, Some("dddddddddddddddd".into()));
    // Stored out of order: the page orders them.
    let batch: Vec<Arc<Event>> = [error, charge, log, query, load, request]
        .into_iter()
        .map(Arc::new)
        .collect();
    assert!(sqlite.send(batch).await.unwrap().rejected.is_empty());
    let console = Console::builder(Arc::new(sqlite.store().clone()))
        .admin_token(TOKEN)
        .build()
        .unwrap();
    let app = console.router();
    let (cookie, _) = sign_in(&app).await;

    let list = send(&app, get("/tracepost/console/traces", Some(&cookie))).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains(&format!("/trace/{TRACE}")),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("GET /orders/{id} → 200"),
        "the request heads it"
    );

    let page = send(
        &app,
        get(&format!("/tracepost/console/trace/{TRACE}"), Some(&cookie)),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("3 spans · 2 other events"), "{body}");
    // Rows in drawing order, each indented by its depth: the request, the first span and
    // what happened inside it (the query, the log inside the query), then the second span
    // and the error inside it.
    let rows: Vec<&str> = body.split("<tr class=\"wf-").skip(1).collect();
    let row = |needle: &str| -> (usize, &str) {
        rows.iter()
            .enumerate()
            .find(|(_, r)| r.contains(needle))
            .map(|(i, r)| (i, *r))
            .unwrap_or_else(|| panic!("no row with {needle} in {body}"))
    };
    let expect = [
        ("GET /orders/{id} → 200", "d0", "bar-req"),
        (">load_order<", "d1", "bar-span"),
        (">db.query<", "d2", "bar-span"),
        (">row read<", "d3", "\"bar\""),
        (">charge<", "d1", "bar-err"),
        (">card declined<", "d2", "bar-err"),
    ];
    for (i, (needle, depth, bar)) in expect.iter().enumerate() {
        let (at, r) = row(needle);
        assert_eq!(at, i, "{needle} is row {i}");
        assert!(
            r.contains(&format!("class=\"msg {depth}\"")),
            "{needle} at {depth}: {r}"
        );
        assert!(r.contains(bar), "{needle} drawn as {bar}: {r}");
    }
    // Bars are placed by start and length: the query starts 5 ms into a 40 ms trace.
    let (_, q) = row(">db.query<");
    assert!(q.contains("x=\"74.5\""), "{q}"); // 5/40 of 596
    assert!(q.contains("width=\"149.0\""), "{q}"); // 10/40 of 596
    assert!(row(">charge<").1.contains("error"));
    assert!(row(">load_order<").1.contains("order.id=7"));
    // A captured value stays text.
    assert!(!body.contains(XSS) && body.contains("&lt;script&gt;"));
}

/// A tester's finding: the selected tab's `class="on"` came out as a second `class`
/// attribute, which browsers ignore. No element of any page has two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_element_has_two_class_attributes() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.app).await;
    for path in [
        "/tracepost/console/issues",
        "/tracepost/console/issues?status=resolved",
        "/tracepost/console/events",
        "/tracepost/console/traces",
        "/tracepost/console/routes",
        "/tracepost/console/analytics?range=7d",
        "/tracepost/console/health",
    ] {
        let page = send(&f.app, get(path, Some(&cookie))).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for tag in page.body.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap_or_default();
            assert!(tag.matches(" class=").count() <= 1, "{path}: <{tag}>");
        }
    }
}

/// A tester's input: a right-to-left override in a captured message reversed what the
/// console showed ("txt.exe"-style disguise), and NUL and ESC reached the page raw. Every page
/// shows them as visible escapes; line feeds stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_characters_in_captured_text_are_shown_as_escapes() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.app).await;
    let e = Event::new(
        Kind::Error,
        Level::Error,
        "\u{202e}RTL override \u{0} nul \u{1b}[31m ansi \u{2066}iso \u{200f}mark\nsecond line",
    );
    let id = e.id;
    f.store.write(vec![Arc::new(e)]).await.unwrap();
    for path in [
        format!("/tracepost/console/event/{id}"),
        "/tracepost/console/events?q=override".to_owned(),
    ] {
        let page = send(&f.app, get(&path, Some(&cookie))).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for c in ['\u{202e}', '\u{0}', '\u{1b}', '\u{2066}', '\u{200f}'] {
            assert!(!page.body.contains(c), "{path}: raw {c:?}");
        }
        assert!(page.body.contains(r"\u{200f}mark"), "{path}");
        assert!(page.body.contains(r"\u{202e}RTL override"), "{path}");
        assert!(page.body.contains(r"\x1b[31m"), "{path}");
    }
}
