//! Server time per console page over a big SQLite store.
//!
//! Run: `cargo run --release -p tracepost-console --example console_bench -- [events] [dir]`
//! (default 1 000 000 events in `/tmp/tracepost-console-bench`). The first run generates the
//! events into `<dir>/tracepost.sqlite3` (later runs reuse the file when it holds as many);
//! then each page is rendered 15 times through the router (`oneshot`: no network), and the
//! median and the slowest are printed per page.

use std::sync::Arc;

#[path = "../../../plugins/tracepost-sqlite/examples/common/mod.rs"]
mod common;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tracepost_console::Console;
use tracepost_core::store::EventFilter;
use tracepost_core::{Event, Kind, Level, Timestamp};
use tracepost_sqlite::{SqliteStore, TimeRange};

const TOKEN: &str = "bench-admin-token-0123456789";

/// Hosts that send visitors (the rest arrive with no referrer or from the site itself).
const REFERRERS: [&str; 8] = [
    "https://www.google.com/",
    "https://news.ycombinator.com/item?id=1",
    "https://t.co/abc",
    "https://www.bing.com/search?q=shop",
    "https://duckduckgo.com/",
    "https://github.com/acme/shop",
    "https://www.reddit.com/r/rust/",
    "https://lobste.rs/",
];

/// A browser analytics event as the ingest stores it: 7 in 8 page views over 50 pages
/// (skewed towards the first), 1 in 8 `track`s; 5 000 visitors; 40 % without referrer,
/// 30 % from the site itself, 30 % from 8 hosts; one URL in 7 with a query string.
fn analytics_event(i: u64, ts: u64) -> Event {
    // Independent draws from the bits of one multiplicative hash.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let bits = |shift: u32, n: u64| (h >> shift) % n;
    let visitor = bits(40, 5000);
    let page = bits(20, 50) * bits(26, 50) / 50;
    let path = if page == 0 {
        "/".to_owned()
    } else {
        format!("/p{page}")
    };
    let query = if bits(32, 7) == 0 {
        "?utm_source=news&token=abc"
    } else {
        ""
    };
    let url = format!("https://shop.example{path}{query}");
    let mut e = if bits(52, 8) == 0 {
        let name = ["add_to_cart", "signup", "checkout"][bits(56, 3) as usize];
        Event::new(Kind::Analytics, Level::Info, format!("track {name}"))
            .with_attribute("analytics.event", "track")
            .with_attribute("event.name", name)
    } else {
        let mut e = Event::new(Kind::Analytics, Level::Info, format!("pageview {path}"))
            .with_attribute("analytics.event", "pageview")
            .with_attribute("page.title", format!("Shop · {path}"))
            .with_attribute("navigation.type", "navigate");
        match bits(35, 10) {
            0..=3 => {}
            4..=6 => e = e.with_attribute("page.referrer", "https://shop.example/"),
            _ => e = e.with_attribute("page.referrer", REFERRERS[bits(60, 8) as usize]),
        }
        e
    };
    e = e
        .with_timestamp(Timestamp::from_unix_nanos(ts))
        .with_attribute("url.full", url)
        .with_attribute("visitor.id", format!("c_{visitor:016x}"))
        .with_attribute("user_agent.name", "Firefox");
    e.resource.service = "web".into();
    e.session_id = Some(format!("s-{visitor}"));
    e
}

/// Event `i` of `n`: the SQLite benchmarks' mix (`plugins/tracepost-sqlite/examples/common`,
/// so page times, query times and the write rate are measured over the same data), except
/// that one event in ten is a browser analytics event.
fn event(i: u64, n: u64, now_ns: u64) -> Event {
    if i % 10 == 5 {
        // Spread over the last 23 hours, oldest first, as the common events are.
        let span = 23 * 3600 * 1_000_000_000u64;
        return analytics_event(i, now_ns - span + span / n * i);
    }
    common::event(i, n, now_ns)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = args
        .next()
        .unwrap_or_else(|| "/tmp/tracepost-console-bench".into());
    let store = SqliteStore::new(
        std::path::Path::new(&dir).join(tracepost_sqlite::DB_FILE),
        TimeRange::default(),
        None,
    );
    let have = store
        .histogram(&EventFilter::new(), Duration::from_secs(365 * 86_400))
        .await?
        .iter()
        .map(|b| b.count)
        .sum::<u64>();
    if have < n {
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::new(
            std::path::Path::new(&dir).join(tracepost_sqlite::DB_FILE),
            TimeRange::default(),
            None,
        );
        let started = Instant::now();
        let now_ns = Timestamp::now().unix_nanos();
        let mut i = 0;
        while i < n {
            let batch: Vec<_> = (i..(i + 10_000).min(n))
                .map(|k| Arc::new(event(k, n, now_ns)))
                .collect();
            i += batch.len() as u64;
            store.write(batch).await?;
        }
        println!(
            "generated {n} events in {:.1} s ({:.0} events/s)",
            started.elapsed().as_secs_f64(),
            n as f64 / started.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing {have} events in {dir}");
    }
    let store = SqliteStore::new(
        std::path::Path::new(&dir).join(tracepost_sqlite::DB_FILE),
        TimeRange::default(),
        None,
    );
    let some_error = store
        .events(&EventFilter::new().kind(Kind::Error), 1, None)
        .await?
        .events
        .remove(0);
    let page2 = store
        .events(&EventFilter::new(), 50, None)
        .await?
        .next
        .expect("more than 50 events");
    let app = Console::builder(Arc::new(store))
        .admin_token(TOKEN)
        .build()?
        .router::<()>();
    let login = app
        .clone()
        .oneshot(
            Request::post("/tracepost/console/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={TOKEN}")))?,
        )
        .await?;
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let trace = some_error.trace_id.clone().unwrap_or_default();
    let pages = [
        ("issues".to_owned(), "/tracepost/console/issues".to_owned()),
        (
            "issue".into(),
            format!(
                "/tracepost/console/issue/{}",
                some_error.fingerprint.clone().unwrap_or_default()
            ),
        ),
        (
            "event".into(),
            format!("/tracepost/console/event/{}", some_error.id),
        ),
        ("events".into(), "/tracepost/console/events".into()),
        (
            "events page 2".into(),
            format!("/tracepost/console/events?after={page2}"),
        ),
        (
            "events kind+level".into(),
            "/tracepost/console/events?kind=error&level=error".into(),
        ),
        (
            "events text".into(),
            "/tracepost/console/events?q=upstream+17".into(),
        ),
        (
            "events attribute".into(),
            "/tracepost/console/events?attr=tenant%3Dt7&since=1h".into(),
        ),
        (
            "events service 15m".into(),
            "/tracepost/console/events?service=billing&since=15m".into(),
        ),
        ("traces".into(), "/tracepost/console/traces".into()),
        ("trace".into(), format!("/tracepost/console/trace/{trace}")),
        ("routes 1h".into(), "/tracepost/console/routes".into()),
        (
            "routes 24h".into(),
            "/tracepost/console/routes?since=24h".into(),
        ),
        ("analytics".into(), "/tracepost/console/analytics".into()),
        (
            "analytics 7d".into(),
            "/tracepost/console/analytics?range=7d".into(),
        ),
        (
            "analytics funnel".into(),
            "/tracepost/console/analytics?funnel=%2F%2C%2Fp1%2C%2Fp2%2Csignup".into(),
        ),
        ("health".into(), "/tracepost/console/health".into()),
    ];
    println!(
        "{:<20} {:>10} {:>10} {:>9}",
        "page", "median ms", "max ms", "KiB"
    );
    for (name, path) in pages {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..15 {
            let started = Instant::now();
            let resp = app
                .clone()
                .oneshot(
                    Request::get(&path)
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())?,
                )
                .await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(status.is_success(), "{path}: {status}");
            size = body.len();
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name:<20} {:>10.1} {:>10.1} {:>9.0}",
            times[times.len() / 2],
            times[times.len() - 1],
            size as f64 / 1024.0
        );
    }
    Ok(())
}
