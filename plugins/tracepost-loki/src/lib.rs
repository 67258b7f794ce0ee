//! A [tracepost](https://docs.rs/tracepost) sink that pushes events to [Grafana Loki].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tracepost_core::Tracepost;
//! use tracepost_loki::LokiSink;
//!
//! let tp = Tracepost::builder()
//!     .service("shop-api")
//!     .sink_with(LokiSink::new("http://loki:3100")?, LokiSink::sink_options())
//!     .build()?;
//! // … capture events through tp.handle() …
//! tp.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! * **Wire format**: `POST /loki/api/v1/push`, a `logproto.PushRequest` ([`proto`]) as one raw
//!   snappy block, `Content-Type: application/x-protobuf`; or JSON, optionally gzipped
//!   ([`PushEncoding`]).
//! * **Labels** stay cheap: `service`, `environment`, `level`, `kind` and your static labels —
//!   never ids, paths or messages. Everything else is in the line ([`LineFormat`]: JSON or
//!   logfmt) and, for Loki ≥ 2.9, the ids, fingerprint and route are also structured metadata.
//! * **Limits** ([`Limits`]) are enforced before sending: long lines are shortened with a
//!   visible `tracepost_truncated` marker, label and metadata values are cut, entries are sorted
//!   by time within each stream, batches are split into pushes of at most 1 MiB, and events
//!   Loki would refuse for their timestamp are rejected up front.
//! * **Failures**: 408, 429, 5xx, timeouts and connection errors are temporary (the pipeline
//!   retries, honouring `Retry-After`); 401, 403, 404, 405 and 410 mean the credentials, tenant
//!   or URL are wrong — the push is *refused* whole, so the pipeline keeps the events (spool or
//!   memory), reports the sink `down` and retries slowly until Loki accepts; other 4xx are
//!   permanent, so the pipeline splits the batch until the offending entries are isolated,
//!   and only those are dropped, counted by reason.
//! * **HTTP**: core's shared HTTP sink client (`tracepost_core::http_sink`, reqwest): the
//!   proxy from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, HTTPS with the `rustls` feature.
//! * **Configuration files**: [`LokiConfig`] deserializes with serde (unknown fields refused).
//!
//! [Grafana Loki]: https://grafana.com/oss/loki/

mod config;
mod encode;
mod http;
mod labels;
mod line;
pub mod proto;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracepost_core::metrics::MetricsFormat;
use tracepost_core::prometheus_client::collector::Collector;
use tracepost_core::prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use tracepost_core::prometheus_client::metrics::MetricType;
use tracepost_core::prometheus_client::registry::Registry;
use tracepost_core::{
    Batch, BatchOptions, Rejection, Sink, SinkError, SinkErrorKind, SinkOptions, SinkOutcome,
};

pub use crate::config::{Auth, ConfigError, Limits, LineFormat, LokiConfig, PushEncoding};
pub use crate::encode::{Encoded, Encoder, Push};
pub use crate::http::{parse_retry_after, rejection_reason};
pub use crate::labels::{valid_label_name, METADATA_NAMES, RESERVED_LABELS};
pub use crate::line::TRUNCATED_KEY;

use crate::http::{Failure, Http};

/// Pushes batches of events to Loki. See the [crate docs](crate).
pub struct LokiSink {
    name: String,
    encoder: Encoder,
    http: Http,
    stats: Arc<LokiStats>,
    config: LokiConfig,
}

impl std::fmt::Debug for LokiSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LokiSink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LokiSink {
    /// A sink for the Loki at `url` (`http://loki:3100`) with the default [`LokiConfig`].
    /// Fails, with one readable line, if `url` is not an `http://` URL (or `https://` with the
    /// `rustls` feature). Makes no connection: a Loki that is down or refuses the sink
    /// leaves it `down` in the pipeline's health, events kept, until it accepts them.
    pub fn new(url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::with_config(LokiConfig::new(url))
    }

    /// A sink with explicit settings; fails on an invalid URL, label or header. Makes no
    /// connection.
    pub fn with_config(config: LokiConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let http = Http::new(&config)?;
        Ok(LokiSink {
            name: config.name.clone(),
            encoder: Encoder::new(&config),
            http,
            stats: Arc::new(LokiStats {
                sink: config.name.clone(),
                ..LokiStats::default()
            }),
            config,
        })
    }

    /// Pipeline settings that suit Loki: batches of up to 1 MiB or 10 000 events, sent after
    /// at most 1 s. Use with `Tracepost::builder().sink_with(sink, LokiSink::sink_options())`.
    pub fn sink_options() -> SinkOptions {
        SinkOptions::default()
            .batch(BatchOptions::new(10_000, 1 << 20, Duration::from_secs(1)))
            .send_timeout(Duration::from_secs(60))
    }

    /// The sink's own counters (shared: keep the `Arc` after moving the sink into the pipeline).
    pub fn stats(&self) -> Arc<LokiStats> {
        self.stats.clone()
    }

    /// The settings in use.
    pub fn config(&self) -> &LokiConfig {
        &self.config
    }
}

impl Sink for LokiSink {
    fn default_options(&self) -> SinkOptions {
        Self::sink_options()
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.stats()));
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let encoded = self.encoder.encode(&batch, SystemTime::now());
        drop(batch);
        let stats = &self.stats;
        stats
            .truncated_lines
            .fetch_add(encoded.truncated as u64, Ordering::Relaxed);
        stats
            .values_cut
            .fetch_add(encoded.values_cut as u64, Ordering::Relaxed);
        let mut rejected = encoded.rejected;
        for r in &rejected {
            stats.rejected(&r.reason, 1);
        }
        for push in &encoded.pushes {
            let failure = match self.http.post(push).await {
                Ok(()) => {
                    stats.pushes.fetch_add(1, Ordering::Relaxed);
                    stats
                        .lines
                        .fetch_add(push.ids.len() as u64, Ordering::Relaxed);
                    stats
                        .raw_bytes
                        .fetch_add(push.raw_bytes as u64, Ordering::Relaxed);
                    stats
                        .body_bytes
                        .fetch_add(push.body.len() as u64, Ordering::Relaxed);
                    continue;
                }
                Err(f) => f,
            };
            match failure {
                Failure::Status(f) if matches!(f.status, 401 | 403 | 404 | 405 | 410) => {
                    // Credentials, tenant or URL are wrong: no single event is at fault. The
                    // whole batch is refused: kept by the pipeline and retried slowly until
                    // Loki accepts again (a key rotated, the tenant enabled).
                    stats.refused_failures.fetch_add(1, Ordering::Relaxed);
                    let mut e = f.to_sink_error();
                    if f.status == 405 {
                        // A push URL that is not Loki's push endpoint.
                        e = SinkError::refused(e.message().to_owned())
                            .with_kind(SinkErrorKind::NotFound);
                    }
                    return Err(SinkError::new(
                        e.class(),
                        e.kind(),
                        format!(
                            "Loki refused the push ({}); check the URL {}, the tenant and the credentials",
                            e.message(),
                            config::display_url(&self.config.push_url())
                        ),
                    ));
                }
                Failure::Status(f)
                    if (400..500).contains(&f.status) && f.status != 408 && f.status != 429 =>
                {
                    let reason = rejection_reason(f.status, &f.body);
                    if push.ids.len() == 1 {
                        // A push of one entry: the 4xx is about that entry. Drop only it.
                        stats.rejected(reason, 1);
                        rejected.push(Rejection {
                            id: push.ids[0],
                            reason: Cow::Borrowed(reason),
                            detail: format!("HTTP {}: {}", f.status, truncate(&f.body)),
                        });
                    } else {
                        // Loki's 4xx names no entry: let the pipeline split the batch.
                        stats.permanent_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(f.to_sink_error());
                    }
                }
                Failure::Status(f) => {
                    stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                    let e = f.to_sink_error();
                    return Err(if e.is_temporary() {
                        e
                    } else {
                        // 3xx and other oddities: a proxy in the way, perhaps; retry.
                        SinkError::temporary(e.message().to_owned())
                    });
                }
                Failure::Transport(e) => {
                    stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(SinkOutcome { rejected })
    }
}

fn truncate(s: &str) -> &str {
    labels::truncate_utf8(s.trim(), 512)
}

/// The Loki sink's own counters. The pipeline counts delivered, retried and dropped events;
/// these add what only the sink sees.
#[derive(Debug, Default)]
pub struct LokiStats {
    sink: String,
    pushes: AtomicU64,
    lines: AtomicU64,
    raw_bytes: AtomicU64,
    body_bytes: AtomicU64,
    truncated_lines: AtomicU64,
    values_cut: AtomicU64,
    temporary_failures: AtomicU64,
    permanent_failures: AtomicU64,
    refused_failures: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

/// A copy of [`LokiStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LokiStatsSnapshot {
    /// Successful push requests.
    pub pushes: u64,
    /// Lines Loki accepted.
    pub lines: u64,
    /// Uncompressed bytes (lines + metadata) Loki accepted.
    pub raw_bytes: u64,
    /// Request body bytes sent in successful pushes (after compression).
    pub body_bytes: u64,
    /// Lines shortened to `max_line_bytes`.
    pub truncated_lines: u64,
    /// Label or metadata values cut to their limit.
    pub values_cut: u64,
    /// Pushes that failed temporarily (the pipeline retries them).
    pub temporary_failures: u64,
    /// Pushes of several entries refused with a 4xx (the pipeline splits them).
    pub permanent_failures: u64,
    /// Pushes refused whole with 401, 403, 404, 405 or 410: wrong credentials, tenant or URL
    /// (the pipeline keeps the events and retries slowly).
    pub refused_failures: u64,
    /// Events dropped by the sink, by reason (`too_old`, `bad_request`, `line_too_long`, …).
    pub rejected: BTreeMap<&'static str, u64>,
}

impl LokiStats {
    fn rejected(&self, reason: &str, n: u64) {
        let reason: &'static str = match reason {
            "too_old" => "too_old",
            "too_new" => "too_new",
            "too_large" => "too_large",
            "line_too_long" => "line_too_long",
            "structured_metadata" => "structured_metadata",
            "out_of_order" => "out_of_order",
            "invalid_labels" => "invalid_labels",
            _ => "bad_request",
        };
        let mut map = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(reason).or_default() += n;
    }

    /// The counters now.
    pub fn snapshot(&self) -> LokiStatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LokiStatsSnapshot {
            pushes: get(&self.pushes),
            lines: get(&self.lines),
            raw_bytes: get(&self.raw_bytes),
            body_bytes: get(&self.body_bytes),
            truncated_lines: get(&self.truncated_lines),
            values_cut: get(&self.values_cut),
            temporary_failures: get(&self.temporary_failures),
            permanent_failures: get(&self.permanent_failures),
            refused_failures: get(&self.refused_failures),
            rejected: self
                .rejected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// The counters in the Prometheus text format (`tracepost_loki_*{sink="loki",…}`). The
    /// pipeline serves them on `/metrics` already (see [`Sink::register_metrics`]); this is for
    /// a sink used outside a pipeline.
    pub fn render_prometheus(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        tracepost_core::metrics::encode_registries(&[&registry], MetricsFormat::Prometheus)
    }

    /// Events rejected for `reason`.
    pub fn rejected_for(&self, reason: &str) -> u64 {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }
}

impl Collector for LokiStats {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.snapshot();
        let sink = self.sink.as_str();
        // Counter families are named without `_total`: the encoder appends it.
        let mut counter = |name: &str, help: &str, samples: &[(Option<(&str, &str)>, u64)]| {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (label, value) in samples {
                let labels: Vec<(&str, &str)> =
                    std::iter::once(("sink", sink)).chain(*label).collect();
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(value, None)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        counter(
            "tracepost_loki_pushes",
            "Push requests Loki accepted.",
            &[(None, s.pushes)],
        )?;
        counter(
            "tracepost_loki_lines",
            "Log lines Loki accepted.",
            &[(None, s.lines)],
        )?;
        counter(
            "tracepost_loki_bytes",
            "Bytes Loki accepted: raw lines and metadata, and request bodies on the wire.",
            &[
                (Some(("stage", "raw")), s.raw_bytes),
                (Some(("stage", "wire")), s.body_bytes),
            ],
        )?;
        counter(
            "tracepost_loki_truncated_lines",
            "Lines shortened to the line-size limit.",
            &[(None, s.truncated_lines)],
        )?;
        counter(
            "tracepost_loki_values_cut",
            "Label or structured-metadata values cut to their length limit.",
            &[(None, s.values_cut)],
        )?;
        counter(
            "tracepost_loki_push_failures",
            "Failed push requests: temporary ones are retried, permanent ones split, refused ones kept and retried slowly.",
            &[
                (Some(("kind", "temporary")), s.temporary_failures),
                (Some(("kind", "permanent")), s.permanent_failures),
                (Some(("kind", "refused")), s.refused_failures),
            ],
        )?;
        let rejected: Vec<_> = s
            .rejected
            .iter()
            .map(|(r, n)| (Some(("reason", *r)), *n))
            .collect();
        counter(
            "tracepost_loki_rejected",
            "Events the Loki sink dropped, by reason.",
            &rejected,
        )
    }
}
