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
//!   Loki would refuse for their timestamp are rejected up front. Set them to your Loki's
//!   limits in code, a configuration file or the environment ([`Limits::from_env`]).
//! * **Rate limits**: the request size adapts (core's `http_sink::RequestSizer`): a 429 or 413
//!   halves it, down to one entry, accepted pushes grow it back slowly, and the rate Loki names
//!   in its 429 (`limit: 10485 bytes/sec`) caps and paces the pushes. Entries already stored
//!   are never sent again, within an attempt or when the pipeline retries the batch.
//! * **Failures**: 408, 429, 5xx, timeouts and connection errors are temporary (the pipeline
//!   retries, honouring `Retry-After`); 401, 403, 404, 405 and 410 mean the credentials, tenant
//!   or URL are wrong — the push is *refused* whole, so the pipeline keeps the events (spool or
//!   memory), reports the sink `down` and retries slowly until Loki accepts. A 400 naming the
//!   refused entries (Loki's validation messages) means Loki stored the others: those count as
//!   delivered, the named ones are dropped, counted by reason, nothing is sent again. Other
//!   4xx are permanent, so the pipeline splits the batch until the offending entries are
//!   isolated, and only those are dropped, counted by reason.
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
mod partial;
pub mod proto;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracepost_core::http_sink::{self, HttpFailure, RequestSizer};
use tracepost_core::metrics::MetricsFormat;
use tracepost_core::prometheus_client::collector::Collector;
use tracepost_core::prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use tracepost_core::prometheus_client::metrics::MetricType;
use tracepost_core::prometheus_client::registry::Registry;
use tracepost_core::{
    Batch, BatchOptions, Event, Rejection, Sink, SinkError, SinkErrorClass, SinkErrorKind,
    SinkOptions, SinkOutcome,
};
use uuid::Uuid;

pub use crate::config::{
    Auth, ConfigError, Limits, LineFormat, LokiConfig, PushEncoding, LIMITS_ENV,
};
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
    /// Adaptive request size (core's AIMD sizer): halved on 429/413, paced by a named rate.
    sizer: RequestSizer,
    /// Events settled by an attempt of a batch that did not complete: `None` stored by Loki,
    /// `Some` refused by it. A retry of the batch skips them.
    carry: Mutex<HashMap<Uuid, Option<Rejection>>>,
    /// Loki's `max_line_size`, once a 400 named it (0: not known).
    server_max_line: AtomicUsize,
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
                request_bytes: AtomicUsize::new(config.limits.max_push_bytes),
                ..LokiStats::default()
            }),
            sizer: RequestSizer::new(config.limits.max_push_bytes),
            carry: Mutex::new(HashMap::new()),
            server_max_line: AtomicUsize::new(0),
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
        let mut attempt = Attempt::default();
        let mut pending: Vec<Arc<Event>> = Vec::with_capacity(batch.len());
        {
            // Events an earlier attempt of this batch settled (stored or refused by Loki)
            // are not sent again.
            let mut carry = self.carry.lock().unwrap_or_else(|e| e.into_inner());
            for event in batch {
                match carry.remove(&event.id) {
                    Some(Some(r)) => attempt.rejected.push(r),
                    Some(None) => attempt.delivered.push(event.id),
                    None => pending.push(event),
                }
            }
        }
        let result = self.send_pending(pending, &mut attempt).await;
        match result {
            Ok(()) => {
                self.forget(&attempt.remembered);
                Ok(SinkOutcome {
                    rejected: attempt.rejected,
                })
            }
            Err(e) => {
                // The pipeline counts what this attempt settled and retries only the rest.
                // The carry-over map remembers it too, for a retry of the whole batch (a
                // send cut short by its timeout returns no error; a spooled batch is
                // replayed whole).
                let settled = tracepost_core::Settled {
                    delivered: attempt.delivered.clone(),
                    rejected: attempt.rejected.clone(),
                };
                self.remember_rejected(&mut attempt);
                Err(e.with_settled(settled))
            }
        }
    }
}

/// What one `send` settled so far.
#[derive(Default)]
struct Attempt {
    rejected: Vec<Rejection>,
    /// Ids Loki stored (in this send, or in an earlier attempt of the batch).
    delivered: Vec<Uuid>,
    /// Ids written to the carry-over map (delivered ones as they go).
    remembered: Vec<Uuid>,
}

/// Most events kept in the carry-over map (ids settled by an attempt of a batch that did not
/// complete); beyond it the map is cleared, and a retried batch may re-send what was stored.
const CARRY_MAX: usize = 200_000;

impl LokiSink {
    async fn send_pending(
        &self,
        mut pending: Vec<Arc<Event>>,
        attempt: &mut Attempt,
    ) -> Result<(), SinkError> {
        let stats = &self.stats;
        let mut first = true;
        let mut rounds = 0;
        'encode: while !pending.is_empty() {
            let encoded = self.encoder.encode_sized(
                &pending,
                SystemTime::now(),
                self.sizer.request_bytes(),
                self.max_line_bytes(),
            );
            if first {
                stats
                    .truncated_lines
                    .fetch_add(encoded.truncated as u64, Ordering::Relaxed);
                stats
                    .values_cut
                    .fetch_add(encoded.values_cut as u64, Ordering::Relaxed);
                first = false;
            }
            let mut settled: HashSet<Uuid> = HashSet::new();
            for r in encoded.rejected {
                stats.rejected(&r.reason, 1);
                settled.insert(r.id);
                attempt.rejected.push(r);
            }
            for push in &encoded.pushes {
                let wait = self.sizer.delay_before(push.raw_bytes);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let failure = match self.http.post(push).await {
                    Ok(()) => {
                        stats.accepted(push, push.ids.len());
                        self.sizer.on_success(push.raw_bytes);
                        self.mirror_sizer();
                        self.remember_delivered(&push.ids, attempt);
                        settled.extend(&push.ids);
                        continue;
                    }
                    Err(f) => f,
                };
                let f = match failure {
                    Failure::Transport(e) => {
                        stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(e);
                    }
                    Failure::Status(f) => f,
                };
                match f.status {
                    401 | 403 | 404 | 405 | 410 => return Err(self.refused(&f)),
                    429 | 413 => {
                        stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                        stats.shrinks.fetch_add(1, Ordering::Relaxed);
                        self.sizer.on_refused(push.raw_bytes);
                        if f.status == 429 {
                            if let Some(rate) = http_sink::named_rate_limit(&f.body) {
                                self.sizer.learn_rate(rate);
                            }
                        }
                        self.mirror_sizer();
                        if f.status == 413 && push.ids.len() == 1 {
                            // Too large even alone: Loki will never take this entry.
                            self.reject_one(push.ids[0], &f, attempt);
                            settled.insert(push.ids[0]);
                            continue;
                        }
                        if push.ids.len() > 1 && f.retry_after.is_none() && rounds < 24 {
                            // Send the rest again in smaller requests, paced by the learned
                            // rate; what was delivered stays delivered.
                            rounds += 1;
                            pending.retain(|e| !settled.contains(&e.id));
                            continue 'encode;
                        }
                        let e = f.to_sink_error();
                        let mut e =
                            SinkError::new(SinkErrorClass::Temporary, e.kind(), e.message());
                        if let Some(after) = f.retry_after {
                            e = e.with_retry_after(after);
                        }
                        return Err(e);
                    }
                    408 => {
                        stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(f.to_sink_error());
                    }
                    400..=499 if http::is_html(&f.body) => {
                        // Not Loki's words: a proxy in front of it refused the request as a
                        // whole (a header too large, a path it does not know). No entry is
                        // at fault; splitting would drop them all one by one.
                        return Err(self.refused(&f));
                    }
                    400..=499 => {
                        if let Some(partial) = partial::read(push, &f.body) {
                            // Loki stored every entry it did not name.
                            if let Some(max) = partial.max_line_bytes {
                                self.learn_max_line(max);
                            }
                            stats.partial_pushes.fetch_add(1, Ordering::Relaxed);
                            let refused: HashSet<Uuid> =
                                partial.refused.iter().map(|r| r.id).collect();
                            let mut carried = Vec::with_capacity(partial.refused.len());
                            for r in partial.refused {
                                stats.rejected(r.reason, 1);
                                carried.push(Rejection {
                                    id: r.id,
                                    reason: Cow::Borrowed(r.reason),
                                    detail: format!("HTTP {}: {}", f.status, truncate(&r.message)),
                                });
                            }
                            // Remembered at once: a send cut short (its timeout) and retried
                            // does not send them again either.
                            self.remember(&carried, attempt);
                            attempt.rejected.extend(carried);
                            let stored: Vec<Uuid> = push
                                .ids
                                .iter()
                                .copied()
                                .filter(|id| !refused.contains(id))
                                .collect();
                            stats.accepted(push, stored.len());
                            self.remember_delivered(&stored, attempt);
                            settled.extend(&push.ids);
                        } else if push.ids.len() == 1 {
                            // A push of one entry: the 4xx is about that entry. Drop only it.
                            self.reject_one(push.ids[0], &f, attempt);
                            settled.insert(push.ids[0]);
                        } else {
                            // Loki's 4xx names no entry (a request it could not read, which it
                            // stores nothing of): let the pipeline split the batch.
                            stats.permanent_failures.fetch_add(1, Ordering::Relaxed);
                            return Err(f.to_sink_error());
                        }
                    }
                    _ => {
                        stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                        let e = f.to_sink_error();
                        return Err(if e.is_temporary() {
                            e
                        } else {
                            // 3xx and other oddities: a proxy in the way, perhaps; retry.
                            SinkError::temporary(e.message().to_owned())
                        });
                    }
                }
            }
            break;
        }
        Ok(())
    }

    fn mirror_sizer(&self) {
        self.stats
            .request_bytes
            .store(self.sizer.request_bytes(), Ordering::Relaxed);
        self.stats
            .learned_rate
            .store(self.sizer.learned_rate().unwrap_or(0), Ordering::Relaxed);
    }

    fn refused(&self, f: &HttpFailure) -> SinkError {
        // Credentials, tenant or URL are wrong: no single event is at fault. The whole batch
        // is refused: kept by the pipeline and retried slowly until Loki accepts again (a key
        // rotated, the tenant enabled).
        self.stats.refused_failures.fetch_add(1, Ordering::Relaxed);
        let mut e = f.to_sink_error();
        if f.status != 405 && !e.is_refused() {
            // An HTML 4xx from a proxy: the destination, not the data.
            e = SinkError::refused(format!(
                "HTTP {}: a proxy answered with an HTML page: {}",
                f.status,
                http::html_text(&f.body)
            ))
            .with_kind(SinkErrorKind::Other);
        }
        if f.status == 405 {
            // A push URL that is not Loki's push endpoint.
            e = SinkError::refused(e.message().to_owned()).with_kind(SinkErrorKind::NotFound);
        }
        SinkError::new(
            e.class(),
            e.kind(),
            format!(
                "Loki refused the push ({}); check the URL {}, the tenant and the credentials",
                e.message(),
                config::display_url(&self.config.push_url())
            ),
        )
    }

    fn reject_one(&self, id: Uuid, f: &HttpFailure, attempt: &mut Attempt) {
        let reason = rejection_reason(f.status, &f.body);
        self.stats.rejected(reason, 1);
        attempt.rejected.push(Rejection {
            id,
            reason: Cow::Borrowed(reason),
            detail: format!("HTTP {}: {}", f.status, truncate(&f.body)),
        });
    }

    fn remember_delivered(&self, ids: &[Uuid], attempt: &mut Attempt) {
        let mut carry = self.carry.lock().unwrap_or_else(|e| e.into_inner());
        if carry.len() + ids.len() > CARRY_MAX {
            carry.clear();
        }
        for id in ids {
            carry.insert(*id, None);
        }
        attempt.remembered.extend_from_slice(ids);
        attempt.delivered.extend_from_slice(ids);
    }

    fn remember(&self, rejected: &[Rejection], attempt: &mut Attempt) {
        let mut carry = self.carry.lock().unwrap_or_else(|e| e.into_inner());
        for r in rejected {
            carry.insert(r.id, Some(r.clone()));
            attempt.remembered.push(r.id);
        }
    }

    fn remember_rejected(&self, attempt: &mut Attempt) {
        let mut carry = self.carry.lock().unwrap_or_else(|e| e.into_inner());
        for r in attempt.rejected.drain(..) {
            carry.insert(r.id, Some(r));
        }
    }

    fn forget(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let mut carry = self.carry.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            carry.remove(id);
        }
    }

    /// The longest line to send: the configured limit, or Loki's own when it named a smaller
    /// one in a 400.
    fn max_line_bytes(&self) -> usize {
        match self.server_max_line.load(Ordering::Relaxed) {
            0 => self.config.limits.max_line_bytes,
            n => n.min(self.config.limits.max_line_bytes),
        }
    }

    fn learn_max_line(&self, max: usize) {
        tracing::warn!(
            target: "tracepost::loki",
            sink = %self.name,
            "Loki's max_line_size is {max} bytes, below limits.max_line_bytes ({}); longer lines are now shortened to it",
            self.config.limits.max_line_bytes
        );
        self.server_max_line.store(max, Ordering::Relaxed);
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
    shrinks: AtomicU64,
    partial_pushes: AtomicU64,
    /// Mirrors of the sizer's state, for the snapshot and metrics.
    request_bytes: AtomicUsize,
    learned_rate: AtomicU64,
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
    /// Pushes refused for their size or rate (429, 413), after which the request size was
    /// halved (also counted in `temporary_failures`).
    pub shrinks: u64,
    /// Pushes Loki answered 400 for, naming the entries it refused: it stored the others,
    /// which are counted delivered and never sent again.
    pub partial_pushes: u64,
    /// The request size the sink aims at now, in uncompressed bytes (adaptive: see
    /// `tracepost_core::http_sink::RequestSizer`).
    pub request_bytes: u64,
    /// The ingestion rate Loki named in a 429 (`limit: N bytes/sec`), which pushes are paced
    /// at, if one was learned.
    pub learned_rate: Option<u64>,
    /// Events dropped by the sink, by reason (`too_old`, `bad_request`, `line_too_long`, …).
    pub rejected: BTreeMap<&'static str, u64>,
}

impl LokiStats {
    fn accepted(&self, push: &Push, lines: usize) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        self.lines.fetch_add(lines as u64, Ordering::Relaxed);
        self.raw_bytes
            .fetch_add(push.raw_bytes as u64, Ordering::Relaxed);
        self.body_bytes
            .fetch_add(push.body.len() as u64, Ordering::Relaxed);
    }

    fn rejected(&self, reason: &str, n: u64) {
        let reason: &'static str = match reason {
            "too_old" => "too_old",
            "too_new" => "too_new",
            "too_large" => "too_large",
            "line_too_long" => "line_too_long",
            "structured_metadata" => "structured_metadata",
            "out_of_order" => "out_of_order",
            "too_far_behind" => "too_far_behind",
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
            shrinks: get(&self.shrinks),
            partial_pushes: get(&self.partial_pushes),
            request_bytes: self.request_bytes.load(Ordering::Relaxed) as u64,
            learned_rate: match self.learned_rate.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            },
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
        counter(
            "tracepost_loki_shrinks",
            "Pushes refused for their size or rate (429, 413), after which the request size was halved.",
            &[(None, s.shrinks)],
        )?;
        counter(
            "tracepost_loki_partial_pushes",
            "Pushes Loki answered 400 for naming the refused entries; the others were stored and not sent again.",
            &[(None, s.partial_pushes)],
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
        )?;
        let mut gauge = e.encode_descriptor(
            "tracepost_loki_request_bytes",
            "The uncompressed size the sink aims at per push now (halved on 429/413, grown while pushes succeed).",
            None,
            MetricType::Gauge,
        )?;
        gauge
            .encode_family(&[("sink", sink)])?
            .encode_gauge(&(s.request_bytes as i64))
    }
}
