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

/// Pushes `n` events through the pipeline in chunks of 512 (two full batches of the tail
/// sink, so no batch waits for its 50 ms timer), each chunk delivered to the tail sink before
/// the next (no queue overflow by construction): events/s.
async fn pipeline_rate(tp: &Tracepost, n: usize) -> f64 {
    let h = tp.handle();
    let sent = || {
        h.sink_counts()
            .into_iter()
            .find(|(name, _)| name == "live_tail")
            .unwrap()
            .1
    };
    let start_sent = sent().sent;
    let started = Instant::now();
    for chunk in 0..n / 512 {
        for i in 0..512 {
            h.capture(Event::new(
                Kind::Log,
                Level::Info,
                format!("rate-{chunk}-{i}"),
            ));
        }
        let want = start_sent + ((chunk + 1) * 512) as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while sent().sent < want {
            assert!(
                Instant::now() < deadline,
                "the pipeline stalled: {:?}",
                sent()
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    assert_eq!(sent().dropped_total(), 0);
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_leave_the_pipeline_s_throughput_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteSink::new(dir.path()).store().clone());
    // Two pipelines, each with its own tail: one without clients, one with eight clients
    // that never read — measured in turns, best of three each (the machine is shared).
    let pipeline = |tail: &LiveTail| {
        Tracepost::builder()
            .service("shop")
            .sink(tail.sink())
            .build()
            .unwrap()
    };
    let quiet_tail = LiveTail::with_limits(RING, 8);
    let quiet = pipeline(&quiet_tail);
    let tail = LiveTail::with_limits(RING, 8);
    let busy = pipeline(&tail);
    let base = serve(store, ApiConfig::new(TOKEN).live_tail(tail.clone())).await;
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        s.write_all(
            format!(
                "GET /tracepost/api/tail HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        stalled.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while tail.stats().clients < 8 {
        assert!(Instant::now() < deadline, "eight clients connect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Until their socket buffers are full the eight streams are busy writing (serializing
    // every event eight times costs CPU like any eight readers do); then they wait.
    let filling = pipeline_rate(&busy, 51_200).await;
    let (mut alone, mut with_stalled) = (0f64, 0f64);
    for _ in 0..3 {
        alone = alone.max(pipeline_rate(&quiet, 51_200).await);
        with_stalled = with_stalled.max(pipeline_rate(&busy, 51_200).await);
    }
    eprintln!(
        "pipeline → live tail, best of 3: {alone:.0} events/s without clients; with 8 clients \
         that never read: {with_stalled:.0} events/s ({filling:.0} while their socket buffers \
         filled)"
    );
    assert_eq!(quiet_tail.stats().clients, 0);
    // Blocking would stall `pipeline_rate` (its deadline); this generous bound catches a
    // per-client cost on the pipeline's path without flaking on a busy machine.
    assert!(
        with_stalled > alone / 3.0,
        "{with_stalled:.0} vs {alone:.0} events/s"
    );
    drop(stalled);
}
