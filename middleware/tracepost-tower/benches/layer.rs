//! The capture hot path: one request through an axum `Router` with `TracepostLayer` (route
//! from `MatchedPath`, metrics, trace context, request id, body tee, finish) against the same
//! router without it, in the same run.
//!
//! Run: `cargo bench -p tracepost-tower --bench layer`
//! Also prints heap allocations per request, counted by a wrapping global allocator.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use tracepost_core::{Batch, Sink, SinkError, SinkOutcome, Tracepost};
use tracepost_tower::TracepostLayer;
use tracing_subscriber::prelude::*;

/// Counts allocations, then defers to the system allocator.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter has no effect on the memory handed out.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout, forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A sink that accepts everything (the benchmark measures capture, not delivery).
struct Discard;

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn send(&self, _batch: Batch) -> Result<SinkOutcome, SinkError> {
        Ok(SinkOutcome::default())
    }
}

async fn user() -> &'static str {
    "{\"id\":7,\"name\":\"ann\"}"
}

fn router() -> axum::Router {
    axum::Router::new().route("/users/{id}", axum::routing::get(user))
}

fn request() -> Request<axum::body::Body> {
    Request::builder()
        .uri("/users/7?page=2")
        .header("host", "localhost")
        .header("user-agent", "bench")
        .header("accept", "*/*")
        .body(axum::body::Body::empty())
        .unwrap()
}

/// Sends one request through `svc` and reads the whole response body, as a server would.
async fn one<S, B>(svc: &mut S)
where
    S: Service<Request<axum::body::Body>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc.ready().await.unwrap().call(request()).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 21);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tp = rt.block_on(async {
        Tracepost::builder()
            .service("bench")
            .sink(Discard)
            .build()
            .unwrap()
    });
    let mut bare = router();
    let mut layered = router().layer(TracepostLayer::new(tp.handle()));

    // Allocations per request, measured once outside criterion's timing loop.
    let per_request = |f: &mut dyn FnMut()| {
        f(); // warm up lazily created state (route metrics, series)
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..1000 {
            f();
        }
        (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 1000.0
    };
    let bare_allocs = per_request(&mut || rt.block_on(one(&mut bare)));
    let layer_allocs = per_request(&mut || rt.block_on(one(&mut layered)));
    let mut group = c.benchmark_group("request");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("bare", |b| b.iter(|| rt.block_on(one(&mut bare))));
    group.bench_function("tracepost_layer", |b| {
        b.iter(|| rt.block_on(one(&mut layered)))
    });

    // With the tracing layer installed, each request also opens the span that collects its
    // breadcrumbs (this thread's default subscriber: the runtime is current-thread).
    let subscriber = tracing_subscriber::registry()
        .with(tracepost_tracing::TracepostTracingLayer::new(tp.handle()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let tracing_allocs = per_request(&mut || rt.block_on(one(&mut layered)));
    group.bench_function("tracepost_layer_and_tracing_layer", |b| {
        b.iter(|| rt.block_on(one(&mut layered)))
    });
    group.finish();
    println!(
        "allocations per request: bare {bare_allocs:.1}, with TracepostLayer {layer_allocs:.1}, \
         with TracepostLayer and the tracing layer {tracing_allocs:.1}"
    );
    rt.block_on(tp.shutdown(Duration::from_secs(1)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
