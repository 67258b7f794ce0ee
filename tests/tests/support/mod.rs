//! Helpers shared by the cross-crate tests: a real server on 127.0.0.1 and a tiny client.

#![allow(dead_code)]

pub mod load;
pub mod pg;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

/// Serves `app` on an ephemeral port of 127.0.0.1 in the current runtime.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Sends one request on a fresh connection and returns the response head and streaming body.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender
        .send_request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .unwrap()
}

/// GET and read the whole body; `None` when the server cannot be reached or the connection
/// breaks (for load generators, whose server may be killed on purpose).
pub async fn try_get(addr: SocketAddr, path: &str) -> Option<http::StatusCode> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .ok()?;
    let res = sender.send_request(req).await.ok()?;
    let status = res.status();
    res.into_body().collect().await.ok()?;
    Some(status)
}

/// GET and read the whole body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let res = send(addr, "GET", path, headers, b"").await;
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// All events in the NDJSON files under `dir`.
pub fn read_events(dir: &Path) -> Vec<Value> {
    let Ok(files) = tracepost::sinks::JsonlFile::files(dir) else {
        return Vec::new();
    };
    files
        .iter()
        .flat_map(|f| {
            // Only complete lines: the sink may be appending one while this reads (a torn
            // last line failed a test under load); the next poll reads it whole.
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| {
                    serde_json::from_str::<Value>(l.trim_end())
                        .expect("every complete line is one JSON event")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Polls `dir` until an event matches `pred`, for at most `within`.
pub async fn wait_for_event(
    dir: &Path,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(e) = read_events(dir).into_iter().find(|e| pred(e)) {
            return Some(e);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `promtool check metrics` (Debian package `prometheus`) must accept the exposition. Under
/// CI a missing promtool is a failure; elsewhere the check is skipped with a message.
pub fn check_with_promtool(metrics: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("CI").is_ok() => panic!("promtool is required in CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED promtool check: {e} (apt-get install prometheus)");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool rejected /metrics:\n{text}");
    assert!(text.trim().is_empty(), "promtool lint findings:\n{text}");
}
