//! The sink behaviour suite for the NDJSON.gz archive on S3: a real S3-compatible server
//! (s3s-fs, in-process) behind a TCP proxy for outages; "refusing" is the server answering
//! 403 AccessDenied to everything.

#[path = "support/archive.rs"]
mod archive;
#[path = "support/s3_server.rs"]
mod s3_server;

use std::time::Duration;

use s3_server::{Mode, S3Server};
use tracepost_core::testing::suite::{Capabilities, Harness, Stored};
use tracepost_core::testing::TcpProxy;
use tracepost_s3::{ArchiveSink, S3Config, S3Store};

struct S3 {
    server: S3Server,
    proxy: TcpProxy,
}

impl S3 {
    async fn new() -> Option<S3> {
        let server = S3Server::start().await;
        let proxy = TcpProxy::start(server.addr, true).await.unwrap();
        Some(S3 { server, proxy })
    }

    fn store(&self) -> S3Store {
        S3Store::new(
            S3Config::new(s3_server::BUCKET)
                .endpoint(format!("http://{}", self.proxy.addr()))
                .force_path_style(true)
                .credentials(s3_server::ACCESS_KEY, s3_server::SECRET_KEY)
                .timeout(Duration::from_secs(3))
                .connect_timeout(Duration::from_millis(500))
                .max_attempts(1),
        )
        .unwrap()
    }
}

impl Harness for S3 {
    type Sink = ArchiveSink<S3Store>;
    async fn sink(&self) -> Self::Sink {
        ArchiveSink::new(self.store())
    }
    async fn read_back(&self) -> Vec<Stored> {
        // The objects as s3s-fs stored them on disk (the server may be refusing or cut
        // off); downloads are compared with these bytes in tests/store.rs.
        archive::read_back_dir(&self.server.object_path(""))
    }
    fn capabilities(&self) -> Capabilities {
        // Idempotent per batch (the object key is derived from the batch's ids); objects
        // are listed by key, not arrival; storage rejects no event for its content.
        Capabilities::all().ordered(false).bad_event(false)
    }
    async fn set_refusing(&self, on: bool) {
        self.server
            .set_mode(if on { Mode::Deny } else { Mode::Serve });
    }
    async fn set_reachable(&self, on: bool) {
        self.proxy.set_up(on);
    }
}

tracepost_core::sink_behaviour_suite!(S3::new());
