//! The embedded default: OpenDAL's `fs` service in a local directory. Segments and archive
//! objects are plain files under the key layout; the sink behaviour suite runs on it (the
//! scenarios a local directory can be put in: no outage or refusal can be simulated for a
//! directory when tests run as root).

#[path = "../../tracepost-s3/tests/support/archive.rs"]
mod archive;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tracepost_core::testing::suite::{Capabilities, Harness, Stored};
use tracepost_core::{Event, Kind, Level, Tracepost};
use tracepost_opendal::{ArchiveSink, Day, ObjectStore, OpendalStore, ReplayStore, SegmentKey};

struct Fs {
    dir: tempfile::TempDir,
}

impl Harness for Fs {
    type Sink = ArchiveSink<OpendalStore>;
    async fn sink(&self) -> Self::Sink {
        ArchiveSink::new(OpendalStore::fs(self.dir.path()).unwrap())
    }
    async fn read_back(&self) -> Vec<Stored> {
        archive::read_back_dir(self.dir.path())
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::none().idempotent(true)
    }
}

tracepost_core::sink_behaviour_suite!(async {
    Some(Fs {
        dir: tempfile::tempdir().unwrap(),
    })
});

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

#[tokio::test]
async fn segments_are_files_under_the_key_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = OpendalStore::fs(dir.path().join("objects")).unwrap();
    let replays = ReplayStore::new(store.clone());
    for n in [3u32, 0, 1, 2] {
        let body = Bytes::from(vec![n as u8; 1000 + n as usize]);
        replays
            .put_segment(&SegmentKey::new("sess-1", DAY1, n).unwrap(), body)
            .await
            .unwrap();
    }
    let path: PathBuf = dir
        .path()
        .join("objects/replays/2026/11/28/sess-1/000002.json.gz");
    assert_eq!(std::fs::read(path).unwrap(), vec![2u8; 1002]);
    let listed = replays.list_segments("sess-1", DAY1).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.segment()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let key = SegmentKey::new("sess-1", DAY1, 1).unwrap();
    replays
        .put_segment(&key, Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(
        replays.get_segment(&key).await.unwrap().unwrap(),
        &b"again"[..]
    );
    assert_eq!(
        replays.list_segments("sess-1", DAY1).await.unwrap().len(),
        4
    );
    assert_eq!(
        replays
            .get_segment(&SegmentKey::new("nobody", DAY1, 0).unwrap())
            .await
            .unwrap(),
        None
    );
    replays
        .put_segment(
            &SegmentKey::new("sess-2", DAY2, 0).unwrap(),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    assert_eq!(store.list_dirs("replays/2026/11/").await.unwrap().len(), 2);
    assert_eq!(replays.delete_before(DAY2).await.unwrap(), 4);
    assert_eq!(
        store.list("replays/").await.unwrap(),
        ["replays/2026/11/29/sess-2/000000.json.gz"]
    );
    // No temporary files left behind by the atomic writes.
    let leftovers: Vec<_> = archive::files(&dir.path().join("objects/.opendal-tmp"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn the_archive_writes_hourly_ndjson_gz() {
    let dir = tempfile::tempdir().unwrap();
    let store = OpendalStore::fs(dir.path()).unwrap();
    let tp = Tracepost::builder()
        .service("archive")
        .sink(ArchiveSink::new(store.clone()))
        .build()
        .unwrap();
    // Two hours: now and 3 hours ago.
    let now = tracepost_core::Timestamp::now();
    let earlier =
        tracepost_core::Timestamp::from_unix_nanos(now.unix_nanos() - 3 * 3_600 * 1_000_000_000);
    for i in 0..10 {
        let t = if i % 2 == 0 { now } else { earlier };
        tp.handle()
            .capture(Event::new(Kind::Log, Level::Info, format!("line {i}")).with_timestamp(t));
    }
    tp.shutdown(Duration::from_secs(5)).await;
    let lines = archive::read_lines(&store).await;
    assert_eq!(lines.len(), 10);
    let hours: std::collections::BTreeSet<_> = lines
        .iter()
        .map(|(k, _)| k.rsplit_once('/').unwrap().0.to_owned())
        .collect();
    assert_eq!(hours.len(), 2, "{hours:?}");
    for (key, e) in &lines {
        let ts = e["timestamp"].as_str().unwrap();
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
