//! A tester's findings against the ingest routes, each over real HTTP (axum on a loopback
//! port; raw TCP where a client must misbehave): body-read deadlines, the guarded token
//! route, JSON answers for unknown paths and methods, `Retry-After`, timestamp clamping and
//! the admission order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracepost_core::testing::MemorySink;
use tracepost_core::Tracepost;
use tracepost_ingest::logs::{keys, StaticKeys};
use tracepost_ingest::{Ingest, IngestConfig, LogIngest, LogIngestConfig};

const PK: &str = "pk_test_1";
const TPK: &str = "tpk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ORIGIN: &str = "https://shop.example";
const SECRET: &str = "0123456789abcdef0123456789abcdef-now";

/// Serves `app` on a loopback port until `stop` fires; the join handle ends when the server
/// has shut down gracefully.
async fn serve(
    app: axum::Router,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await
        .unwrap();
    });
    (addr, task)
}

fn pipeline() -> (Tracepost, MemorySink) {
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("shop")
        .sink(sink.clone())
        .build()
        .unwrap();
    (tp, sink)
}

/// Counts the key store's lookups (to prove what the admission order spares it).
#[derive(Clone)]
struct Counting(StaticKeys, Arc<AtomicUsize>);

impl keys::KeyStore for Counting {
    fn by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> keys::BoxFuture<'a, Result<Vec<keys::KeyRecord>, String>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.by_prefix(prefix)
    }
    fn touch(&self, used: Vec<(i64, SystemTime)>) -> keys::BoxFuture<'_, Result<(), String>> {
        self.0.touch(used)
    }
}

/// Sends a request head announcing `length` body bytes, then trickles one byte every 100 ms
/// until the server answers. Returns the status, the JSON body and how long it took.
async fn trickle(addr: SocketAddr, head: String, length: usize) -> (u16, Value, Duration) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    wr.write_all(format!("{head}content-length: {length}\r\n\r\n{{").as_bytes())
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..length {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut raw = Vec::new();
    // The server closes the connection after its answer (the body was not drained).
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut raw)).await;
    let took = started.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        took,
    )
}

fn timeout_body() -> Value {
    json!({"error": {"status": 408, "code": "body_timeout",
        "message": "the body did not arrive within 1s (body_read_timeout)"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_on_every_route_and_does_not_hold_shutdown() {
    let (tp, _sink) = pipeline();
    let ingest = Ingest::new(
        tp.handle(),
        IngestConfig::new()
            .key(PK)
            .allowed_origin(ORIGIN)
            .body_read_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new().body_read_timeout(Duration::from_secs(1)),
        Arc::new(StaticKeys::new([("shop", TPK)], false)),
    )
    .unwrap();
    let app = tracepost_ingest::router(ingest).merge(tracepost_ingest::logs_router(logs));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, server) = serve(app, stopped).await;

    let heads = [
        format!(
            "POST /tracepost/v1/events?key={PK} HTTP/1.1\r\nhost: {addr}\r\n\
             origin: {ORIGIN}\r\ncontent-type: text/plain\r\n"
        ),
        format!(
            "POST /tracepost/v1/batch HTTP/1.1\r\nhost: {addr}\r\n\
             x-tracepost-key: {TPK}\r\ncontent-type: application/json\r\n"
        ),
        format!(
            "POST /tracepost/v1/logs HTTP/1.1\r\nhost: {addr}\r\n\
             x-tracepost-key: {TPK}\r\ncontent-type: application/json\r\n"
        ),
    ];
    for head in &heads {
        let (status, body, took) = trickle(addr, head.clone(), 1000).await;
        assert_eq!(status, 408, "{head}");
        assert_eq!(body, timeout_body(), "{head}");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(4),
            "{head}: answered after {took:?}"
        );
    }

    // Graceful shutdown while a client trickles: it ends within the deadline, not never.
    let slow = tokio::spawn(trickle(addr, heads[1].clone(), 1000));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("graceful shutdown waited on a trickling client")
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(3));
    let (status, _, _) = slow.await.unwrap();
    assert_eq!(status, 408);
    tp.shutdown(Duration::from_secs(5)).await;
}

/// An example binary of this crate (built by `cargo test` for the package, as CI does).
/// `None` after a loud skip when it is missing outside CI; a panic under `CI=true`.
fn example(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join(name))
        .unwrap();
    if path.exists() {
        return Some(path);
    }
    let what = format!(
        "the {name} example is not built ({}): run `cargo test -p tracepost-ingest` (not --test alone)",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}");
    }
    eprintln!("\n!!! SKIPPING: {what}\n");
    None
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_server_flushes_what_it_accepted_on_sigterm() {
    use std::io::BufRead;
    let Some(exe) = example("log_server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(exe)
        .env("TRACEPOST_KEY", TPK)
        .env("PORT", "0")
        .env("SHUTDOWN_GRACE_SECS", "1")
        .env_remove("RUST_LOG")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_owned();
    let logs: Vec<Value> = (0..200)
        .map(|i| json!({"level": "info", "message": format!("accepted {i}")}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/tracepost/v1/batch"))
        .header("x-tracepost-key", TPK)
        .json(&json!({"service": "worker", "logs": logs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{line}");
    // A client trickling its request head, which no body deadline covers: the grace
    // period ends the wait for it.
    let mut slow = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    slow.write_all(b"POST /tracepost/v1/batch HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickler = tokio::spawn(async move {
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"x-slow: 1\r\n").await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // At once, as an orchestrator would: the logs are accepted, not yet written.
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "log_server died on SIGTERM instead of shutting down: {status}"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "log_server waited {:?} on a client trickling its head",
        signalled.elapsed()
    );
    trickler.abort();
    let mut written = 0;
    for entry in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        written += text.lines().filter(|l| l.contains("accepted ")).count();
    }
    assert_eq!(written, 200, "every accepted log is written before exit");
}

/// Issue 13: a malformed `TRACEPOST_KEY` stops the example at start, naming the variable,
/// instead of a server that answers 401 to everything.
#[test]
fn log_server_refuses_a_malformed_key() {
    let Some(exe) = example("log_server") else {
        return;
    };
    for key in ["abc", &TPK[..20], &format!("{}zz", &TPK[..TPK.len() - 2])] {
        let out = std::process::Command::new(&exe)
            .env("TRACEPOST_KEY", key)
            .env("PORT", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: started");
        assert!(stderr.contains("TRACEPOST_KEY must be tpk_"), "{stderr}");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn browser_batch(id: &str, events: Value) -> String {
    json!({"batch_id": id, "sent_at": now_ms(), "session_id": "sess-1", "visitor_id": "vis-1",
           "page": {"url": "https://shop.example/"}, "events": events})
    .to_string()
}

async fn answer(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_route_is_opt_in_and_guarded() {
    let (tp, _sink) = pipeline();
    let config = IngestConfig::new()
        .key(PK)
        .allowed_origin(ORIGIN)
        .token_secret(SECRET)
        .require_token(true);
    let ingest = Ingest::new(tp.handle(), config).unwrap();
    // The browser routes alone: no token route.
    let (_stop_a, stopped) = tokio::sync::oneshot::channel();
    let (plain, _) = serve(tracepost_ingest::router(ingest.clone()), stopped).await;
    let client = reqwest::Client::new();
    let (status, _, body) = answer(
        client
            .get(format!("http://{plain}/tracepost/v1/token?key={PK}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": {"status": 404, "code": "not_found",
                "message": "no ingest route at /tracepost/v1/token"}})
        )
    );

    // Mounted by the host behind its own check.
    let app = tracepost_ingest::router(ingest.clone()).merge(tracepost_ingest::token_router(
        ingest,
        |head: &http::request::Parts| {
            head.headers
                .get("cookie")
                .is_some_and(|c| c.as_bytes() == b"session=valid")
        },
    ));
    let (_stop_b, stopped) = tokio::sync::oneshot::channel();
    let (addr, _) = serve(app, stopped).await;
    let token_url = format!("http://{addr}/tracepost/v1/token?key={PK}");
    for cookie in [None, Some("session=forged")] {
        let mut req = client.get(&token_url).header("origin", ORIGIN);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let (status, _, body) = answer(req.send().await.unwrap()).await;
        assert_eq!(
            (status, body),
            (
                401,
                json!({"error": {"status": 401, "code": "unauthorized",
                    "message": "the token route needs the host's authentication, which refused this request"}})
            ),
            "{cookie:?}"
        );
    }
    let events = format!("http://{addr}/tracepost/v1/events?key={PK}");
    let post = |body: String| {
        client
            .post(&events)
            .header("origin", ORIGIN)
            .header("content-type", "text/plain")
            .body(body)
    };
    // A scraped public key alone: refused.
    let ev = json!([{"type": "track", "ts": now_ms(), "name": "signup"}]);
    let (status, _, body) =
        answer(post(browser_batch("t-1", ev.clone())).send().await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("missing_token"))
    );
    // The signed-in page gets a token and sends with it.
    let (status, _, minted) = answer(
        client
            .get(&token_url)
            .header("origin", ORIGIN)
            .header("cookie", "session=valid")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().unwrap();
    let (status, _, body) = answer(
        post(browser_batch("t-2", ev))
            .header("x-tracepost-token", token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_under_the_prefix_get_json_errors() {
    let (tp, _sink) = pipeline();
    let ingest = Ingest::new(tp.handle(), IngestConfig::new().key(PK)).unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new(),
        Arc::new(StaticKeys::new([("shop", TPK)], false)),
    )
    .unwrap();
    // Next to host routes under the same prefix (a console, a replay route): no conflict,
    // and the host's routes still answer.
    let host = axum::Router::new()
        .route(
            "/tracepost/console",
            axum::routing::get(|| async { "console" }),
        )
        .route(
            "/tracepost/console/issues/{id}",
            axum::routing::get(|| async { "issue" }),
        )
        .route(
            "/tracepost/v1/replay",
            axum::routing::post(|| async { "replay" }),
        );
    let app = host
        .merge(tracepost_ingest::router(ingest))
        .merge(tracepost_ingest::logs_router(logs));
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, _) = serve(app, stopped).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    assert_eq!(
        client
            .get(url("/tracepost/console/issues/7"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "issue"
    );
    assert_eq!(
        client
            .post(url("/tracepost/v1/replay"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "replay"
    );
    let cases = [
        ("GET", "/tracepost/v1/events", 405, "POST, OPTIONS"),
        ("PUT", "/tracepost/tp.js", 405, "GET, HEAD"),
        ("GET", "/tracepost/v1/batch", 405, "POST"),
        ("DELETE", "/tracepost/v1/logs", 405, "POST"),
        ("GET", "/tracepost/nothing", 404, ""),
        ("POST", "/tracepost/v1/unknown", 404, ""),
        ("GET", "/tracepost/v2/logs/x", 404, ""),
    ];
    for (method, path, status, allow) in cases {
        let r = client
            .request(method.parse().unwrap(), url(path))
            .send()
            .await
            .unwrap();
        let (got, headers, body) = answer(r).await;
        let expected = if status == 405 {
            json!({"error": {"status": 405, "code": "method_not_allowed",
                "message": format!("{method} is not accepted here: use {allow}")}})
        } else {
            json!({"error": {"status": 404, "code": "not_found",
                "message": format!("no ingest route at {path}")}})
        };
        assert_eq!((got, body), (status, expected), "{method} {path}");
        assert_eq!(headers["content-type"], "application/json");
        if status == 405 {
            assert_eq!(headers["allow"], allow);
        }
    }
    tp.shutdown(Duration::from_secs(5)).await;
}

/// The `Retry-After` header and the number of seconds in the message of a `429`.
fn retry_after(headers: &reqwest::header::HeaderMap, body: &Value) -> (u64, u64) {
    let header: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    let said: u64 = message
        .strip_suffix(" s")
        .and_then(|m| m.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {message:?}"));
    (header, said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_at_least_one_second_and_the_message_says_the_same() {
    let (tp, _sink) = pipeline();
    // 10/s with a burst of 1: the wait after the burst is under a second.
    let ingest = Ingest::new(
        tp.handle(),
        IngestConfig::new().key(PK).per_client_limit(10, 1),
    )
    .unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new().per_client_limit(10, 1),
        Arc::new(StaticKeys::new([("shop", TPK)], false)),
    )
    .unwrap();
    let app = tracepost_ingest::router(ingest).merge(tracepost_ingest::logs_router(logs));
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, _) = serve(app, stopped).await;
    let client = reqwest::Client::new();
    for path in ["/tracepost/v1/events", "/tracepost/v1/batch"] {
        let mut limited = None;
        for _ in 0..20 {
            let r = client
                .post(format!("http://{addr}{path}?key={PK}"))
                .header("content-type", "application/json")
                .header("x-tracepost-key", TPK)
                .body("{}")
                .send()
                .await
                .unwrap();
            let (status, headers, body) = answer(r).await;
            if status == 429 {
                limited = Some((headers, body));
                break;
            }
        }
        let (headers, body) = limited.expect("no 429 from a burst of 1");
        let (header, said) = retry_after(&headers, &body);
        assert!(header >= 1, "{path}: Retry-After {header}");
        assert_eq!(header, said, "{path}: {body}");
    }
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_times_outside_the_window_get_the_receive_time_and_are_kept() {
    let (tp, sink) = pipeline();
    let ingest = Ingest::new(tp.handle(), IngestConfig::new().key(PK)).unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new(),
        Arc::new(StaticKeys::new([("shop", TPK)], false)),
    )
    .unwrap();
    let app = tracepost_ingest::router(ingest).merge(tracepost_ingest::logs_router(logs));
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, _) = serve(app, stopped).await;
    let client = reqwest::Client::new();
    let before = now_ms();
    let hour_ago = before - 3_600_000;
    let day_ahead = before + 86_400_000;
    let events = json!([
        {"type": "track", "ts": 0, "name": "at-zero"},
        {"type": "track", "ts": day_ahead, "name": "from-the-future"},
        {"type": "track", "ts": hour_ago, "name": "an-hour-ago"},
    ]);
    let r = client
        .post(format!("http://{addr}/tracepost/v1/events?key={PK}"))
        .header("content-type", "text/plain")
        .body(browser_batch("ts-1", events))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(format!("http://{addr}/tracepost/v1/batch"))
        .header("x-tracepost-key", TPK)
        .json(&json!({"service": "worker", "logs": [
            {"message": "batch-at-zero", "timestamp": 0},
            {"message": "batch-in-2400", "timestamp": "2400-01-01T00:00:00Z"},
            {"message": "batch-an-hour-ago", "timestamp": hour_ago},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let hour_ago_ns = (hour_ago * 1_000_000).to_string();
    let r = client
        .post(format!("http://{addr}/tracepost/v1/logs"))
        .header("x-tracepost-key", TPK)
        .json(&json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1", "body": {"stringValue": "otlp-at-one-ns"}},
            {"timeUnixNano": "0", "observedTimeUnixNano": hour_ago_ns,
             "body": {"stringValue": "otlp-observed"}},
        ]}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tp.shutdown(Duration::from_secs(5)).await;
    let after = now_ms();
    let stored = sink.stored();
    let find = |m: &str| {
        stored
            .iter()
            .find(|e| e.message.ends_with(m))
            .unwrap_or_else(|| panic!("{m} not stored: {stored:?}"))
    };
    let ms = |e: &tracepost_core::Event| e.timestamp.unix_nanos() / 1_000_000;
    for (m, sent) in [
        ("at-zero", json!(0.0)),
        ("from-the-future", json!(day_ahead as f64)),
        ("batch-at-zero", json!(0)),
        ("batch-in-2400", json!("2400-01-01T00:00:00Z")),
        ("otlp-at-one-ns", json!("1")),
    ] {
        let e = find(m);
        assert!((before..=after).contains(&ms(e)), "{m}: {}", ms(e));
        assert_eq!(e.attributes["client.timestamp"], sent, "{m}");
    }
    for m in ["an-hour-ago", "batch-an-hour-ago", "otlp-observed"] {
        let e = find(m);
        // Kept (the browser's is shifted by its clock skew: a few ms at most here).
        assert!(ms(e).abs_diff(hour_ago) < 1000, "{m}: {}", ms(e));
        assert!(!e.attributes.contains_key("client.timestamp"), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_limit_comes_first_and_unknown_keys_are_remembered() {
    let (tp, _sink) = pipeline();
    let lookups = Arc::new(AtomicUsize::new(0));
    let store = Counting(StaticKeys::new([("shop", TPK)], false), lookups.clone());
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new().per_client_limit(1, 5),
        Arc::new(store),
    )
    .unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, _) = serve(tracepost_ingest::logs_router(logs), stopped).await;
    let client = reqwest::Client::new();
    let unknown = format!("tpk_{}", "de".repeat(32));
    let mut statuses = Vec::new();
    for i in 0..20 {
        // The same unknown key, then random ones once the client is limited.
        let key = if i < 10 {
            unknown.clone()
        } else {
            format!("tpk_{:08x}{}", i, "0".repeat(56))
        };
        let r = client
            .post(format!("http://{addr}/tracepost/v1/batch"))
            .header("x-tracepost-key", key)
            .json(&json!({"service": "s", "logs": [{"message": "m"}]}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // One lookup: the unknown prefix was remembered, and the limited requests cost none.
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_planted_as_keys_on_every_route_reach_no_file() {
    const STRIPE: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("shop")
        .sink(tracepost_core::sinks::JsonlFile::new(dir.path()))
        .build()
        .unwrap();
    let ingest = Ingest::new(tp.handle(), IngestConfig::new().key(PK)).unwrap();
    let logs = LogIngest::new(
        tp.handle(),
        LogIngestConfig::new(),
        Arc::new(StaticKeys::new([("shop", TPK)], false)),
    )
    .unwrap();
    let app = tracepost_ingest::router(ingest).merge(tracepost_ingest::logs_router(logs));
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, _) = serve(app, stopped).await;
    let client = reqwest::Client::new();
    let events = json!([
        {"type": "track", "ts": now_ms(), "name": "signup",
         "props": {STRIPE: 1, "plan": {"password=hunter2": "pro"}}},
        {"type": "error", "ts": now_ms(), "name": "Error", "message": "boom",
         "stack": format!("Error: boom\n    at {STRIPE} (https://shop.example/app.js:1:2)"),
         "extra": {"deep": [{"token=hunter2": 1}]}},
    ]);
    let r = client
        .post(format!("http://{addr}/tracepost/v1/events?key={PK}"))
        .header("content-type", "text/plain")
        .body(browser_batch("keys-1", events))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(format!("http://{addr}/tracepost/v1/batch"))
        .header("x-tracepost-key", TPK)
        .json(&json!({"service": "worker", "logs": [
            {"message": "batch", "context": {STRIPE: 1, "a": {"password=hunter2": 2}}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(format!("http://{addr}/tracepost/v1/logs"))
        .header("x-tracepost-key", TPK)
        .json(&json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": STRIPE, "value": {"intValue": "1"}}]},
            "scopeLogs": [{"logRecords": [{"body": {"stringValue": "otlp"},
                "attributes": [{"key": "password=hunter2", "value": {"stringValue": "v"}}]}]}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tp.shutdown(Duration::from_secs(5)).await;
    let mut out = String::new();
    for f in tracepost_core::sinks::JsonlFile::files(dir.path()).unwrap() {
        out.push_str(&std::fs::read_to_string(f).unwrap());
    }
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(!out.contains("sk_live_"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}
