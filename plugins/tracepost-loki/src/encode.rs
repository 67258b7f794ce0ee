//! From a batch of events to push bodies: group into streams, enforce limits, sort, split,
//! encode (protobuf + snappy, or JSON, optionally gzip).

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use serde::ser::SerializeSeq;
use tracepost_core::{Event, Rejection};
use uuid::Uuid;

use crate::config::{Limits, LineFormat, LokiConfig, PushEncoding};
use crate::labels::{render_labels, truncate_utf8, StreamKey};
use crate::line;
use crate::proto;

/// Turns batches of events into push bodies. Pure CPU work, no I/O: used by the sink and by
/// the benchmark.
#[derive(Debug, Clone)]
pub struct Encoder {
    static_labels: Vec<(String, String)>,
    encoding: PushEncoding,
    line_format: LineFormat,
    metadata: bool,
    limits: Limits,
}

/// One HTTP request body, ready to send.
#[derive(Debug, Clone)]
pub struct Push {
    /// The (compressed) body.
    pub body: Bytes,
    /// `application/x-protobuf` or `application/json`.
    pub content_type: &'static str,
    /// `gzip` for compressed JSON.
    pub content_encoding: Option<&'static str>,
    /// The events in this push, in the order they were encoded.
    pub ids: Vec<Uuid>,
    /// The uncompressed size (lines + metadata), as Loki's rate limiter counts it.
    pub raw_bytes: usize,
    /// Each stream's labels and entries, to match Loki's 400 messages against.
    pub(crate) streams: Vec<PushedStream>,
}

/// A stream in a push, as Loki's messages name it.
#[derive(Debug, Clone)]
pub(crate) struct PushedStream {
    /// The labels, sorted by name.
    pub labels: Vec<(String, String)>,
    pub entries: Vec<PushedEntry>,
}

/// An entry in a push, with what Loki's validation looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PushedEntry {
    pub id: Uuid,
    pub ts: u64,
    /// `len(line)` in bytes (Loki's `max_line_size` check).
    pub line_bytes: usize,
    /// Structured metadata: names + values in bytes, and how many pairs.
    pub metadata_bytes: usize,
    pub metadata_pairs: usize,
}

/// The result of encoding one batch.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The requests to send, in order.
    pub pushes: Vec<Push>,
    /// Events the sink refused before sending (timestamps Loki would reject).
    pub rejected: Vec<Rejection>,
    /// How many lines were shortened to fit `max_line_bytes`.
    pub truncated: usize,
    /// How many label or metadata values were cut to their length limit.
    pub values_cut: usize,
}

impl Encoded {
    /// Lines in all pushes.
    pub fn lines(&self) -> usize {
        self.pushes.iter().map(|p| p.ids.len()).sum()
    }
}

struct Entry {
    ts: u64,
    line: String,
    metadata: Vec<proto::LabelPairAdapter>,
    id: Uuid,
    size: usize,
}

struct Stream<'a> {
    key: StreamKey<'a>,
    pairs: Vec<(&'a str, &'a str)>,
    labels: String,
    entries: Vec<Entry>,
}

impl Encoder {
    /// An encoder for `config`'s encoding, line format, labels and limits.
    pub fn new(config: &LokiConfig) -> Self {
        Encoder {
            static_labels: config.static_labels.clone(),
            encoding: config.encoding,
            line_format: config.line_format,
            metadata: config.structured_metadata,
            limits: config.limits,
        }
    }

    /// Encodes `batch` as of `now` (for the timestamp limits).
    pub fn encode(&self, batch: &[Arc<Event>], now: SystemTime) -> Encoded {
        self.encode_sized(
            batch,
            now,
            self.limits.max_push_bytes,
            self.limits.max_line_bytes,
        )
    }

    /// Encodes `batch` into pushes of at most `max_push_bytes` (a push holds at least one
    /// entry) with lines of at most `max_line_bytes`: the sink's adaptive sizes, at most the
    /// configured limits.
    pub fn encode_sized(
        &self,
        batch: &[Arc<Event>],
        now: SystemTime,
        max_push_bytes: usize,
        max_line_bytes: usize,
    ) -> Encoded {
        let max_push_bytes = max_push_bytes.clamp(1, self.limits.max_push_bytes);
        let max_line_bytes = max_line_bytes.clamp(256, self.limits.max_line_bytes);
        let mut out = Encoded::default();
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let oldest = self
            .limits
            .max_age
            .map(|d| now_ns.saturating_sub(d.as_nanos() as u64));
        let newest = self
            .limits
            .max_future
            .map(|d| now_ns.saturating_add(d.as_nanos() as u64));

        let mut streams: Vec<Stream<'_>> = Vec::new();
        for event in batch {
            let ts = event.timestamp.unix_nanos();
            if let Some(reason) = match (oldest, newest) {
                (Some(o), _) if ts < o => Some(("too_old", "older than limits.max_age")),
                (_, Some(n)) if ts > n => Some(("too_new", "further ahead than limits.max_future")),
                _ => None,
            } {
                out.rejected.push(Rejection {
                    id: event.id,
                    reason: Cow::Borrowed(reason.0),
                    detail: format!(
                        "timestamp {} is {}; Loki would reject the entry",
                        event.timestamp, reason.1
                    ),
                });
                continue;
            }
            let (line, cut) = line::render(event, self.line_format, max_line_bytes);
            if cut && !self.limits.truncate_lines {
                out.rejected.push(Rejection {
                    id: event.id,
                    reason: Cow::Borrowed("line_too_long"),
                    detail: format!(
                        "line longer than {max_line_bytes} bytes and limits.truncate_lines is off"
                    ),
                });
                continue;
            }
            let key = StreamKey::of(event);
            let stream = match streams.iter().position(|s| s.key == key) {
                Some(i) => &mut streams[i],
                None => {
                    let pairs = key.pairs(&self.static_labels, self.limits.max_label_value_bytes);
                    let max = self.limits.max_label_value_bytes;
                    out.values_cut += usize::from(key.service.len() > max)
                        + usize::from(key.environment.is_some_and(|e| e.len() > max));
                    streams.push(Stream {
                        key,
                        labels: render_labels(&pairs),
                        pairs,
                        entries: Vec::new(),
                    });
                    streams.last_mut().expect("just pushed")
                }
            };
            out.truncated += usize::from(cut);
            let metadata = if self.metadata {
                self.metadata_of(event, &mut out.values_cut)
            } else {
                Vec::new()
            };
            let size = line.len()
                + metadata
                    .iter()
                    .map(|m| m.name.len() + m.value.len())
                    .sum::<usize>()
                + 16;
            stream.entries.push(Entry {
                ts,
                line,
                metadata,
                id: event.id,
                size,
            });
        }

        // Within a stream, entries go oldest first (stable: equal timestamps keep batch order).
        for s in &mut streams {
            s.entries.sort_by_key(|e| e.ts);
        }

        // Split into pushes of at most max_push_bytes (a single entry may exceed it alone).
        let labels: Vec<(String, Vec<(&str, &str)>)> = streams
            .iter()
            .map(|s| (s.labels.clone(), s.pairs.clone()))
            .collect();
        let mut current: Vec<(usize, Vec<Entry>)> = Vec::new();
        let mut current_size = 0;
        for (si, stream) in streams.into_iter().enumerate() {
            let stream_overhead = labels[si].0.len() + 8;
            for entry in stream.entries {
                let mut same_stream = current.last().is_some_and(|(i, _)| *i == si);
                let mut add = entry.size + if same_stream { 0 } else { stream_overhead };
                if !current.is_empty() && current_size + add > max_push_bytes {
                    let full = std::mem::take(&mut current);
                    out.pushes.push(self.finish(full, &labels, current_size));
                    current_size = 0;
                    same_stream = false;
                    add = entry.size + stream_overhead;
                }
                current_size += add;
                match current.last_mut() {
                    Some((_, entries)) if same_stream => entries.push(entry),
                    _ => current.push((si, vec![entry])),
                }
            }
        }
        if !current.is_empty() {
            out.pushes.push(self.finish(current, &labels, current_size));
        }
        out
    }

    fn metadata_of(&self, e: &Event, cut: &mut usize) -> Vec<proto::LabelPairAdapter> {
        let route = e
            .request
            .as_ref()
            .map(|r| r.route.as_str())
            .or(e.metric.as_ref().map(|m| m.route.as_str()))
            // Events logged inside a request (tracing layer, tasks spawned by it) carry the
            // request's route as the `http.route` attribute.
            .or(e.attributes.get("http.route").and_then(|v| v.as_str()));
        let fields: [(&str, Option<&str>); 7] = [
            ("trace_id", e.trace_id.as_deref()),
            ("span_id", e.span_id.as_deref()),
            ("request_id", e.request_id.as_deref()),
            ("session_id", e.session_id.as_deref()),
            ("user_id", e.user_id.as_deref()),
            ("fingerprint", e.fingerprint.as_deref()),
            ("route", route),
        ];
        let max = self.limits.max_metadata_value_bytes;
        fields
            .into_iter()
            .filter_map(|(name, value)| {
                let value = value.filter(|v| !v.is_empty())?;
                let kept = truncate_utf8(value, max);
                *cut += usize::from(kept.len() < value.len());
                Some(proto::LabelPairAdapter {
                    name: name.to_owned(),
                    value: kept.to_owned(),
                })
            })
            .collect()
    }

    fn finish(
        &self,
        streams: Vec<(usize, Vec<Entry>)>,
        labels: &[(String, Vec<(&str, &str)>)],
        raw_bytes: usize,
    ) -> Push {
        let ids = streams
            .iter()
            .flat_map(|(_, es)| es.iter().map(|e| e.id))
            .collect();
        let pushed = streams
            .iter()
            .map(|(si, es)| PushedStream {
                labels: labels[*si]
                    .1
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                entries: es
                    .iter()
                    .map(|e| PushedEntry {
                        id: e.id,
                        ts: e.ts,
                        line_bytes: e.line.len(),
                        metadata_bytes: e
                            .metadata
                            .iter()
                            .map(|m| m.name.len() + m.value.len())
                            .sum(),
                        metadata_pairs: e.metadata.len(),
                    })
                    .collect(),
            })
            .collect();
        match self.encoding {
            PushEncoding::Protobuf => {
                let request = proto::PushRequest {
                    streams: streams
                        .into_iter()
                        .map(|(si, entries)| proto::StreamAdapter {
                            labels: labels[si].0.clone(),
                            entries: entries
                                .into_iter()
                                .map(|e| proto::EntryAdapter {
                                    timestamp: Some(proto::Timestamp::from_unix_nanos(e.ts)),
                                    line: e.line,
                                    structured_metadata: e.metadata,
                                })
                                .collect(),
                            hash: 0,
                        })
                        .collect(),
                };
                let raw = request.encode_to_vec();
                let body = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy block compression of an in-memory buffer cannot fail");
                Push {
                    body: Bytes::from(body),
                    content_type: "application/x-protobuf",
                    content_encoding: None,
                    ids,
                    raw_bytes,
                    streams: pushed,
                }
            }
            PushEncoding::Json { gzip } => {
                let mut json = Vec::with_capacity(raw_bytes + 256);
                write_json(&mut json, &streams, labels);
                let (body, content_encoding) = if gzip {
                    let mut gz = flate2::write::GzEncoder::new(
                        Vec::with_capacity(json.len() / 4),
                        flate2::Compression::fast(),
                    );
                    gz.write_all(&json).expect("writing to a Vec cannot fail");
                    (
                        gz.finish().expect("writing to a Vec cannot fail"),
                        Some("gzip"),
                    )
                } else {
                    (json, None)
                };
                Push {
                    body: Bytes::from(body),
                    content_type: "application/json",
                    content_encoding,
                    ids,
                    raw_bytes,
                    streams: pushed,
                }
            }
        }
    }
}

/// `{"streams":[{"stream":{"a":"b"},"values":[["<ns>","<line>",{"trace_id":"…"}]]}]}`
fn write_json(
    out: &mut Vec<u8>,
    streams: &[(usize, Vec<Entry>)],
    labels: &[(String, Vec<(&str, &str)>)],
) {
    #[derive(serde::Serialize)]
    struct JsonPush<'a> {
        streams: Vec<JsonStream<'a>>,
    }
    #[derive(serde::Serialize)]
    struct JsonStream<'a> {
        stream: Labels<'a>,
        values: Values<'a>,
    }
    struct Labels<'a>(&'a [(&'a str, &'a str)]);
    struct Values<'a>(&'a [Entry]);
    struct Value<'a>(&'a Entry);
    struct Meta<'a>(&'a [proto::LabelPairAdapter]);
    impl serde::Serialize for Labels<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    impl serde::Serialize for Meta<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|p| (&p.name, &p.value)))
        }
    }
    impl serde::Serialize for Values<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(Value))
        }
    }
    impl serde::Serialize for Value<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let e = self.0;
            let with_meta = !e.metadata.is_empty();
            let mut seq = s.serialize_seq(Some(2 + usize::from(with_meta)))?;
            seq.serialize_element(&e.ts.to_string())?;
            seq.serialize_element(&e.line)?;
            if with_meta {
                seq.serialize_element(&Meta(&e.metadata))?;
            }
            seq.end()
        }
    }
    let push = JsonPush {
        streams: streams
            .iter()
            .map(|(si, entries)| JsonStream {
                stream: Labels(&labels[*si].1),
                values: Values(entries),
            })
            .collect(),
    };
    serde_json::to_writer(out, &push).expect("serialising strings to a Vec cannot fail");
}
