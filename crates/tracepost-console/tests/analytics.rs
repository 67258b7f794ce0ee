//! The Analytics page over a real SQLite store holding known browser events: the totals,
//! top pages, referrers and funnel counts on the page are the data's; captured markup stays
//! text; query strings never reach the page; bad `range` and `funnel` parameters get a 400
//! saying what is wrong, never a 500.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tracepost_console::Console;
use tracepost_core::{Event, Kind, Level, Timestamp};
use tracepost_sqlite::{SqliteStore, TimeRange};

const TOKEN: &str = "test-admin-token-0123456789";

/// `(minutes ago, visitor, type, url, referrer)`.
type Row = (
    u64,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const ROWS: [Row; 9] = [
    (
        50,
        "v1",
        "pageview",
        "https://shop.example/",
        Some("https://www.google.com/search?q=x"),
    ),
    (
        49,
        "v1",
        "pageview",
        "https://shop.example/pricing?token=SECRET-TOKEN",
        Some("https://shop.example/"),
    ),
    (48, "v1", "track", "https://shop.example/pricing", None),
    (
        47,
        "v1",
        "pageview",
        "https://shop.example/signup",
        Some("https://shop.example/pricing"),
    ),
    (
        40,
        "v2",
        "pageview",
        "https://shop.example/",
        Some("https://<img src=x onerror=alert(1)>/"),
    ),
    (
        39,
        "v2",
        "pageview",
        "https://shop.example/pricing",
        Some("https://shop.example/"),
    ),
    (
        30,
        "v3",
        "pageview",
        "https://shop.example/<script>alert(1)</script>",
        None,
    ),
    (29, "v3", "pageview", "https://shop.example/", None),
    // Eight days ago: only in the 30-day range.
    (
        8 * 24 * 60,
        "v4",
        "pageview",
        "https://shop.example/old",
        None,
    ),
];

async fn app() -> (tempfile::TempDir, Router, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::new(
        dir.path().join(tracepost_sqlite::DB_FILE),
        TimeRange::default().max_age(Duration::from_secs(30 * 86_400)),
        None,
    );
    let now = SystemTime::now();
    let batch = ROWS
        .iter()
        .map(|(ago, visitor, ty, url, referrer)| {
            let mut e = Event::new(Kind::Analytics, Level::Info, format!("{ty} {url}"))
                .with_timestamp(Timestamp::from(now - Duration::from_secs(ago * 60)))
                .with_attribute("analytics.event", *ty)
                .with_attribute("url.full", *url)
                .with_attribute("visitor.id", *visitor)
                .with_attribute("page.title", "<script>alert('title')</script>");
            if *ty == "track" {
                e = e.with_attribute("event.name", "signup");
            }
            if let Some(r) = referrer {
                e = e.with_attribute("page.referrer", *r);
            }
            e.session_id = Some(format!("s-{visitor}"));
            Arc::new(e)
        })
        .collect();
    let out = store.write(batch).await.unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let app = Console::builder(Arc::new(store))
        .admin_token(TOKEN)
        .build()
        .unwrap()
        .router();
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
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (dir, app, cookie)
}

async fn page(app: &Router, cookie: &str, query: &str) -> (StatusCode, String) {
    let r = app
        .clone()
        .oneshot(
            Request::get(format!("/tracepost/console/analytics{query}"))
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The number in `<b id="{id}">…</b>`.
fn tile(body: &str, id: &str) -> u64 {
    let at = body.find(&format!("id=\"{id}\">")).expect(id) + id.len() + 6;
    body[at..].split('<').next().unwrap().parse().unwrap()
}

/// A row of a top table: key, views, visitors.
fn row(key: &str, views: u64, visitors: u64) -> String {
    format!(
        "<td class=\"mono msg\">{key}</td><td class=\"num\">{views}</td><td class=\"num\">{visitors}</td>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_data() {
    let (_dir, app, cookie) = app().await;
    let (status, body) = page(&app, &cookie, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(tile(&body, "pageviews"), 7);
    assert_eq!(tile(&body, "visitors"), 3);
    assert_eq!(tile(&body, "tracks"), 1);
    for (key, views, visitors) in [("/", 3, 3), ("/pricing", 2, 2), ("/signup", 1, 1)] {
        assert!(body.contains(&row(key, views, visitors)), "{key}\n{body}");
    }
    assert!(body.contains(&row("www.google.com", 1, 1)), "{body}");
    // Same-site referrers are not listed, but counted: 3 internal, 2 direct.
    assert!(!body.contains(&row("shop.example", 3, 2)));
    assert!(body.contains("Direct (no referrer): <b>2</b>"), "{body}");
    assert!(body.contains("not listed): <b>3</b>"), "{body}");
    // 24 hourly bars.
    assert_eq!(body.matches("<rect class=\"bar\"").count(), 24);
    // Eight days ago counts in 30 days only.
    assert!(!body.contains("/old"));
    let (_, month) = page(&app, &cookie, "?range=30d").await;
    assert_eq!(tile(&month, "pageviews"), 8);
    assert_eq!(tile(&month, "visitors"), 4);
    assert!(month.contains(&row("/old", 1, 1)));
    assert_eq!(month.matches("<rect class=\"bar\"").count(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnels_count_visitors_in_order() {
    let (_dir, app, cookie) = app().await;
    for (steps, want) in [
        ("/,/pricing,/signup", vec![3, 2, 1]),
        ("/pricing?utm_source=x,signup", vec![2, 1]),
        ("/signup,/", vec![1, 0]),
    ] {
        let (status, body) = page(
            &app,
            &cookie,
            &format!(
                "?funnel={}",
                steps
                    .replace('?', "%3F")
                    .replace('=', "%3D")
                    .replace(',', "%2C")
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{steps}: {body}");
        let got: Vec<u64> = body
            .split("<td class=\"num funnel-count\">")
            .skip(1)
            .map(|s| s.split('<').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(got, want, "{steps}");
    }
    let (_, body) = page(&app, &cookie, "?funnel=/,/pricing,/signup").await;
    assert!(body.contains("66.7 %") && body.contains("50.0 %"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_stays_text_or_is_refused() {
    let (_dir, app, cookie) = app().await;
    let (status, body) = page(&app, &cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("<img src=x"), "{body}");
    assert!(
        body.contains(&row("/&lt;script&gt;alert(1)&lt;/script&gt;", 1, 1)),
        "{body}"
    );
    assert!(
        body.contains(&row("&lt;img src=x onerror=alert(1)&gt;", 1, 1)),
        "{body}"
    );
    assert!(
        !body.contains("SECRET-TOKEN"),
        "query strings never reach the page"
    );

    // A funnel step with markup is an event name, shown as text.
    let (status, body) = page(&app, &cookie, "?funnel=%3Cscript%3Ealert(3)%3C%2Fscript%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script>alert(3)"));
    assert!(body.contains("&lt;script&gt;alert(3)&lt;/script&gt;"));

    let many = vec!["/a"; 10_000].join("%2C");
    for (query, says) in [
        (format!("?funnel={many}"), "10000 steps; at most 10"),
        ("?funnel=/a%2C%2C/b".to_owned(), "step 2 is empty"),
        ("?funnel=%2C".to_owned(), "step 1 is empty"),
        (
            "?funnel=ok%2C%07".to_owned(),
            "step 2 holds control characters",
        ),
        (
            format!("?funnel={}", "x".repeat(300)),
            "longer than 200 characters",
        ),
    ] {
        let (status, body) = page(&app, &cookie, &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{says}");
        assert!(
            body.contains("Funnel refused") && body.contains(says),
            "{says}: {body}"
        );
        // The rest of the page is still there.
        assert_eq!(tile(&body, "pageviews"), 7);
    }
    let (status, body) = page(&app, &cookie, "?range=1y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("Bad value for range") && body.contains("24h, 7d, 30d"),
        "{body}"
    );
    let (status, _) = page(&app, &cookie, "?nope=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
