//! schemathesis (PyPI) against the live routes and their OpenAPI document: every response
//! must match the document, over SQLite and PostgreSQL (skipped without a server unless
//! `CI=true`) (status, content type, headers, body schema), no input may get a
//! 5xx, and input that breaks the document must be refused. A bounded number of examples per
//! route (`TRACEPOST_SCHEMATHESIS_EXAMPLES`, default 60) keeps it to about a minute.
//!
//! schemathesis comes from `scripts/setup.sh` (a venv at
//! `~/.cache/tracepost-schemathesis-venv`, or `TRACEPOST_SCHEMATHESIS` naming the command).
//! Missing, the test is skipped loudly — and fails under `CI=true`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use common::{dataset, serve, PgDb, TOKEN};
use tracepost_api::ApiConfig;
use tracepost_core::store::Store;
use tracepost_core::tail::LiveTail;
use tracepost_core::{Event, Sink, Timestamp};
use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteSink;

fn schemathesis() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TRACEPOST_SCHEMATHESIS").map(PathBuf::from),
        std::env::var_os("TRACEPOST_SCHEMATHESIS_VENV")
            .map(|v| PathBuf::from(v).join("bin/schemathesis")),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/tracepost-schemathesis-venv/bin/schemathesis")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

const ROUTES: [&str; 6] = [
    "/tracepost/api/events",
    "/tracepost/api/events/{id}",
    "/tracepost/api/histogram",
    "/tracepost/api/issues",
    "/tracepost/api/issues/{fingerprint}",
    "/tracepost/api/issues/{fingerprint}/status",
];

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
     response_headers_conformance,response_schema_conformance,negative_data_rejection,\
     unsupported_method";

async fn run(base: &str, include: &[&str], checks: &str) -> (bool, String) {
    let bin = schemathesis().unwrap();
    let examples = std::env::var("TRACEPOST_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "60".into());
    // schemathesis keeps a cache (`.schemathesis/`) in its working directory: a temporary
    // one, not the source tree.
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.current_dir(cwd.path());
    cmd.arg("run")
        .arg(format!("{base}/tracepost/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", checks])
        .args(["--max-examples", &examples])
        .args(["--seed", "14"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "10"])
        // One worker: hypothesis' lambda descriptions race on CPython 3.11's parser with more
        // ("AST constructor recursion depth mismatch").
        .args(["--workers", "1"])
        .arg("--no-color")
        .kill_on_drop(true);
    for path in include {
        cmd.args(["--include-path", path]);
    }
    let out = cmd.output().await.unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_every_response_in_the_document() {
    if schemathesis().is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "schemathesis is required under CI=true (scripts/setup.sh installs it)"
        );
        eprintln!(
            "!!! SKIPPING schemathesis: not installed (run scripts/setup.sh, or set \
             TRACEPOST_SCHEMATHESIS)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::new(dir.path());
    let events: Vec<Arc<Event>> = dataset(Timestamp::now().unix_nanos() - 3_600_000_000_000)
        .into_iter()
        .map(Arc::new)
        .collect();
    sink.send(events).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sink.store().clone());
    let started = Instant::now();
    // Everything but the endless tail stream, over a store with data.
    let base = serve(store.clone(), ApiConfig::new(TOKEN)).await;
    let (ok, text) = run(&base, &ROUTES, CHECKS).await;
    eprintln!("{text}");
    assert!(
        ok,
        "schemathesis found responses outside the document (above)"
    );
    // The same over PostgreSQL (what it refuses differs: NUL bytes, huge numbers, …).
    if let Some(db) = PgDb::new("schemathesis over PostgreSQL").await {
        let pg = PostgresSink::builder(db.url()).connect().await.unwrap();
        let events: Vec<Arc<Event>> = dataset(Timestamp::now().unix_nanos() - 3_600_000_000_000)
            .into_iter()
            .map(Arc::new)
            .collect();
        pg.send(events).await.unwrap();
        let pg_store: Arc<dyn Store> = Arc::new(pg.store().clone());
        let pg_base = serve(pg_store, ApiConfig::new(TOKEN)).await;
        let (ok, text) = run(&pg_base, &ROUTES, CHECKS).await;
        eprintln!("{text}");
        assert!(
            ok,
            "schemathesis over PostgreSQL: responses outside the document (above)"
        );
        drop(pg);
        db.drop_db().await;
    }
    // The tail route's answers without a stream to hold open: bad filters (400) and no
    // client slot (the documented 503, set up on purpose here, so `not_a_server_error` is
    // left out of this pass) — its 200 is an endless stream, tested in tests/tail.rs.
    let tail = LiveTail::with_limits(16, 1);
    let _held = tail.subscribe().unwrap();
    let base = serve(store, ApiConfig::new(TOKEN).live_tail(tail)).await;
    let (ok, text) = run(
        &base,
        &["/tracepost/api/tail"],
        &CHECKS.replace("not_a_server_error,", ""),
    )
    .await;
    eprintln!("{text}");
    assert!(
        ok,
        "schemathesis found tail responses outside the document (above)"
    );
    eprintln!("schemathesis took {:?}", started.elapsed());
}
