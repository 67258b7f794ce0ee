//! Backtraces for panics caught by the layer.
//!
//! `catch_unwind` gives the payload but not the backtrace, which only exists while the panic
//! hook runs. A hook (installed once, chained to the previous one) captures it when the panic
//! happens on a thread that is polling a request, and the layer picks it up after unwinding.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::sync::Once;

thread_local! {
    static IN_REQUEST: Cell<u32> = const { Cell::new(0) };
    static LAST: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_REQUEST.with(Cell::get) > 0 {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                let bt = Backtrace::force_capture().to_string();
                LAST.with(|l| *l.borrow_mut() = Some((bt, location)));
            }
            previous(info);
        }));
    });
}

/// Marks the current thread as polling a request for the duration of `f`.
pub(crate) fn in_request<T>(f: impl FnOnce() -> T) -> T {
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            IN_REQUEST.with(|c| c.set(c.get() - 1));
        }
    }
    IN_REQUEST.with(|c| c.set(c.get() + 1));
    let _exit = Exit;
    f()
}

/// The backtrace and location of the last panic on this thread, if captured.
pub(crate) fn take_last() -> (Option<String>, Option<String>) {
    LAST.with(|l| l.borrow_mut().take())
        .map_or((None, None), |(bt, loc)| (Some(bt), loc))
}

/// The panic message from a `catch_unwind` payload.
pub(crate) fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
