//! tracepost's `/metrics` with the application's own metrics next to tracepost's: the book's
//! "Scrape metrics with Prometheus" recipes include this file.

// ANCHOR: imports
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
// ANCHOR_END: imports

// ANCHOR: registry
use tracepost::prometheus_client::metrics::counter::Counter;
use tracepost::prometheus_client::metrics::family::Family;
use tracepost::prometheus_client::metrics::gauge::Gauge;
use tracepost::prometheus_client::metrics::histogram::Histogram;
use tracepost::Tracepost;

/// The shop's own metrics. prometheus-client metrics are cheap handles: clone them into
/// handlers (here as axum state) and record without any lock.
#[derive(Clone, Debug)]
pub struct ShopMetrics {
    /// Orders placed, by payment method.
    pub orders: Family<[(&'static str, String); 1], Counter>,
    /// Items left in stock.
    pub stock: Gauge,
    /// Order value in euros.
    pub order_value: Histogram,
}

impl ShopMetrics {
    /// Creates the metrics and registers them in tracepost's registry, so that `/metrics`
    /// serves them after tracepost's own.
    pub fn register(tp: &Tracepost) -> Self {
        let metrics = ShopMetrics {
            orders: Family::default(),
            stock: Gauge::default(),
            order_value: Histogram::new([10.0, 50.0, 100.0, 500.0]),
        };
        metrics.stock.set(100);
        let mut registry = tp.metrics_registry().write();
        // Counters are registered without `_total`: the samples get it (`shop_orders_total`).
        registry.register("shop_orders", "Orders placed", metrics.orders.clone());
        registry.register("shop_stock_items", "Items in stock", metrics.stock.clone());
        registry.register(
            "shop_order_value_euros",
            "Order value",
            metrics.order_value.clone(),
        );
        metrics
    }
}
// ANCHOR_END: registry

/// An order as posted to `/orders`.
#[derive(Debug, Deserialize)]
pub struct Order {
    /// `card`, `invoice`, …
    pub payment: String,
    /// The order's value in euros.
    pub euros: f64,
}

// ANCHOR: handler
async fn place_order(State(metrics): State<ShopMetrics>, Json(order): Json<Order>) -> StatusCode {
    metrics
        .orders
        .get_or_create(&[("payment", order.payment)])
        .inc();
    metrics.order_value.observe(order.euros);
    metrics.stock.dec();
    StatusCode::CREATED
}
// ANCHOR_END: handler

// ANCHOR: facade
use tracepost::metrics::facade::MetricsFacade;

/// Makes the `metrics` crate's macros record into tracepost's registry (once per process).
pub fn install_metrics_facade(tp: &Tracepost) -> Result<(), Box<dyn std::error::Error>> {
    MetricsFacade::new(tp.metrics_registry())
        .install()
        .map_err(|_| "a `metrics` recorder is already installed")?;
    // Descriptions become the HELP lines (promtool flags a family without one).
    metrics::describe_counter!("shop_searches", "Searches, by where they came from");
    metrics::describe_histogram!("shop_search_results", "Results per search");
    Ok(())
}

/// The query of `/search`.
#[derive(Debug, Deserialize)]
pub struct Search {
    /// What to look for.
    pub q: String,
}

async fn search(Query(search): Query<Search>) -> Json<Vec<String>> {
    let results: Vec<String> = ["shoes", "socks", "shirts"]
        .into_iter()
        .filter(|item| item.starts_with(search.q.as_str()))
        .map(str::to_owned)
        .collect();
    metrics::counter!("shop_searches", "source" => "web").increment(1);
    metrics::histogram!("shop_search_results").record(results.len() as f64);
    Json(results)
}
// ANCHOR_END: facade

/// The shop's routes: `POST /orders` (prometheus-client metrics) and `GET /search?q=`
/// (`metrics` crate macros).
pub fn app(metrics: ShopMetrics) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/search", get(search))
        .with_state(metrics)
}
