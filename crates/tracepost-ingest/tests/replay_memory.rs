//! Memory stays flat on `POST /v1/replay`: ten gzip bombs of 1 GiB each, sent at once, raise
//! the process's peak RSS by about the decoding limit times the segments processed at once —
//! not by what the bombs inflate to. Measured with Linux's peak RSS (`VmHWM`, reset through
//! `/proc/self/clear_refs`), in a test binary of its own so no other test shares the process.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use tracepost_core::object_store::ReplayStore;
use tracepost_core::testing::MemorySink;
use tracepost_core::Tracepost;
use tracepost_ingest::{Ingest, IngestConfig, ReplayConfig, ReplayIngest};
use tracepost_opendal::OpendalStore;

const KEY: &str = "pk_test_1";
const MIB: u64 = 1 << 20;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Resets the peak RSS to the current RSS; false where the kernel can't.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_at_once_cost_the_limit_not_the_inflated_size() {
    if !reset_peak() {
        eprintln!("\n!!! SKIPPING: /proc/self/clear_refs can't reset the peak RSS here\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder().sink(sink.clone()).build().unwrap();
    let ingest = Ingest::new(
        tp.handle(),
        IngestConfig::new().key(KEY).per_client_limit(1000, 1000),
    )
    .unwrap();
    let limit = 20 << 20;
    let concurrent = 2;
    let replay = ReplayIngest::new(
        ingest,
        ReplayStore::new(OpendalStore::fs(dir.path()).unwrap()),
        ReplayConfig::new()
            .max_decompressed_bytes(limit)
            .max_concurrent(concurrent),
    )
    .unwrap();
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
    // 1 GiB of `[` (what a parser would choke on) as 1 024 gzip members of 1 MiB: ~1 MB.
    let member = gzip(&vec![b'['; 1 << 20]);
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 1024)
        .collect();
    let client = reqwest::Client::new();
    // Warm up the server's buffers and the allocator with one small upload.
    let ok = client
        .post(format!(
            "http://{addr}/tracepost/v1/replay?key={KEY}&session=warm&segment=0&session_start=1764450000000"
        ))
        .header("content-type", "text/plain")
        .body(r#"[{"type":4,"data":{"href":"https://a/","width":1,"height":1},"timestamp":1764450000000}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);

    assert!(reset_peak());
    let before = status_kib("VmHWM:") / 1024;
    let sends = (0..10).map(|i| {
        let req = client
            .post(format!(
                "http://{addr}/tracepost/v1/replay?key={KEY}&session=bomb{i}&segment=0&session_start=1764450000000"
            ))
            .header("content-encoding", "gzip")
            .header("content-type", "text/plain")
            .body(bomb.clone());
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    for (status, body) in futures_join(sends).await {
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("decompressed_too_large"), "{body}");
    }
    let peak = status_kib("VmHWM:") / 1024;
    let grew = peak.saturating_sub(before);
    println!(
        "10 bombs of 1 GiB at once ({} KiB sent each): peak RSS {before} MiB -> {peak} MiB (+{grew} MiB); limit {} MiB x {concurrent} at once",
        bomb.len() / 1024,
        limit / MIB as usize
    );
    // At most `concurrent` output buffers of up to twice the limit (the Vec's growth), the
    // ten request bodies, and slack for the runtime: far below the 10 GiB inflated.
    let bound =
        concurrent as u64 * 2 * (limit as u64 / MIB) + 10 * (bomb.len() as u64 / MIB + 1) + 40;
    assert!(grew <= bound, "peak RSS grew {grew} MiB, bound {bound} MiB");
    tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        sink.stored().len(),
        1,
        "only the warm-up segment was indexed"
    );
}

/// Runs the futures concurrently, answers in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
