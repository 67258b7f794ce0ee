//! RED metrics of an HTTP server, by method, route template and status.
//!
//! Names and labels follow the OpenTelemetry HTTP semantic conventions as exported to
//! Prometheus: `http_server_request_duration_seconds`, `http_server_active_requests`,
//! `http_server_request_body_size_bytes` and `http_server_response_body_size_bytes`, labelled
//! `http_request_method`, `http_route` and `http_response_status_code`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{Histogram, LatencySketch, DURATION_BUCKETS, SIZE_BUCKETS};
use crate::event::{MetricWindow, Timestamp};

/// The methods that get their own label value; anything else is `_OTHER`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The label for requests no route matched.
pub const UNMATCHED_ROUTE: &str = "_unmatched";
/// The label for routes past the cardinality limit.
pub const OVERFLOW_ROUTE: &str = "_overflow";

/// Maps a method to its label value: one of the nine standard methods, or `_OTHER`.
pub fn normalize_method(method: &str) -> &'static str {
    METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("_OTHER")
}

/// What the middleware reports about one finished request.
#[derive(Debug, Clone, Copy)]
pub struct RequestOutcome {
    /// Normalised method (see [`normalize_method`]).
    pub method: &'static str,
    /// Response status (500 for a panic).
    pub status: u16,
    /// From request start to the end of the response body.
    pub duration: Duration,
    /// Request body bytes read.
    pub request_bytes: u64,
    /// Response body bytes written.
    pub response_bytes: u64,
    /// True for 5xx and panics.
    pub failed: bool,
}

/// The process-wide HTTP metrics registry (one per `Tracepost`).
#[derive(Debug)]
pub struct HttpMetrics {
    /// Looked up once per request: hashed with foldhash (route templates are few and capped
    /// by `max_routes`, so a fast hasher is safe here).
    routes: RwLock<HashMap<Arc<str>, Arc<RouteMetrics>, foldhash::fast::RandomState>>,
    active: [AtomicI64; METHODS.len() + 1],
    max_routes: usize,
    window: Duration,
}

/// The metrics of one route template.
#[derive(Debug)]
pub struct RouteMetrics {
    route: Arc<str>,
    series: RwLock<Vec<Arc<Series>>>,
    windows: Mutex<Vec<(&'static str, WindowAcc)>>,
}

#[derive(Debug)]
struct Series {
    method: &'static str,
    status: u16,
    duration: Histogram,
    request_size: Histogram,
    response_size: Histogram,
}

#[derive(Debug, Default)]
struct WindowAcc {
    count: u64,
    errors: u64,
    bytes_in: u64,
    bytes_out: u64,
    max: f64,
    sketch: LatencySketch,
}

impl HttpMetrics {
    /// A registry with at most `max_routes` distinct route labels (later ones share
    /// [`OVERFLOW_ROUTE`]), aggregating metric windows of `window` length.
    pub fn new(max_routes: usize, window: Duration) -> Self {
        HttpMetrics {
            routes: RwLock::new(HashMap::default()),
            active: Default::default(),
            max_routes,
            window,
        }
    }

    /// The window length for metric-window events.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The metrics of `route` (a template such as `/users/{id}`, or [`UNMATCHED_ROUTE`]).
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        if let Some(r) = self.routes.read().get(route) {
            return r.clone();
        }
        let mut routes = self.routes.write();
        let key: &str = if routes.len() >= self.max_routes && !routes.contains_key(route) {
            OVERFLOW_ROUTE
        } else {
            route
        };
        routes
            .entry(Arc::from(key))
            .or_insert_with(|| {
                Arc::new(RouteMetrics {
                    route: Arc::from(key),
                    series: RwLock::new(Vec::new()),
                    windows: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Adds `delta` (+1 when a request starts, -1 when it ends) to the active-requests gauge.
    pub fn add_active(&self, method: &'static str, delta: i64) {
        let i = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len());
        self.active[i].fetch_add(delta, Ordering::Relaxed);
    }

    /// Encodes every HTTP metric family (histograms per method, status and route; the
    /// active-requests gauge per method).
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let routes: Vec<Arc<RouteMetrics>> = {
            let mut r: Vec<_> = self.routes.read().values().cloned().collect();
            r.sort_by(|a, b| a.route.cmp(&b.route));
            r
        };
        let mut all: Vec<(Arc<str>, Arc<Series>)> = Vec::new();
        for r in &routes {
            for s in r.series.read().iter() {
                all.push((r.route.clone(), s.clone()));
            }
        }
        type Pick = fn(&Series) -> &Histogram;
        let families: [(&str, &str, Pick); 3] = [
            (
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests.",
                |s| &s.duration,
            ),
            (
                "http_server_request_body_size_bytes",
                "Size of HTTP server request bodies.",
                |s| &s.request_size,
            ),
            (
                "http_server_response_body_size_bytes",
                "Size of HTTP server response bodies.",
                |s| &s.response_size,
            ),
        ];
        for (name, help, pick) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (route, s) in &all {
                let status = s.status.to_string();
                let labels = [
                    ("http_request_method", s.method),
                    ("http_response_status_code", status.as_str()),
                    ("http_route", route),
                ];
                pick(s).encode(&mut family, &labels)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            None,
            MetricType::Gauge,
        )?;
        for (i, m) in METHODS.iter().chain(["_OTHER"].iter()).enumerate() {
            let v = self.active[i].load(Ordering::Relaxed);
            family
                .encode_family(&[("http_request_method", *m)])?
                .encode_gauge(&v)?;
        }
        Ok(())
    }

    /// Takes every non-empty window accumulated so far, as metric-window values starting at
    /// `start`. Called by the pipeline every window length.
    pub fn take_windows(&self, start: SystemTime) -> Vec<MetricWindow> {
        let routes: Vec<Arc<RouteMetrics>> = self.routes.read().values().cloned().collect();
        let start = Timestamp::from(align(start, self.window));
        let mut out = Vec::new();
        for r in routes {
            let taken = std::mem::take(&mut *r.windows.lock());
            for (method, acc) in taken {
                if acc.count == 0 {
                    continue;
                }
                let ms = |q: f64| (acc.sketch.quantile(q) * 1e6).round() / 1e3;
                out.push(MetricWindow {
                    start,
                    seconds: self.window.as_secs() as u32,
                    method: method.to_owned(),
                    route: r.route.to_string(),
                    count: acc.count,
                    errors: acc.errors,
                    p50_ms: ms(0.5),
                    p95_ms: ms(0.95),
                    p99_ms: ms(0.99),
                    max_ms: (acc.max * 1e6).round() / 1e3,
                    bytes_in: acc.bytes_in,
                    bytes_out: acc.bytes_out,
                });
            }
        }
        out
    }
}

fn align(t: SystemTime, window: Duration) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let w = window.as_secs().max(1);
    UNIX_EPOCH + Duration::from_secs(secs - secs % w)
}

impl RouteMetrics {
    /// The route label.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The route label, shared.
    pub fn route_arc(&self) -> Arc<str> {
        self.route.clone()
    }

    /// Records one finished request.
    pub fn record(&self, o: &RequestOutcome) {
        let series = self.series_for(o.method, o.status);
        let secs = o.duration.as_secs_f64();
        series.duration.record(secs);
        series.request_size.record(o.request_bytes as f64);
        series.response_size.record(o.response_bytes as f64);
        let mut windows = self.windows.lock();
        let acc = match windows.iter_mut().position(|(m, _)| *m == o.method) {
            Some(i) => &mut windows[i].1,
            None => {
                windows.push((o.method, WindowAcc::default()));
                &mut windows.last_mut().expect("just pushed").1
            }
        };
        acc.count += 1;
        acc.errors += u64::from(o.failed);
        acc.bytes_in += o.request_bytes;
        acc.bytes_out += o.response_bytes;
        acc.max = acc.max.max(secs);
        acc.sketch.record(secs);
    }

    fn series_for(&self, method: &'static str, status: u16) -> Arc<Series> {
        if let Some(s) = self
            .series
            .read()
            .iter()
            .find(|s| s.method == method && s.status == status)
        {
            return s.clone();
        }
        let mut series = self.series.write();
        if let Some(s) = series
            .iter()
            .find(|s| s.method == method && s.status == status)
        {
            return s.clone();
        }
        let s = Arc::new(Series {
            method,
            status,
            duration: Histogram::new(DURATION_BUCKETS, 1e6),
            request_size: Histogram::new(SIZE_BUCKETS, 1.0),
            response_size: Histogram::new(SIZE_BUCKETS, 1.0),
        });
        series.push(s.clone());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_route_cardinality_and_renders_labels() {
        let m = Arc::new(HttpMetrics::new(2, Duration::from_secs(60)));
        for route in ["/a", "/b", "/c", "/d"] {
            m.route(route).record(&RequestOutcome {
                method: "GET",
                status: 200,
                duration: Duration::from_millis(3),
                request_bytes: 0,
                response_bytes: 10,
                failed: false,
            });
        }
        let m2 = m.clone();
        let text = crate::metrics::exposition::encode_fn(
            move |e| m2.encode(e),
            crate::metrics::MetricsFormat::Prometheus,
        );
        assert!(text.contains("http_route=\"/a\""));
        assert!(text.contains("http_route=\"_overflow\""));
        assert!(!text.contains("http_route=\"/c\""));
        assert!(text.contains(
            // prometheus-client writes `le` first; a label set has no order.
            "http_server_request_duration_seconds_bucket{le=\"0.005\",http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"_overflow\"} 2"
        ));
        let windows = m.take_windows(SystemTime::now());
        assert_eq!(windows.iter().map(|w| w.count).sum::<u64>(), 4);
        assert!(
            m.take_windows(SystemTime::now()).is_empty(),
            "windows reset after take"
        );
    }

    #[test]
    fn unknown_methods_collapse() {
        assert_eq!(normalize_method("PROPFIND"), "_OTHER");
        assert_eq!(normalize_method("PATCH"), "PATCH");
    }
}
