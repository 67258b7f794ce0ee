//! Shared by the query API's tests: a real HTTP server on a loopback port, a SQLite store in
//! a temporary directory, a Postgres database of its own (skipped loudly without a server
//! unless `CI=true`), and a small data set.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use tracepost_api::ApiConfig;
use tracepost_core::store::Store;
use tracepost_core::{ErrorDetail, Event, Kind, Level, Timestamp};
use uuid::Uuid;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// Serves `router(store, config)` on 127.0.0.1; returns the base URL (`http://addr`).
pub async fn serve(store: Arc<dyn Store>, config: ApiConfig) -> String {
    let app: axum::Router = tracepost_api::router(store, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// GET `url` with the admin token: (status, JSON body).
pub async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text:?}"));
    (status, body)
}

pub fn pg_url() -> String {
    std::env::var("TRACEPOST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own on the test server; `None` (skipped, loudly) without a server
/// unless `CI=true`.
pub struct PgDb {
    admin: tokio_postgres::Client,
    name: String,
}

impl PgDb {
    pub async fn new(what: &str) -> Option<PgDb> {
        let (admin, conn) = match tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "PostgreSQL is required under CI=true: {e}"
                );
                eprintln!("!!! SKIPPING {what}: no PostgreSQL at {} ({e})", pg_url());
                return None;
            }
        };
        tokio::spawn(conn);
        let name = format!("tp_api_{}", Uuid::now_v7().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Some(PgDb { admin, name })
    }

    pub fn url(&self) -> String {
        let base = pg_url();
        let cut = base.rfind('/').unwrap();
        format!("{}/{}", &base[..cut], self.name)
    }

    pub async fn drop_db(self) {
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

/// 60 events a minute apart ending `base_ns + 59 min`: errors with three fingerprints,
/// logs and requests, two services, every level, attributes, trace/user/request/session ids,
/// and pairs in the same second to page across.
pub fn dataset(base_ns: u64) -> Vec<Event> {
    (0..60u64)
        .map(|i| {
            let kind = [Kind::Error, Kind::Log, Kind::Request][(i % 3) as usize];
            let level = [
                Level::Trace,
                Level::Debug,
                Level::Info,
                Level::Warn,
                Level::Error,
            ][(i % 5) as usize];
            let mut e = Event::new(kind, level, format!("Payment TIMEOUT {i}"))
                .with_timestamp(Timestamp::from_unix_nanos(
                    base_ns + i * 60_000_000_000 + 123_456_000,
                ))
                .with_attribute("tenant", ["acme", "globex"][(i % 2) as usize])
                .with_attribute("attempt", (i % 4) as i64);
            if i % 2 == 1 {
                e.message = format!("user {i} logged in");
            }
            e.resource.service = ["checkout", "search"][(i % 2) as usize].into();
            e.trace_id = Some(format!("trace-{}", i / 4));
            e.user_id = Some(format!("user-{}", i % 5));
            e.session_id = Some(format!("sess-{}", i % 3));
            e.request_id = Some(format!("req-{i}"));
            if kind == Kind::Error {
                let n = (i / 3) % 3;
                e.fingerprint = Some(format!("fp-{n}"));
                e = e.with_error(ErrorDetail {
                    error_type: format!("Error{n}"),
                    message: format!("failure {i}"),
                    backtrace: None,
                    location: None,
                });
            }
            e
        })
        .collect()
}
