//! The application's own metrics on tracepost's `/metrics`: the book's two recipes
//! (`examples/app-metrics`), over a real socket, in both exposition formats.

mod support;

use std::time::Duration;

use support::{check_with_promtool, get as http_get, send, serve};
use tracepost::prelude::*;
use tracepost::prometheus_client::metrics::counter::Counter;
use tracepost::prometheus_client::registry::Registry;
use tracepost::sinks::JsonlFile;
use tracepost::Tracepost;

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn has_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
}

/// The sample lines, sorted: the same in both formats.
fn samples(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    v.sort_unstable();
    v
}

#[tokio::test]
async fn both_recipes_metrics_appear_next_to_tracepost_s_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("shop")
        .sink(JsonlFile::new(dir.path()))
        .build()
        .unwrap();
    // The only test of this binary that installs the process-wide `metrics` recorder.
    let shop = app_metrics::ShopMetrics::register(&tp);
    app_metrics::install_metrics_facade(&tp).unwrap();
    let app = app_metrics::app(shop)
        .merge(tp.metrics_router())
        .layer(tp.layer());
    let addr = serve(app).await;

    for (payment, euros) in [("card", "42"), ("card", "7.5"), ("invoice", "120")] {
        let body = format!(r#"{{"payment":"{payment}","euros":{euros}}}"#);
        let res = send(
            addr,
            "POST",
            "/orders",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let (status, _, body) = http_get(addr, "/search?q=s", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], br#"["shoes","socks","shirts"]"#);

    let (_, headers, text) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(text.to_vec()).unwrap();
    // prometheus-client metrics (first recipe).
    has_line(&text, "# TYPE shop_orders_total counter");
    has_line(&text, "shop_orders_total{payment=\"card\"} 2");
    has_line(&text, "shop_orders_total{payment=\"invoice\"} 1");
    has_line(&text, "shop_stock_items 97");
    has_line(&text, "shop_order_value_euros_bucket{le=\"10.0\"} 1");
    has_line(&text, "shop_order_value_euros_bucket{le=\"50.0\"} 2");
    has_line(&text, "shop_order_value_euros_count 3");
    // `metrics` crate macros (second recipe).
    has_line(
        &text,
        "# HELP shop_searches_total Searches, by where they came from",
    );
    has_line(&text, "shop_searches_total{source=\"web\"} 1");
    has_line(&text, "shop_search_results_bucket{le=\"5.0\"} 1");
    // tracepost's own, unchanged.
    has_line(
        &text,
        "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_response_status_code=\"201\",http_route=\"/orders\"} 3",
    );
    has_line(&text, "# TYPE tracepost_events_queued_total counter");
    has_line(&text, "tracepost_events_sampled_out_total 0");
    check_with_promtool(&text);

    let (_, headers, om) = http_get(addr, "/metrics", &[("accept", OPENMETRICS_ACCEPT)]).await;
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let om = String::from_utf8(om.to_vec()).unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    has_line(&om, "# TYPE shop_orders counter");
    has_line(&om, "# TYPE shop_searches counter");
    has_line(&om, "# TYPE tracepost_events_queued counter");
    assert_eq!(
        om.matches("# EOF").count(),
        1,
        "one exposition, not several"
    );
    // The scrapes differ only by the active-requests gauge and the counts of `/metrics`
    // itself; every other sample is the same line in both formats.
    let volatile = |l: &&str| l.contains("/metrics") || l.starts_with("http_server_active");
    let a: Vec<_> = samples(&text)
        .into_iter()
        .filter(|l| !volatile(l))
        .collect();
    let b: Vec<_> = samples(&om).into_iter().filter(|l| !volatile(l)).collect();
    assert_eq!(a, b);

    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_registry_handed_to_the_builder_keeps_its_prefix_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::with_prefix("myapp");
    let jobs: Counter = Counter::default();
    registry.register("jobs", "Jobs run", jobs.clone());
    let tp = Tracepost::builder()
        .service("jobs")
        .sink(JsonlFile::new(dir.path()))
        .metrics_registry(registry)
        .build()
        .unwrap();
    jobs.inc_by(4);
    // Registered after the build, through the handle: served too.
    let late: Counter = Counter::default();
    tp.handle()
        .metrics_registry()
        .write()
        .register("late", "Registered after build", late.clone());
    late.inc();

    let addr = serve(tp.metrics_router()).await;
    let (_, _, text) = http_get(addr, "/metrics", &[]).await;
    let text = String::from_utf8(text.to_vec()).unwrap();
    has_line(&text, "myapp_jobs_total 4");
    has_line(&text, "myapp_late_total 1");
    has_line(&text, "tracepost_events_sampled_out_total 0");
    assert!(!text.contains("myapp_http_server") && !text.contains("myapp_tracepost"));
    check_with_promtool(&text);
    tp.shutdown(Duration::from_secs(5)).await;
}
