//! Run: `cargo run --release --manifest-path benches/actix-peers/Cargo.toml -- tracepost 127.0.0.1:3200`
//!
//! The actix-web app `scripts/bench-actix.sh` measures, in the modes a user would choose
//! between (issue 9's benchmark):
//! - `bare`: the routes alone;
//! - `tracepost`: tracepost's middleware with its default capture (metrics, snapshots of
//!   failures, the tracing layer), events to the NDJSON sink in a temporary directory, and
//!   `/metrics`;
//! - `actix-web-prom`: `PrometheusMetricsBuilder` with `/metrics` (request count and
//!   duration histogram per endpoint);
//! - `sentry-actix`: `sentry_actix::Sentry` with a client initialised (a DSN pointing at a
//!   closed local port: nothing is sent for 2xx requests, as in production).

use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;
use tracepost::prelude::*;
use tracing_subscriber::prelude::*;

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { "ok" })).route(
        "/users/{id}",
        web::get().to(|id: web::Path<u32>| async move {
            HttpResponse::Ok().json(json!({ "id": id.into_inner(), "name": "ann" }))
        }),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3200".into());
    // sentry's guard must outlive the server; it is created outside the actix runtime.
    let _sentry = (mode == "sentry-actix").then(|| {
        sentry::init((
            "http://public@127.0.0.1:9/1",
            sentry::ClientOptions {
                release: Some("bench".into()),
                ..Default::default()
            },
        ))
    });
    actix_web::rt::System::new().block_on(run(mode, addr))
}

async fn run(mode: String, addr: String) -> Result<(), Box<dyn std::error::Error>> {
    match mode.as_str() {
        "bare" => {
            HttpServer::new(|| App::new().configure(routes))
                .bind(&addr)?
                .run()
                .await?
        }
        "tracepost" => {
            let dir = std::env::temp_dir().join(format!("tracepost-bench-{}", std::process::id()));
            let tp = tracepost::Tracepost::builder()
                .service("bench")
                .sink(tracepost::sinks::JsonlFile::new(&dir))
                .build()?;
            tracing_subscriber::registry()
                .with(tp.tracing_layer())
                .init();
            let handle = tp.handle();
            HttpServer::new(move || {
                App::new()
                    .wrap(handle.actix())
                    .service(handle.actix_metrics())
                    .configure(routes)
            })
            .bind(&addr)?
            .run()
            .await?;
            tp.shutdown(Duration::from_secs(5)).await;
            let _ = std::fs::remove_dir_all(dir);
        }
        "actix-web-prom" => {
            let prometheus = actix_web_prom::PrometheusMetricsBuilder::new("api")
                .endpoint("/metrics")
                .build()
                .map_err(|e| e.to_string())?;
            HttpServer::new(move || App::new().wrap(prometheus.clone()).configure(routes))
                .bind(&addr)?
                .run()
                .await?
        }
        "sentry-actix" => {
            HttpServer::new(|| {
                App::new()
                    .wrap(sentry_actix::Sentry::new())
                    .configure(routes)
            })
            .bind(&addr)?
            .run()
            .await?
        }
        other => {
            return Err(format!(
                "unknown mode {other:?}: bare | tracepost | actix-web-prom | sentry-actix"
            )
            .into())
        }
    }
    Ok(())
}
