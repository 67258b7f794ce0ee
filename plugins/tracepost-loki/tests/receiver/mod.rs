//! A stand-in for Loki's push endpoint, for tests and the benchmark: an axum server on
//! 127.0.0.1:0 that decodes every request the way Loki does (raw snappy block, then
//! `logproto.PushRequest` from Loki's published push.proto, compiled at run time with protox and
//! decoded dynamically with prost-reflect — independent of the sink's hand-written prost types),
//! records what it got, and answers as scripted (204, 429 + Retry-After, 500, 400, hang).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 204 No Content (what Loki answers), after checking the body.
    Accept,
    /// This status, with an optional `Retry-After` header value and a body.
    Status(u16, Option<&'static str>, &'static str),
    /// Never answer (the handler sleeps for a minute).
    Hang,
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub ts_ns: u64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// One decoded stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub labels: String,
    pub entries: Vec<Entry>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub headers: HeaderMap,
    /// What the receiver answered (0 for a hang).
    pub status: u16,
    /// The decoded push, or why decoding failed.
    pub push: Result<Vec<Stream>, String>,
    /// Protobuf only: re-encoding the dynamically decoded message gave back exactly the bytes
    /// that came out of snappy.
    pub byte_exact: bool,
    /// The body size on the wire.
    pub body_len: usize,
    /// The body of the answer (empty for 204).
    pub answer: String,
}

/// The per-tenant limits of a real Loki, applied by the receiver the way Loki's distributor
/// applies them: each entry validated (too long, too old: refused, the others stored, 400
/// naming the refused ones in Loki's words), then the valid entries' bytes (line + structured
/// metadata) checked against the tenant's rate limiter (a token bucket of `rate` bytes/s
/// holding up to `burst`, full at start; a push larger than the burst is always refused), a
/// 429 storing nothing when it has not enough tokens.
#[derive(Debug, Clone, Copy)]
pub struct LokiLimits {
    /// `ingestion_rate_mb`, in bytes per second.
    pub rate: f64,
    /// `ingestion_burst_size_mb`, in bytes.
    pub burst: f64,
    /// `max_line_size` (with `max_line_size_truncate: false`), in bytes.
    pub max_line_size: Option<usize>,
    /// `reject_old_samples_max_age`.
    pub reject_old_max_age: Option<Duration>,
    /// The ingester's window for unordered writes (`max_chunk_age / 2`: an hour by
    /// default): an entry older than the stream's newest minus this is refused as "too far
    /// behind", the rest of the stream stored, and a 400 lists at most
    /// `max_returned_stream_errors` (10) of the refused entries, as Loki's `stream.go` does.
    pub out_of_order_window: Option<Duration>,
}

impl LokiLimits {
    /// No rate limit and no entry limits.
    pub fn none() -> Self {
        LokiLimits {
            rate: f64::INFINITY,
            burst: f64::INFINITY,
            max_line_size: None,
            reject_old_max_age: None,
            out_of_order_window: None,
        }
    }
}

/// Go's `rate.Limiter`, as Loki's tenant limiter uses it (`AllowN`).
struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Shared {
    limits: Mutex<Option<(LokiLimits, Bucket)>>,
    /// The ingester's newest timestamp per stream (labels as pushed).
    newest: Mutex<std::collections::HashMap<String, u64>>,
    script: Mutex<VecDeque<Reply>>,
    /// Answers every request this way until cleared (after the script).
    standing: Mutex<Option<Reply>>,
    poison: Mutex<Option<(String, &'static str)>>,
    requests: Mutex<Vec<Request>>,
    accepted: Mutex<Vec<(String, Entry)>>,
    accepted_n: std::sync::atomic::AtomicUsize,
    push_request: MessageDescriptor,
    /// Benchmark mode: decode with the sink's own prost types (what Loki's generated code
    /// does), count entries, keep nothing.
    fast: bool,
}

/// The running receiver.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Loki's PushRequest descriptor, compiled from tests/proto/push.proto.
pub fn push_request_descriptor() -> MessageDescriptor {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proto");
    let fds = protox::compile(["push.proto"], [dir]).expect("push.proto compiles");
    let pool = DescriptorPool::from_file_descriptor_set(fds).expect("valid descriptors");
    pool.get_message_by_name("logproto.PushRequest")
        .expect("logproto.PushRequest")
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port; answers 204 to everything until scripted otherwise.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Benchmark mode: decodes (snappy + prost) and counts entries, keeps nothing.
    pub async fn start_fast() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(fast: bool) -> Self {
        let shared = Arc::new(Shared {
            limits: Mutex::new(None),
            newest: Mutex::new(Default::default()),
            script: Mutex::new(VecDeque::new()),
            standing: Mutex::new(None),
            poison: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
            accepted_n: Default::default(),
            push_request: push_request_descriptor(),
            fast,
        });
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, shared }
    }

    /// The base URL to give the sink.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests get these replies, in order; after them, 204 again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Every request gets `reply` until called again with `None` (a revoked key: 401 for
    /// as long as it takes).
    pub fn standing(&self, reply: Option<Reply>) {
        *self.shared.standing.lock().unwrap() = reply;
    }

    /// Any push containing a line with `needle` is answered 400 with `message`, and none of
    /// its entries are kept (stricter than Loki, which keeps the valid ones).
    pub fn reject_lines_containing(&self, needle: &str, message: &'static str) {
        *self.shared.poison.lock().unwrap() = Some((needle.to_owned(), message));
    }

    /// From now on, apply these limits the way Loki does (see [`LokiLimits`]); the rate
    /// limiter starts full.
    pub fn limits(&self, limits: LokiLimits) {
        *self.shared.limits.lock().unwrap() = Some((
            limits,
            Bucket {
                tokens: limits.burst,
                last: Instant::now(),
            },
        ));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Every entry accepted so far, with its stream's labels.
    pub fn accepted(&self) -> Vec<(String, Entry)> {
        self.shared.accepted.lock().unwrap().clone()
    }

    /// How many entries were accepted so far.
    pub fn accepted_count(&self) -> usize {
        self.shared
            .accepted_n
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` entries were accepted or `timeout` passed.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.accepted_count() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.accepted_count() >= n
    }
}

async fn push(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    if shared.fast {
        return fast_path(&shared, &body);
    }
    let (push, byte_exact) = decode(&shared.push_request, &headers, &body);
    let reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| shared.standing.lock().unwrap().clone())
        .unwrap_or(Reply::Accept);
    let poisoned = match (&push, &*shared.poison.lock().unwrap()) {
        (Ok(streams), Some((needle, message))) => streams
            .iter()
            .flat_map(|s| &s.entries)
            .any(|e| e.line.contains(needle.as_str()))
            .then_some(*message),
        _ => None,
    };
    let mut answer = String::new();
    let (status, response) = match (&reply, &push) {
        (Reply::Hang, _) => (0, None),
        (Reply::Status(code, retry_after, text), _) => {
            let mut r = (StatusCode::from_u16(*code).unwrap(), *text).into_response();
            if let Some(v) = retry_after {
                r.headers_mut().insert("retry-after", v.parse().unwrap());
            }
            (*code, Some(r))
        }
        (Reply::Accept, Err(e)) => (
            400,
            Some((StatusCode::BAD_REQUEST, e.clone()).into_response()),
        ),
        (Reply::Accept, Ok(_)) if poisoned.is_some() => (
            400,
            Some((StatusCode::BAD_REQUEST, poisoned.unwrap()).into_response()),
        ),
        (Reply::Accept, Ok(streams)) if shared.limits.lock().unwrap().is_some() => {
            let (status, body) = as_loki(&shared, streams);
            answer = body.clone();
            let r = if status == 204 {
                StatusCode::NO_CONTENT.into_response()
            } else {
                (StatusCode::from_u16(status).unwrap(), body).into_response()
            };
            (status, Some(r))
        }
        (Reply::Accept, Ok(streams)) => {
            let mut accepted = shared.accepted.lock().unwrap();
            let n: usize = streams.iter().map(|s| s.entries.len()).sum();
            shared
                .accepted_n
                .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            for s in streams {
                for e in &s.entries {
                    accepted.push((s.labels.clone(), e.clone()));
                }
            }
            (204, Some(StatusCode::NO_CONTENT.into_response()))
        }
    };
    shared.requests.lock().unwrap().push(Request {
        at,
        headers,
        status,
        push,
        byte_exact,
        body_len: body.len(),
        answer,
    });
    match response {
        Some(r) => r,
        None => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// What Loki's distributor does with a push under [`LokiLimits`]: validate each entry, check
/// the valid entries against the tenant's rate limiter, store them, and answer 204, 400 (the
/// refused entries, in Loki's words, grouped like Loki's `util.GroupedErrors`) or 429.
fn as_loki(shared: &Shared, streams: &[Stream]) -> (u16, String) {
    let mut guard = shared.limits.lock().unwrap();
    let (limits, bucket) = guard.as_mut().unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let oldest = limits
        .reject_old_max_age
        .map(|age| now_ns.saturating_sub(age.as_nanos() as u64));
    let mut errors: Vec<String> = Vec::new();
    let mut valid: Vec<(String, Entry)> = Vec::new();
    let mut bytes = 0usize;
    for s in streams {
        for e in &s.entries {
            if let Some(max) = limits.max_line_size.filter(|m| e.line.len() > *m) {
                errors.push(format!(
                    "Max entry size '{max}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes",
                    with_service_name(&s.labels),
                    e.line.len()
                ));
                continue;
            }
            if let Some(oldest) = oldest.filter(|o| e.ts_ns < *o) {
                errors.push(format!(
                    "entry for stream '{}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    s.labels,
                    rfc3339(e.ts_ns),
                    rfc3339(oldest)
                ));
                continue;
            }
            bytes += e.line.len()
                + e.metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
            valid.push((s.labels.clone(), e.clone()));
        }
    }
    if !valid.is_empty() {
        // rate.Limiter.AllowN(now, bytes)
        let now = Instant::now();
        let tokens = (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * limits.rate)
            .min(limits.burst);
        if bytes as f64 > limits.burst || tokens < bytes as f64 {
            return (
                429,
                format!(
                    "Ingestion rate limit exceeded for user fake (limit: {} bytes/sec) while attempting to ingest '{}' lines totaling '{}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n",
                    limits.rate as u64,
                    valid.len(),
                    bytes
                ),
            );
        }
        bucket.tokens = tokens - bytes as f64;
        bucket.last = now;
        // The ingesters: per stream, entries too far behind its newest are refused; the
        // error of the last stream with refusals is what the push answers (400).
        let mut ingester_error = None;
        if let Some(window) = limits.out_of_order_window {
            let mut newest = shared.newest.lock().unwrap();
            let mut by_stream: Vec<(String, Vec<Entry>)> = Vec::new();
            for (labels, e) in std::mem::take(&mut valid) {
                match by_stream.iter_mut().find(|(l, _)| *l == labels) {
                    Some((_, es)) => es.push(e),
                    None => by_stream.push((labels, vec![e])),
                }
            }
            for (labels, entries) in by_stream {
                let highest = newest.get(&labels).copied();
                let cutoff = highest.map(|h| h.saturating_sub(window.as_nanos() as u64));
                let mut failed = Vec::new();
                for e in &entries {
                    if cutoff.is_some_and(|c| e.ts_ns < c) {
                        failed.push(e.ts_ns);
                        continue;
                    }
                    let h = newest.entry(labels.clone()).or_insert(e.ts_ns);
                    *h = (*h).max(e.ts_ns);
                    valid.push((labels.clone(), e.clone()));
                }
                if let (false, Some(cutoff)) = (failed.is_empty(), cutoff) {
                    let mut text = String::new();
                    for ts in failed.iter().take(10) {
                        text.push_str(&format!(
                            "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}',\n",
                            go_string(*ts),
                            rfc3339(*ts),
                            rfc3339(cutoff)
                        ));
                    }
                    text.push_str(&format!(
                        "user 'fake', total ignored: {} out of {} for stream: {}",
                        failed.len(),
                        entries.len(),
                        with_service_name(&labels)
                    ));
                    ingester_error = Some(text);
                }
            }
        }
        shared
            .accepted_n
            .fetch_add(valid.len(), std::sync::atomic::Ordering::SeqCst);
        shared.accepted.lock().unwrap().extend(valid);
        if let Some(text) = ingester_error {
            return (400, text);
        }
    }
    if errors.is_empty() {
        return (204, String::new());
    }
    // util.GroupedErrors: identical messages counted; the bare message when there is one.
    let mut grouped: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match grouped.iter_mut().find(|(m, _)| *m == e) {
            Some((_, n)) => *n += 1,
            None => grouped.push((e, 1)),
        }
    }
    let unique = grouped.len();
    let body: Vec<String> = grouped
        .into_iter()
        .map(|(m, n)| {
            if unique > 1 || n > 1 {
                format!("{n} errors like: {m}")
            } else {
                m
            }
        })
        .collect();
    (400, format!("{}\n", body.join("; ")))
}

/// Loki adds `service_name` (from `service`) to streams without one, as in its messages.
fn with_service_name(labels: &str) -> String {
    if labels.contains("service_name=") {
        return labels.to_owned();
    }
    let Some(at) = labels.find("service=\"") else {
        return labels.to_owned();
    };
    let value_start = at + "service=\"".len();
    // The value ends at the first quote not escaped by a backslash.
    let mut escaped = false;
    let Some(len) = labels[value_start..].find(|c: char| {
        let end = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        end
    }) else {
        return labels.to_owned();
    };
    let value = &labels[value_start..value_start + len];
    let end = value_start + len + 1;
    format!(
        "{}, service_name=\"{value}\"{}",
        &labels[..end],
        &labels[end..]
    )
}

/// Go's `Time.String()` of a UTC time: `2026-10-07 01:35:32.405 +0000 UTC`.
pub fn go_string(ns: u64) -> String {
    let secs = rfc3339(ns);
    let (date, time) = secs.trim_end_matches('Z').split_once('T').unwrap();
    let frac = ns % 1_000_000_000;
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:09}").trim_end_matches('0').to_owned()
    };
    format!("{date} {time}{frac} +0000 UTC")
}

/// Go's `time.Format(time.RFC3339)` of a UTC time: to the second.
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

fn fast_path(shared: &Shared, body: &[u8]) -> Response {
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| e.to_string())
        .and_then(|raw| {
            tracepost_loki::proto::PushRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
        });
    match decoded {
        Ok(push) => {
            let n: usize = push.streams.iter().map(|s| s.entries.len()).sum();
            shared
                .accepted_n
                .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

fn decode(
    desc: &MessageDescriptor,
    headers: &HeaderMap,
    body: &[u8],
) -> (Result<Vec<Stream>, String>, bool) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match content_type {
        "application/x-protobuf" => match decode_protobuf(desc, body) {
            Ok((streams, exact)) => (Ok(streams), exact),
            Err(e) => (Err(e), false),
        },
        "application/json" => {
            let gzip = headers
                .get("content-encoding")
                .is_some_and(|v| v.as_bytes() == b"gzip");
            (decode_json(body, gzip), false)
        }
        other => (Err(format!("unsupported content type {other:?}")), false),
    }
}

pub fn decode_protobuf(
    desc: &MessageDescriptor,
    body: &[u8],
) -> Result<(Vec<Stream>, bool), String> {
    // Loki: snappy *block* format, never the framed/stream format.
    if body.starts_with(&[0xff, 0x06, 0x00, 0x00]) {
        return Err("framed snappy; Loki expects a raw block".into());
    }
    let declared = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    if raw.len() != declared {
        return Err("snappy length mismatch".into());
    }
    let msg = DynamicMessage::decode(desc.clone(), raw.as_slice())
        .map_err(|e| format!("protobuf: {e}"))?;
    let byte_exact = msg.encode_to_vec() == raw;
    let mut streams = Vec::new();
    for s in list(&msg, "streams") {
        let s = s.as_message().ok_or("stream is not a message")?;
        let labels = string(s, "labels");
        let mut entries = Vec::new();
        for e in list(s, "entries") {
            let e = e.as_message().ok_or("entry is not a message")?;
            if !e.has_field_by_name("timestamp") {
                return Err("entry without timestamp".into());
            }
            let ts = e.get_field_by_name("timestamp").unwrap();
            let ts = ts.as_message().ok_or("timestamp")?;
            let seconds = ts
                .get_field_by_name("seconds")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let nanos = ts
                .get_field_by_name("nanos")
                .and_then(|v| v.as_i32())
                .unwrap_or(0);
            let metadata = list(e, "structuredMetadata")
                .iter()
                .map(|p| {
                    let p = p.as_message().unwrap();
                    (string(p, "name"), string(p, "value"))
                })
                .collect();
            entries.push(Entry {
                ts_ns: seconds as u64 * 1_000_000_000 + nanos as u64,
                line: string(e, "line"),
                metadata,
            });
        }
        streams.push(Stream { labels, entries });
    }
    Ok((streams, byte_exact))
}

fn list(msg: &DynamicMessage, field: &str) -> Vec<Value> {
    msg.get_field_by_name(field)
        .and_then(|v| v.as_list().map(<[Value]>::to_vec))
        .unwrap_or_default()
}

fn string(msg: &DynamicMessage, field: &str) -> String {
    msg.get_field_by_name(field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn decode_json(body: &[u8], gzip: bool) -> Result<Vec<Stream>, String> {
    let mut raw = Vec::new();
    if gzip {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut raw)
            .map_err(|e| format!("gzip: {e}"))?;
    } else {
        raw.extend_from_slice(body);
    }
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| format!("json: {e}"))?;
    let mut streams = Vec::new();
    for s in v["streams"].as_array().ok_or("no streams")? {
        let labels_obj = s["stream"].as_object().ok_or("no stream labels")?;
        let mut pairs: Vec<_> = labels_obj
            .iter()
            .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
            .collect();
        pairs.sort();
        let labels = format!("{{{}}}", pairs.join(", "));
        let mut entries = Vec::new();
        for value in s["values"].as_array().ok_or("no values")? {
            let ts_ns: u64 = value[0]
                .as_str()
                .ok_or("timestamp is not a string")?
                .parse()
                .map_err(|_| "timestamp is not an integer string")?;
            let line = value[1].as_str().ok_or("line is not a string")?.to_owned();
            let metadata = value
                .get(2)
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            entries.push(Entry {
                ts_ns,
                line,
                metadata,
            });
        }
        streams.push(Stream { labels, entries });
    }
    Ok(streams)
}

/// A realistic event `i`: every 4th an HTTP error with a request snapshot, the rest logs and
/// request snapshots; ids, routes, users, sessions and messages all distinct per `i`.
pub fn sample_event(i: u64, base_ns: u64) -> tracepost_core::Event {
    use tracepost_core::{ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp};
    let (kind, level) = match i % 4 {
        0 => (Kind::Error, Level::Error),
        1 => (Kind::Request, Level::Info),
        2 => (Kind::Log, Level::Warn),
        _ => (Kind::Log, Level::Info),
    };
    let mut e = Event::new(kind, level, format!("order {i} for user-{i} processed"))
        .with_timestamp(Timestamp::from_unix_nanos(base_ns + i * 1_000 + 7))
        .with_trace(
            format!("{:032x}", 0xabc0_0000_u64 + i),
            Some(format!("{:016x}", i)),
        )
        .with_attribute("order_id", i)
        .with_attribute("cart.items", i % 7);
    e.resource.service = "shop-api".into();
    e.resource.environment = Some("test".into());
    e.resource.host = Some("web-1".into());
    e.request_id = Some(format!("req-{i}"));
    e.session_id = Some(format!("sess-{}", i / 3));
    e.user_id = Some(format!("user-{i}"));
    if kind != Kind::Log {
        e.request = Some(RequestSnapshot {
            method: "POST".into(),
            route: format!("/orders/{}/items", i % 50),
            path: format!("/orders/{i}/items"),
            status: if kind == Kind::Error { 500 } else { 200 },
            duration_ms: 3.0 + (i % 100) as f64,
            request_bytes: 120,
            response_bytes: 512,
            ..Default::default()
        });
    }
    if kind == Kind::Error {
        e.fingerprint = Some(format!("fp{:x}", i % 13));
        e.error = Some(ErrorDetail {
            error_type: "sqlx::Error".into(),
            message: format!("connection reset while saving order {i}"),
            backtrace: None,
            location: Some("src/orders.rs:42".into()),
        });
    }
    e
}
