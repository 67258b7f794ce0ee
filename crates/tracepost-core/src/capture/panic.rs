//! Panics, wherever a request's work runs.
//!
//! `catch_unwind` gives the payload but not the backtrace, which only exists while the panic
//! hook runs. One hook (installed once, chained to the previous one) sees every panic on every
//! thread and does one of three things:
//! - on a thread inside a **catcher** (an adapter polling a request future or a response
//!   body with panics caught, or a task wrapped by [`in_current_request`](super::in_current_request)),
//!   it keeps the backtrace and location for the catcher, which reports the panic with the
//!   request's context after unwinding ([`PanicDetail::caught`]);
//! - on a thread doing **tracepost's own work** ([`internal`]), it does nothing (a panicking
//!   sink is the pipeline's business, and reporting it through the pipeline could loop);
//! - anywhere else (a fire-and-forget `tokio::spawn`, a plain thread), it reports the panic
//!   at once as an **unattached** `error` event with its site and backtrace, carrying the
//!   request's ids when it happens while a request is polled with panics not caught.
//!
//! Unattached panics go to the pipeline of the most recently installed handle ([`install`],
//! called by every adapter's layer) and are limited to [`UNATTACHED_PER_SECOND`].

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, RwLock};
use std::task::{Context, Poll};

use crate::event::{ErrorDetail, Event, Kind, Level};
use crate::pipeline::TracepostHandle;

/// At most this many unattached panic events are reported per second (a panic loop must not
/// flood the pipeline); the rest are only printed by the previous hook.
pub const UNATTACHED_PER_SECOND: u64 = 20;

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    static INTERNAL: Cell<u32> = const { Cell::new(0) };
    static LAST: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

static HANDLE: RwLock<Option<TracepostHandle>> = RwLock::new(None);

/// A caught panic: its message, and the backtrace and source location the hook saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PanicDetail {
    /// The panic message (`"panic with a non-string payload"` when it was not a string).
    pub message: String,
    /// The backtrace, one frame per line, when the hook captured it.
    pub backtrace: Option<String>,
    /// Where it panicked (`file:line:column`).
    pub location: Option<String>,
}

impl PanicDetail {
    /// The detail of a panic just caught on this thread by a [`catching`] section: the message
    /// from `payload`, the backtrace and location the hook kept.
    pub fn caught(payload: &(dyn std::any::Any + Send)) -> Self {
        let (backtrace, location) = LAST
            .with(|l| l.borrow_mut().take())
            .map_or((None, None), |(bt, loc)| (Some(bt), loc));
        PanicDetail {
            message: message(payload),
            backtrace,
            location,
        }
    }

    /// As an event's error detail (type `panic`).
    pub fn into_error(self) -> ErrorDetail {
        ErrorDetail {
            error_type: "panic".into(),
            message: self.message,
            backtrace: self.backtrace,
            location: self.location,
        }
    }
}

/// Installs the panic hook (once per process) and makes `handle` the pipeline that unattached
/// panics are reported to. Adapters call it when their layer is applied.
pub fn install(handle: &TracepostHandle) {
    *HANDLE.write().unwrap_or_else(|e| e.into_inner()) = Some(handle.clone());
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if INTERNAL.with(Cell::get) == 0 {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                if CATCHING.with(Cell::get) > 0 {
                    let bt = Backtrace::force_capture().to_string();
                    LAST.with(|l| *l.borrow_mut() = Some((bt, location)));
                } else {
                    // Reporting must never panic again inside the hook.
                    let payload = info.payload();
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned());
                    let _ = std::panic::catch_unwind(move || report_unattached(message, location));
                }
            }
            previous(info);
        }));
    });
}

fn report_unattached(message: Option<String>, location: Option<String>) {
    let Some(handle) = HANDLE
        .read()
        .ok()
        .and_then(|h| h.as_ref().filter(|h| !h.is_closed()).cloned())
    else {
        return;
    };
    if !allow_unattached() {
        return;
    }
    let backtrace = Backtrace::force_capture().to_string();
    // A safety net for tracepost's own tasks not marked `internal`: never report a panic of
    // the pipeline through the pipeline.
    if backtrace.contains("tracepost_core::pipeline::") {
        return;
    }
    let message = message.unwrap_or_else(|| "panic with a non-string payload".to_owned());
    let thread = std::thread::current();
    let mut event = Event::new(Kind::Error, Level::Error, format!("panic: {message}"));
    event.error = Some(ErrorDetail {
        error_type: "panic".into(),
        message,
        backtrace: Some(backtrace),
        location,
    });
    event
        .attributes
        .insert("panic.attached".into(), false.into());
    if let Some(name) = thread.name() {
        event.attributes.insert("thread.name".into(), name.into());
    }
    if let Some(ctx) = super::task::current_context() {
        ctx.annotate(&mut event);
    }
    handle.capture(event);
}

/// A token bucket of [`UNATTACHED_PER_SECOND`], refilled every second.
fn allow_unattached() -> bool {
    static SECOND: AtomicU64 = AtomicU64::new(0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if SECOND.swap(now, Ordering::Relaxed) != now {
        COUNT.store(0, Ordering::Relaxed);
    }
    COUNT.fetch_add(1, Ordering::Relaxed) < UNATTACHED_PER_SECOND
}

/// Runs `f` as a catcher: a panic inside it keeps its backtrace for [`PanicDetail::caught`]
/// instead of being reported as unattached. The caller must catch the unwind and report it.
pub fn catching<T>(f: impl FnOnce() -> T) -> T {
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(c.get() - 1));
        }
    }
    CATCHING.with(|c| c.set(c.get() + 1));
    let _exit = Exit;
    f()
}

/// Marks the current thread as doing tracepost's own work while the guard lives: panics are
/// left to whoever catches them, never reported as events. See [`internal`] for futures.
pub fn internal_guard() -> InternalGuard {
    INTERNAL.with(|c| c.set(c.get() + 1));
    InternalGuard(())
}

/// Ends an [`internal_guard`] section when dropped.
#[derive(Debug)]
pub struct InternalGuard(());

impl Drop for InternalGuard {
    fn drop(&mut self) {
        INTERNAL.with(|c| c.set(c.get() - 1));
    }
}

pin_project_lite::pin_project! {
    /// A future polled as tracepost's own work; see [`internal`].
    #[derive(Debug)]
    pub struct Internal<F> {
        #[pin]
        inner: F,
    }
}

/// Wraps tracepost's own background work (sink workers, exporters): its panics are never
/// reported as events.
pub fn internal<F: Future>(inner: F) -> Internal<F> {
    Internal { inner }
}

impl<F: Future> Future for Internal<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _guard = internal_guard();
        self.project().inner.poll(cx)
    }
}

/// The panic message from a `catch_unwind` payload.
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
