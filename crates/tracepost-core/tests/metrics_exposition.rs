//! `/metrics` as the pipeline writes it: a sink's own registry and the application's registry
//! after tracepost's families, in both formats, with the same samples.

use std::time::{Duration, Instant};

use tracepost_core::metrics::MetricsFormat;
use tracepost_core::prometheus_client::metrics::counter::Counter;
use tracepost_core::prometheus_client::metrics::family::Family;
use tracepost_core::prometheus_client::metrics::gauge::Gauge;
use tracepost_core::prometheus_client::registry::Registry;
use tracepost_core::{Batch, BatchOptions, Event, Kind, Level, Sink, SinkError, SinkOptions};
use tracepost_core::{SinkOutcome, Tracepost};

/// Accepts everything and counts batches in a metric family of its own.
struct Counting {
    batches: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Sink for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let _ = batch;
        self.batches.get_or_create(&[("sink", "counting")]).inc();
        Ok(SinkOutcome::default())
    }
    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "counting_batches",
            "Batches the counting sink took",
            self.batches.clone(),
        );
    }
}

fn has_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
}

#[tokio::test]
async fn sink_and_application_metrics_follow_tracepost_s_in_both_formats() {
    let sink = Counting {
        batches: Family::default(),
    };
    let batches = sink.batches.clone();
    let tp = Tracepost::builder()
        .service("t")
        .sink_with(
            sink,
            SinkOptions::default().batch(BatchOptions::new(10, 1 << 20, Duration::from_millis(5))),
        )
        .build()
        .unwrap();
    let depth: Gauge = Gauge::default();
    depth.set(-3);
    tp.metrics_registry()
        .write()
        .register("app_depth", "A gauge of the app", depth.clone());
    for i in 0..3 {
        tp.handle()
            .capture(Event::new(Kind::Log, Level::Info, format!("e{i}")));
    }
    let start = Instant::now();
    while batches.get_or_create(&[("sink", "counting")]).get() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nothing delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let text = tp.handle().render_metrics();
    assert_eq!(
        text,
        tp.handle().render_metrics_as(MetricsFormat::Prometheus)
    );
    has_line(&text, "# TYPE counting_batches_total counter");
    has_line(&text, "# TYPE app_depth gauge");
    has_line(&text, "app_depth -3");
    has_line(&text, "tracepost_events_queued_total{sink=\"counting\"} 3");
    // Order: tracepost's families, then the sink's, then the application's.
    let at = |name: &str| text.find(name).unwrap();
    assert!(at("tracepost_events_sampled_out_total") < at("counting_batches_total"));
    assert!(at("counting_batches_total") < at("app_depth"));
    assert!(!text.contains("# EOF"));

    let om = tp.handle().render_metrics_as(MetricsFormat::OpenMetrics);
    has_line(&om, "# TYPE counting_batches counter");
    has_line(&om, "# TYPE tracepost_events_queued counter");
    assert!(om.ends_with("\n# EOF\n"));
    let samples = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    // The batch histogram's timings may move between the two renders; everything else may not.
    let steady = |v: Vec<String>| -> Vec<String> {
        v.into_iter().filter(|l| !l.contains("batch")).collect()
    };
    assert_eq!(steady(samples(&text)), steady(samples(&om)));
    tp.shutdown(Duration::from_secs(5)).await;
}
