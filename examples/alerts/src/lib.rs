//! Grouped alerts in Discord: the book's "Get grouped alerts in Discord" recipe includes this
//! file.

// ANCHOR: imports
use std::path::Path;

use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tracepost::alerts::discord::DiscordWebhook;
use tracepost::alerts::{AlertEngine, AlertRules};
use tracepost::prelude::*;
use tracepost::Tracepost;
// ANCHOR_END: imports

// ANCHOR: engine
/// The alert engine: rules from `alerts.toml`, alerts to one Discord webhook, known issues
/// remembered in the data dir, and a link to each issue in the query API.
pub fn alert_engine(
    discord_webhook_url: &str,
    data_dir: &Path,
) -> Result<AlertEngine, Box<dyn std::error::Error>> {
    let rules: AlertRules = toml::from_str(include_str!("../alerts.toml"))?;
    let engine = AlertEngine::builder()
        .notifier(DiscordWebhook::new(discord_webhook_url)?)
        .rules(rules)
        .data_dir(data_dir)
        .link_template("http://localhost:3002/api/issues/{fingerprint}")
        .build()?;
    Ok(engine)
}

/// The pipeline, with the engine as one of its sinks.
pub fn pipeline(
    engine: &AlertEngine,
    data_dir: &Path,
) -> Result<Tracepost, Box<dyn std::error::Error>> {
    let tp = Tracepost::builder()
        .service("shop")
        .environment("production")
        .data_dir(data_dir)
        .sink(tracepost::sinks::Console::default())
        .sink(engine.clone())
        .build()?;
    Ok(tp)
}
// ANCHOR_END: engine

// ANCHOR: app
/// The app: `GET /orders/{id}` fails with a 500 for order 0; `POST /admin/alerts/test`
/// (bearer token) sends a test alert.
pub fn app(tp: &Tracepost, admin_token: &str) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .merge(tp.alerts_admin_router(admin_token))
        .layer(tp.layer())
}
// ANCHOR_END: app

async fn order(UrlPath(id): UrlPath<u64>) -> Result<String, StatusCode> {
    if id == 0 {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(format!("order {id}"))
}
