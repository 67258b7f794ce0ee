//! Send errors, logs and request snapshots to Loki.
//!
//! ```text
//! docker compose up -d loki grafana     # or any Loki ≥ 2.9 on :3100
//! LOKI_URL=http://localhost:3100 cargo run -p tracepost-loki --example loki_quickstart
//! # match a Loki with smaller per-tenant limits:
//! LOKI_MAX_LINE_BYTES=4096 LOKI_MAX_AGE=1h cargo run -p tracepost-loki --example loki_quickstart
//! ```

// ANCHOR: imports
use std::time::Duration;

use tracepost_core::{ErrorDetail, Event, Kind, Level, RequestSnapshot, Tracepost};
use tracepost_loki::{Limits, LokiConfig, LokiSink};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("LOKI_URL").unwrap_or_else(|_| "http://localhost:3100".into());

    // ANCHOR: setup
    let loki = LokiSink::with_config(
        LokiConfig::new(url)
            // .tenant("team-a")                      // X-Scope-OrgID, for multi-tenant Loki
            // .basic_auth("123456", "glc_…")         // Grafana Cloud: instance id + token
            .static_label("cluster", "eu-1") // constant labels only
            .timeout(Duration::from_secs(10))
            // LOKI_MAX_LINE_BYTES, LOKI_MAX_AGE, …: your Loki's limits (Limits::from_env)
            .limits(Limits::default().from_env()?),
    )?;
    let tp = Tracepost::builder()
        .service("shop-api")
        .environment("production")
        .sink_with(loki, LokiSink::sink_options()) // batches of ≤ 1 MiB, sent within 1 s
        .build()?;
    // ANCHOR_END: setup

    let handle = tp.handle();
    let mut error = Event::new(Kind::Error, Level::Error, "could not save order")
        .with_trace(
            "4bf92f3577b34da6a3ce929d0e0e4736",
            Some("00f067aa0ba902b7".into()),
        )
        .with_error(ErrorDetail {
            error_type: "sqlx::Error".into(),
            message: "connection reset by peer".into(),
            backtrace: None,
            location: Some("src/orders.rs:42".into()),
        })
        .with_request(RequestSnapshot {
            method: "POST".into(),
            route: "/orders/{id}/items".into(),
            path: "/orders/9812/items".into(),
            status: 500,
            duration_ms: 183.4,
            ..Default::default()
        });
    error.user_id = Some("user-17".into());
    error.session_id = Some("b1c9e0".into());
    handle.capture(error);
    handle.capture(
        Event::new(Kind::Log, Level::Info, "order saved")
            .with_trace("4bf92f3577b34da6a3ce929d0e0e4736", None)
            .with_attribute("order_id", 9812),
    );

    // ANCHOR: shutdown
    let report = tp.shutdown(Duration::from_secs(5)).await;
    println!("{:?}", report.sinks);
    // ANCHOR_END: shutdown
    Ok(())
}
