//! Replay segments stored per second, and MB/s, for 1 MiB segments: OpenDAL's `fs` service
//! (a local directory) and aws-sdk-s3 against an S3-compatible server (s3s-fs, in-process on
//! 127.0.0.1, which writes to a local directory too), sequentially and 8 at a time.
//!
//! `cargo run --release -p tracepost-s3 --example segment_throughput [SEGMENTS]`
//! (default 100 per run).

#[path = "../tests/support/s3_server.rs"]
mod s3_server;

use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tracepost_opendal::OpendalStore;
use tracepost_s3::{Day, ObjectStore, ReplayStore, S3Config, S3Store, SegmentKey};

const SEGMENT: usize = 1 << 20;

/// A 1 MiB body that doesn't compress (like a gzipped segment).
fn body(seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Bytes::from(
        (0..SEGMENT)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

async fn run<S: ObjectStore>(label: &str, replays: &ReplayStore<S>, n: u32, concurrency: usize) {
    let day = Day {
        year: 2026,
        month: 11,
        day: 29,
    };
    let bodies: Vec<Bytes> = (0..8).map(body).collect();
    let session = format!("bench-{concurrency}");
    let started = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let key = SegmentKey::new(session.as_str(), day, i).unwrap();
            let body = bodies[i as usize % bodies.len()].clone();
            async move { replays.put_segment(&key, body).await.unwrap() }
        })
        .await;
    let secs = started.elapsed().as_secs_f64();
    let listed = replays.list_segments(&session, day).await.unwrap().len();
    assert_eq!(listed, n as usize);
    println!(
        "{label:<28} concurrency {concurrency}: {n} x 1 MiB in {secs:.2} s = {:.0} segments/s, {:.0} MB/s",
        n as f64 / secs,
        n as f64 * SEGMENT as f64 / 1e6 / secs
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let fs = ReplayStore::new(OpendalStore::fs(dir.path()).unwrap());
    let server = s3_server::S3Server::start().await;
    let s3 = ReplayStore::new(
        S3Store::new(
            S3Config::new(s3_server::BUCKET)
                .endpoint(format!("http://{}", server.addr))
                .force_path_style(true)
                .credentials(s3_server::ACCESS_KEY, s3_server::SECRET_KEY),
        )
        .unwrap(),
    );
    for concurrency in [1, 8] {
        run("fs (OpenDAL)", &fs, n, concurrency).await;
        run("S3 (aws-sdk-s3 → s3s-fs)", &s3, n, concurrency).await;
    }
}
