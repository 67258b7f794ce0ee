//! Run: `cargo run -p quickstart` then, in another terminal, `curl -i localhost:3000/panic`,
//! or open <http://localhost:3000/> in a browser.
//!
//! An axum app with tracepost on the embedded sinks: every error, panic and slow request is
//! printed to the console, appended to `./tracepost-data/events-*.ndjson` and stored,
//! queryable, in `./tracepost-data/tracepost.sqlite3`; the Prometheus metrics are served at
//! `/metrics`. Its demo page at `/` loads the browser script, `/tracepost/tp.js`, whose errors,
//! page views and events arrive through the ingest routes into the same sinks.

// ANCHOR: imports
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    let tail = tracepost::console::LiveTail::default(); // the console's live tail
    let builder = tracepost::Tracepost::builder()
        .service("quickstart")
        .sink(tracepost::sinks::Console::default())
        .sink(tracepost::sinks::JsonlFile::new(data_dir()))
        .sink(sqlite)
        .sink(tail.sink())
        // A disk spool per sink, for what cannot be delivered at once.
        .data_dir(data_dir())
        // Browser capture: the demo page's script tag names this public key.
        .browser(tracepost::ingest::IngestConfig::new().key("pk_quickstart"));
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
    let tp = builder.build()?;
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with(tracing_subscriber::fmt::layer())
        .with(tp.tracing_layer())
        .init();

    let addr: SocketAddr = std::env::var("QUICKSTART_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;

    // ANCHOR: console
    // The console at /tracepost/console: sign in with TRACEPOST_CONSOLE_TOKEN (or the
    // token printed below); "replay request" sends captured GET/HEAD requests to this app.
    let (token, generated) = console_token();
    let console = tp
        .console(store.clone())
        .admin_token(token.clone())
        .live_tail(tail.clone())
        .replay_base_url(&format!("http://{addr}/"))?
        .build()?;

    // tracepost's own routes (/metrics, /health, /tracepost/tp.js and the ingest routes, the
    // console) mark their responses, so the layer doesn't record them as app requests: the
    // browser's batches become events of their own. Merge every router *before* the layer,
    // so the layer also wraps the fallback and unmatched requests are measured (`_unmatched`).
    let app = quickstart::app()
        .merge(tp.metrics_router())
        .merge(tp.health_router())
        .merge(tp.ingest_router()?)
        .merge(console.router())
        // The query API at /tracepost/api (JSON, the live tail as SSE, the OpenAPI
        // document), with the console's admin token as a bearer token.
        .merge(tracepost::api::router(
            store,
            tracepost::api::ApiConfig::new(token.clone()).live_tail(tail),
        )?)
        .layer(tp.layer());
    // ANCHOR_END: console

    print_banner(addr, generated.then_some(token.as_str()));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;

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
    ] {
        if !on && std::env::var_os(var).is_some() {
            eprintln!(
                "quickstart: {var} is set but this build has no {feature} sink; \
                 run `cargo run -p quickstart --features {feature}`"
            );
        }
    }
}

/// The console's admin token: `TRACEPOST_CONSOLE_TOKEN`, or a random one for this run
/// (true: generated, to be printed).
fn console_token() -> (String, bool) {
    match std::env::var("TRACEPOST_CONSOLE_TOKEN") {
        Ok(t) => (t, false),
        Err(_) => {
            let bytes: [u8; 16] = rand::random();
            let t: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            (t, true)
        }
    }
}

fn data_dir() -> String {
    std::env::var("TRACEPOST_DATA").unwrap_or_else(|_| "./tracepost-data".into())
}

fn print_banner(addr: SocketAddr, generated_token: Option<&str>) {
    match generated_token {
        Some(t) => println!(
            "console: http://{addr}/tracepost/console (admin token for this run: {t}; set TRACEPOST_CONSOLE_TOKEN to choose one)"
        ),
        None => println!(
            "console: http://{addr}/tracepost/console (admin token: $TRACEPOST_CONSOLE_TOKEN)"
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
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
