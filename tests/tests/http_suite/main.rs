//! One HTTP-capture behaviour suite, run against an axum app and an actix-web app built from
//! the same description ([`apps::ROUTES`]): each scenario runs on both, checks what a user
//! must get, and compares the events and metric series the two produce.
//!
//! Documented differences (asserted, then left out of the comparison):
//! - a handler error is `error.type` `service_error` with the error's message on actix (the
//!   error is attached to the response), `http_500` on axum (an `IntoResponse` error is only a
//!   status by the time the layer sees it);
//! - on actix a panic's 500 comes from the middleware's `ResponseError`, so the response's own
//!   headers are actix's (the body and `x-request-id` are the same);
//! - a client that goes away mid-request: hyper drops the handler at once (status 499);
//!   actix-web runs it to its end and writes into the closed connection without an error, so
//!   it is recorded as its handler's status. On both the active-requests gauge returns to its
//!   baseline (on actix when the handler ends);
//! - actix-web logs a cut response body at ERROR through `tracing`: with the tracing layer
//!   installed that log is an event of its own (left out of the comparison).

#[path = "../support/mod.rs"]
mod support;

mod apps;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apps::{big_byte, Actix, App, Axum, Gate, BIG_CHUNK, BIG_CHUNKS};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{get, read_events, send};
use tracepost::prelude::*;
use tracepost::{BatchOptions, SinkOptions, Tracepost};
use tracing_subscriber::prelude::*;

/// One framework's app, with its own pipeline writing NDJSON to a temporary directory.
struct Run {
    name: &'static str,
    tp: Tracepost,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    gate: Gate,
}

fn start<A: App>() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("suite")
        .sink_with(
            tracepost::sinks::JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(20),
            )),
        )
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(tp.tracing_layer()));
    let gate = Gate::new();
    let addr = A::start(tp.handle(), dispatch, gate.clone());
    Run {
        name: A::NAME,
        tp,
        dir,
        addr,
        gate,
    }
}

impl Run {
    /// Flushes the pipeline and returns every event written.
    async fn events(self) -> Vec<Value> {
        self.finish().await.0
    }

    /// Flushes the pipeline and returns every event written, and the directory of its files.
    async fn finish(self) -> (Vec<Value>, tempfile::TempDir) {
        self.tp.shutdown(Duration::from_secs(5)).await;
        (read_events(self.dir.path()), self.dir)
    }

    async fn metrics(&self) -> String {
        let (_, _, body) = get(self.addr, "/metrics", &[]).await;
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// The request-count series of an exposition: `{labels} count`, sorted.
fn request_series(metrics: &str) -> Vec<String> {
    let mut series: Vec<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("http_server_request_duration_seconds_count"))
        .map(str::to_owned)
        .collect();
    series.sort();
    series
}

/// The sum of the active-requests gauge.
fn active(metrics: &str) -> i64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_server_active_requests"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

/// An event as compared across frameworks: what it is about, not its ids, times or sizes.
fn summary(e: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    match e["kind"].as_str() {
        Some("metric_window") => {
            let m = &e["metric"];
            format!(
                "window {} {} count={} errors={}",
                s(&m["method"]),
                s(&m["route"]),
                m["count"],
                m["errors"]
            )
        }
        Some("log") => format!(
            "log {} {} route={}",
            s(&e["level"]),
            s(&e["message"]),
            s(&e["attributes"]["http.route"])
        ),
        kind => format!(
            "{} {} {} {} {} {}",
            kind.unwrap_or("-"),
            s(&e["level"]),
            s(&e["request"]["method"]),
            s(&e["request"]["route"]),
            e["request"]["status"],
            s(&e["attributes"]["error.type"]),
        ),
    }
}

/// The summaries of `events`, without the framework's own logs (actix-web logs a cut response
/// body at ERROR through `tracing`, which the tracing layer turns into an event like any
/// other log; axum does not).
fn summaries(events: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = events
        .iter()
        .filter(|e| {
            !e["attributes"]["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("actix"))
        })
        .map(summary)
        .collect();
    s.sort();
    s
}

/// Sends a GET on a fresh connection; `None` when the connection breaks before a response head.
async fn try_send(addr: SocketAddr, path: &str) -> Option<http::Response<hyper::body::Incoming>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(path)
        .header("host", "x")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    sender.send_request(req).await.ok()
}

/// Runs `scenario` on axum and actix, in turn, and requires the same outcome from both.
macro_rules! on_both {
    ($name:ident, $scenario:ident) => {
        #[tokio::test]
        async fn $name() {
            let axum = $scenario(start::<Axum>()).await;
            let actix = $scenario(start::<Actix>()).await;
            assert_eq!(axum, actix, "axum and actix must capture the same");
        }
    };
}

fn request_event<'a>(events: &'a [Value], route: &str, name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["request"]["route"] == route)
        .unwrap_or_else(|| panic!("{name}: no event for {route} in {events:#?}"))
}

async fn success(run: Run) -> Vec<String> {
    let (status, headers, body) = get(run.addr, "/users/7", &[]).await;
    assert_eq!(status, 200, "{}", run.name);
    assert_eq!(&body[..], br#"{"id":7}"#, "{}", run.name);
    assert_eq!(
        headers["x-request-id"].len(),
        36,
        "{}: generated id",
        run.name
    );
    let series = request_series(&run.metrics().await);
    let events = run.events().await;
    // A success keeps no snapshot by default: its log line and the route's metric window only.
    assert!(events.iter().all(|e| e["kind"] != "request"), "{events:#?}");
    let mut out = summaries(&events);
    out.extend(series);
    out
}
on_both!(a_success_is_measured_by_route_pattern, success);

async fn not_found(run: Run) -> Vec<String> {
    let (status, _, _) = get(run.addr, "/nothing/here?id=1", &[]).await;
    assert_eq!(status, 404, "{}", run.name);
    let metrics = run.metrics().await;
    assert!(
        !metrics.contains("/nothing"),
        "{}: raw path in {metrics}",
        run.name
    );
    let series = request_series(&metrics);
    assert!(series
        .iter()
        .any(|s| s.contains(r#"http_route="_unmatched""#)));
    let mut out = summaries(&run.events().await);
    out.extend(series);
    out
}
on_both!(an_unmatched_request_is_a_404_labelled_unmatched, not_found);

async fn server_error(run: Run) -> Vec<String> {
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, headers, _) = get(
        run.addr,
        "/fail",
        &[
            ("traceparent", parent),
            ("x-request-id", "req-abc"),
            ("x-tracepost-session", "sess-browser-1"),
        ],
    )
    .await;
    assert_eq!(status, 500, "{}", run.name);
    assert_eq!(headers["x-request-id"], "req-abc", "{}", run.name);
    let series = request_series(&run.metrics().await);
    let name = run.name;
    let events = run.events().await;
    let e = request_event(&events, "/fail", name);
    assert_eq!(e["attributes"]["error.type"], "500", "{name}");
    assert_eq!(e["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{name}");
    assert_eq!(e["request_id"], "req-abc", "{name}");
    // The browser's session (tp.js adds the header to the page's own requests).
    assert_eq!(e["session_id"], "sess-browser-1", "{name}");
    let crumbs: Vec<&str> = e["breadcrumbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(crumbs.len(), 2, "{name}: {crumbs:?}");
    assert_eq!(crumbs[0], "connecting to the inventory service", "{name}");
    assert!(
        crumbs[1].starts_with("inventory lookup failed"),
        "{name}: {crumbs:?}"
    );
    assert_eq!(
        e["request"]["response_body"]["text"], "inventory unavailable\n",
        "{name}"
    );
    let mut out = summaries(&events);
    out.extend(series);
    out
}
on_both!(
    a_500_is_an_error_event_with_ids_and_breadcrumbs,
    server_error
);

async fn handler_error(run: Run) -> Vec<String> {
    // A hostile session header (markup) is ignored, never stored as the session id.
    let hostile = r#""><script>alert(1)</script>"#;
    let (status, _, body) = get(run.addr, "/orders/3", &[("x-tracepost-session", hostile)]).await;
    assert_eq!(status, 500, "{}", run.name);
    assert_eq!(&body[..], b"database timeout", "{}", run.name);
    let series = request_series(&run.metrics().await);
    let name = run.name;
    let events = run.events().await;
    let e = request_event(&events, "/orders/{id}", name);
    assert_eq!(e["kind"], "error", "{name}");
    assert!(e["session_id"].is_null(), "{name}: {}", e["session_id"]);
    assert!(!e.to_string().contains("<script>"), "{name}");
    // The documented difference: actix hands the handler's error to the middleware.
    match name {
        "actix" => {
            assert_eq!(e["attributes"]["error.type"], "service_error");
            assert_eq!(e["error"]["message"], "database timeout");
        }
        _ => assert_eq!(e["attributes"]["error.type"], "500"),
    }
    series
}
on_both!(a_handler_error_is_an_error_event, handler_error);

async fn panic(run: Run) -> Vec<String> {
    let (status, headers, body) = get(
        run.addr,
        "/panic",
        &[
            ("authorization", "Bearer s3cret"),
            ("x-tracepost-session", "sess-browser-2"),
        ],
    )
    .await;
    assert_eq!(status, 500, "{}", run.name);
    assert_eq!(&body[..], b"Internal Server Error", "{}", run.name);
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    // The server is still up.
    assert_eq!(get(run.addr, "/users/1", &[]).await.0, 200, "{}", run.name);
    let series = request_series(&run.metrics().await);
    let name = run.name;
    let events = run.events().await;
    let e = request_event(&events, "/panic", name);
    assert_eq!(e["error"]["message"], "cart must be loaded before checkout");
    assert!(
        e["error"]["location"].as_str().unwrap().contains("apps.rs"),
        "{name}: {e:#}"
    );
    assert!(
        e["error"]["backtrace"]
            .as_str()
            .unwrap()
            .contains("http_suite::apps"),
        "{name}: the handler's frames"
    );
    assert_eq!(e["request_id"], id.as_str(), "{name}");
    assert_eq!(e["session_id"], "sess-browser-2", "{name}");
    assert_eq!(e["breadcrumbs"][0]["message"], "about to look up the cart");
    assert!(!e.to_string().contains("s3cret"), "{name}");
    let mut out = summaries(&events);
    out.extend(series);
    out
}
on_both!(a_panic_is_a_500_and_an_error_event_with_backtrace, panic);

async fn panic_mid_stream(run: Run) -> Vec<String> {
    // The head may or may not reach the client before the cut; the body never completes.
    if let Some(res) = try_send(run.addr, "/panic-stream").await {
        assert_eq!(res.status(), 200, "{}", run.name);
        assert!(
            res.into_body().collect().await.is_err(),
            "{}: the response is cut",
            run.name
        );
    }
    let series = request_series(&run.metrics().await);
    let name = run.name;
    let events = run.events().await;
    let e = request_event(&events, "/panic-stream", name);
    assert_eq!(e["attributes"]["error.type"], "panic", "{name}");
    assert_eq!(
        e["error"]["message"], "the stream broke after its first chunk",
        "{name}"
    );
    let mut out = summaries(&events);
    out.extend(series);
    out
}
on_both!(
    a_panic_mid_stream_cuts_the_response_and_is_recorded,
    panic_mid_stream
);

async fn big(run: Run) -> Vec<String> {
    let res = send(run.addr, "GET", "/big", &[], b"").await;
    assert_eq!(res.status(), 200, "{}", run.name);
    let mut body = res.into_body();
    let (mut received, mut mismatches) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(frame) = tokio::time::timeout_at(deadline.into(), body.frame())
        .await
        .unwrap_or_else(|_| panic!("{}: streaming stalled (buffered?)", run.name))
    {
        if let Some(data) = frame.unwrap().data_ref() {
            // Only now are the other chunks produced: a buffering middleware deadlocks.
            run.gate.open();
            for (j, b) in data.iter().enumerate() {
                mismatches += usize::from(*b != big_byte((received + j) / BIG_CHUNK));
            }
            received += data.len();
        }
    }
    assert_eq!(received, BIG_CHUNK * BIG_CHUNKS, "{}", run.name);
    assert_eq!(mismatches, 0, "{}: byte-identical", run.name);
    request_series(&run.metrics().await)
}
on_both!(ten_mib_stream_byte_identical_without_buffering, big);

async fn sse(run: Run) -> Vec<String> {
    let start = Instant::now();
    let res = send(run.addr, "GET", "/sse", &[], b"").await;
    assert_eq!(res.status(), 200, "{}", run.name);
    let mut body = res.into_body();
    let mut arrivals = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            let text = String::from_utf8_lossy(data).into_owned();
            arrivals.push((start.elapsed(), text));
        }
    }
    let texts: String = arrivals.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts, "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n",
        "{}",
        run.name
    );
    let first = arrivals.first().unwrap().0;
    let last = arrivals.last().unwrap().0;
    assert!(
        last - first >= Duration::from_millis(250),
        "{}: events arrive as produced, not at the end ({arrivals:?})",
        run.name
    );
    request_series(&run.metrics().await)
}
on_both!(server_sent_events_arrive_as_produced, sse);

async fn redaction(run: Run) -> Vec<String> {
    let res = send(
        run.addr,
        "POST",
        "/login?api_key=QUERYSECRET-1&page=2",
        &[
            ("authorization", "Bearer HEADERSECRET-2"),
            ("cookie", "sid=COOKIESECRET-3"),
            ("content-type", "application/json"),
        ],
        br#"{"user":"ann","password":"BODYSECRET-4"}"#,
    )
    .await;
    assert_eq!(res.status(), 500, "{}", run.name);
    res.into_body().collect().await.unwrap();
    let name = run.name;
    let (events, dir) = run.finish().await;
    let e = request_event(&events, "/login", name);
    assert!(
        e["request"]["request_body"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("ann")),
        "{name}: the request body is kept: {e:#}"
    );
    let stored: String = tracepost::sinks::JsonlFile::files(dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for secret in ["QUERYSECRET", "HEADERSECRET", "COOKIESECRET", "BODYSECRET"] {
        assert!(
            !stored.contains(secret),
            "{name}: {secret} stored: {stored}"
        );
    }
    summaries(&events)
}
on_both!(planted_secrets_are_redacted_in_snapshots, redaction);

async fn redaction_of_logs(run: Run) -> Vec<String> {
    let res = send(run.addr, "POST", "/login", &[], b"{}").await;
    res.into_body().collect().await.unwrap();
    let name = run.name;
    let (events, dir) = run.finish().await;
    let stored: String = tracepost::sinks::JsonlFile::files(dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for secret in ["FIELDSECRET", "MSGSECRETTOKEN"] {
        assert!(
            !stored.contains(secret),
            "{name}: {secret} stored: {stored}"
        );
    }
    summaries(&events)
}

/// The login handler's log line carries a secret in a field (`token`) and a bearer token in
/// its text: redacting those is the pipeline's redaction stage for every event (issue 8 §1),
/// not the HTTP capture's.
#[tokio::test]
async fn planted_secrets_in_logs_are_redacted() {
    let axum = redaction_of_logs(start::<Axum>()).await;
    let actix = redaction_of_logs(start::<Actix>()).await;
    assert_eq!(axum, actix);
}

async fn disconnect(run: Run) -> Vec<String> {
    use tokio::io::AsyncWriteExt;
    let baseline = active(&run.metrics().await);
    let mut conn = tokio::net::TcpStream::connect(run.addr).await.unwrap();
    conn.write_all(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while active(&run.metrics().await) != baseline + 1 {
        assert!(
            Instant::now() < deadline,
            "{}: /hang never active",
            run.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);
    let deadline = Instant::now() + apps::HANG;
    loop {
        let metrics = run.metrics().await;
        if active(&metrics) == baseline {
            break;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(2),
            "{}: the active-requests gauge never returned to {baseline}:\n{metrics}",
            run.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let series = request_series(&run.metrics().await);
    let hang: Vec<String> = series.into_iter().filter(|s| s.contains("/hang")).collect();
    // The documented difference: hyper drops the handler when the client goes away (recorded
    // as 499 at once); actix-web lets it run to its end and writes the response into the
    // closed connection without an error, so the middleware sees a complete 200.
    let status = if run.name == "actix" { "200" } else { "499" };
    assert_eq!(
        hang,
        [format!(
            r#"{{http_request_method="GET",http_response_status_code="{status}",http_route="/hang"}} 1"#
        )],
        "{}",
        run.name
    );
    // What both must do: the gauge is back to its baseline.
    vec![format!("active back to baseline {baseline}")]
}
on_both!(
    a_client_disconnect_returns_the_active_gauge_to_baseline,
    disconnect
);

async fn scanner(run: Run) -> Vec<String> {
    // One keep-alive connection, as a scanner would use.
    let stream = tokio::net::TcpStream::connect(run.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..3000 {
        let req = http::Request::builder()
            .uri(format!("/wp-admin/{i}/setup.php?x={i}"))
            .header("host", "x")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), 404);
        res.into_body().collect().await.unwrap();
    }
    let metrics = run.metrics().await;
    assert!(!metrics.contains("wp-admin"), "{}", run.name);
    let series = request_series(&metrics);
    assert_eq!(
        series,
        [
            r#"{http_request_method="GET",http_response_status_code="404",http_route="_unmatched"} 3000"#
        ],
        "{}",
        run.name
    );
    support::check_with_promtool(&metrics);
    series
}
on_both!(three_thousand_unmatched_paths_make_one_series, scanner);

async fn websocket(run: Run) -> Vec<String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", run.addr))
        .await
        .unwrap_or_else(|e| panic!("{}: the upgrade fails: {e}", run.name));
    assert_eq!(response.status(), 101, "{}", run.name);
    assert!(
        response.headers().contains_key("x-request-id"),
        "{}",
        run.name
    );
    for i in 0..3 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap_or_else(|_| panic!("{}: no echo", run.name))
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(text), "{}", run.name);
    }
    ws.close(None).await.unwrap();
    drop(ws);
    // The upgraded connection is the application's: the request itself was a 101.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let series = request_series(&run.metrics().await);
        let ws: Vec<String> = series.into_iter().filter(|s| s.contains("/ws")).collect();
        if !ws.is_empty() {
            assert_eq!(
                ws,
                [
                    r#"{http_request_method="GET",http_response_status_code="101",http_route="/ws"} 1"#
                ],
                "{}",
                run.name
            );
            let name = run.name;
            let events = run.events().await;
            assert!(
                events.iter().all(|e| e["kind"] != "error"),
                "{name}: {events:#?}"
            );
            return ws;
        }
        assert!(
            Instant::now() < deadline,
            "{}: /ws never recorded",
            run.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
on_both!(a_websocket_upgrade_passes_through_untouched, websocket);
