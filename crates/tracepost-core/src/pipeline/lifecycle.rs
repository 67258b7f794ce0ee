//! [`Tracepost`]: the running pipeline's owner, its shutdown and its `Drop`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;

use super::handle::TracepostHandle;
use super::{Builder, DropReason, SinkCounts};

/// Counts running workers so a synchronous `Drop` can wait for them.
#[derive(Default)]
pub(super) struct Done {
    pub(super) running: AtomicU64,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Done {
    pub(super) fn finished(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.cv.notify_all();
    }

    fn wait(&self, deadline: Duration) -> bool {
        let start = Instant::now();
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.running.load(Ordering::SeqCst) > 0 {
            let Some(left) = deadline.checked_sub(start.elapsed()) else {
                return false;
            };
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// The running pipeline. Keep it alive for as long as the application runs; call
/// [`Tracepost::shutdown`] at the end (dropping it instead flushes best-effort for 5 s).
#[must_use = "dropping the Tracepost shuts the pipeline down; keep it until the app exits"]
pub struct Tracepost {
    pub(super) handle: TracepostHandle,
    pub(super) workers: Vec<JoinHandle<()>>,
    pub(super) window_task: Option<JoinHandle<()>>,
    pub(super) done: Arc<Done>,
    pub(super) shut: bool,
    /// tracepost's own runtime, where the workers run (none with `WorkerRuntime::Current`).
    pub(super) runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Tracepost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracepost")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// What [`Tracepost::shutdown`] achieved.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    /// True if every sink drained before the deadline.
    pub completed: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// Final counters per sink.
    pub sinks: Vec<(String, SinkCounts)>,
}

impl Tracepost {
    /// Starts configuring a pipeline.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A cloneable handle for capturing events.
    pub fn handle(&self) -> TracepostHandle {
        self.handle.clone()
    }

    /// Stops accepting events; deliveries must stop by `deadline` minus a margin kept for
    /// parking what is left in the spools.
    fn begin_close(&mut self, deadline: Duration) {
        if self.shut {
            return;
        }
        let margin = (deadline / 5).min(Duration::from_secs(1));
        self.shut = true;
        if let Some(t) = self.window_task.take() {
            t.abort();
        }
        // The last, partial metric windows go out before the queues close.
        self.handle.flush_windows_now(SystemTime::now());
        self.handle.inner.closed.store(true, Ordering::SeqCst);
        // The deadline is on the workers' clock: the own runtime's, which is not paused when
        // the caller's is.
        let _clock = self.runtime.as_ref().map(|r| r.enter());
        let _ = self
            .handle
            .inner
            .closing
            .send(Some(tokio::time::Instant::now() + deadline - margin));
    }

    /// Stops accepting events, delivers everything queued, and returns by `deadline` even if
    /// a sink hangs: whatever is still undelivered then is counted as dropped (`shutdown`).
    /// Never blocks a runtime thread.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        self.begin_close(deadline);
        let workers = std::mem::take(&mut self.workers);
        let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
        let wait = async move {
            tokio::time::timeout(deadline, async {
                for w in workers {
                    let _ = w.await;
                }
            })
            .await
            .is_ok()
        };
        // The deadline is timed on the workers' runtime: a caller with a paused clock must
        // not see it pass at once while the workers are busy elsewhere.
        let completed = match &self.runtime {
            Some(rt) => rt.spawn(wait).await.unwrap_or(false),
            None => wait.await,
        };
        if !completed {
            for a in aborts {
                a.abort();
            }
            self.count_abandoned();
        }
        ShutdownReport {
            completed,
            elapsed: started.elapsed(),
            sinks: self.handle.sink_counts(),
        }
    }

    /// Counts accepted events that were neither delivered nor dropped as dropped for `shutdown`.
    fn count_abandoned(&self) {
        for slot in &self.handle.inner.sinks {
            let c = slot.stats.counts();
            // Spooled events are kept, not lost; replayed ones count in `sent` as well.
            let settled = (c.sent - c.replayed.min(c.sent))
                + c.spooled
                + c.dropped(DropReason::Rejected)
                + c.dropped(DropReason::RetriesExhausted)
                + c.dropped(DropReason::Shutdown)
                + c.dropped(DropReason::SpoolFull);
            let abandoned = c.queued.saturating_sub(settled);
            if abandoned > 0 {
                tracing::warn!(target: "tracepost::pipeline", sink = %slot.stats.name, abandoned,
                    "shutdown deadline passed; undelivered events dropped");
                slot.stats.dropped(DropReason::Shutdown, abandoned);
            }
        }
    }
}

impl Drop for Tracepost {
    fn drop(&mut self) {
        if self.shut && self.workers.is_empty() {
            return;
        }
        let deadline = Duration::from_secs(5);
        self.begin_close(deadline);
        // Best effort: wait for the workers without ever blocking a current-thread runtime.
        let finished = match tokio::runtime::Handle::try_current() {
            Err(_) => self.done.wait(deadline),
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.done.wait(deadline))
            }
            Ok(_) => false,
        };
        if !finished {
            self.count_abandoned();
        }
    }
}
