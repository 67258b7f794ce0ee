//! The live tail route over real HTTP, fed by a real pipeline: three clients, one of which
//! never reads. The two readers see every event in order; the stalled client costs the ring's
//! fixed size and nothing more (it is told how many it missed when it reads again); the
//! pipeline delivers every event to the tail sink without dropping any.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{serve, TOKEN};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracepost_api::ApiConfig;
use tracepost_core::store::Store;
use tracepost_core::tail::LiveTail;
use tracepost_core::{Event, Kind, Level, Tracepost};
use tracepost_sqlite::SqliteSink;

const EVENTS: usize = 3000;
const RING: usize = 64;

/// Reads an SSE stream, counting `event: event` frames whose data holds `tail-{n}` in order
/// (panics on any other order or a `missed` frame).
async fn reader(url: String, seen: Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if frame.contains("event: missed") {
                panic!("a reader that keeps up missed events: {frame}");
            }
            if !frame.contains("event: event") {
                continue; // keep-alive comments
            }
            let n = seen.load(Ordering::SeqCst);
            assert!(
                frame.contains(&format!("\"tail-{n} ")),
                "expected event {n}, got {:.200}",
                frame
            );
            seen.store(n + 1, Ordering::SeqCst);
            if n + 1 == EVENTS {
                return;
            }
        }
    }
    panic!("the stream ended early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_reads_slows_no_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteSink::new(dir.path()).store().clone());
    let tail = LiveTail::with_limits(RING, 3);
    let tp = Tracepost::builder()
        .service("shop")
        .sink(tail.sink())
        .build()
        .unwrap();
    let base = serve(store, ApiConfig::new(TOKEN).live_tail(tail.clone())).await;
    let url = format!("{base}/tracepost/api/tail?kind=log");

    // The stalled client: a socket with a tiny receive buffer that sends its request and
    // never reads.
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /tracepost/api/tail?kind=log HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    let seen = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let readers: Vec<_> = seen
        .iter()
        .map(|s| tokio::spawn(reader(url.clone(), s.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tail.stats().clients < 3 {
        assert!(Instant::now() < deadline, "three clients connect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A fourth is refused: 503 with the JSON body.
    let (status, body) = common::get(&url).await;
    assert_eq!(
        (status, &body["field"]),
        (503, &serde_json::json!("live_tail"))
    );

    // Events of 4 KB: 12 MB in all, far past what the stalled client's socket buffers hold.
    let pad = "x".repeat(4096);
    let h = tp.handle();
    let started = Instant::now();
    for chunk in 0..EVENTS / 30 {
        for i in chunk * 30..(chunk + 1) * 30 {
            h.capture(Event::new(
                Kind::Log,
                Level::Info,
                format!("tail-{i} {pad}"),
            ));
            if i % 7 == 0 {
                // Filtered out by kind=log: never reaches the clients.
                h.capture(Event::new(
                    Kind::Analytics,
                    Level::Info,
                    format!("other-{i}"),
                ));
            }
        }
        // Keep within the ring for the readers (they read as fast as they can; this only
        // paces the producer to what a reader can take).
        let want = (chunk + 1) * 30;
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.iter().any(|s| s.load(Ordering::SeqCst) < want) {
            assert!(
                Instant::now() < deadline,
                "readers stuck at {:?} of {want}",
                seen.iter()
                    .map(|s| s.load(Ordering::SeqCst))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let elapsed = started.elapsed();
    for r in readers {
        r.await.unwrap();
    }
    for s in &seen {
        assert_eq!(s.load(Ordering::SeqCst), EVENTS, "every event, in order");
    }
    let stats = tail.stats();
    assert!(
        stats.missed == 0,
        "nothing counted missed until the stalled client reads again: {stats:?}"
    );
    let counts = h
        .sink_counts()
        .into_iter()
        .find(|(n, _)| n == "live_tail")
        .unwrap()
        .1;
    let published = EVENTS + EVENTS.div_ceil(7);
    assert_eq!(counts.sent, published as u64, "the pipeline delivered all");
    assert_eq!(counts.dropped_total(), 0, "and dropped none: {counts:?}");
    assert_eq!(stats.published, published as u64);
    eprintln!("{EVENTS} events of 4 KB through the tail to two readers in {elapsed:?}");

    // The stalled client reads at last: what its socket buffers held, then the news of what
    // it missed — the server kept no more than the ring for it.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    let missed = loop {
        assert!(Instant::now() < deadline, "a missed notice in 30 s");
        let n = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
            .await
            .expect("data")
            .unwrap();
        assert!(n > 0, "stream open");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(at) = text.find("event: missed\ndata: {\"missed\":") {
            let rest = &text[at + 30..];
            if let Some(end) = rest.find('}') {
                break rest[..end].parse::<u64>().unwrap();
            }
        }
        if got.len() > (1 << 20) {
            // Keep the tail of what was read: only the notice matters.
            got.drain(..got.len() - 4096);
        }
    };
    assert!(
        missed > (EVENTS / 2) as u64,
        "the stalled client missed most events ({missed}), it didn't buffer them"
    );
    assert_eq!(tail.stats().missed, missed);
    drop(stalled);
    drop(tp);
}
