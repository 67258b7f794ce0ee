//! Project API keys behind the log routes (feature `cli`, which implies `ingest`), in
//! Postgres and in the embedded SQLite store: one behaviour run against both stores (several
//! keys per project, lookup by prefix, signing required per key, rotation overlaps,
//! revocation refuses, last use recorded by the maintenance flush, each event naming its
//! project and key), events stored in Postgres with their project and key, and the
//! `tracepost keys` command over both stores (`DATABASE_URL`, `--sqlite <file>`).
#![cfg(feature = "cli")]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use http::HeaderMap;
use http_body_util::Full;
use tracepost_core::testing::MemorySink;
use tracepost_core::Tracepost;
use tracepost_ingest::logs::keys::{self, KeyStore};
use tracepost_ingest::{LogIngest, LogIngestConfig};
use tracepost_postgres::{PgStore, PostgresSink};
use tracepost_sqlite::SqliteStore;

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
    let prefix = the_keys_command_over(&[], &[("DATABASE_URL", &db.url)]);
    let store = PostgresSink::builder(&db.url)
        .connect_store()
        .await
        .unwrap();
    let found = store.api_keys_by_prefix(&prefix).await.unwrap();
    assert!(found.is_empty(), "revoked keys are not found");
    drop(store);
    db.drop_db().await;
}

/// create (signed), rotate, revoke, list, revoke an unknown key: with `args` before the
/// command and `env` set. The prefix of the revoked key.
fn the_keys_command_over(args: &[&str], env: &[(&str, &str)]) -> String {
    let run = |cmd: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tracepost"))
            .args(args)
            .args(cmd)
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
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
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(&key[..12]) && lines[0].contains("\ttrue\t"));
    assert!(!out.contains(&key[12..]), "the list never shows a key");
    assert!(!lines[0].ends_with("\t-"), "the first is revoked: {out}");
    assert!(lines[1].ends_with("\t-"), "the rotated one is not: {out}");
    let (ok, out) = run(&["keys", "revoke", "999999"]);
    assert!(!ok, "{out}");
    let (ok, out) = run(&["keys", "list", "nobody"]);
    assert!(!ok && out.contains("no project"), "{out}");
    key[..12].to_owned()
}

/// What the behaviour needs of a key store besides [`KeyStore`]: the management calls that
/// `PgStore` and `SqliteStore` both have.
trait ManageKeys: KeyStore + Clone {
    /// A project's id (created).
    async fn project(&self, name: &str) -> i64;
    /// A new key: (id, key).
    async fn key(&self, project: i64, signed: bool) -> (i64, String);
    async fn rotate(&self, id: i64) -> Option<(i64, String)>;
    async fn revoke(&self, id: i64) -> bool;
    /// Each key's (id, last used, revoked).
    async fn list(&self, project: i64) -> Vec<(i64, Option<SystemTime>, Option<SystemTime>)>;
}

impl ManageKeys for PgStore {
    async fn project(&self, name: &str) -> i64 {
        self.create_project(name).await.unwrap().id
    }
    async fn key(&self, project: i64, signed: bool) -> (i64, String) {
        let k = self.create_api_key_with(project, signed).await.unwrap();
        (k.id, k.key)
    }
    async fn rotate(&self, id: i64) -> Option<(i64, String)> {
        self.rotate_api_key(id)
            .await
            .unwrap()
            .map(|k| (k.id, k.key))
    }
    async fn revoke(&self, id: i64) -> bool {
        self.revoke_api_key(id).await.unwrap()
    }
    async fn list(&self, project: i64) -> Vec<(i64, Option<SystemTime>, Option<SystemTime>)> {
        let keys = self.list_api_keys(project).await.unwrap();
        keys.into_iter()
            .map(|k| (k.id, k.last_used_at, k.revoked_at))
            .collect()
    }
}

impl ManageKeys for SqliteStore {
    async fn project(&self, name: &str) -> i64 {
        self.create_project(name).await.unwrap().id
    }
    async fn key(&self, project: i64, signed: bool) -> (i64, String) {
        let k = self.create_api_key_with(project, signed).await.unwrap();
        (k.id, k.key)
    }
    async fn rotate(&self, id: i64) -> Option<(i64, String)> {
        self.rotate_api_key(id)
            .await
            .unwrap()
            .map(|k| (k.id, k.key))
    }
    async fn revoke(&self, id: i64) -> bool {
        self.revoke_api_key(id).await.unwrap()
    }
    async fn list(&self, project: i64) -> Vec<(i64, Option<SystemTime>, Option<SystemTime>)> {
        let keys = self.list_api_keys(project).await.unwrap();
        keys.into_iter()
            .map(|k| (k.id, k.last_used_at, k.revoked_at))
            .collect()
    }
}

fn status_and_code(r: &http::Response<Bytes>) -> (u16, String) {
    (
        r.status().as_u16(),
        std::str::from_utf8(r.body()).unwrap().to_owned(),
    )
}

/// The key behaviour every store must have, through the real log routes.
async fn key_behaviour<S: ManageKeys>(store: S) {
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("host")
        .sink(sink.clone())
        .build()
        .unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new().key_cache_ttl(Duration::ZERO),
        Arc::new(store.clone()),
    )
    .unwrap();
    let shop = store.project("shop").await;
    let other = store.project("other").await;
    // Several keys per project; each found by its prefix, never by anything else.
    let (a_id, a) = store.key(shop, false).await;
    let (_, b) = store.key(shop, false).await;
    let (_, o) = store.key(other, false).await;
    let (s_id, signed) = store.key(shop, true).await;
    for k in [&a, &b, &o, &signed] {
        assert!(keys::is_well_formed(k), "{k}");
        let found = store.by_prefix(&k[..keys::PREFIX_LEN]).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hash, keys::hash(k), "stored hashed");
    }
    assert!(store.by_prefix("tpk_00000000").await.unwrap().is_empty());

    for (k, msg) in [(&a, "from a"), (&b, "from b"), (&o, "from other")] {
        let r = logs.batch(&headers(k), None, body(msg)).await;
        assert_eq!(r.status(), 202, "{:?}", r.body());
    }
    // A wrong key with a known prefix, and an unknown key: 401.
    let forged = format!("{}{}", &a[..keys::PREFIX_LEN], "0".repeat(56));
    for k in [forged, keys::generate()] {
        let (status, body) = status_and_code(&logs.batch(&headers(&k), None, body("x")).await);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("invalid_key"), "{body}");
    }
    // A key that requires signing: unsigned 401, signed 202.
    let (status, text) =
        status_and_code(&logs.batch(&headers(&signed), None, body("unsigned")).await);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("missing_signature"), "{text}");
    let raw = r#"{"service":"billing","logs":[{"message":"signed"}]}"#;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut h = headers(&signed[..keys::PREFIX_LEN]);
    h.insert("x-tracepost-timestamp", now.to_string().parse().unwrap());
    let sig = keys::sign(&keys::hash(&signed), now, raw.as_bytes());
    h.insert("x-tracepost-signature", sig.parse().unwrap());
    let r = logs.batch(&h, None, Full::new(Bytes::from(raw))).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());

    // Rotation overlaps; revocation refuses at once.
    let (new_id, new) = store.rotate(a_id).await.unwrap();
    assert_ne!(new, a);
    for (k, msg) in [(&new, "rotated"), (&a, "old still works")] {
        assert_eq!(logs.batch(&headers(k), None, body(msg)).await.status(), 202);
    }
    assert!(store.revoke(a_id).await);
    assert!(!store.revoke(a_id).await, "revoked once");
    assert!(
        store.rotate(a_id).await.is_none(),
        "a revoked key is not rotated"
    );
    let (status, text) = status_and_code(&logs.batch(&headers(&a), None, body("no")).await);
    assert_eq!(status, 401, "{text}");
    assert!(store
        .by_prefix(&a[..keys::PREFIX_LEN])
        .await
        .unwrap()
        .is_empty());
    // The rotated key keeps the signing setting of the old one.
    let (_, rotated_signed) = store.rotate(s_id).await.unwrap();
    let (status, _) =
        status_and_code(&logs.batch(&headers(&rotated_signed), None, body("x")).await);
    assert_eq!(status, 401);

    // Last use: stored by the maintenance flush, for the keys that were used.
    logs.flush_last_used().await;
    let listed = store.list(shop).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    let used: Vec<i64> = listed
        .iter()
        .filter(|k| k.1.is_some())
        .map(|k| k.0)
        .collect();
    assert!(used.contains(&a_id) && used.contains(&new_id), "{listed:?}");
    assert!(
        !used.contains(listed.last().map(|k| &k.0).unwrap()),
        "{listed:?}"
    );
    let revoked: Vec<i64> = listed
        .iter()
        .filter(|k| k.2.is_some())
        .map(|k| k.0)
        .collect();
    assert_eq!(revoked, [a_id]);

    tp.shutdown(Duration::from_secs(5)).await;
    let events = sink.stored();
    let mut got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.message.as_str(),
                e.attributes["ingest.project"].as_str().unwrap(),
                e.attributes["ingest.key"].as_str().unwrap(),
            )
        })
        .collect();
    got.sort();
    let p = |k: &str| k[..keys::PREFIX_LEN].to_owned();
    let want = [
        ("from a", "shop", p(&a)),
        ("from b", "shop", p(&b)),
        ("from other", "other", p(&o)),
        ("old still works", "shop", p(&a)),
        ("rotated", "shop", p(&new)),
        ("signed", "shop", p(&signed)),
    ];
    let want: Vec<(&str, &str, &str)> = want
        .iter()
        .map(|(m, pr, k)| (*m, *pr, k.as_str()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_behaviour_in_postgres() {
    let db = db!("key_behaviour");
    let store = PostgresSink::builder(&db.url)
        .connect_store()
        .await
        .unwrap();
    key_behaviour(store.clone()).await;
    drop(store);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_behaviour_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::new(
        dir.path().join("tracepost.sqlite3"),
        tracepost_sqlite::TimeRange::default(),
        None,
    );
    key_behaviour(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_command_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracepost.sqlite3");
    let file = file.to_str().unwrap().to_owned();
    // Issue 13, S9: a missing file (a mistyped path) is refused, and nothing is created.
    let missing = dir.path().join("nonexistent/dir/x.db");
    let out = Command::new(env!("CARGO_BIN_EXE_tracepost"))
        .args(["--sqlite", missing.to_str().unwrap(), "keys", "create", "a"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no SQLite store at") && stderr.contains("--create"),
        "{stderr}"
    );
    assert!(!dir.path().join("nonexistent").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_tracepost"))
        .args(["keys", "create", "a"])
        .env("DATABASE_URL", format!("sqlite:{file}"))
        .output()
        .unwrap();
    assert!(!out.status.success() && !std::path::Path::new(&file).exists());
    // Empty names and names with control characters are refused, naming why.
    for (name, why) in [
        ("", "empty"),
        ("  ", "empty"),
        ("shop\nINFO forged", "control"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tracepost"))
            .args(["--sqlite", &file, "--create", "keys", "create", name])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(why),
            "{name:?}: {stderr}"
        );
    }
    let prefix = the_keys_command_over(&["--sqlite", &file, "--create"], &[]);
    // A sqlite: URL names the same store.
    let url = format!("sqlite:{file}");
    let out = Command::new(env!("CARGO_BIN_EXE_tracepost"))
        .args(["keys", "list", "shop"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // A reader that goes away (`tracepost keys list shop | head -0`): the command ends
    // quietly instead of panicking on the closed pipe.
    let (out, stderr) = with_stdout_closed(&["keys", "list", "shop"], &url);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{:?}: {stderr}",
        out.status
    );
    // A new key's secret is shown once: a closed standard output is then a failure that
    // names the key and how to revoke it.
    let (out, stderr) = with_stdout_closed(&["keys", "create", "shop"], &url);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("was created, but its secret could not be shown")
            && stderr.contains("tracepost keys revoke"),
        "{stderr}"
    );
    let store = SqliteStore::new(&file, tracepost_sqlite::TimeRange::default(), None);
    let found = store.api_keys_by_prefix(&prefix).await.unwrap();
    assert!(found.is_empty(), "revoked keys are not found");
}

/// Runs the `tracepost` command on the store at `url` with its standard output closed before
/// it writes (`tracepost … | head -0`): its exit status and standard error.
fn with_stdout_closed(args: &[&str], url: &str) -> (std::process::Output, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracepost"))
        .args(args)
        .env("DATABASE_URL", url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// Issue 13, S5: a Postgres outage (the database refusing connections, its sessions ended)
/// does not stop known keys: the key cached before the outage is served for
/// `key_stale_ttl`; a key never looked up gets `503`; with `key_stale_ttl` 0 the old
/// behaviour; and a key revoked meanwhile stops as soon as the store answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_store_outage_serves_the_cached_key() {
    let refused = |r: &http::Response<Bytes>, status: u16, code: &str| {
        let (s, body) = status_and_code(r);
        s == status && body.contains(&format!(r#""code":"{code}""#))
    };
    let db = db!("key_outage");
    let store = PostgresSink::builder(&db.url)
        .connect_store()
        .await
        .unwrap();
    let project = store.create_project("shop").await.unwrap();
    let known = store.create_api_key(project.id).await.unwrap();
    let unseen = store.create_api_key(project.id).await.unwrap();
    let (tp, _sink) = {
        let sink = MemorySink::new("memory");
        let tp = Tracepost::builder()
            .service("host")
            .sink(sink.clone())
            .build()
            .unwrap();
        (tp, sink)
    };
    let ingest = |stale: Duration| {
        LogIngest::new(
            tp.handle(),
            LogIngestConfig::new()
                .key_cache_ttl(Duration::ZERO)
                .key_stale_ttl(stale),
            Arc::new(store.clone()),
        )
        .unwrap()
    };
    let logs = ingest(Duration::from_secs(3600));
    let strict = ingest(Duration::ZERO);
    for l in [&logs, &strict] {
        let r = l.batch(&headers(&known.key), None, body("before")).await;
        assert_eq!(r.status(), 202, "{:?}", r.body());
    }

    let (admin, conn) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
            db.name
        ))
        .await
        .unwrap();
    let r = logs.batch(&headers(&known.key), None, body("during")).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    let r = logs
        .batch(&headers(&unseen.key), None, body("unseen"))
        .await;
    assert!(refused(&r, 503, "key_store_unavailable"), "{:?}", r.body());
    let r = strict
        .batch(&headers(&known.key), None, body("strict"))
        .await;
    assert!(refused(&r, 503, "key_store_unavailable"), "{:?}", r.body());

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .unwrap();
    assert!(store.revoke_api_key(known.id).await.unwrap());
    let r = logs
        .batch(&headers(&known.key), None, body("revoked"))
        .await;
    assert!(refused(&r, 401, "invalid_key"), "{:?}", r.body());
    let r = logs.batch(&headers(&unseen.key), None, body("after")).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    tp.shutdown(Duration::from_secs(5)).await;
    drop((logs, strict, store));
    db.drop_db().await;
}
