//! The replay upload benchmark of `crates/tracepost-ingest/examples/replay_bench.rs` with the
//! segments stored in S3 through OpenDAL's `s3` service, against s3s-fs (an S3-compatible
//! server on a local directory, SigV4 checked) served in-process on loopback — the test
//! server of `tests/s3.rs`. The numbers include s3s-fs's own work and memory: it runs in the
//! same process, so the RSS peak counts both sides.
//!
//! `cargo run --release -p tracepost-opendal --features s3 --example replay_bench_s3 [SECONDS]`
//! (default 10).

#[allow(dead_code)]
#[path = "../../../crates/tracepost-ingest/examples/replay_bench.rs"]
mod bench;
#[path = "../../tracepost-s3/tests/support/s3_server.rs"]
mod s3_server;

use std::time::Duration;

use tracepost_opendal::{opendal, OpendalStore, ReplayStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = s3_server::S3Server::start().await;
    let s3 = opendal::services::S3::default()
        .endpoint(&format!("http://{}", server.addr))
        .region("us-east-1")
        .bucket(s3_server::BUCKET)
        .access_key_id(s3_server::ACCESS_KEY)
        .secret_access_key(s3_server::SECRET_KEY)
        .disable_config_load()
        .disable_ec2_metadata();
    let store = OpendalStore::builder(opendal::Operator::new(s3)?.finish())
        .timeout(Duration::from_secs(60))
        .build();
    println!("store: S3 (s3s-fs in-process at {})", server.addr);
    bench::run(ReplayStore::new(store), seconds).await
}
