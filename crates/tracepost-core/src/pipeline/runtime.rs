//! Where the sink workers run: by default on tracepost's own small runtime, whose threads are
//! marked [internal](crate::scope::is_internal), so that nothing a sink — or a task its HTTP
//! client or database driver spawns — logs is captured again.

use std::future::Future;
use std::sync::OnceLock;

use crate::scope;

/// Where the pipeline's sink workers (and everything they spawn) run. Set with
/// `Builder::worker_runtime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerRuntime {
    /// tracepost's own Tokio runtime (the default): one per process, started on first use,
    /// with [`WORKER_THREADS`] threads named `tracepost-worker`. Every thread of it,
    /// blocking-pool threads included, is marked internal, so events a sink's HTTP client or
    /// database driver emits — even from connection tasks it spawns — are never captured.
    /// `build()` then also works outside a Tokio runtime.
    #[default]
    Own,
    /// The runtime that calls `build()`. Only the sinks' send futures are marked internal, not
    /// the tasks their clients spawn (connection tasks), whose logs a `tracing` layer at DEBUG
    /// or TRACE may capture. Meant for tests that pause Tokio's clock and expect the
    /// pipeline's timers (linger, backoff) to follow it.
    Current,
}

/// The number of threads of tracepost's own runtime. Sinks spend their time waiting on I/O;
/// two threads keep one slow encode from holding up the other sinks.
pub const WORKER_THREADS: usize = 2;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// tracepost's own runtime, started on first use; it lives as long as the process and is
/// never dropped (so never inside another runtime). Fails if its threads cannot be created.
pub fn internal_runtime() -> Result<tokio::runtime::Handle, std::io::Error> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .max_blocking_threads(16)
            .thread_name("tracepost-worker")
            .on_thread_start(scope::mark_thread_internal)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match rt {
        Ok(rt) => Ok(rt.handle().clone()),
        Err(e) => Err(std::io::Error::other(e.clone())),
    }
}

/// Runs `future` on tracepost's own runtime and returns its output: for a sink's setup
/// (opening a connection pool, starting a background task) so that the tasks it spawns run
/// there and their logs are never captured. If that runtime cannot start, the future runs
/// here, [internal](scope::internal) while polled. A panic in it is resumed here.
pub async fn run_internal<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match internal_runtime() {
        Ok(rt) => match rt.spawn(future).await {
            Ok(out) => out,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("tracepost's runtime cancelled a setup task: {e}"),
            },
        },
        Err(_) => scope::internal(future).await,
    }
}
