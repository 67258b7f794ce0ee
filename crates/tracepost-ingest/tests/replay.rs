//! `POST /v1/replay` over real HTTP (axum on a loopback port, reqwest as the browser) into a
//! real object store (OpenDAL's `fs` service in a temporary directory) and a pipeline with a
//! memory sink: every answer exact — a stored segment and its index event, a 20 MB full
//! snapshot, a gzip bomb, a truncated gzip, a non-array body, an invalid event, a segment
//! sent twice (also after a restart), segments out of order, a store that fails — and
//! secrets in the recording masked in storage.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tracepost_core::object_store::{Day, ReplayStore, SegmentKey};
use tracepost_core::testing::MemorySink;
use tracepost_core::{Kind, Tracepost};
use tracepost_ingest::{Ingest, IngestConfig, ReplayConfig, ReplayIngest};
use tracepost_opendal::OpendalStore;

const KEY: &str = "pk_test_1";
const ORIGIN: &str = "https://shop.example";
/// 2025-11-29T21:00:00Z.
const START: u64 = 1_764_450_000_000;
const DAY: Day = Day {
    year: 2025,
    month: 11,
    day: 29,
};

struct Server {
    base: String,
    tp: Option<Tracepost>,
    sink: MemorySink,
    dir: PathBuf,
    client: reqwest::Client,
}

async fn start(dir: &Path, config: ReplayConfig) -> Server {
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("shop")
        .sink(sink.clone())
        .build()
        .unwrap();
    let ingest = Ingest::new(
        tp.handle(),
        IngestConfig::new().key(KEY).allowed_origin(ORIGIN),
    )
    .unwrap();
    let store = ReplayStore::new(OpendalStore::fs(dir).unwrap());
    let replay = ReplayIngest::new(ingest, store, config).unwrap();
    let app: axum::Router = tracepost_ingest::replay_router(replay);
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
    Server {
        base: format!("http://{addr}/tracepost"),
        tp: Some(tp),
        sink,
        dir: dir.to_owned(),
        client: reqwest::Client::new(),
    }
}

impl Server {
    /// Uploads `body` as segment `segment` of `session`.
    async fn upload(&self, session: &str, segment: u32, body: Vec<u8>, gzip: bool) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!(
                "{}/v1/replay?key={KEY}&session={session}&segment={segment}&session_start={START}&missing=2&errors=1&visitor=vis-1&user=u-42",
                self.base
            ))
            .header("origin", ORIGIN)
            .header("content-type", "text/plain;charset=UTF-8");
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        let r = req.body(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A request announcing a body of `len` bytes and sending none: the answer.
    async fn raw_announce(&self, len: usize) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self
            .base
            .trim_start_matches("http://")
            .trim_end_matches("/tracepost");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /tracepost/v1/replay?key={KEY}&session=big&segment=0&session_start={START} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer);
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    async fn events(&mut self) -> Vec<tracepost_core::Event> {
        if let Some(tp) = self.tp.take() {
            tp.shutdown(Duration::from_secs(5)).await;
        }
        self.sink
            .stored()
            .into_iter()
            .filter(|e| e.kind == Kind::Replay)
            .collect()
    }

    fn stored(&self, session: &str, segment: u32) -> Option<Vec<u8>> {
        let key = SegmentKey::new(session, DAY, segment).unwrap().key();
        std::fs::read(self.dir.join(key)).ok()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(data), &mut out).unwrap();
    out
}

fn error(status: u16, code: &str, message: &str, field: Option<&str>) -> Value {
    let mut e = json!({"status": status, "code": code, "message": message});
    if let Some(f) = field {
        e["field"] = f.into();
    }
    json!({ "error": e })
}

/// A small real-shaped segment: Meta, FullSnapshot, a click and an input, starting at `t`.
fn segment(t: u64, text: &str) -> Value {
    json!([
        {"type": 4, "data": {"href": "https://shop.example/cart?coupon=X1", "width": 1280, "height": 720}, "timestamp": t},
        {"type": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [
                {"type": 2, "id": 3, "tagName": "body", "attributes": {"class": "page"}, "childNodes": [
                    {"type": 3, "id": 4, "textContent": text}
                ]}
            ]}
        ]}, "initialOffset": {"top": 0, "left": 0}}, "timestamp": t + 5},
        {"type": 3, "data": {"source": 2, "type": 2, "id": 4, "x": 10.5, "y": 20}, "timestamp": t + 700},
        {"type": 3, "data": {"source": 5, "id": 4, "text": "***", "isChecked": false}, "timestamp": t + 1200}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_is_stored_redacted_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), ReplayConfig::new()).await;
    // Secrets in the recorded page: an AWS key in a text node and a password under a
    // secret-looking key in a custom event.
    let mut seg = segment(START + 1000, "key AKIAIOSFODNN7EXAMPLE on screen");
    seg.as_array_mut().unwrap().push(json!({"type": 5, "data": {"tag": "form", "payload": {"password": "hunter2-secret"}}, "timestamp": START + 1500}));
    let body = serde_json::to_vec(&seg).unwrap();
    let (status, answer) = s.upload("sess-1", 0, gzip(&body), true).await;
    let stored = s.stored("sess-1", 0).expect("the segment is in the store");
    assert_eq!(
        (status, answer),
        (
            202,
            json!({"accepted": 1, "segment": 0, "events": 5, "bytes": stored.len()})
        )
    );
    let json = gunzip(&stored);
    let text = String::from_utf8_lossy(&json);
    assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("[REDACTED]"));
    // Still a valid recording, with everything else intact.
    let events = tracepost_rrweb::parse_segment(&json, &Default::default()).unwrap();
    assert_eq!(events.len(), 5);
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v[0], seg[0]);
    assert_eq!(v[2], seg[2]);

    // Also a plain JSON upload (no gzip): stored gzipped.
    let (status, answer) = s
        .upload(
            "sess-1",
            1,
            serde_json::to_vec(&segment(START + 5000, "two")).unwrap(),
            false,
        )
        .await;
    assert_eq!((status, &answer["accepted"]), (202, &json!(1)));
    assert_eq!(gunzip(&s.stored("sess-1", 1).unwrap())[0], b'[');

    let events = s.events().await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let e = events
        .iter()
        .find(|e| e.attributes["replay.segment"] == 0)
        .unwrap();
    assert_eq!(e.session_id.as_deref(), Some("sess-1"));
    assert_eq!(e.user_id.as_deref(), Some("u-42"));
    assert_eq!(e.resource.service, "shop");
    assert_eq!(e.timestamp.unix_nanos(), (START + 1000) * 1_000_000);
    assert_eq!(e.message, "replay segment 0 (5 events)");
    let a = &e.attributes;
    assert_eq!(a["replay.start_ms"], START + 1000);
    assert_eq!(a["replay.end_ms"], START + 2200);
    assert_eq!(a["replay.events"], 5);
    assert_eq!(a["replay.bytes"], stored.len());
    assert_eq!(a["replay.first_url"], "https://shop.example/cart?coupon=X1");
    assert_eq!(a["replay.missing_segments"], 2);
    assert_eq!(a["replay.errors"], 1);
    assert_eq!(a["replay.day"], "2025/11/29");
    assert_eq!(a["visitor.id"], "vis-1");
    assert!(a.get("replay.clock_skew_ms").is_none());
    // The pipeline's redactor runs on the index event too: `replay.session_start` has
    // "session" in its key, a secret-looking key by default, so it arrives masked;
    // `replay.day` carries the day the segments are filed under.
    assert_eq!(a["replay.session_start"], "[REDACTED]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_segments_get_their_exact_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), ReplayConfig::new()).await;
    let good = serde_json::to_vec(&segment(START, "hello")).unwrap();

    // A gzip bomb: 1 GiB of spaces in 1 024 gzip members of 1 MiB each (about 1 MB sent).
    let member = gzip(&vec![b' '; 1 << 20]);
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 1024)
        .collect();
    assert!(bomb.len() < 10 << 20);
    assert_eq!(
        s.upload("bomb", 0, bomb, true).await,
        (
            413,
            error(
                413,
                "decompressed_too_large",
                "the body decompresses to more than 104857600 bytes",
                None
            )
        )
    );

    // Truncated gzip: the last 20 bytes (part of the stream and the trailer) missing.
    let gz = gzip(&good);
    let cut = gz[..gz.len() - 20].to_vec();
    let (status, answer) = s.upload("trunc", 0, cut, true).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("invalid_gzip")),
        "{answer}"
    );

    // Not an array.
    assert_eq!(
        s.upload(
            "obj",
            0,
            gzip(br#"{"type":4,"data":{},"timestamp":1}"#),
            true
        )
        .await,
        (
            400,
            error(
                400,
                "invalid_segment",
                "expected a JSON array of rrweb events, found an object",
                Some("")
            )
        )
    );
    // Not JSON.
    let (status, answer) = s.upload("nojson", 0, gzip(b"[{\"type\":"), true).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("malformed_json")),
        "{answer}"
    );
    // An empty array.
    assert_eq!(
        s.upload("empty", 0, gzip(b"[]"), true).await,
        (
            400,
            error(
                400,
                "invalid_segment",
                "the segment holds no events",
                Some("")
            )
        )
    );
    // An event that is not rrweb's: the pointer names it.
    assert_eq!(
        s.upload("bad", 0, gzip(br#"[{"type":4,"data":{"href":"https://a/","width":1,"height":1},"timestamp":1},{"type":3,"data":{"source":3,"id":1,"x":"left","y":0},"timestamp":2}]"#), true).await,
        (400, error(400, "invalid_segment", "event 1: data.x: invalid type: string \"left\", expected a JSON number", Some("/1/data/x")))
    );
    // Over 10 MiB as sent: refused on its Content-Length, before the body is read (a raw
    // request, so the client is not still writing the body when the answer comes).
    assert_eq!(
        s.raw_announce((10 << 20) + 1).await,
        (
            413,
            error(
                413,
                "body_too_large",
                "the body is larger than 10485760 bytes",
                None
            )
        )
    );
    // Parameters.
    let r = s
        .client
        .post(format!(
            "{}/v1/replay?key={KEY}&session=a&session_start={START}",
            s.base
        ))
        .header("content-type", "text/plain")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        error(
            400,
            "missing_param",
            "the query parameter `segment` is required",
            None
        )
    );
    let r = s
        .client
        .post(format!(
            "{}/v1/replay?session=a&segment=0&session_start={START}",
            s.base
        ))
        .header("content-type", "text/plain")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .post(format!(
            "{}/v1/replay?key={KEY}&session=a&segment=0&session_start={START}",
            s.base
        ))
        .header("content-type", "image/png")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Nothing of these was stored or indexed.
    assert!(!dir.path().join("replays").exists());
    assert!(s.events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_full_snapshot_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), ReplayConfig::new()).await;
    // 50 000 text nodes of ~400 bytes: about 20 MB of JSON, varied enough that gzip
    // leaves a few MB.
    let nodes: Vec<Value> = (0..50_000)
        .map(|i| {
            let text: String = (0..60).map(|j| format!("{:x}", (i * 7919 + j * 104729) % 65521)).collect::<Vec<_>>().join(" ");
            json!({"type": 2, "id": 10 + i * 2, "tagName": "p", "attributes": {"data-i": i.to_string()},
                   "childNodes": [{"type": 3, "id": 11 + i * 2, "textContent": text}]})
        })
        .collect();
    let snapshot = json!([
        {"type": 4, "data": {"href": "https://shop.example/big", "width": 1280, "height": 720}, "timestamp": START},
        {"type": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [
                {"type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": nodes}]}]},
            "initialOffset": {"top": 0, "left": 0}}, "timestamp": START + 1}
    ]);
    let json = serde_json::to_vec(&snapshot).unwrap();
    assert!(json.len() > 20_000_000, "{}", json.len());
    let gz = gzip(&json);
    assert!(gz.len() < 10 << 20, "{}", gz.len());
    let (status, answer) = s.upload("big-1", 0, gz, true).await;
    let stored = s.stored("big-1", 0).unwrap();
    assert_eq!(
        (status, answer),
        (
            202,
            json!({"accepted": 1, "segment": 0, "events": 2, "bytes": stored.len()})
        )
    );
    assert_eq!(gunzip(&stored).len(), json.len());
    assert_eq!(s.events().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_out_of_order_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), ReplayConfig::new()).await;
    let seg = |n: u64| gzip(&serde_json::to_vec(&segment(START + n * 5000, "x")).unwrap());
    // Out of order: 2, 0, 1 — each stored under its own number.
    for n in [2u32, 0, 1] {
        let (status, answer) = s.upload("s-ooo", n, seg(n.into()), true).await;
        assert_eq!((status, &answer["segment"]), (202, &json!(n)), "{answer}");
    }
    // Segment 1 again, as a retry after a lost answer: acknowledged, not stored or indexed
    // again.
    assert_eq!(
        s.upload("s-ooo", 1, seg(1), true).await,
        (200, json!({"accepted": 0, "duplicate": true}))
    );
    let store = ReplayStore::new(OpendalStore::fs(dir.path()).unwrap());
    let listed: Vec<u32> = store
        .list_segments("s-ooo", DAY)
        .await
        .unwrap()
        .iter()
        .map(|k| k.segment())
        .collect();
    assert_eq!(listed, [0, 1, 2]);
    let events = s.events().await;
    let mut numbers: Vec<u64> = events
        .iter()
        .map(|e| e.attributes["replay.segment"].as_u64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [0, 1, 2]);

    // After a restart (a new route on the same store, nothing remembered in memory), the
    // store's listing answers: still a duplicate.
    let mut again = start(dir.path(), ReplayConfig::new()).await;
    assert_eq!(
        again.upload("s-ooo", 2, seg(2), true).await,
        (200, json!({"accepted": 0, "duplicate": true}))
    );
    assert!(again.events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the store's `replays/` directory must go: every write fails.
    std::fs::write(dir.path().join("replays"), b"in the way").unwrap();
    let mut s = start(dir.path(), ReplayConfig::new()).await;
    let body = gzip(&serde_json::to_vec(&segment(START, "x")).unwrap());
    let r = s
        .client
        .post(format!(
            "{}/v1/replay?key={KEY}&session=s-fail&segment=0&session_start={START}",
            s.base
        ))
        .header("content-type", "text/plain")
        .header("content-encoding", "gzip")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        error(
            503,
            "store_unavailable",
            "the replay store is unavailable; retry later",
            None
        )
    );
    // The browser retries once the store is back: stored and indexed once.
    std::fs::remove_file(dir.path().join("replays")).unwrap();
    let (status, answer) = s.upload("s-fail", 0, body, true).await;
    assert_eq!((status, &answer["accepted"]), (202, &json!(1)), "{answer}");
    assert!(s.stored("s-fail", 0).is_some());
    assert_eq!(s.events().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_segment_twice_at_once_is_stored_and_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), ReplayConfig::new()).await;
    // A segment big enough (a few MB) that the second copy arrives while the first is
    // still being processed.
    let text = "lorem ipsum dolor sit amet ".repeat(200_000);
    let body = gzip(&serde_json::to_vec(&segment(START, &text)).unwrap());
    let (a, b) = tokio::join!(
        s.upload("s-twice", 0, body.clone(), true),
        s.upload("s-twice", 0, body, true)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    // The second waits for nothing: `409 segment_in_progress` (retry later) while the
    // first is being stored, or a duplicate if the first was already done.
    assert!(
        statuses == [202, 409] || statuses == [200, 202],
        "{a:?} {b:?}"
    );
    for (status, answer) in [&a, &b] {
        if *status == 409 {
            assert_eq!(
                answer,
                &error(
                    409,
                    "segment_in_progress",
                    "segment 0 of this session is being stored by another request; retry",
                    None
                )
            );
        }
    }
    assert_eq!(s.events().await.len(), 1);
}
