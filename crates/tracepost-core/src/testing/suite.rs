//! The behaviour suite every sink passes, after OpenDAL's `core/tests/behavior/`.
//!
//! A sink's tests implement [`Harness`] — how to make the sink, how to read back what its
//! destination stored, and which faults the destination can be put in — and call
//! [`sink_behaviour_suite!`](crate::sink_behaviour_suite), which generates one test per
//! scenario:
//!
//! | scenario | what must hold |
//! |---|---|
//! | [`round_trip`] | non-ASCII and ≥ 1 MiB messages come back byte-exact |
//! | [`idempotent_redelivery`] | the same id sent twice is stored once (or exactly twice, for a sink that declares itself append-only) |
//! | [`one_bad_event`] | one bad event among 1 000 loses only that one (where the sink can express a bad event) |
//! | [`refused_loses_nothing`] | while the destination refuses everything: health `down`, nothing dropped; all delivered once it accepts again |
//! | [`ordering_across_outage`] | events spooled during an outage arrive, in capture order, before later ones |
//! | [`shutdown_flushes`] | shutdown delivers what was captured, within its deadline |
//! | [`unreachable_at_startup`] | a service down at startup doesn't block startup: health `down`, events kept, delivered when it appears |
//!
//! Scenarios that need a fault the destination cannot be put in are skipped with a message
//! (see [`Capabilities`]). Every scenario uses short retry intervals: a few seconds per sink.
//!
//! The sink crates' `tests/behaviour.rs` are complete examples; the shape is:
//!
//! ```text
//! struct Files { dir: PathBuf }
//! impl Harness for Files { type Sink = JsonlFile; async fn sink(&self) -> JsonlFile {…} … }
//! tracepost_core::sink_behaviour_suite!(async { Some(Files::new()) });
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::event::{Event, Kind, Level, Timestamp};
use crate::pipeline::{BatchOptions, DropReason, Health, RetryOptions, SinkOptions, Tracepost};
use crate::sink::Sink;

/// One event as the destination stored it: enough to compare with what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The event's id.
    pub id: Uuid,
    /// The message, exactly as stored.
    pub message: String,
}

impl From<&Event> for Stored {
    fn from(e: &Event) -> Self {
        Stored {
            id: e.id,
            message: e.message.clone(),
        }
    }
}

/// What a sink and its destination can do; scenarios needing more are skipped.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Capabilities {
    /// The same id delivered twice is stored once. `false`: the sink is append-only and
    /// stores it exactly twice (and says so in its docs).
    pub idempotent: bool,
    /// [`Harness::read_back`] returns events in the order the destination received them
    /// (a file, a log stream); `false` for a database without an arrival order.
    pub ordered: bool,
    /// [`Harness::set_refusing`] works.
    pub refuse: bool,
    /// [`Harness::set_reachable`] works.
    pub outage: bool,
    /// [`Harness::bad_event`] returns events the sink rejects for their data.
    pub bad_event: bool,
}

impl Capabilities {
    /// Everything supported.
    pub fn all() -> Self {
        Capabilities {
            idempotent: true,
            ordered: true,
            refuse: true,
            outage: true,
            bad_event: true,
        }
    }

    /// Only the scenarios every sink can run.
    pub fn none() -> Self {
        Capabilities {
            idempotent: false,
            ordered: false,
            refuse: false,
            outage: false,
            bad_event: false,
        }
    }

    /// Sets [`idempotent`](Self::idempotent).
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }
    /// Sets [`ordered`](Self::ordered).
    pub fn ordered(mut self, on: bool) -> Self {
        self.ordered = on;
        self
    }
    /// Sets [`refuse`](Self::refuse).
    pub fn refuse(mut self, on: bool) -> Self {
        self.refuse = on;
        self
    }
    /// Sets [`outage`](Self::outage).
    pub fn outage(mut self, on: bool) -> Self {
        self.outage = on;
        self
    }
    /// Sets [`bad_event`](Self::bad_event).
    pub fn bad_event(mut self, on: bool) -> Self {
        self.bad_event = on;
        self
    }
}

/// How the suite drives one sink and its destination.
pub trait Harness: Send + Sync {
    /// The sink under test.
    type Sink: Sink;

    /// A new sink writing to the destination. Must not block on the destination: with the
    /// destination unreachable this returns promptly (the startup scenario times it).
    fn sink(&self) -> impl Future<Output = Self::Sink> + Send;

    /// Everything the destination holds now, in its order (see [`Capabilities::ordered`]).
    fn read_back(&self) -> impl Future<Output = Vec<Stored>> + Send;

    /// What the sink and destination support.
    fn capabilities(&self) -> Capabilities;

    /// The pipeline options for the sink: by default its own, with the suite's short
    /// batching and retry intervals applied on top.
    fn options(&self, sink: &Self::Sink) -> SinkOptions {
        sink.default_options()
    }

    /// Makes the destination refuse everything (`true`) or accept again (`false`): a revoked
    /// grant, a wrong key. Only called when [`Capabilities::refuse`].
    fn set_refusing(&self, on: bool) -> impl Future<Output = ()> + Send {
        let _ = on;
        async {}
    }

    /// Makes the destination reachable or not (a network outage, a stopped server). Only
    /// called when [`Capabilities::outage`].
    fn set_reachable(&self, on: bool) -> impl Future<Output = ()> + Send {
        let _ = on;
        async {}
    }

    /// An event (number `i`, for a unique message) the sink rejects for its data. Only
    /// called when [`Capabilities::bad_event`].
    fn bad_event(&self, i: usize) -> Event {
        let _ = i;
        unreachable!("bad_event called without Capabilities::bad_event")
    }
}

/// How long a scenario waits for delivery before failing.
const PATIENCE: Duration = Duration::from_secs(20);

fn suite_options<H: Harness>(h: &H, sink: &H::Sink) -> SinkOptions {
    let base = h.options(sink);
    let batch = BatchOptions::new(
        base.batch.max_events,
        base.batch.max_bytes,
        Duration::from_millis(20),
    );
    base.batch(batch).retry(
        RetryOptions::new(3, Duration::from_millis(10), Duration::from_millis(100))
            .refused_interval(Duration::from_millis(200)),
    )
}

/// A plain event with a unique message `"{tag} {i} …"`, timestamps increasing with `i`.
pub fn event(tag: &str, i: usize) -> Event {
    let base = Timestamp::now().unix_nanos();
    Event::new(Kind::Log, Level::Error, format!("{tag} {i} ✓ crème brûlée"))
        .with_timestamp(Timestamp::from_unix_nanos(base + i as u64 * 1_000))
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracepost-suite-{tag}-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

async fn start<H: Harness>(h: &H, data_dir: Option<&PathBuf>) -> Tracepost {
    let sink = h.sink().await;
    let options = suite_options(h, &sink);
    let mut b = Tracepost::builder()
        .service("suite")
        .sink_named_with("under_test", sink, options);
    if let Some(d) = data_dir {
        b = b.data_dir(d);
    }
    b.build().expect("the pipeline builds")
}

/// Waits until `f` holds (polling every 20 ms), or panics with `what` after [`PATIENCE`].
async fn until<F: FnMut() -> Fut, Fut: Future<Output = bool>>(what: &str, mut f: F) {
    let start = Instant::now();
    loop {
        if f().await {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stored events among `ids`, in the destination's order.
async fn mine<H: Harness>(h: &H, ids: &[Uuid]) -> Vec<Stored> {
    let wanted: std::collections::HashSet<_> = ids.iter().collect();
    h.read_back()
        .await
        .into_iter()
        .filter(|s| wanted.contains(&s.id))
        .collect()
}

async fn wait_stored<H: Harness>(h: &H, ids: &[Uuid], what: &str) -> Vec<Stored> {
    let start = Instant::now();
    loop {
        let got = mine(h, ids).await;
        let distinct: std::collections::HashSet<_> = got.iter().map(|s| s.id).collect();
        if distinct.len() >= ids.len() {
            return got;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting: {what} ({} of {} stored)",
            distinct.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn health(tp: &Tracepost) -> (Health, Option<String>) {
    let report = tp.handle().health();
    let s = &report.sinks[0];
    (s.state, s.last_error.clone())
}

/// Non-ASCII (accents, CJK, emoji, right-to-left, combining marks) and a 1 MiB + 1 byte
/// message survive byte-exact.
pub async fn round_trip<H: Harness>(h: &H) {
    let tp = start(h, None).await;
    let large = format!("large {} end", "é✓ab".repeat((1 << 20) / 7 + 1));
    assert!(large.len() > 1 << 20);
    let messages = [
        "ascii only".to_owned(),
        "naïve café — 東京 🚀 שלום e\u{301} \u{200d}".to_owned(),
        "tab\tand\nnewline and \"quotes\" and \\backslash".to_owned(),
        large,
    ];
    let events: Vec<Event> = messages
        .iter()
        .map(|m| Event::new(Kind::Log, Level::Error, m.clone()))
        .collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    for e in events {
        tp.handle().capture(e);
    }
    let got = wait_stored(h, &ids, "every round-trip event stored").await;
    let by_id: HashMap<_, _> = got.iter().map(|s| (s.id, &s.message)).collect();
    for (id, m) in ids.iter().zip(&messages) {
        let stored = by_id[id];
        assert!(
            *stored == *m,
            "message of {} bytes changed in the round trip (stored {} bytes; first difference at byte {:?})",
            m.len(),
            stored.len(),
            m.bytes().zip(stored.bytes()).position(|(a, b)| a != b)
        );
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);
}

/// The same event delivered twice (at-least-once delivery does that) is stored once, or
/// exactly twice by an append-only sink.
pub async fn idempotent_redelivery<H: Harness>(h: &H) {
    let tp = start(h, None).await;
    let e = event("redelivered", 0);
    let id = e.id;
    tp.handle().capture(e.clone());
    wait_stored(h, &[id], "the first delivery stored").await;
    tp.handle().capture(e);
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);
    let sent = report.sinks[0].1.sent;
    assert_eq!(sent, 2, "both deliveries confirmed: {report:?}");
    let copies = mine(h, &[id]).await.len();
    if h.capabilities().idempotent {
        assert_eq!(copies, 1, "an idempotent sink stored a redelivery twice");
    } else {
        assert_eq!(copies, 2, "an append-only sink must keep both deliveries");
    }
}

/// One bad event among 1 000 is rejected alone; the other 999 are stored.
pub async fn one_bad_event<H: Harness>(h: &H) {
    if !h.capabilities().bad_event {
        eprintln!("one_bad_event: skipped (the sink cannot express a bad event)");
        return;
    }
    let tp = start(h, None).await;
    let mut good = Vec::new();
    let mut events = Vec::new();
    for i in 0..1000 {
        let e = if i == 437 {
            h.bad_event(i)
        } else {
            event("one-bad", i)
        };
        if i != 437 {
            good.push(e.id);
        }
        events.push(e);
    }
    let bad = events[437].id;
    for e in events {
        tp.handle().capture(e);
    }
    wait_stored(h, &good, "the 999 good events stored").await;
    let report = tp.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed);
    let counts = &report.sinks[0].1;
    assert_eq!(counts.dropped(DropReason::Rejected), 1, "{counts:?}");
    assert_eq!(counts.dropped_total(), 1, "{counts:?}");
    assert_eq!(counts.sent, 999, "{counts:?}");
    assert!(mine(h, &[bad]).await.is_empty(), "the bad event was stored");
}

/// While the destination refuses everything, nothing is dropped and health is `down` with
/// the error; once it accepts again every event is delivered (memory-only: the batch is
/// held in memory).
pub async fn refused_loses_nothing<H: Harness>(h: &H) {
    if !h.capabilities().refuse {
        eprintln!("refused_loses_nothing: skipped (the destination cannot be made to refuse)");
        return;
    }
    h.set_refusing(true).await;
    let tp = start(h, None).await;
    let events: Vec<Event> = (0..50).map(|i| event("refused", i)).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    for e in events {
        tp.handle().capture(e);
    }
    until("health down while refused", || {
        let (state, _) = health(&tp);
        async move { state == Health::Down }
    })
    .await;
    let (_, error) = health(&tp);
    let error = error.expect("a down sink reports its error");
    assert!(error.starts_with("refused"), "not a refusal: {error}");
    // Several slow retries happen meanwhile: still nothing dropped, nothing stored.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = tp.handle().sink_counts()[0].1.clone();
    assert_eq!(counts.dropped_total(), 0, "{counts:?}");
    assert!(mine(h, &ids).await.is_empty());
    h.set_refusing(false).await;
    wait_stored(h, &ids, "every event delivered once accepted again").await;
    until("health up after recovery", || {
        let (state, _) = health(&tp);
        async move { state == Health::Up }
    })
    .await;
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.dropped_total(), 0, "{report:?}");
}

/// Events captured during an outage are spooled and arrive, in capture order, before the
/// events captured after the destination came back.
pub async fn ordering_across_outage<H: Harness>(h: &H) {
    if !h.capabilities().outage {
        eprintln!("ordering_across_outage: skipped (no outage can be simulated)");
        return;
    }
    let dir = scratch_dir("ordering");
    let tp = start(h, Some(&dir)).await;
    let warm = event("ordering-warm", 0);
    let warm_id = warm.id;
    tp.handle().capture(warm);
    wait_stored(h, &[warm_id], "the warm-up event").await;
    h.set_reachable(false).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let e = event("ordering-during", i);
        ids.push(e.id);
        tp.handle().capture(e);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    until("events spooled during the outage", || {
        let c = tp.handle().sink_counts()[0].1.clone();
        async move { c.spooled >= 30 }
    })
    .await;
    h.set_reachable(true).await;
    for i in 0..30 {
        let e = event("ordering-after", i);
        ids.push(e.id);
        tp.handle().capture(e);
    }
    let got = wait_stored(h, &ids, "every event after the outage").await;
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.dropped_total(), 0, "{report:?}");
    if h.capabilities().ordered {
        // Redeliveries may repeat an id; the first occurrence of each must be in order.
        let mut seen = std::collections::HashSet::new();
        let order: Vec<Uuid> = got
            .iter()
            .map(|s| s.id)
            .filter(|id| seen.insert(*id))
            .collect();
        assert_eq!(order, ids, "events reordered across the outage");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Shutdown delivers every captured event and returns within its deadline.
pub async fn shutdown_flushes<H: Harness>(h: &H) {
    let tp = start(h, None).await;
    let events: Vec<Event> = (0..500).map(|i| event("shutdown", i)).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    for e in events {
        tp.handle().capture(e);
    }
    let deadline = Duration::from_secs(5);
    let started = Instant::now();
    let report = tp.shutdown(deadline).await;
    assert!(started.elapsed() <= deadline + Duration::from_millis(100));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.sinks[0].1.sent, 500, "{report:?}");
    assert_eq!(mine(h, &ids).await.len(), 500);
}

/// With the destination unreachable when the application starts, making the sink and the
/// pipeline takes no time, the sink reports `down`, events are kept (spooled), and they
/// are delivered when the destination appears.
pub async fn unreachable_at_startup<H: Harness>(h: &H) {
    if !h.capabilities().outage {
        eprintln!("unreachable_at_startup: skipped (no outage can be simulated)");
        return;
    }
    h.set_reachable(false).await;
    let dir = scratch_dir("startup");
    let started = Instant::now();
    let tp = start(h, Some(&dir)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "startup waited {took:?} for an unreachable destination"
    );
    let events: Vec<Event> = (0..20).map(|i| event("startup", i)).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    for e in events {
        tp.handle().capture(e);
    }
    until("health down while unreachable", || {
        let (state, _) = health(&tp);
        async move { state == Health::Down }
    })
    .await;
    assert!(health(&tp).1.is_some(), "a down sink reports its error");
    h.set_reachable(true).await;
    wait_stored(h, &ids, "every event delivered once reachable").await;
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.dropped_total(), 0, "{report:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Generates one `#[tokio::test]` per scenario of the [suite](self) for the harness that
/// `$make` (an expression of type `impl Future<Output = Option<impl Harness>>`) builds; a
/// `None` skips the tests (e.g. no server outside CI). Needs `tokio` with the `macros` and
/// `rt-multi-thread` features in the calling crate.
#[macro_export]
macro_rules! sink_behaviour_suite {
    ($make:expr) => {
        $crate::sink_behaviour_suite!(@each $make;
            round_trip, idempotent_redelivery, one_bad_event, refused_loses_nothing,
            ordering_across_outage, shutdown_flushes, unreachable_at_startup);
    };
    (@each $make:expr; $($scenario:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                match $make.await {
                    Some(h) => $crate::testing::suite::$scenario(&h).await,
                    None => eprintln!(concat!(stringify!($scenario), ": skipped (no destination)")),
                }
            }
        )*
    };
}
