//! Run: `cargo run -p actix-quickstart` then, in another terminal, `curl -i localhost:3000/panic`.
//!
//! An actix-web app with tracepost on the embedded sinks: every error, panic and slow request
//! is printed to the console and appended to `./tracepost-data/events-*.ndjson`, and the
//! Prometheus metrics are served at `/metrics`.

// ANCHOR: imports
use std::time::Duration;

use actix_web::HttpServer;
use tracepost::prelude::*;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;
// ANCHOR_END: imports

// ANCHOR: main
#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tp = tracepost::Tracepost::builder()
        .service("actix-quickstart")
        .sink(tracepost::sinks::Console::default())
        .sink(tracepost::sinks::JsonlFile::new(data_dir()))
        .data_dir(data_dir())
        .build()?;
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with(tracing_subscriber::fmt::layer())
        .with(tp.tracing_layer())
        .init();

    let handle = tp.handle();
    let addr = std::env::var("QUICKSTART_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let server = HttpServer::new(move || actix_quickstart::app(&handle)).bind(&addr)?;
    println!("tracepost actix quickstart listening on http://{addr}");
    server.run().await?; // stops on Ctrl-C / SIGTERM

    let report = tp.shutdown(Duration::from_secs(5)).await;
    tracing::info!(completed = report.completed, "tracepost flushed");
    Ok(())
}
// ANCHOR_END: main

fn data_dir() -> String {
    std::env::var("TRACEPOST_DATA").unwrap_or_else(|_| "./tracepost-data".into())
}
