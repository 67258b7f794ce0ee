//! Test helpers for sinks (feature `testing`): an in-memory sink with fault injection
//! ([`MemorySink`]), a TCP proxy that can cut a real service off ([`TcpProxy`]), and the
//! behaviour [`suite`] every sink passes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use tracepost_core::testing::MemorySink;
//! use tracepost_core::{Event, Kind, Level, Tracepost};
//!
//! let sink = MemorySink::new("memory");
//! sink.refuse(true); // the destination refuses everything until flipped back
//! let tp = Tracepost::builder().sink(sink.clone()).build().unwrap();
//! tp.handle().capture(Event::new(Kind::Log, Level::Info, "kept"));
//! tokio::time::sleep(Duration::from_millis(300)).await;
//! assert!(sink.stored().is_empty());
//! sink.refuse(false);
//! let report = tp.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(sink.stored().len(), 1); // delivered once accepted again; nothing lost
//! # let _ = report; }
//! ```

pub mod suite;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::event::Event;
use crate::sink::{Batch, Sink, SinkError, SinkErrorKind, SinkOutcome};

/// A sink that keeps what it receives in memory, idempotently on the event id, with faults
/// to inject: fail the next `n` sends, be unavailable or refuse everything until flipped,
/// reject given event ids for their data. Clones share the same store.
#[derive(Clone, Debug)]
pub struct MemorySink {
    name: String,
    state: Arc<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// Events in arrival order, first delivery of each id only.
    stored: Mutex<Vec<Event>>,
    seen: Mutex<HashSet<Uuid>>,
    /// Deliveries of an id already stored.
    duplicates: AtomicU64,
    sends: AtomicU64,
    fail_next: AtomicU32,
    unavailable: AtomicBool,
    refusing: AtomicBool,
    rejected_ids: Mutex<HashSet<Uuid>>,
}

impl MemorySink {
    /// An empty sink called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MemorySink {
            name: name.into(),
            state: Arc::default(),
        }
    }

    /// The next `n` sends fail with a temporary error (`unavailable`).
    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// While on, every send fails with a temporary error (the service is down).
    pub fn unavailable(&self, on: bool) {
        self.state.unavailable.store(on, Ordering::SeqCst);
    }

    /// While on, every send is refused whole (`refused`, `permission_denied`).
    pub fn refuse(&self, on: bool) {
        self.state.refusing.store(on, Ordering::SeqCst);
    }

    /// A batch holding one of these ids fails with a permanent error, as a destination that
    /// names no culprit does (the pipeline must bisect to find it).
    pub fn reject_ids(&self, ids: impl IntoIterator<Item = Uuid>) {
        self.state.rejected_ids.lock().extend(ids);
    }

    /// The events stored, in arrival order (each id once).
    pub fn stored(&self) -> Vec<Event> {
        self.state.stored.lock().clone()
    }

    /// Deliveries of an id that was already stored (redeliveries absorbed).
    pub fn duplicates(&self) -> u64 {
        self.state.duplicates.load(Ordering::SeqCst)
    }

    /// Calls to [`Sink::send`] so far.
    pub fn sends(&self) -> u64 {
        self.state.sends.load(Ordering::SeqCst)
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let s = &self.state;
        s.sends.fetch_add(1, Ordering::SeqCst);
        if s.refusing.load(Ordering::SeqCst) {
            return Err(SinkError::refused("memory sink: refusing everything")
                .with_kind(SinkErrorKind::PermissionDenied));
        }
        if s.unavailable.load(Ordering::SeqCst)
            || s.fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(SinkError::temporary("memory sink: unavailable"));
        }
        {
            let rejected = s.rejected_ids.lock();
            if batch.iter().any(|e| rejected.contains(&e.id)) {
                return Err(SinkError::permanent(
                    "memory sink: a bad event in the batch",
                ));
            }
        }
        let mut stored = s.stored.lock();
        let mut seen = s.seen.lock();
        for e in &batch {
            if seen.insert(e.id) {
                stored.push((**e).clone());
            } else {
                s.duplicates.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(SinkOutcome::default())
    }
}

/// A TCP proxy on 127.0.0.1 in front of a real service, which a test can take down (new
/// connections refused, open ones cut) and bring back, to simulate an outage of the real
/// thing — or start down, for a service that is unreachable when the application starts.
#[derive(Debug, Clone)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
}

#[derive(Debug)]
struct ProxyState {
    target: SocketAddr,
    up: AtomicBool,
    /// Bumped on every `set_up(false)`; connections of an older generation close.
    generation: tokio::sync::watch::Sender<u64>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target` while up.
    pub async fn start(target: SocketAddr, up: bool) -> std::io::Result<TcpProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            target,
            up: AtomicBool::new(up),
            generation: tokio::sync::watch::channel(0).0,
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !shared.up.load(Ordering::SeqCst) {
                    drop(client); // accepted then closed at once: the client sees a reset
                    continue;
                }
                let mut generation = shared.generation.subscribe();
                let target = shared.target;
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = generation.changed() => {}
                    }
                });
            }
        });
        Ok(TcpProxy { addr, state })
    }

    /// The address to connect to instead of the service's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Brings the service back (`true`), or cuts it off (`false`): open connections are
    /// closed and new ones are refused.
    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
        if !up {
            self.state.generation.send_modify(|g| *g += 1);
        }
    }
}
