//! The quickstart with its replay segments in S3 (`--features s3`, `TRACEPOST_REPLAY_S3_*`),
//! against a real S3-compatible server in-process (s3s-fs, with SigV4 keys): a segment
//! uploaded by the browser route lands in the bucket and not in the data dir, the console
//! serves it back from the bucket byte for byte, and a bucket that answers 503 makes the
//! upload a 5xx with a JSON body (which tp-replay.js retries), not a silent loss.
//!
//! `cargo test -p quickstart --features s3 --test s3` (scripts/test.sh runs it).

mod common;
#[path = "../../../plugins/tracepost-s3/tests/support/s3_server.rs"]
mod s3_server;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::{post, Quickstart};
use s3_server::{Mode, S3Server};
use serde_json::{json, Value};

const TOKEN: &str = "quickstart-s3-test-token";
/// The session's start, now in ms since the epoch, as the browser sends it (the console
/// lists recent sessions).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A small real-shaped rrweb segment: meta, full snapshot, a masked input, a click.
fn segment(start: u64) -> Vec<Value> {
    vec![
        json!({"type": 4, "data": {"href": "http://127.0.0.1/", "width": 1100, "height": 760}, "timestamp": start}),
        json!({"type": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [
                {"type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": [
                    {"type": 2, "id": 4, "tagName": "input", "attributes": {"id": "name", "value": "****"}, "childNodes": []}]}]}]},
            "initialOffset": {"top": 0, "left": 0}}, "timestamp": start + 5}),
        json!({"type": 3, "data": {"source": 5, "id": 4, "text": "*******", "isChecked": false}, "timestamp": start + 400}),
        json!({"type": 3, "data": {"source": 2, "type": 2, "id": 4, "x": 10, "y": 20}, "timestamp": start + 900}),
    ]
}

fn upload(addr: &str, session: &str, n: u32, start: u64, body: &[u8]) -> String {
    post(
        addr,
        &format!(
            "/tracepost/v1/replay?key=pk_quickstart&session={session}&segment={n}&session_start={start}"
        ),
        &[
            ("content-type", "text/plain"),
            ("content-encoding", "gzip"),
        ],
        body,
    )
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A GET with the console's session cookie, as raw bytes (head, then body).
fn get_signed_in(addr: &str, cookie: &str, path: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    (head, raw[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_segments_go_to_s3_and_the_console_reads_them_back() {
    let server = S3Server::start().await;
    let endpoint = format!("http://{}", server.addr);
    let qs = tokio::task::spawn_blocking(move || {
        Quickstart::start(&[
            ("TRACEPOST_REPLAY_S3_BUCKET", s3_server::BUCKET),
            ("TRACEPOST_REPLAY_S3_ENDPOINT", &endpoint),
            ("TRACEPOST_REPLAY_S3_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY),
            ("TRACEPOST_CONSOLE_TOKEN", TOKEN),
        ])
    })
    .await
    .unwrap();
    let addr = qs.addr.clone();
    let start = now_ms();
    let events = segment(start);
    let body = gzip(&serde_json::to_vec(&events).unwrap());

    let a = addr.clone();
    let r = tokio::task::spawn_blocking(move || upload(&a, "s3-session", 0, start, &body))
        .await
        .unwrap();
    assert_eq!(status(&r), 202, "{r}");

    // In the bucket under the dated key, and not in the data dir.
    let in_bucket = files_under(&server.object_path(""));
    let key = in_bucket
        .iter()
        .find(|p| p.ends_with("s3-session/000000.json.gz"))
        .unwrap_or_else(|| panic!("not in the bucket: {in_bucket:?}"));
    let rel = key.strip_prefix(server.object_path("")).unwrap();
    assert!(
        rel.starts_with("replays") && rel.components().count() == 6,
        "replays/yyyy/mm/dd/session/segment: {rel:?}"
    );
    let object = std::fs::read(key).unwrap();
    let stored: Vec<Value> = serde_json::from_slice(&gunzip(&object)).unwrap();
    assert_eq!(
        stored, events,
        "the segment as sent (nothing to redact in it)"
    );
    let local: Vec<PathBuf> = files_under(qs.data.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("replays"))
        .collect();
    assert!(local.is_empty(), "segments in the data dir: {local:?}");

    // The console serves the segment from the bucket, byte for byte.
    let a = addr.clone();
    let (head, bytes) = tokio::task::spawn_blocking(move || {
        let r = post(
            &a,
            "/tracepost/console/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("token={TOKEN}").as_bytes(),
        );
        let cookie = r
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("no session cookie: {r}"))
            .to_owned();
        // The console finds the segment's day in the replay index (SQLite), written
        // asynchronously by the pipeline: poll until it is there.
        let started = std::time::Instant::now();
        loop {
            let (head, body) =
                get_signed_in(&a, &cookie, "/tracepost/console/v1/replay/s3-session/0");
            if head.starts_with("HTTP/1.1 200") || started.elapsed().as_secs() >= 10 {
                break (head, body);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{head}\n{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(bytes, object, "{head}");

    // The bucket overloaded: the upload is refused with a 5xx and a JSON body naming the
    // store, so the browser retries it; nothing lands.
    server.set_mode(Mode::Unavailable);
    let body = gzip(&serde_json::to_vec(&events).unwrap());
    let a = addr.clone();
    let r = tokio::task::spawn_blocking(move || upload(&a, "s3-session", 1, start, &body))
        .await
        .unwrap();
    assert!((500..600).contains(&status(&r)), "{r}");
    let json_body: Value = serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {r}"));
    assert!(json_body["error"].is_object(), "{r}");
    server.set_mode(Mode::Serve);
    assert!(!files_under(&server.object_path(""))
        .iter()
        .any(|p| p.ends_with("s3-session/000001.json.gz")));
}
