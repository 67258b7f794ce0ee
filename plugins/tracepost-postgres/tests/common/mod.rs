//! Test databases on the local PostgreSQL (127.0.0.1:5432, user postgres, trust auth).
//! Each test gets its own database, dropped afterwards. Under `CI=true` a missing server
//! fails the test; elsewhere the test is skipped with a loud message.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tracepost_core::{
    Breadcrumb, CapturedBody, ErrorDetail, Event, Kind, Level, MetricWindow, RequestSnapshot,
    Timestamp,
};

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn server_url() -> String {
    std::env::var("TRACEPOST_PG_URL").unwrap_or_else(|_| ADMIN_URL.to_owned())
}

fn base() -> String {
    let url = server_url();
    match url.rfind('/') {
        Some(i) if url[..i].contains('@') || url[..i].contains("//") => url[..i].to_owned(),
        _ => url,
    }
}

/// A database of our own.
pub struct TestDb {
    pub name: String,
    pub url: String,
    dropped: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn admin() -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl TestDb {
    /// Creates a fresh database, or returns `None` (outside CI) when there is no server.
    pub async fn new(tag: &str) -> Option<TestDb> {
        let client = match admin().await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!(
                        "PostgreSQL is required under CI=true but unreachable at {}: {e}",
                        server_url()
                    );
                }
                eprintln!(
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !!! SKIPPING {tag}: no PostgreSQL at {} ({e})\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
                    server_url()
                );
                return None;
            }
        };
        let name = format!(
            "tp_test_{}_{}_{}_{}",
            tag,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = format!("{}/{name}", base());
        Some(TestDb {
            name,
            url,
            dropped: false,
        })
    }

    /// Drops the database (also done on drop, from a helper thread).
    pub async fn drop_db(mut self) {
        self.dropped = true;
        let client = admin().await.expect("admin connection");
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop test database");
    }

    /// A plain connection to the test database, for assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(c) = admin().await {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn ts(unix_secs: u64) -> Timestamp {
    Timestamp::from_unix_nanos(unix_secs * 1_000_000_000)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn log(msg: &str) -> Event {
    let mut e = Event::new(Kind::Log, Level::Info, msg)
        .with_attribute("http.route", "/users/{id}")
        .with_attribute("attempt", 3)
        .with_attribute("nested", serde_json::json!({"a": [1, 2.5, "x"], "b": null}));
    e.resource.service = "api".into();
    e.resource.environment = Some("test".into());
    e.resource.host = Some("host-1".into());
    e
}

pub fn error(fingerprint: &str, msg: &str) -> Event {
    let mut e = Event::new(Kind::Error, Level::Error, msg).with_error(ErrorDetail {
        error_type: "io::Error".into(),
        message: msg.into(),
        backtrace: Some("0: main\n1: start".into()),
        location: Some("src/main.rs:10".into()),
    });
    e.resource.service = "api".into();
    e.fingerprint = Some(fingerprint.into());
    e
}

pub fn request_snapshot() -> RequestSnapshot {
    RequestSnapshot {
        method: "POST".into(),
        route: "/users/{id}".into(),
        path: "/users/42".into(),
        query: Some("verbose=1".into()),
        status: 503,
        duration_ms: 12.345,
        request_headers: vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "*/*".into()),
            ("accept".into(), "text/plain".into()),
        ],
        response_headers: vec![("retry-after".into(), "5".into())],
        request_body: Some(CapturedBody {
            text: "{\"name\":\"ada\"}".into(),
            encoding: "utf8".into(),
            truncated: false,
            content_type: Some("application/json".into()),
        }),
        response_body: Some(CapturedBody {
            text: "aGVsbG8=".into(),
            encoding: "base64".into(),
            truncated: true,
            content_type: None,
        }),
        request_bytes: 14,
        response_bytes: 4096,
        client_address: Some("10.0.0.7".into()),
        http_version: Some("HTTP/1.1".into()),
    }
}

/// One event of every kind, with every field that kind uses filled in.
pub fn every_kind() -> Vec<Event> {
    let now = Timestamp::from_unix_nanos(now_secs() * 1_000_000_000 + 123_456_789);
    let mut out = Vec::new();

    let mut l = log("user logged in").with_timestamp(now);
    l.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    l.span_id = Some("00f067aa0ba902b7".into());
    l.request_id = Some("req-1".into());
    l.session_id = Some("sess-1".into());
    l.user_id = Some("user-1".into());
    l.resource.release = Some("1.2.3".into());
    out.push(l);

    let mut e = error("fp-every", "connection refused").with_timestamp(now);
    e.request = Some(request_snapshot());
    e.breadcrumbs = vec![Breadcrumb {
        timestamp: Timestamp::from_unix_nanos(now.unix_nanos() - 5_000_001),
        level: Level::Warn,
        target: "app::db".into(),
        message: "retrying key=value".into(),
    }];
    out.push(e);

    let mut r = Event::new(Kind::Request, Level::Info, "POST /users/{id} 200").with_timestamp(now);
    r.resource.service = "api".into();
    let mut snap = request_snapshot();
    snap.status = 200;
    snap.request_body = None;
    snap.response_headers.clear();
    r.request = Some(snap);
    out.push(r);

    for (kind, msg) in [
        (Kind::Analytics, "page_view"),
        (Kind::Replay, "replay chunk 3"),
        (Kind::Alert, "error rate above 5%"),
    ] {
        let mut a = Event::new(kind, Level::Warn, msg)
            .with_timestamp(now)
            .with_attribute("k", kind.as_str());
        a.resource.service = "web".into();
        out.push(a);
    }

    let mut m =
        Event::new(Kind::MetricWindow, Level::Info, "GET /health: 10 requests").with_timestamp(now);
    m.resource.service = "api".into();
    m.metric = Some(MetricWindow {
        start: Timestamp::from_unix_nanos((now_secs() / 60 * 60 - 60) * 1_000_000_000),
        seconds: 60,
        method: "GET".into(),
        route: "/health".into(),
        count: 10,
        errors: 1,
        p50_ms: 1.5,
        p95_ms: 9.75,
        p99_ms: 12.0,
        max_ms: 30.25,
        bytes_in: 0,
        bytes_out: 12_345,
    });
    out.push(m);
    out
}

pub fn arcs(events: Vec<Event>) -> Vec<Arc<Event>> {
    events.into_iter().map(Arc::new).collect()
}

pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}
