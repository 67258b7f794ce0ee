//! Where the sink workers run: by default on tracepost's own small runtime, whose threads are
//! marked [internal](crate::scope::is_internal), so that nothing a sink or the tasks its
//! clients spawn log is captured again.

use std::sync::Arc;
use std::time::Duration;

use super::lifecycle::Done;
use crate::scope;

/// Where the pipeline's sink workers (and everything they spawn) run. Set with
/// `Builder::worker_runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerRuntime {
    /// tracepost's own multi-threaded Tokio runtime with this many worker threads, named
    /// `tracepost-worker` (the default, with 2). Every thread of it, blocking-pool threads
    /// included, is marked internal: events a sink's HTTP client or database driver emits,
    /// even from connection tasks it spawns, are never captured. `build()` then works outside
    /// a Tokio runtime too.
    Dedicated {
        /// Worker threads (at least 1).
        threads: usize,
    },
    /// The runtime that calls `build()`. Only the sinks' send futures are marked internal, not
    /// tasks their clients spawn (an HTTP client's connection tasks), whose logs a `tracing`
    /// layer at DEBUG or TRACE may capture. Meant for tests that pause Tokio's clock and
    /// expect the pipeline's timers (linger, backoff) to follow it.
    Current,
}

impl Default for WorkerRuntime {
    fn default() -> Self {
        WorkerRuntime::Dedicated { threads: 2 }
    }
}

/// The dedicated runtime. Dropping it never blocks (it is shut down in the background), so
/// it may be dropped inside another runtime.
pub(super) struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    pub(super) fn start(threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(8)
            .thread_name("tracepost-worker")
            .on_thread_start(scope::mark_thread_internal)
            .enable_all()
            .build()?;
        Ok(OwnRuntime(Some(rt)))
    }

    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime is only taken when shut down")
            .handle()
    }

    /// Lets the workers go on for at most `wait` (on a thread of its own, so the caller is
    /// not blocked), then shuts the runtime down.
    pub(super) fn shutdown_after(mut self, done: Arc<Done>, wait: Duration) {
        let Some(rt) = self.0.take() else { return };
        let spawned = std::thread::Builder::new()
            .name("tracepost-shutdown".into())
            .spawn(move || {
                done.wait(wait);
                rt.shutdown_background();
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "tracepost::pipeline", error = %e,
                "cannot start the shutdown thread; stopping the workers now");
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
