//! The middleware's actix-specific paths, in process (`actix_web::test`) with the in-memory
//! sink. The behaviours it shares with the tower layer are in `tests/tests/http_suite`.

use std::future::Future;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test as actix_test;
use actix_web::{error, web, App, HttpResponse};
use tracepost_actix::TracepostMiddleware;
use tracepost_core::testing::MemorySink;
use tracepost_core::{Event, Tracepost};

fn run<F: Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}

fn pipeline() -> (Tracepost, MemorySink) {
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("actix-test")
        .sink(sink.clone())
        .build()
        .unwrap();
    (tp, sink)
}

/// Calls the app with a `TestRequest` and reads the whole body (so the request is finished):
/// `(status, body)`.
macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = actix_test::call_service($app, $req.to_request()).await;
        let status = res.status().as_u16();
        (status, actix_test::read_body(res).await)
    }};
}

async fn events(tp: Tracepost, sink: &MemorySink) -> Vec<Event> {
    tp.shutdown(Duration::from_secs(5)).await;
    sink.stored()
}

fn error_type(e: &Event) -> Option<&str> {
    e.attributes.get("error.type").and_then(|v| v.as_str())
}

#[test]
fn handler_errors_with_a_failing_status_are_reported_with_their_message_and_4xx_are_not() {
    run(async {
        let (tp, sink) = pipeline();
        let app = actix_test::init_service(
            App::new()
                .wrap(TracepostMiddleware::new(tp.handle()))
                .route(
                    "/bad/{id}",
                    web::get()
                        .to(|| async { Err::<String, _>(error::ErrorBadRequest("bad input")) }),
                )
                .route(
                    "/db/{id}",
                    web::get().to(|| async {
                        Err::<String, _>(error::ErrorServiceUnavailable("pool exhausted"))
                    }),
                ),
        )
        .await;
        assert_eq!(
            call!(&app, actix_test::TestRequest::get().uri("/bad/1")).0,
            400
        );
        assert_eq!(
            call!(&app, actix_test::TestRequest::get().uri("/db/1")).0,
            503
        );
        let metrics = tp.handle().render_metrics();
        assert!(metrics.contains(
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="400",http_route="/bad/{id}"} 1"#
        ));
        let events = events(tp, &sink).await;
        let errors: Vec<&Event> = events.iter().filter(|e| e.request.is_some()).collect();
        assert_eq!(errors.len(), 1, "only the 503 is a failure: {errors:#?}");
        let e = errors[0];
        assert_eq!(e.request.as_ref().unwrap().route, "/db/{id}");
        assert_eq!(error_type(e), Some("service_error"));
        assert_eq!(e.error.as_ref().unwrap().message, "pool exhausted");
    });
}

#[test]
fn an_inner_middleware_error_is_recorded_with_its_status_and_reported_only_if_a_failure() {
    run(async {
        let (tp, sink) = pipeline();
        let app = actix_test::init_service(
            App::new()
                // Inner (applied first): fails before any handler runs.
                .wrap_fn(|req, _srv| async move {
                    Err::<ServiceResponse, _>(if req.path() == "/x" {
                        error::ErrorServiceUnavailable("maintenance")
                    } else {
                        error::ErrorUnauthorized("no token")
                    })
                })
                .wrap(TracepostMiddleware::new(tp.handle()))
                .route("/x", web::get().to(|| async { "x" }))
                .route("/private", web::get().to(|| async { "secret" })),
        )
        .await;
        // An auth middleware's 401 is the client's failure, not the server's.
        let Err(denied) = app
            .call(actix_test::TestRequest::get().uri("/private").to_request())
            .await
        else {
            panic!("the inner middleware's error is passed on");
        };
        assert_eq!(denied.as_response_error().status_code(), 401);
        let Err(err) = app
            .call(actix_test::TestRequest::get().uri("/x").to_request())
            .await
        else {
            panic!("the inner middleware's error is passed on");
        };
        assert_eq!(err.as_response_error().status_code(), 503);
        let metrics = tp.handle().render_metrics();
        assert!(metrics.contains(r#"http_response_status_code="503",http_route="/x"} 1"#));
        assert!(metrics.contains(r#"http_response_status_code="401",http_route="/private"} 1"#));
        let events = events(tp, &sink).await;
        let failed: Vec<&Event> = events.iter().filter(|e| e.request.is_some()).collect();
        assert_eq!(failed.len(), 1, "{failed:#?}");
        let e = failed[0];
        assert_eq!(error_type(e), Some("service_error"));
        assert_eq!(e.error.as_ref().unwrap().message, "maintenance");
    });
}

#[test]
fn the_request_payload_is_teed_while_the_handler_reads_it() {
    run(async {
        let (tp, sink) = pipeline();
        let app = actix_test::init_service(
            App::new()
                .wrap(TracepostMiddleware::new(tp.handle()).body_limit(8))
                .route(
                    "/orders",
                    web::post().to(|body: bytes::Bytes| async move {
                        HttpResponse::InternalServerError().body(format!("{} bytes", body.len()))
                    }),
                ),
        )
        .await;
        let req = actix_test::TestRequest::post()
            .uri("/orders")
            .insert_header(("content-type", "text/plain"))
            .set_payload("0123456789abcdef");
        let (status, body) = call!(&app, req);
        assert_eq!((status, &body[..]), (500, &b"16 bytes"[..]));
        let events = events(tp, &sink).await;
        let snapshot = events.iter().find_map(|e| e.request.as_ref()).unwrap();
        assert_eq!(snapshot.request_bytes, 16);
        let kept = snapshot.request_body.as_ref().unwrap();
        assert_eq!(kept.text, "01234567", "capped at body_limit");
        assert!(kept.truncated);
    });
}

#[test]
fn with_catch_panics_off_a_panic_unwinds_and_is_still_counted_as_a_failed_request() {
    run(async {
        let (tp, _sink) = pipeline();
        let app = actix_test::init_service(
            App::new()
                .wrap(TracepostMiddleware::new(tp.handle()).catch_panics(false))
                .route(
                    "/panic",
                    web::get().to(|| async {
                        if true {
                            panic!("not caught");
                        }
                        "unreachable"
                    }),
                ),
        )
        .await;
        let unwound = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            app.call(actix_test::TestRequest::get().uri("/panic").to_request()),
        ))
        .await;
        assert!(unwound.is_err(), "the panic is not caught");
        let metrics = tp.handle().render_metrics();
        assert!(metrics.contains(r#"http_response_status_code="500",http_route="/panic"} 1"#));
        assert!(metrics.contains(r#"http_server_active_requests{http_request_method="GET"} 0"#));
        tp.shutdown(Duration::from_secs(5)).await;
    });
}

#[test]
fn metrics_scrapes_and_health_checks_pass_through_without_metrics_or_events() {
    run(async {
        let (tp, sink) = pipeline();
        let app =
            actix_test::init_service(
                App::new()
                    .wrap(TracepostMiddleware::new(tp.handle()).snapshot_policy(
                        tracepost_actix::SnapshotPolicy::default().sample_rate(1.0),
                    ))
                    .service(tracepost_actix::metrics_service(tp.handle()))
                    .service(tracepost_actix::health_service(tp.handle()))
                    .route("/users/{id}", web::get().to(|| async { "ann" })),
            )
            .await;
        assert_eq!(
            call!(&app, actix_test::TestRequest::get().uri("/users/7")).0,
            200
        );
        assert_eq!(
            call!(&app, actix_test::TestRequest::get().uri("/health")).0,
            200
        );
        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/metrics").to_request(),
        )
        .await;
        assert!(
            !res.headers().contains_key("x-request-id"),
            "own routes pass through untouched"
        );
        let metrics = String::from_utf8(actix_test::read_body(res).await.to_vec()).unwrap();
        assert!(metrics.contains(r#"http_route="/users/{id}""#), "{metrics}");
        assert!(
            !metrics.contains(r#"http_route="/health""#)
                && !metrics.contains(r#"http_route="/metrics""#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"http_server_active_requests{http_request_method="GET"} 1"#),
            "only the scrape itself is active (the health check ended): {metrics}"
        );
        let events = events(tp, &sink).await;
        let paths: Vec<&str> = events
            .iter()
            .filter_map(|e| e.request.as_ref().map(|r| r.path.as_str()))
            .collect();
        assert_eq!(paths, ["/users/7"], "only the app's request is an event");
    });
}
