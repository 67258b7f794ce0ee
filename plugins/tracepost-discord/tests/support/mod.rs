//! A local stand-in for Discord's Execute Webhook endpoint (Discord itself can't run here):
//! `POST /api/webhooks/{id}/{token}` enforcing the published limits —
//!
//! * 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {..}}` for a payload over
//!   a limit: content 2 000; ≤ 10 embeds; title 256, description 4 096, ≤ 25 fields of
//!   256/1 024, footer 2 048, author 256, and 6 000 for all of them across the message
//!   (whitespace trimmed before counting) — discord-api-docs `message.mdx`, `webhook.mdx`;
//! * a per-webhook bucket of 5 requests per 2 s (the community-known webhook limit; the docs
//!   say not to hard-code it), reported in `X-RateLimit-Limit/-Remaining/-Reset-After/
//!   -Bucket` headers, and 429 with `{"message", "retry_after": <fractional s>, "global":
//!   false}` and `Retry-After` past it (`rate-limits.mdx`);
//! * 404 `{"message": "Unknown Webhook", "code": 10015}` for a deleted webhook;
//! * 204 for an accepted message, which is kept for the test to read.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// Requests per bucket window.
pub const BUCKET_LIMIT: u32 = 5;
/// The bucket window.
pub const BUCKET_WINDOW: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Bucket {
    started: Option<Instant>,
    used: u32,
}

#[derive(Default)]
pub struct Log {
    /// Accepted messages: (webhook id, payload).
    pub accepted: Vec<(String, Value)>,
    /// Every request's raw body, accepted or not.
    pub raw: Vec<String>,
    /// Status of every response, in order, with the webhook id.
    pub statuses: Vec<(String, u16)>,
}

#[derive(Default)]
struct Inner {
    log: Log,
    buckets: HashMap<String, Bucket>,
    deleted: HashSet<String>,
    /// Leave the X-RateLimit headers out (a client must then learn from 429s).
    hide_headers: bool,
}

#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl StandIn {
    pub async fn start() -> StandIn {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/api/webhooks/{id}/{token}", post(execute))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { addr, inner }
    }

    /// The URL of webhook `id` (token `secret-token-{id}`).
    pub fn url(&self, id: &str) -> String {
        format!("http://{}/api/webhooks/{id}/secret-token-{id}", self.addr)
    }

    pub fn delete(&self, id: &str) {
        self.inner.lock().unwrap().deleted.insert(id.to_owned());
    }

    pub fn hide_rate_limit_headers(&self, on: bool) {
        self.inner.lock().unwrap().hide_headers = on;
    }

    /// Accepted messages of webhook `id`.
    pub fn messages(&self, id: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .log
            .accepted
            .iter()
            .filter(|(w, _)| w == id)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The embeds of every accepted message of webhook `id`, in order.
    pub fn embeds(&self, id: &str) -> Vec<Value> {
        self.messages(id)
            .iter()
            .flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Response statuses of webhook `id`.
    pub fn statuses(&self, id: &str) -> Vec<u16> {
        let inner = self.inner.lock().unwrap();
        inner
            .log
            .statuses
            .iter()
            .filter(|(w, _)| w == id)
            .map(|(_, s)| *s)
            .collect()
    }

    /// Every raw body received, joined.
    pub fn raw(&self) -> String {
        self.inner.lock().unwrap().log.raw.join("\n")
    }

    /// Waits until webhook `id` has at least `n` accepted messages (20 s at most).
    pub async fn wait_messages(&self, id: &str, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let m = self.messages(id);
            if m.len() >= n {
                return m;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {n} messages on webhook {id}; got {}: {m:#?}; statuses {:?}",
                m.len(),
                self.statuses(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.trim().chars().count())
}

/// The first limit the payload breaks, as Discord's error path and message.
fn validate(body: &Value) -> Result<(), (String, String)> {
    let err = |path: &str, msg: String| Err((path.to_owned(), msg));
    if chars(&body["content"]) > 2000 {
        return err("content", "Must be 2000 or fewer in length.".into());
    }
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        return err("embeds", "Must be 10 or fewer in length.".into());
    }
    if embeds.is_empty() && chars(&body["content"]) == 0 {
        return err("content", "Cannot send an empty message".into());
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let limits = [
            ("title", &e["title"], 256),
            ("description", &e["description"], 4096),
            ("footer.text", &e["footer"]["text"], 2048),
            ("author.name", &e["author"]["name"], 256),
        ];
        for (name, v, max) in limits {
            let n = chars(v);
            if n > max {
                return err(
                    &format!("embeds.{i}.{name}"),
                    format!("Must be {max} or fewer in length."),
                );
            }
            total += n;
        }
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        if fields.len() > 25 {
            return err(
                &format!("embeds.{i}.fields"),
                "Must be 25 or fewer in length.".into(),
            );
        }
        for (j, f) in fields.iter().enumerate() {
            let (n, v) = (chars(&f["name"]), chars(&f["value"]));
            if n == 0 || n > 256 || v == 0 || v > 1024 {
                return err(
                    &format!("embeds.{i}.fields.{j}"),
                    "name 1–256, value 1–1024 characters".into(),
                );
            }
            total += n + v;
        }
    }
    if total > 6000 {
        return err(
            "embeds",
            format!("Embed size exceeds maximum size of 6000 ({total})"),
        );
    }
    Ok(())
}

async fn execute(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((id, _token)): Path<(String, String)>,
    body: String,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.log.raw.push(body.clone());
    let respond = |inner: &mut Inner, status: u16, headers: HeaderMap, body: Value| {
        inner.log.statuses.push((id.clone(), status));
        let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if status == 204 {
            r = StatusCode::NO_CONTENT.into_response();
        }
        r.headers_mut().extend(headers);
        r
    };
    if inner.deleted.contains(&id) {
        return respond(
            &mut inner,
            404,
            HeaderMap::new(),
            json!({"message": "Unknown Webhook", "code": 10015}),
        );
    }
    let now = Instant::now();
    let hide = inner.hide_headers;
    let bucket = inner.buckets.entry(id.clone()).or_default();
    if bucket
        .started
        .is_none_or(|s| now.duration_since(s) >= BUCKET_WINDOW)
    {
        bucket.started = Some(now);
        bucket.used = 0;
    }
    let reset_after = BUCKET_WINDOW
        .saturating_sub(now.duration_since(bucket.started.unwrap()))
        .as_secs_f64();
    let mut headers = HeaderMap::new();
    let over = bucket.used >= BUCKET_LIMIT;
    if !over {
        bucket.used += 1;
    }
    if !hide {
        let remaining = BUCKET_LIMIT - bucket.used;
        headers.insert("x-ratelimit-limit", HeaderValue::from(BUCKET_LIMIT));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        headers.insert(
            "x-ratelimit-reset-after",
            HeaderValue::from_str(&format!("{reset_after:.3}")).unwrap(),
        );
        headers.insert("x-ratelimit-bucket", HeaderValue::from_static("stand-in"));
    }
    if over {
        headers.insert("retry-after", HeaderValue::from(reset_after.ceil() as u64));
        headers.insert("x-ratelimit-scope", HeaderValue::from_static("user"));
        return respond(
            &mut inner,
            429,
            headers,
            json!({"message": "You are being rate limited.", "retry_after": reset_after, "global": false}),
        );
    }
    let parsed: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            return respond(
                &mut inner,
                400,
                headers,
                json!({"code": 50109, "message": format!("The request body contains invalid JSON: {e}")}),
            )
        }
    };
    if let Err((path, message)) = validate(&parsed) {
        return respond(
            &mut inner,
            400,
            headers,
            json!({"code": 50035, "message": "Invalid Form Body", "errors": {path: {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": message}]}}}),
        );
    }
    inner.log.accepted.push((id.clone(), parsed));
    respond(&mut inner, 204, headers, Value::Null)
}
