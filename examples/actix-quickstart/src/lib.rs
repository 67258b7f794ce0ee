//! The quickstart's routes on actix-web, in a library so that tests drive the same app.

// ANCHOR: imports
use std::collections::HashMap;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, Responder};
use bytes::Bytes;
use serde_json::{json, Value};
use tracepost::prelude::*;
// ANCHOR_END: imports

// ANCHOR: app
/// The app: tracepost's middleware, `/metrics`, `/health` and the routes.
pub fn app(
    tp: &tracepost::TracepostHandle,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(tp.actix())
        .service(tp.actix_metrics())
        .service(tp.actix_health())
        .configure(routes)
}
// ANCHOR_END: app

/// The app's routes (without tracepost), the same as the axum quickstart's.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| async {
            "tracepost actix quickstart: try /users/7, /fail, /panic, /slow, /stream\n"
        }),
    )
    .route("/users/{id}", web::get().to(user))
    .route("/checkout", web::post().to(checkout))
    .route("/fail", web::get().to(fail))
    .route("/panic", web::get().to(panic))
    .route("/slow", web::get().to(slow))
    .route("/stream", web::get().to(stream));
}

async fn user(id: web::Path<u32>) -> Result<web::Json<Value>, actix_web::Error> {
    let id = id.into_inner();
    tracing::info!(user_id = id, "loading user");
    if id == 0 {
        return Err(actix_web::error::ErrorNotFound("no such user"));
    }
    Ok(web::Json(json!({ "id": id, "name": format!("user {id}") })))
}

async fn checkout(order: web::Json<Value>) -> impl Responder {
    tracing::info!(
        items = order["items"].as_array().map_or(0, Vec::len),
        "checking out"
    );
    tracing::warn!("payment provider answered 503");
    HttpResponse::build(StatusCode::BAD_GATEWAY)
        .json(json!({ "error": "payment provider unavailable" }))
}

async fn fail() -> impl Responder {
    tracing::info!("connecting to the inventory service");
    tracing::error!(error = "connection refused", "inventory lookup failed");
    HttpResponse::InternalServerError().body("inventory unavailable\n")
}

async fn panic() -> String {
    tracing::info!("about to look up the cart");
    let carts: HashMap<u32, String> = HashMap::new();
    carts
        .get(&7)
        .cloned()
        .expect("cart must be loaded before checkout")
}

async fn slow(q: web::Query<HashMap<String, u64>>) -> &'static str {
    let ms = q.get("ms").copied().unwrap_or(1500);
    tracing::info!(ms, "doing something slow");
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
    "done\n"
}

/// Streams `chunks` chunks (default 100) of `size` bytes (default 100 KiB), each chunk filled
/// with its index, as they are produced.
async fn stream(q: web::Query<HashMap<String, usize>>) -> HttpResponse {
    let chunks = q.get("chunks").copied().unwrap_or(100);
    let size = q.get("size").copied().unwrap_or(100 * 1024);
    let body = futures_util::stream::iter(
        (0..chunks)
            .map(move |i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (i % 26) as u8; size]))),
    );
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .streaming(body)
}
