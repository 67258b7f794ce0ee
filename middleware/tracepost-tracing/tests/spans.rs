//! Spans as `span` events, with per-trace sampling, against the real pipeline.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracepost_core::redact::REDACTED;
use tracepost_core::scope::{self, RequestScope};
use tracepost_core::trace_context::TraceContext;
use tracepost_core::{
    Batch, Event, Kind, Sink, SinkError, SinkOutcome, SpanStatus, Tracepost, TracepostHandle,
};
use tracepost_tracing::TracepostTracingLayer;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.0.lock().extend(batch.iter().map(|e| (**e).clone()));
        Ok(SinkOutcome::default())
    }
}

/// Runs `work` under a layer built by `layer`, then shuts the pipeline down and returns what
/// reached the sink and the pipeline's sampled-out and span-overflow counts.
async fn run(
    layer: impl FnOnce(TracepostHandle) -> TracepostTracingLayer,
    work: impl FnOnce(),
) -> (Vec<Event>, u64, u64) {
    let sink = Collect::default();
    let tp = Tracepost::builder()
        .service("svc")
        .sink(sink.clone())
        .build()
        .unwrap();
    let handle = tp.handle();
    {
        let _g = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(layer(tp.handle())),
        );
        work();
    }
    let sample = handle.stages().sample();
    let counts = (sample.sampled_out(), sample.span_overflow());
    tp.shutdown(Duration::from_secs(5)).await;
    let events = sink.0.lock().clone();
    (events, counts.0, counts.1)
}

fn spans(events: &[Event]) -> Vec<&Event> {
    events.iter().filter(|e| e.kind == Kind::Span).collect()
}

fn named<'a>(events: &'a [Event], name: &str) -> &'a Event {
    events
        .iter()
        .find(|e| e.kind == Kind::Span && e.message == name)
        .unwrap_or_else(|| panic!("no span {name} in {events:#?}"))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn spans_nest_by_parent_with_durations_and_logs_carry_their_span() {
    let (events, sampled_out, _) = run(
        |h| TracepostTracingLayer::new(h).span_level(tracing::Level::INFO),
        || {
            let outer = tracing::info_span!("checkout", order = 42);
            outer.in_scope(|| {
                // Below the span level: not captured, and its child hangs from `checkout`.
                tracing::debug_span!("noise").in_scope(|| {
                    tracing::info_span!("charge_card").in_scope(|| {
                        std::thread::sleep(Duration::from_millis(20));
                        tracing::info!("charged");
                    });
                });
            });
        },
    )
    .await;
    assert_eq!(sampled_out, 0);
    assert_eq!(spans(&events).len(), 2, "{events:#?}");
    let outer = named(&events, "checkout");
    let inner = named(&events, "charge_card");
    let (o, i) = (outer.span.as_ref().unwrap(), inner.span.as_ref().unwrap());

    let trace_id = outer.trace_id.as_deref().unwrap();
    assert!(is_hex(trace_id, 32), "{trace_id}");
    assert!(is_hex(outer.span_id.as_deref().unwrap(), 16));
    assert_eq!(inner.trace_id.as_deref(), Some(trace_id));
    assert_ne!(inner.span_id, outer.span_id);
    assert_eq!(o.parent_span_id, None);
    assert_eq!(i.parent_span_id, outer.span_id);
    assert_eq!((o.status, i.status), (SpanStatus::Unset, SpanStatus::Unset));
    assert_eq!(outer.attributes["order"], 42);

    // Durations: the child slept 20 ms, the parent contains the child.
    assert!(i.duration_ms >= 20.0, "{}", i.duration_ms);
    assert!(o.duration_ms >= i.duration_ms);
    assert!(outer.timestamp <= inner.timestamp);

    let log = events.iter().find(|e| e.message == "charged").unwrap();
    assert_eq!(log.kind, Kind::Log);
    assert_eq!(log.trace_id.as_deref(), Some(trace_id));
    assert_eq!(log.span_id, inner.span_id);
}

#[tokio::test]
async fn a_trace_with_an_error_is_kept_whole_at_rate_zero() {
    let (events, sampled_out, _) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .trace_sample_rate(0.0)
        },
        || {
            tracing::info_span!("job").in_scope(|| {
                tracing::info_span!("step_one").in_scope(|| tracing::info!("fine"));
                tracing::info_span!("step_two").in_scope(|| {
                    tracing::error!(error = "disk full", "write failed");
                });
            });
        },
    )
    .await;
    assert_eq!(sampled_out, 0);
    let names: Vec<&str> = spans(&events).iter().map(|e| e.message.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["job", "step_one", "step_two"] {
        named(&events, name);
    }
    // Only the span the error happened in has the error status.
    let status = |n: &str| named(&events, n).span.as_ref().unwrap().status;
    assert_eq!(status("step_two"), SpanStatus::Error);
    assert_eq!(status("step_one"), SpanStatus::Unset);
    assert_eq!(status("job"), SpanStatus::Unset);
    let error = events.iter().find(|e| e.kind == Kind::Error).unwrap();
    assert_eq!(error.span_id, named(&events, "step_two").span_id);
}

#[tokio::test]
async fn a_trace_without_errors_at_rate_zero_is_dropped_whole_and_counted() {
    let (events, sampled_out, overflow) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .trace_sample_rate(0.0)
        },
        || {
            for _ in 0..2 {
                tracing::info_span!("job").in_scope(|| {
                    tracing::info_span!("step").in_scope(|| tracing::info!("fine"));
                });
            }
        },
    )
    .await;
    assert!(spans(&events).is_empty(), "{events:#?}");
    assert_eq!(sampled_out, 4);
    assert_eq!(overflow, 0);
    // The logs themselves are still captured (they are not spans).
    assert_eq!(events.iter().filter(|e| e.message == "fine").count(), 2);
}

#[tokio::test]
async fn spans_are_off_by_default() {
    let (events, sampled_out, _) = run(TracepostTracingLayer::new, || {
        tracing::info_span!("job").in_scope(|| tracing::info!("fine"));
    })
    .await;
    assert!(spans(&events).is_empty());
    assert_eq!(sampled_out, 0);
    assert_eq!(events.len(), 1);
}

/// A request scope as the HTTP layer makes one, entered on this thread.
fn request(route: &str) -> Arc<RequestScope> {
    Arc::new(RequestScope::new(
        TraceContext::start(),
        Arc::from("req-1"),
        Arc::from(route),
        10,
    ))
}

#[tokio::test]
async fn a_request_trace_is_decided_when_the_request_is_over() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let record = ids.clone();
    let (events, sampled_out, _) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .trace_sample_rate(0.0)
        },
        move || {
            for failed in [true, false] {
                let req = request("/orders/{id}");
                record
                    .lock()
                    .push((req.trace().trace_id_hex(), req.trace().span_id_hex()));
                {
                    let _in = scope::enter(&req);
                    tracing::info_span!("load_order").in_scope(|| {
                        tracing::info_span!("query").in_scope(|| {});
                    });
                }
                if failed {
                    req.mark_failed(); // what the middleware does on a 5xx or a panic
                }
                drop(req); // the request is over: the trace is decided
            }
        },
    )
    .await;
    let ids = ids.lock().clone();
    // The failed request's trace is kept whole, the other dropped whole.
    assert_eq!(sampled_out, 2);
    let kept = spans(&events);
    assert_eq!(kept.len(), 2, "{kept:#?}");
    let root = named(&events, "load_order");
    assert_eq!(root.trace_id.as_deref(), Some(ids[0].0.as_str()));
    assert_eq!(root.request_id.as_deref(), Some("req-1"));
    assert_eq!(root.attributes["http.route"], "/orders/{id}");
    // The outermost span hangs from the request's own span.
    assert_eq!(
        root.span.as_ref().unwrap().parent_span_id.as_deref(),
        Some(ids[0].1.as_str())
    );
    assert_eq!(
        named(&events, "query")
            .span
            .as_ref()
            .unwrap()
            .parent_span_id,
        root.span_id
    );
}

#[tokio::test]
async fn an_error_event_in_a_request_outside_spans_keeps_the_trace() {
    let (events, sampled_out, _) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .trace_sample_rate(0.0)
        },
        || {
            let req = request("/pay");
            {
                let _in = scope::enter(&req);
                tracing::info_span!("authorize").in_scope(|| {});
                tracing::error!("card declined");
            }
        },
    )
    .await;
    assert_eq!(sampled_out, 0);
    assert_eq!(spans(&events).len(), 1);
}

#[tokio::test]
async fn span_fields_with_secrets_are_redacted() {
    let (events, _, _) = run(
        |h| TracepostTracingLayer::new(h).span_level(tracing::Level::INFO),
        || {
            tracing::info_span!("login", user = "ada", password = "hunter2").in_scope(|| {});
        },
    )
    .await;
    let login = named(&events, "login");
    assert_eq!(login.attributes["user"], "ada");
    assert_eq!(login.attributes["password"], REDACTED);
    let json = serde_json::to_string(login).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
}

#[tokio::test]
async fn spans_over_the_per_trace_cap_are_dropped_and_counted() {
    let (events, sampled_out, overflow) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .max_spans_per_trace(3)
        },
        || {
            tracing::info_span!("batch").in_scope(|| {
                for i in 0..5 {
                    tracing::info_span!("item", i).in_scope(|| {});
                }
            });
        },
    )
    .await;
    // Three fit: the root, which closes last, takes the place of an item (a tester's trace
    // lost its root this way); the trace says how many spans it lost.
    let kept = spans(&events);
    assert_eq!(kept.len(), 3);
    assert_eq!(overflow, 3);
    assert_eq!(sampled_out, 0);
    let root = named(&events, "batch");
    assert_eq!(root.attributes["tracepost.spans_dropped"], 3);
    assert_eq!(kept.iter().filter(|e| e.message == "item").count(), 2);
}

/// A tester's inputs: a chain of spans deeper than the cap kept only its deepest (the first
/// to close), and a root over 5 000 children was lost. The shallowest spans are kept.
#[tokio::test]
async fn a_trace_over_the_cap_keeps_its_top_levels() {
    let (events, _, overflow) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .max_spans_per_trace(10)
        },
        || {
            fn nest(depth: u32) {
                if depth < 30 {
                    tracing::info_span!("level", depth).in_scope(|| nest(depth + 1));
                }
            }
            nest(0);
        },
    )
    .await;
    let mut depths: Vec<i64> = spans(&events)
        .iter()
        .map(|e| e.attributes["depth"].as_i64().unwrap())
        .collect();
    depths.sort_unstable();
    assert_eq!(depths, (0..10).collect::<Vec<_>>());
    assert_eq!(overflow, 20);
    // Every kept span's parent is kept too (but the root's).
    let ids: Vec<&str> = spans(&events)
        .iter()
        .map(|e| e.span_id.as_deref().unwrap())
        .collect();
    for e in spans(&events) {
        if e.attributes["depth"] != 0 {
            let parent = e.span.as_ref().unwrap().parent_span_id.as_deref().unwrap();
            assert!(ids.contains(&parent), "{e:#?}");
        }
    }
}

#[tokio::test]
async fn spans_over_the_global_byte_cap_are_dropped_and_counted() {
    let (events, _, overflow) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .max_buffered_span_bytes(0)
        },
        || {
            tracing::info_span!("job").in_scope(|| {});
        },
    )
    .await;
    assert!(spans(&events).is_empty());
    assert_eq!(overflow, 1);
}

/// A tester's input: a worker's span that never closes (it lives as long as the process)
/// held its jobs' spans back forever, the trace of an error among them too. An error decides
/// its trace at once: the spans before it and after it are kept.
#[tokio::test]
async fn an_error_under_a_root_that_never_closes_keeps_the_trace() {
    let (events, sampled_out, _) = run(
        |h| {
            TracepostTracingLayer::new(h)
                .span_level(tracing::Level::INFO)
                .trace_sample_rate(0.0)
        },
        || {
            let worker = tracing::info_span!("worker");
            worker.in_scope(|| {
                for i in 0..5 {
                    tracing::info_span!("job", i).in_scope(|| {
                        if i == 2 {
                            tracing::error!("job failed");
                        }
                    });
                }
            });
            // Never closed, as a worker that runs until the process exits.
            std::mem::forget(worker);
        },
    )
    .await;
    let jobs = spans(&events).iter().filter(|e| e.message == "job").count();
    assert_eq!(jobs, 5, "{events:#?}");
    assert_eq!(sampled_out, 0);
}
