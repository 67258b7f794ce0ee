//! The app the fault-injection suite kills with SIGKILL and starts again: the quickstart's
//! routes with tracepost writing to Postgres, spooling to `TRACEPOST_DATA` what it cannot
//! deliver.
//!
//! Run: `TRACEPOST_PG_URL=postgres://postgres@127.0.0.1:5432/db TRACEPOST_DATA=/tmp/d \
//!       cargo run -p tracepost-tests --bin fault-app -- 127.0.0.1:3300`

use std::time::Duration;

use tracepost::prelude::*;
use tracepost::{BatchOptions, RetryOptions, SinkOptions};
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3300".into());
    let url = std::env::var("TRACEPOST_PG_URL")?;
    let data = std::env::var("TRACEPOST_DATA")?;
    // Without a reachable server, start anyway: events go to the spool until it comes back.
    let sink = tracepost_postgres::PostgresSink::builder(url.clone())
        .connect_timeout(Duration::from_secs(1))
        .build()?; // no I/O: connects (and migrates) on the first delivery
    let options = SinkOptions::default()
        .batch(BatchOptions::new(500, 1 << 20, Duration::from_millis(50)))
        .retry(RetryOptions::new(
            10,
            Duration::from_millis(50),
            Duration::from_millis(500),
        ));
    let tp = tracepost::Tracepost::builder()
        .service("fault-app")
        .data_dir(&data)
        .sink_with(sink, options)
        .build()?;
    tracing_subscriber::registry()
        .with(tp.tracing_layer())
        .init();
    let app = quickstart::app()
        .merge(tp.metrics_router())
        .merge(tp.health_router())
        .layer(tp.layer());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // A handler that can't be installed must not read as a signal (and stop the server).
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    tp.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
