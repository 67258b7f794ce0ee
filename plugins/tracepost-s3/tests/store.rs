//! Replay segments and archive objects in a real S3-compatible server (s3s-fs in-process):
//! what is uploaded is what lands on the server's disk and what downloads back, byte for
//! byte; the key layout, ordering, idempotence and retention by date prefix; S3 down, 503
//! and access denied each give the right error class, and the pipeline loses nothing.

#[path = "support/archive.rs"]
mod archive;
#[path = "support/s3_server.rs"]
mod s3_server;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use s3_server::{Mode, S3Server, ACCESS_KEY, BUCKET, SECRET_KEY};
use tracepost_core::testing::TcpProxy;
use tracepost_core::{Event, Kind, Level, SinkErrorClass, SinkErrorKind, Tracepost};
use tracepost_s3::{ArchiveSink, Day, ObjectStore, ReplayStore, S3Config, S3Store, SegmentKey};

fn config(addr: std::net::SocketAddr) -> S3Config {
    S3Config::new(BUCKET)
        .endpoint(format!("http://{addr}"))
        .force_path_style(true)
        .credentials(ACCESS_KEY, SECRET_KEY)
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_millis(500))
        .max_attempts(1)
}

/// A gzipped rrweb segment of about `size` bytes of JSON, different for each `seed`.
fn segment(seed: u32, size: usize) -> Bytes {
    let mut json = String::from("[");
    let mut i = 0u64;
    while json.len() < size {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            r#"{{"type":3,"data":{{"source":1,"positions":[{{"x":{},"y":{},"id":{seed},"timeOffset":-{}}}]}},"timestamp":{}}}"#,
            i % 1280,
            (i * 7) % 720,
            i % 500,
            1_700_000_000_000u64 + i
        ));
        i += 1;
    }
    json.push(']');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).unwrap();
    Bytes::from(gz.finish().unwrap())
}

const DAY1: Day = Day {
    year: 2026,
    month: 11,
    day: 28,
};
const DAY2: Day = Day {
    year: 2026,
    month: 11,
    day: 29,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_land_byte_identical_in_order_and_expire_by_day() {
    let server = S3Server::start().await;
    let replays = ReplayStore::new(S3Store::new(config(server.addr)).unwrap());
    let session = "0193f1c2-7a1e-7cc0-9b1e-5f2d8c3a4b21";
    // Out of order, one of them 1 MiB.
    let bodies: Vec<(u32, Bytes)> = vec![
        (2, segment(2, 4_000)),
        (0, segment(0, 1 << 20)),
        (1, segment(1, 9_000)),
    ];
    for (n, body) in &bodies {
        let key = SegmentKey::new(session, DAY1, *n).unwrap();
        replays.put_segment(&key, body.clone()).await.unwrap();
    }
    for (n, body) in &bodies {
        let key = SegmentKey::new(session, DAY1, *n).unwrap();
        let on_disk = std::fs::read(server.object_path(&key.key())).unwrap();
        assert_eq!(on_disk, body.as_ref(), "segment {n} on the server's disk");
        let downloaded = replays.get_segment(&key).await.unwrap().unwrap();
        assert_eq!(downloaded, body, "segment {n} downloaded");
    }
    assert!(server
        .object_path("replays/2026/11/28/0193f1c2-7a1e-7cc0-9b1e-5f2d8c3a4b21/000000.json.gz")
        .exists());
    let listed = replays.list_segments(session, DAY1).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.segment()).collect::<Vec<_>>(),
        [0, 1, 2]
    );

    // The same segment again (a client retry) replaces it: still three, new bytes.
    let again = segment(1, 9_500);
    replays
        .put_segment(&SegmentKey::new(session, DAY1, 1).unwrap(), again.clone())
        .await
        .unwrap();
    assert_eq!(replays.list_segments(session, DAY1).await.unwrap().len(), 3);
    assert_eq!(
        replays
            .get_segment(&SegmentKey::new(session, DAY1, 1).unwrap())
            .await
            .unwrap()
            .unwrap(),
        again
    );
    assert_eq!(
        replays
            .get_segment(&SegmentKey::new(session, DAY1, 9).unwrap())
            .await
            .unwrap(),
        None
    );

    // Retention: a session of the next day survives deleting everything before it.
    replays
        .put_segment(&SegmentKey::new("later", DAY2, 0).unwrap(), segment(9, 100))
        .await
        .unwrap();
    assert_eq!(replays.delete_before(DAY2).await.unwrap(), 3);
    assert!(replays
        .list_segments(session, DAY1)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(replays.list_segments("later", DAY2).await.unwrap().len(), 1);
    assert_eq!(
        replays.store().list("replays/").await.unwrap(),
        ["replays/2026/11/29/later/000000.json.gz"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_keeps_everything_under_it() {
    let server = S3Server::start().await;
    let store = S3Store::new(config(server.addr).prefix("team-a/")).unwrap();
    let replays = ReplayStore::new(store.clone());
    let key = SegmentKey::new("s1", DAY1, 0).unwrap();
    replays.put_segment(&key, segment(0, 100)).await.unwrap();
    assert!(server
        .object_path("team-a/replays/2026/11/28/s1/000000.json.gz")
        .exists());
    assert_eq!(store.list("replays/").await.unwrap(), [key.key()]);
    assert_eq!(
        store.list_dirs("replays/").await.unwrap(),
        ["replays/2026/"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_503_and_access_denied_are_classified() {
    let server = S3Server::start().await;
    let proxy = TcpProxy::start(server.addr, true).await.unwrap();
    let store = S3Store::new(config(proxy.addr())).unwrap();
    let put = || store.put("replays/x", Bytes::from_static(b"x"), "application/gzip");

    put().await.unwrap();

    server.set_mode(Mode::Unavailable);
    let e = put().await.unwrap_err();
    assert_eq!(
        (e.class(), e.kind()),
        (SinkErrorClass::Temporary, SinkErrorKind::Unavailable),
        "{e}"
    );
    assert!(
        e.message().contains("503") && e.message().contains("ServiceUnavailable"),
        "{e}"
    );

    server.set_mode(Mode::Deny);
    let e = store.get("replays/x").await.unwrap_err();
    assert_eq!(
        (e.class(), e.kind()),
        (SinkErrorClass::Refused, SinkErrorKind::PermissionDenied),
        "{e}"
    );
    assert!(e.message().contains("AccessDenied"), "{e}");
    server.set_mode(Mode::Serve);

    proxy.set_up(false);
    let e = put().await.unwrap_err();
    assert_eq!(e.class(), SinkErrorClass::Temporary, "{e}");
    proxy.set_up(true);

    let wrong_key =
        S3Store::new(config(server.addr).credentials(ACCESS_KEY, "not-the-secret")).unwrap();
    let e = wrong_key.list("replays/").await.unwrap_err();
    assert_eq!(e.class(), SinkErrorClass::Refused, "{e}");

    let no_bucket = {
        let mut c = config(server.addr);
        c.bucket = "missing".into();
        S3Store::new(c).unwrap()
    };
    // (s3s-fs, unlike S3, accepts a put into a missing bucket; listing it is refused.)
    let e = no_bucket.list("replays/").await.unwrap_err();
    assert_eq!(
        (e.class(), e.kind()),
        (SinkErrorClass::Refused, SinkErrorKind::NotFound),
        "{e}"
    );
    assert!(!format!("{e:?}").contains(SECRET_KEY));
}

/// Events captured while S3 answers 503 and then while it denies access are all archived
/// once it serves again: temporary errors are retried, refusals wait; nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_loses_nothing_across_503_and_access_denied() {
    let server = S3Server::start().await;
    let store = S3Store::new(config(server.addr)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let tp = Tracepost::builder()
        .service("archive-test")
        .data_dir(data.path())
        .sink(ArchiveSink::new(store.clone()))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    let mut capture = |tag: &str, n: usize| {
        for i in 0..n {
            let e = Event::new(Kind::Log, Level::Warn, format!("{tag} {i}"));
            ids.push(e.id);
            tp.handle().capture(e);
        }
    };
    server.set_mode(Mode::Unavailable);
    capture("during-503", 40);
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.set_mode(Mode::Deny);
    capture("during-403", 40);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(archive::read_back_dir(&server.object_path("")).is_empty());
    server.set_mode(Mode::Serve);
    capture("after", 20);
    let report = tp.shutdown(Duration::from_secs(20)).await;
    assert_eq!(report.sinks[0].1.dropped_total(), 0, "{report:?}");
    let lines = archive::read_lines(&store).await;
    let mut got: Vec<uuid::Uuid> = lines
        .iter()
        .map(|(_, e)| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    got.sort();
    got.dedup();
    ids.sort();
    assert_eq!(got, ids, "every event archived");
    // Hourly objects under events/yyyy/mm/dd/hh/.
    for (key, e) in &lines {
        let ts = e["timestamp"].as_str().unwrap(); // 2026-11-29T18:46:50.123Z
        let hour = format!(
            "events/{}/{}/{}/{}/",
            &ts[0..4],
            &ts[5..7],
            &ts[8..10],
            &ts[11..13]
        );
        assert!(key.starts_with(&hour), "{key} vs {ts}");
    }
}

#[test]
fn config_from_toml_hides_the_secret_and_names_bad_fields() {
    let c: S3Config = toml::from_str(
        r#"
        bucket = "tracepost"
        endpoint = "http://minio:9000"
        force_path_style = true
        access_key_id = "minio"
        secret_access_key = "sk-very-secret"
        session_token = "tok-very-secret"
        timeout = "30s"
        "#,
    )
    .unwrap();
    assert_eq!(c.timeout, Duration::from_secs(30));
    let store = S3Store::new(c.clone()).unwrap();
    for debug in [format!("{c:?}"), format!("{store:?}")] {
        assert!(!debug.contains("very-secret"), "{debug}");
    }
    for (text, needle) in [
        (
            "bucket = \"b\"\nforce_path = true",
            "unknown field `force_path`",
        ),
        (
            "bucket = \"b\"\ntimeout = \"soon\"",
            "invalid duration \"soon\"",
        ),
        ("endpoint = \"http://x\"", "missing field `bucket`"),
    ] {
        let e = toml::from_str::<S3Config>(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    for (c, field) in [
        (S3Config::new(""), "bucket"),
        (S3Config::new("b").endpoint("minio:9000"), "endpoint"),
        (S3Config::new("b").endpoint("http://"), "endpoint"),
    ] {
        let e = S3Store::new(c.credentials("a", "b")).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}
