//! The layer on a plain tower service (no axum router): `ServiceBuilder`, any body type,
//! routes from `route_with`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tracepost_core::{Batch, Event, Sink, SinkError, SinkOutcome, Tracepost};
use tracepost_tower::TracepostLayer;

#[derive(Clone, Default)]
struct Collect(std::sync::Arc<parking_lot::Mutex<Vec<Event>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.0.lock().extend(batch.iter().map(|e| (**e).clone()));
        Ok(SinkOutcome::default())
    }
}

async fn app(
    req: Request<tracepost_tower::RequestBody<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let status = if body.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"done")))
        .unwrap())
}

#[tokio::test]
async fn works_in_a_service_builder_around_any_service() {
    let sink = Collect::default();
    let tp = Tracepost::builder()
        .service("plain-tower")
        .sink(sink.clone())
        .build()
        .unwrap();
    let layer = TracepostLayer::new(tp.handle()).route_with(|parts| {
        parts
            .uri
            .path()
            .starts_with("/orders/")
            .then(|| "/orders/:id".to_owned())
    });
    let svc = ServiceBuilder::new().layer(layer).service_fn(app);

    for (path, body) in [("/orders/1", ""), ("/orders/2", "boom"), ("/elsewhere", "")] {
        let req = Request::builder()
            .uri(path)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert!(res.headers().contains_key("x-request-id"));
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
    }
    let metrics = tp.handle().render_metrics();
    assert!(metrics.contains("http_route=\"/orders/:id\""));
    assert!(metrics.contains("http_route=\"_unmatched\""));
    assert!(!metrics.contains("/orders/1") && !metrics.contains("/elsewhere"));
    tp.shutdown(Duration::from_secs(5)).await;

    let events = sink.0.lock().clone();
    let errors: Vec<_> = events.iter().filter(|e| e.error.is_some()).collect();
    assert_eq!(errors.len(), 1);
    let snapshot = errors[0].request.as_ref().unwrap();
    assert_eq!(
        (
            snapshot.route.as_str(),
            snapshot.status,
            snapshot.path.as_str()
        ),
        ("/orders/:id", 503, "/orders/2")
    );
    assert_eq!(snapshot.request_body.as_ref().unwrap().text, "boom");
}
