//! Run: `cargo run -p quickstart` then, in another terminal, `curl -i localhost:3000/panic`,
//! or open <http://localhost:3000/> in a browser.
//!
//! An axum app with tracepost on the embedded sinks: every error, panic and slow request is
//! printed to the console, appended to `./tracepost-data/events-*.ndjson` and stored,
//! queryable, in `./tracepost-data/tracepost.sqlite3`; the Prometheus metrics are served at
//! `/metrics`. Its demo page at `/` loads the browser script, `/tracepost/tp.js`, whose errors,
//! page views and events arrive through the ingest routes into the same sinks. Services in
//! any language send their logs to `/tracepost/v1/batch` (the copy-paste clients in
//! `clients/`) and `/tracepost/v1/logs` (OTLP/HTTP) with the project API key
//! `TRACEPOST_API_KEY` (or the one generated for this run and printed at start).

// ANCHOR: imports
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracepost::ingest::logs::keys::BoxFuture;
use tracepost::ingest::logs::{KeyRecord, KeyStore};
use tracepost::prelude::*;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;
// ANCHOR_END: imports

// ANCHOR: main
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: sinks
    let sqlite = tracepost::sinks::sqlite::SqliteSink::new(data_dir()); // opened on first use
    let store = Arc::new(sqlite.store().clone()); // what the console reads
    let key_store = sqlite.store().clone(); // the log routes' project API keys
    let tail = tracepost::console::LiveTail::default(); // the console's live tail
    let replays = replay_store()?; // where the replay segments go, and the console reads them
    let builder = tracepost::Tracepost::builder()
        .service("quickstart")
        .sink(tracepost::sinks::Console::default())
        .sink(tracepost::sinks::JsonlFile::new(data_dir()))
        .sink(sqlite)
        .sink(tail.sink())
        // A disk spool per sink, for what cannot be delivered at once.
        .data_dir(data_dir())
        // Browser capture: the demo page's script tag names this public key.
        .browser(tracepost::ingest::IngestConfig::new().key("pk_quickstart"))
        // Session replay: the demo page's recordings go to ./tracepost-data/objects, or to
        // S3/MinIO when TRACEPOST_REPLAY_S3_BUCKET names a bucket (feature `s3`).
        .replay_to(
            tracepost::object_store::ReplayStore::new(replays.clone()),
            tracepost::ingest::ReplayConfig::new(),
        );
    // ANCHOR_END: sinks

    // The per-route metric windows (the console's Routes page) are 60 s long unless
    // TRACEPOST_METRIC_WINDOW_SECS says otherwise.
    let builder = match std::env::var("TRACEPOST_METRIC_WINDOW_SECS").map(|s| s.parse::<u64>()) {
        Ok(Ok(secs)) => builder.metric_window(Duration::from_secs(secs.max(1))),
        _ => builder,
    };

    // The external sinks join when their service is configured (as in docker-compose.yml).
    // Neither connects here: a database or Loki that is down (or refuses us) leaves the app
    // serving, the sink `down` on /health, and its events in the spool until it is back.
    // Each is behind a cargo feature of the quickstart (`--features postgres,loki`, on in
    // docker-compose.yml), so that the first build compiles only the embedded sinks.
    #[cfg(feature = "postgres")]
    let builder = match std::env::var("DATABASE_URL") {
        Ok(url) => builder.sink(tracepost::sinks::postgres::PostgresSink::new(&url)?),
        Err(_) => builder,
    };
    #[cfg(feature = "loki")]
    let builder = match std::env::var("LOKI_URL") {
        Ok(url) => {
            use tracepost::sinks::loki::{Limits, LokiConfig, LokiSink};
            // LOKI_MAX_LINE_BYTES, LOKI_MAX_AGE, …: the Loki's per-tenant limits, so that the
            // sink shortens or holds back what that Loki would refuse.
            let config = LokiConfig::new(url).limits(Limits::default().from_env()?);
            builder.sink(LokiSink::with_config(config)?)
        }
        Err(_) => builder,
    };
    warn_unbuilt_sinks();

    let addr: SocketAddr = std::env::var("QUICKSTART_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;

    // A backend request or error of a recorded browser session links to that moment of the
    // replay in the console (attribute `replay.url`, in every sink).
    let tp = builder
        .replay_console_url(format!("http://{addr}/tracepost/console"))
        .build()?;
    // ANCHOR: spans_on
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with(tracing_subscriber::fmt::layer())
        // Spans at INFO and above become `span` events (the console's trace waterfall).
        .with(tp.tracing_layer().span_level(tracing::Level::INFO))
        .init();
    // ANCHOR_END: spans_on

    // ANCHOR: logs
    // The log routes' project API key: TRACEPOST_API_KEY, or a new one for this run.
    let (api_key, api_key_generated) = api_key()?;
    // Keys created in the SQLite file (`tracepost keys create --sqlite
    // ./tracepost-data/tracepost.sqlite3 <project>`) are accepted too.
    let keys = QuickstartKeys {
        env: tracepost::ingest::logs::StaticKeys::new([("quickstart", api_key.as_str())], false),
        stored: key_store,
    };
    let log_ingest =
        tracepost::ingest::LogIngest::new(tp.handle(), log_ingest_config()?, Arc::new(keys))?;
    // ANCHOR_END: logs

    // ANCHOR: console
    // The console at /tracepost/console: sign in with TRACEPOST_CONSOLE_TOKEN (or the
    // token printed below); "replay request" sends captured GET/HEAD requests to this app.
    let (token, generated) = console_token()?;
    let console = tp.console(store.clone());
    // The viewer's rrweb-player: from jsDelivr, or served here from the npm package in
    // QUICKSTART_RRWEB_PLAYER (for a console without internet access).
    let player = quickstart::player_dir();
    let console = match player {
        Some(_) => console.replay_player(quickstart::PLAYER_JS, quickstart::PLAYER_CSS),
        None => console,
    };
    let console = console
        .admin_token(token.clone())
        .live_tail(tail.clone())
        // Recorded sessions: the segments the replay route stores under the data dir.
        .replays(tracepost::object_store::ReplayStore::new(replays))
        .replay_base_url(&format!("http://{addr}/"))?
        .build()?;

    // tracepost's own routes (/metrics, /health, /tracepost/tp.js and the ingest routes, the
    // console) mark their responses, so the layer doesn't record them as app requests: the
    // browser's batches become events of their own. Merge every router *before* the layer,
    // so the layer also wraps the fallback and unmatched requests are measured (`_unmatched`).
    let mut app = quickstart::app();
    if let Some(dir) = player {
        app = app.merge(quickstart::player_router(dir));
    }
    let app = app
        .merge(tp.metrics_router())
        .merge(tp.health_router())
        .merge(tp.ingest_router()?)
        // Logs from services in any language (OTLP/HTTP and the clients' JSON batch): each
        // log becomes an event of its own.
        .merge(tracepost::ingest::logs_router(log_ingest))
        .merge(console.router())
        // The query API at /tracepost/api (JSON, the live tail as SSE, the OpenAPI
        // document), with the console's admin token as a bearer token.
        .merge(tracepost::api::router(
            store,
            tracepost::api::ApiConfig::new(token.clone()).live_tail(tail),
        )?)
        .layer(tp.layer());
    // ANCHOR_END: console

    print_banner(
        addr,
        generated.then_some(token.as_str()),
        api_key_generated.then_some(api_key.as_str()),
    );
    // On Ctrl-C or SIGTERM, stop accepting and let the requests in flight finish — but not
    // forever: an open live-tail stream or a client trickling its request head would hold a
    // graceful shutdown indefinitely. After SHUTDOWN_GRACE_SECS (10 s) stop waiting for them.
    let grace = Duration::from_secs(
        std::env::var("SHUTDOWN_GRACE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut signalled = stopping.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = signalled.wait_for(|s| *s).await;
    });
    let mut signalled = stopping;
    tokio::select! {
        served = server => served?,
        _ = async {
            let _ = signalled.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "connections still open after the signal; closing them"),
    }

    let report = tp.shutdown(Duration::from_secs(5)).await;
    tracing::info!(completed = report.completed, "tracepost flushed");
    Ok(())
}
// ANCHOR_END: main

/// A sink configured in the environment but not compiled in says so, instead of silently
/// sending nothing there.
fn warn_unbuilt_sinks() {
    for (var, feature, on) in [
        ("DATABASE_URL", "postgres", cfg!(feature = "postgres")),
        ("LOKI_URL", "loki", cfg!(feature = "loki")),
        ("TRACEPOST_REPLAY_S3_BUCKET", "s3", cfg!(feature = "s3")),
    ] {
        if !on && std::env::var_os(var).is_some() {
            eprintln!(
                "quickstart: {var} is set but this build lacks the {feature} feature; \
                 run `cargo run -p quickstart --features {feature}`"
            );
        }
    }
}

/// The replay segments' store: S3 or MinIO when `TRACEPOST_REPLAY_S3_BUCKET` is set and the
/// quickstart is built with `--features s3` (see [`s3_store`]), else the directory
/// `{data dir}/objects`.
fn replay_store() -> Result<tracepost::sinks::opendal::OpendalStore, Box<dyn std::error::Error>> {
    #[cfg(feature = "s3")]
    if let Ok(bucket) = std::env::var("TRACEPOST_REPLAY_S3_BUCKET") {
        return s3_store(&bucket);
    }
    Ok(tracepost::sinks::opendal::OpendalStore::fs(
        std::path::Path::new(&data_dir()).join("objects"),
    )?)
}

/// The bucket on S3 or an S3-compatible server, through OpenDAL's `s3` service:
/// `TRACEPOST_REPLAY_S3_ENDPOINT` (e.g. MinIO's `http://minio:9000`; unset, AWS),
/// `TRACEPOST_REPLAY_S3_REGION` (default `AWS_REGION`, then `us-east-1`), and the keys in
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (unset, OpenDAL's usual AWS lookup: the
/// profile files, the instance's role). Nothing connects here: a bucket that is down or
/// refuses the keys answers the browser's upload with a 5xx, which tp-replay.js retries and
/// counts as missing in the end.
#[cfg(feature = "s3")]
fn s3_store(
    bucket: &str,
) -> Result<tracepost::sinks::opendal::OpendalStore, Box<dyn std::error::Error>> {
    use tracepost::sinks::opendal::{opendal, OpendalStore};
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let region = var("TRACEPOST_REPLAY_S3_REGION")
        .or_else(|| var("AWS_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let mut s3 = opendal::services::S3::default()
        .bucket(bucket)
        .region(&region);
    if let Some(endpoint) = var("TRACEPOST_REPLAY_S3_ENDPOINT") {
        s3 = s3.endpoint(&endpoint);
    }
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        s3 = s3.access_key_id(&id).secret_access_key(&secret);
    }
    let op = opendal::Operator::new(s3)
        .map_err(|e| format!("TRACEPOST_REPLAY_S3_*: {e}"))?
        .finish();
    Ok(OpendalStore::builder(op).build())
}

/// The console's admin token: `TRACEPOST_CONSOLE_TOKEN`, or a random one for this run
/// (true: generated, to be printed).
/// Set but shorter than the console accepts: an error naming the variable.
fn console_token() -> Result<(String, bool), String> {
    match std::env::var("TRACEPOST_CONSOLE_TOKEN") {
        Ok(t) if !t.is_empty() => {
            let min = tracepost::console::MIN_TOKEN_LEN;
            if t.chars().count() < min {
                return Err(format!(
                    "TRACEPOST_CONSOLE_TOKEN must be at least {min} characters (or unset it for a random one)"
                ));
            }
            Ok((t, false))
        }
        // Unset or empty: a random token for this run.
        _ => {
            let bytes: [u8; 16] = rand::random();
            let t: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Ok((t, true))
        }
    }
}

/// The log routes' keys: the one from the environment (or generated), then those in the
/// SQLite file. Ids of the first are negative, so that only stored keys' last use is stored.
struct QuickstartKeys {
    env: tracepost::ingest::logs::StaticKeys,
    stored: tracepost::sinks::sqlite::SqliteStore,
}

impl KeyStore for QuickstartKeys {
    fn by_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<KeyRecord>, String>> {
        Box::pin(async move {
            let mut found: Vec<KeyRecord> = self.env.by_prefix(prefix).await?;
            for k in &mut found {
                k.id = -1 - k.id;
            }
            match self.stored.by_prefix(prefix).await {
                Ok(stored) => found.extend(stored),
                // The file unreadable: the environment's key still works.
                Err(e) if found.is_empty() => return Err(e),
                Err(_) => {}
            }
            Ok(found)
        })
    }

    fn touch(&self, used: Vec<(i64, SystemTime)>) -> BoxFuture<'_, Result<(), String>> {
        self.stored
            .touch(used.into_iter().filter(|(id, _)| *id >= 0).collect())
    }
}

/// The log routes' API key: `TRACEPOST_API_KEY` (`tpk_` and 64 hex digits, as `tracepost
/// keys create` prints them), or a random one for this run (true: generated, to be printed).
fn api_key() -> Result<(String, bool), String> {
    match std::env::var("TRACEPOST_API_KEY") {
        Ok(k) if tracepost::ingest::logs::keys::is_well_formed(&k) => Ok((k, false)),
        Ok(_) => Err("TRACEPOST_API_KEY must be tpk_ and 64 hex digits".into()),
        Err(_) => Ok((tracepost::ingest::logs::keys::generate(), true)),
    }
}

/// The log routes' settings: the defaults, with the per-key rate limit from
/// `TRACEPOST_LOG_KEY_RATE` (requests per second, default 100) and `TRACEPOST_LOG_KEY_BURST`
/// (default 200).
fn log_ingest_config() -> Result<tracepost::ingest::LogIngestConfig, String> {
    let config = tracepost::ingest::LogIngestConfig::new();
    let var = |name: &str, default: u32| match std::env::var(name) {
        Ok(v) => v
            .parse::<u32>()
            .map_err(|_| format!("{name} must be a whole number, not {v:?}")),
        Err(_) => Ok(default),
    };
    let rate = var("TRACEPOST_LOG_KEY_RATE", config.per_key_rate)?;
    let burst = var("TRACEPOST_LOG_KEY_BURST", config.per_key_burst)?;
    Ok(config.per_key_limit(rate, burst))
}

fn data_dir() -> String {
    std::env::var("TRACEPOST_DATA").unwrap_or_else(|_| "./tracepost-data".into())
}

fn print_banner(addr: SocketAddr, generated_token: Option<&str>, generated_key: Option<&str>) {
    match generated_token {
        Some(t) => println!(
            "console: http://{addr}/tracepost/console (admin token for this run: {t}; set TRACEPOST_CONSOLE_TOKEN to choose one)"
        ),
        None => println!(
            "console: http://{addr}/tracepost/console (admin token: $TRACEPOST_CONSOLE_TOKEN)"
        ),
    }
    match generated_key {
        Some(k) => println!(
            "logs: POST http://{addr}/tracepost/v1/batch and /tracepost/v1/logs (OTLP) with x-tracepost-key: {k} (for this run; set TRACEPOST_API_KEY to choose one)"
        ),
        None => println!(
            "logs: POST http://{addr}/tracepost/v1/batch and /tracepost/v1/logs (OTLP) with x-tracepost-key: $TRACEPOST_API_KEY"
        ),
    }
    println!(
        "query API: http://{addr}/tracepost/api (the same token as 'Authorization: Bearer'; \
         its OpenAPI document: http://{addr}/tracepost/api/openapi.json)"
    );
    println!(
        "\ntracepost quickstart listening on http://{addr}\n\
         open http://{addr}/ in a browser (a demo page with the browser script), or try:\n  curl -i http://{addr}/users/7\n  curl -i http://{addr}/fail\n  curl -i -H 'Authorization: Bearer secret' http://{addr}/panic\n  curl -i http://{addr}/slow\n  curl -N http://{addr}/stream\n  curl http://{addr}/metrics\n  curl http://{addr}/health\n\
         events: printed below (stderr) and appended to {0}/events-*.ndjson, stored in {0}/tracepost.sqlite3\n",
        data_dir()
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        // A handler that can't be installed must not read as a signal (and stop the server).
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => drop(s.recv().await),
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
