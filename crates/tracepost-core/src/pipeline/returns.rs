//! Delivered events handed back to capturing threads, to be freed there.
//!
//! An event is built on an application thread and, once every sink has delivered it, freed on
//! a sink worker (tracepost's own runtime threads). With the system allocator (glibc) memory
//! freed on another thread does not go back to the allocating thread's cache: each of a
//! request snapshot's ~25 allocations then takes the allocator's slow path twice, once to be
//! freed into a foreign arena and once to be allocated again past an empty cache. Dropping a
//! delivered event on the thread that captures the next one gives its memory back where the
//! next event's strings are allocated.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::event::Event;
use crate::sink::Batch;

/// At most this many delivered events wait to be dropped by captures.
const MAX_EVENTS: usize = 256;

/// At most this many bytes (by [`Event::approx_size`]) wait: a pipeline that stops capturing
/// holds no more than this until it is shut down.
const MAX_BYTES: usize = 1 << 20;

/// Delivered events waiting to be dropped, one per capture ([`Returns::release`]); past the
/// bounds a sink worker drops them itself, as before.
#[derive(Default)]
pub(crate) struct Returns {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    events: Vec<(Arc<Event>, usize)>,
    bytes: usize,
}

impl Returns {
    /// Hands a delivered batch back; what does not fit is dropped here, outside the lock.
    pub(crate) fn put(&self, mut batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let mut waiting = self.waiting.lock();
        while waiting.events.len() < MAX_EVENTS {
            let Some(event) = batch.pop() else { break };
            // Only the last holder frees the event; one shared with another sink's queue is
            // dropped at once (its memory is freed wherever the last one lets go).
            if Arc::strong_count(&event) > 1 {
                drop(event);
                continue;
            }
            let size = event.approx_size();
            if waiting.bytes + size > MAX_BYTES {
                batch.push(event);
                break;
            }
            waiting.bytes += size;
            waiting.events.push((event, size));
        }
        drop(waiting);
        drop(batch);
    }

    /// Drops one waiting event on this thread, if there is one and no other thread holds the
    /// list right now.
    pub(crate) fn release(&self) {
        let event = self.waiting.try_lock().and_then(|mut w| {
            let (event, size) = w.events.pop()?;
            w.bytes -= size;
            Some(event)
        });
        drop(event);
    }
}
