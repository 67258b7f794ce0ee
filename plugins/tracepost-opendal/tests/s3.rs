//! OpenDAL's `s3` service (feature `s3`) against a real S3-compatible server (s3s-fs,
//! in-process): the sink behaviour suite with outages (a TCP proxy) and refusals (403),
//! segments byte-identical between the local `fs` store and S3 after download, and error
//! classes for S3 down, 503 and access denied.

#![cfg(feature = "s3")]

#[path = "../../tracepost-s3/tests/support/archive.rs"]
mod archive;
#[path = "../../tracepost-s3/tests/support/s3_server.rs"]
mod s3_server;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use s3_server::{Mode, S3Server};
use tracepost_core::testing::suite::{Capabilities, Harness, Stored};
use tracepost_core::testing::TcpProxy;
use tracepost_core::{SinkErrorClass, SinkErrorKind};
use tracepost_opendal::{
    opendal, ArchiveSink, Day, ObjectStore, OpendalStore, ReplayStore, SegmentKey,
};

fn s3_store(addr: SocketAddr, secret: &str) -> OpendalStore {
    let s3 = opendal::services::S3::default()
        .endpoint(&format!("http://{addr}"))
        .region("us-east-1")
        .bucket(s3_server::BUCKET)
        .access_key_id(s3_server::ACCESS_KEY)
        .secret_access_key(secret)
        .disable_config_load()
        .disable_ec2_metadata();
    OpendalStore::builder(opendal::Operator::new(s3).unwrap().finish())
        .retries(0)
        .timeout(Duration::from_secs(3))
        .build()
}

struct S3 {
    server: S3Server,
    proxy: TcpProxy,
}

impl Harness for S3 {
    type Sink = ArchiveSink<OpendalStore>;
    async fn sink(&self) -> Self::Sink {
        ArchiveSink::new(s3_store(self.proxy.addr(), s3_server::SECRET_KEY))
    }
    async fn read_back(&self) -> Vec<Stored> {
        archive::read_back_dir(&self.server.object_path(""))
    }
    fn capabilities(&self) -> Capabilities {
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

tracepost_core::sink_behaviour_suite!(async {
    let server = S3Server::start().await;
    let proxy = TcpProxy::start(server.addr, true).await.unwrap();
    Some(S3 { server, proxy })
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_byte_identical_in_fs_and_s3() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fs = ReplayStore::new(OpendalStore::fs(dir.path()).unwrap());
    let s3 = ReplayStore::new(s3_store(server.addr, s3_server::SECRET_KEY));
    let day = Day {
        year: 2026,
        month: 1,
        day: 2,
    };
    for n in 0..3u32 {
        // Incompressible-looking bytes of different sizes, up to 1 MiB.
        let body: Vec<u8> = (0..(1usize << (10 + 5 * n)))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let body = Bytes::from(body);
        let key = SegmentKey::new("sess", day, n).unwrap();
        fs.put_segment(&key, body.clone()).await.unwrap();
        s3.put_segment(&key, body.clone()).await.unwrap();
        let from_fs = fs.get_segment(&key).await.unwrap().unwrap();
        let from_s3 = s3.get_segment(&key).await.unwrap().unwrap();
        assert_eq!(from_fs, body);
        assert_eq!(from_s3, from_fs, "segment {n}: S3 and fs differ");
        assert_eq!(std::fs::read(dir.path().join(key.key())).unwrap(), body);
        assert_eq!(std::fs::read(server.object_path(&key.key())).unwrap(), body);
    }
    assert_eq!(
        s3.list_segments("sess", day).await.unwrap(),
        fs.list_segments("sess", day).await.unwrap()
    );
    assert_eq!(s3.delete_before(Day { day: 3, ..day }).await.unwrap(), 3);
    assert!(s3.list_segments("sess", day).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_503_and_access_denied_are_classified() {
    let server = S3Server::start().await;
    let proxy = TcpProxy::start(server.addr, true).await.unwrap();
    let store = s3_store(proxy.addr(), s3_server::SECRET_KEY);
    let put = || store.put("k", Bytes::from_static(b"x"), "application/gzip");
    put().await.unwrap();

    server.set_mode(Mode::Unavailable);
    let e = put().await.unwrap_err();
    assert_eq!(e.class(), SinkErrorClass::Temporary, "{e}");

    server.set_mode(Mode::Deny);
    let e = put().await.unwrap_err();
    assert_eq!(
        (e.class(), e.kind()),
        (SinkErrorClass::Refused, SinkErrorKind::PermissionDenied),
        "{e}"
    );
    server.set_mode(Mode::Serve);

    proxy.set_up(false);
    let e = store.get("k").await.unwrap_err();
    assert_eq!(e.class(), SinkErrorClass::Temporary, "{e}");
    proxy.set_up(true);

    let wrong = s3_store(server.addr, "not-the-secret");
    let e = wrong.get("k").await.unwrap_err();
    assert_eq!(e.class(), SinkErrorClass::Refused, "{e}");
    let debug = format!("{store:?} {e:?}");
    assert!(!debug.contains(s3_server::SECRET_KEY), "{debug}");
}
