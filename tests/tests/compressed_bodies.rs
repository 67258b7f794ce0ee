//! Compressed bodies are kept decoded (so redaction sees their keys), within the capture cap:
//! request bodies sent with `Content-Encoding` gzip, deflate or br, responses compressed by
//! tower-http's `CompressionLayer` inside tracepost's layer, a decompression bomb, and an
//! encoding tracepost cannot decode. Real axum server on 127.0.0.1, real hyper client.

mod support;

use std::io::Write;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use support::{read_events, send, serve};
use tracepost::prelude::*;
use tracepost::sinks::JsonlFile;
use tracepost::tower::SnapshotPolicy;
use tracepost::{BatchOptions, SinkOptions, Tracepost};
use tracing_subscriber::prelude::*;

const SECRET_JSON: &[u8] = br#"{"user":"ann","password":"hunter2","remember":true}"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(bytes).unwrap();
    }
    out
}

/// Every request keeps its snapshot; `/login` reads its body, `/token` answers JSON with a
/// secret, compressed by tower-http inside tracepost's layer.
fn app(tp: &Tracepost) -> Router {
    Router::new()
        .route(
            "/login",
            post(|body: Bytes| async move { format!("read {} bytes", body.len()) }),
        )
        .route(
            "/token",
            get(|| async {
                axum::Json(serde_json::json!({
                    "access_token": "hunter2",
                    "expires_in": 3600,
                    "padding": "x".repeat(2000),
                }))
            }),
        )
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(
            tp.layer()
                .snapshot_policy(SnapshotPolicy::default().sample_rate(1.0)),
        )
}

async fn setup() -> (
    tempfile::TempDir,
    Tracepost,
    std::net::SocketAddr,
    tracing::subscriber::DefaultGuard,
) {
    let dir = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("test")
        .sink_with(
            JsonlFile::new(dir.path()),
            SinkOptions::default().batch(BatchOptions::new(
                100,
                1 << 20,
                Duration::from_millis(20),
            )),
        )
        .build()
        .unwrap();
    let guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(tp.tracing_layer()));
    let addr = serve(app(&tp)).await;
    (dir, tp, addr, guard)
}

/// Every stored line, raw: the secret must appear in none of them.
fn stored_text(dir: &std::path::Path) -> String {
    tracepost::sinks::JsonlFile::files(dir)
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

fn by_request_id<'a>(events: &'a [Value], id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["request_id"] == id)
        .unwrap_or_else(|| panic!("no event for {id}"))
}

#[tokio::test]
async fn gzip_deflate_and_br_request_bodies_are_kept_decoded_and_redacted() {
    let (dir, tp, addr, _g) = setup().await;
    for (encoding, body) in [
        ("gzip", gzip(SECRET_JSON)),
        ("deflate", deflate(SECRET_JSON)),
        ("br", brotli(SECRET_JSON)),
    ] {
        let res = send(
            addr,
            "POST",
            "/login",
            &[
                ("content-type", "application/json"),
                ("content-encoding", encoding),
                ("x-request-id", encoding),
            ],
            &body,
        )
        .await;
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    tp.shutdown(Duration::from_secs(5)).await;
    assert!(!stored_text(dir.path()).contains("hunter2"));
    let events = read_events(dir.path());
    for encoding in ["gzip", "deflate", "br"] {
        let kept = &by_request_id(&events, encoding)["request"]["request_body"];
        assert_eq!(kept["encoding"], "utf8", "{encoding}: {kept}");
        let json: Value = serde_json::from_str(kept["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"user": "ann", "password": "[REDACTED]", "remember": true}),
            "{encoding}"
        );
    }
}

#[tokio::test]
async fn a_response_compressed_inside_the_layer_is_kept_decoded_and_redacted() {
    let (dir, tp, addr, _g) = setup().await;
    for encoding in ["gzip", "br"] {
        let res = send(
            addr,
            "GET",
            "/token",
            &[("accept-encoding", encoding), ("x-request-id", encoding)],
            b"",
        )
        .await;
        assert_eq!(res.headers()["content-encoding"], encoding);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.windows(7).any(|w| w == b"hunter2"), "sent compressed");
    }
    tp.shutdown(Duration::from_secs(5)).await;
    assert!(!stored_text(dir.path()).contains("hunter2"));
    let events = read_events(dir.path());
    for encoding in ["gzip", "br"] {
        let kept = &by_request_id(&events, encoding)["request"]["response_body"];
        let json: Value = serde_json::from_str(kept["text"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{encoding}: {e}: {kept}"));
        assert_eq!(json["access_token"], "[REDACTED]");
        assert_eq!(json["expires_in"], 3600);
    }
}

#[tokio::test]
async fn a_decompression_bomb_keeps_at_most_the_cap_and_an_unknown_encoding_keeps_a_marker() {
    let (dir, tp, addr, _g) = setup().await;
    let bomb = gzip(&vec![0u8; 100 << 20]);
    assert!(
        bomb.len() < 200 * 1024,
        "100 MB of zeros in {} bytes",
        bomb.len()
    );
    let res = send(
        addr,
        "POST",
        "/login",
        &[
            ("content-type", "application/octet-stream"),
            ("content-encoding", "gzip"),
            ("x-request-id", "bomb"),
        ],
        &bomb,
    )
    .await;
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let zstd = b"\x28\xb5\x2f\xfd pretend zstd with password=hunter2";
    let res = send(
        addr,
        "POST",
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "zstd"),
            ("x-request-id", "zstd"),
        ],
        zstd,
    )
    .await;
    res.into_body().collect().await.unwrap();
    tp.shutdown(Duration::from_secs(5)).await;
    let events = read_events(dir.path());
    let bomb_req = &by_request_id(&events, "bomb")["request"];
    assert_eq!(bomb_req["request_bytes"], bomb.len());
    let kept = &bomb_req["request_body"];
    assert_eq!(kept["truncated"], true);
    assert!(
        kept["text"].as_str().unwrap().len() <= 64 * 1024,
        "the decoded copy respects the 64 KiB cap"
    );
    assert_eq!(
        by_request_id(&events, "zstd")["request"]["request_body"]["text"],
        format!("[{} bytes, content-encoding: zstd, not kept]", zstd.len())
    );
    assert!(!stored_text(dir.path()).contains("hunter2"));
}
