//! Project API keys in Postgres behind the log routes (feature `cli`, which implies
//! `ingest`): a key created in the store authenticates `POST /v1/batch` (events stored in
//! Postgres with their project and key), last use is recorded by the maintenance flush,
//! rotation overlaps, revocation refuses; and the `tracepost keys` command does the same.
#![cfg(feature = "cli")]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::HeaderMap;
use http_body_util::Full;
use tracepost_core::Tracepost;
use tracepost_ingest::{LogIngest, LogIngestConfig};
use tracepost_postgres::PostgresSink;

macro_rules! db {
    ($tag:expr) => {
        match TestDb::new($tag).await {
            Some(db) => db,
            None => return,
        }
    };
}

fn headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("x-tracepost-key", key.parse().unwrap());
    h
}

fn body(msg: &str) -> Full<Bytes> {
    Full::new(Bytes::from(format!(
        r#"{{"service":"billing","logs":[{{"message":"{msg}","context":{{"password":"hunter2-planted"}}}}]}}"#
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_postgres_authenticate_the_log_routes() {
    let db = db!("log_keys");
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let store = sink.store().clone();
    let project = store.create_project("shop").await.unwrap();
    let old = store.create_api_key(project.id).await.unwrap();
    let tp = Tracepost::builder()
        .service("host")
        .sink(sink)
        .build()
        .unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new().key_cache_ttl(Duration::ZERO),
        Arc::new(store.clone()),
    )
    .unwrap();

    let r = logs.batch(&headers(&old.key), None, body("first")).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    // Rotation: both keys work until the old one is revoked.
    let new = store.rotate_api_key(old.id).await.unwrap().unwrap();
    assert_ne!(new.key, old.key);
    assert_eq!(
        logs.batch(&headers(&new.key), None, body("second"))
            .await
            .status(),
        202
    );
    assert_eq!(
        logs.batch(&headers(&old.key), None, body("third"))
            .await
            .status(),
        202
    );
    assert!(store.revoke_api_key(old.id).await.unwrap());
    logs.invalidate(&old.prefix);
    let r = logs.batch(&headers(&old.key), None, body("refused")).await;
    assert_eq!(r.status(), 401);
    assert!(std::str::from_utf8(r.body())
        .unwrap()
        .contains("invalid_key"));

    logs.flush_last_used().await;
    let listed = store.list_api_keys(project.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|k| k.last_used_at.is_some()),
        "{listed:?}"
    );
    assert!(listed[0].revoked_at.is_some() && listed[1].revoked_at.is_none());

    tp.shutdown(Duration::from_secs(10)).await;
    let c = db.client().await;
    let rows = c
        .query(
            "SELECT message, attributes::text FROM tracepost.events ORDER BY message",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, ["first", "second", "third"]);
    for r in &rows {
        let attrs: String = r.get(1);
        assert!(attrs.contains(r#""ingest.project": "shop""#), "{attrs}");
        assert!(!attrs.contains("hunter2-planted"), "{attrs}");
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_command() {
    let db = db!("keys_cli");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tracepost"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let field = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .unwrap()
            .to_owned()
    };
    let (ok, out) = run(&["keys", "create", "shop", "--require-signature"]);
    assert!(ok, "{out}");
    let key = field(&out, "key");
    let id = field(&out, "id");
    assert!(key.starts_with("tpk_") && key.len() == 68, "{out}");
    let (ok, out) = run(&["keys", "rotate", &id]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["keys", "revoke", &id]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["keys", "list", "shop"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(&key[..12]) && lines[0].contains("\ttrue\t"));
    assert!(!out.contains(&key[12..]), "the list never shows a key");
    assert!(!lines[0].ends_with("\t-"), "the first is revoked: {out}");
    assert!(lines[1].ends_with("\t-"), "the rotated one is not: {out}");
    let (ok, _) = run(&["keys", "revoke", "999999"]);
    assert!(!ok);
    let store = PostgresSink::builder(&db.url)
        .connect_store()
        .await
        .unwrap();
    let found = store.api_keys_by_prefix(&key[..12]).await.unwrap();
    assert!(found.is_empty(), "revoked keys are not found");
    drop(store);
    db.drop_db().await;
}
