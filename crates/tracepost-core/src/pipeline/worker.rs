//! One worker per sink: collect a batch, deliver it with retries, split it on permanent errors;
//! with a spool, park what cannot be delivered on disk and replay it, oldest first.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::options::SinkOptions;
use super::returns::Returns;
use super::spool::Spool;
use super::stats::{DropReason, Health, SinkStats};
use crate::event::Event;
use crate::sink::{Batch, Sink, SinkError, SinkErrorKind};

/// The closing signal: `None` while running; the instant by which delivery attempts must
/// stop once shutdown has begun.
pub(crate) type Closing = watch::Receiver<Option<tokio::time::Instant>>;

/// A spool shared by the collecting worker and the replay task.
pub(crate) struct SpoolHandle {
    spool: Arc<parking_lot::Mutex<Spool>>,
    wake: Notify,
    /// The ticket of the next batch allowed to settle: batches park in the order they were
    /// taken from the queue, even when several were in flight when the sink failed.
    turn: watch::Sender<u64>,
}

impl SpoolHandle {
    pub(crate) fn new(spool: Spool) -> Arc<Self> {
        Arc::new(SpoolHandle {
            spool: Arc::new(parking_lot::Mutex::new(spool)),
            wake: Notify::new(),
            turn: watch::channel(0).0,
        })
    }

    /// Waits until every batch taken before `ticket` has settled.
    async fn wait_turn(&self, ticket: u64) {
        let mut turn = self.turn.subscribe();
        let _ = turn.wait_for(|t| *t >= ticket).await;
    }

    fn done_turn(&self, ticket: u64) {
        self.turn.send_replace(ticket + 1);
    }

    async fn with<T: Send + 'static>(&self, f: impl FnOnce(&mut Spool) -> T + Send + 'static) -> T {
        let spool = self.spool.clone();
        // File I/O stays off the async worker threads.
        tokio::task::spawn_blocking(move || f(&mut spool.lock()))
            .await
            .expect("spool task panicked")
    }

    fn is_empty(&self) -> bool {
        self.spool.lock().is_empty()
    }

    fn update_gauges(&self, stats: &SinkStats) {
        let s = self.spool.lock();
        stats.set_spool(s.bytes(), s.oldest_age(), s.corrupt_records);
    }

    /// Parks a batch on disk; counts what a full spool had to drop.
    async fn park(&self, batch: Batch, stats: &Arc<SinkStats>) {
        let n = batch.len() as u64;
        match self.with(move |s| s.push(&batch)).await {
            Ok(outcome) => {
                stats.spooled(n);
                if outcome.dropped_events > 0 {
                    tracing::warn!(target: "tracepost::spool", sink = %stats.name, events = outcome.dropped_events,
                        "spool full; events dropped per the spool's policy");
                    stats.dropped(DropReason::SpoolFull, outcome.dropped_events);
                }
            }
            Err(e) => {
                tracing::warn!(target: "tracepost::spool", sink = %stats.name, error = %e, events = n,
                    "cannot write the spool; events dropped");
                stats.dropped(DropReason::SpoolFull, n);
            }
        }
        self.update_gauges(stats);
        self.wake.notify_one();
    }
}

pub(crate) async fn run<S: Sink>(
    sink: Arc<S>,
    options: SinkOptions,
    mut rx: mpsc::Receiver<Arc<Event>>,
    stats: Arc<SinkStats>,
    mut closing: Closing,
    spool: Option<Arc<SpoolHandle>>,
    returns: Arc<Returns>,
) {
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight));
    let mut tasks = JoinSet::new();
    if let Some(spool) = &spool {
        spool.update_gauges(&stats);
        tasks.spawn(replay(
            sink.clone(),
            options.clone(),
            stats.clone(),
            closing.clone(),
            spool.clone(),
            returns.clone(),
        ));
    }
    let mut closed = closing.borrow().is_some();
    if closed {
        rx.close();
    }
    let mut next_ticket: u64 = 0;
    loop {
        // Block for the first event, then drain what is waiting: batching for free.
        let first = if closed {
            rx.recv().await
        } else {
            tokio::select! {
                ev = rx.recv() => ev,
                _ = closing.changed() => {
                    closed = true;
                    rx.close(); // no new events; what is buffered is still received
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut bytes = first.approx_size();
        let mut batch: Batch = Vec::with_capacity(options.batch.max_events.min(1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + options.batch.linger;
        'collect: while batch.len() < options.batch.max_events && bytes < options.batch.max_bytes {
            while let Ok(ev) = rx.try_recv() {
                bytes += ev.approx_size();
                batch.push(ev);
                if batch.len() >= options.batch.max_events || bytes >= options.batch.max_bytes {
                    break 'collect;
                }
            }
            if closed {
                break; // shutting down: don't linger
            }
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => { bytes += ev.approx_size(); batch.push(ev); }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = closing.changed() => { closed = true; rx.close(); }
            }
        }
        // While older events wait in the spool, newer ones queue up behind them, in order;
        // and while the sink is failing, new batches go straight to disk, so the queue keeps
        // draining and capture never has to drop.
        let ticket = next_ticket;
        next_ticket += 1;
        if let Some(spool) = spool
            .as_ref()
            .filter(|s| !s.is_empty() || stats.health() != Health::Up)
        {
            spool.wait_turn(ticket).await;
            spool.park(batch, &stats).await;
            spool.done_turn(ticket);
            continue;
        }
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let task = Delivery {
            sink: sink.clone(),
            options: options.clone(),
            stats: stats.clone(),
            closing: closing.clone(),
            returns: returns.clone(),
            spooled: spool.is_some(),
            replaying: false,
        };
        let spool = spool.clone();
        tasks.spawn(async move {
            let _permit: OwnedSemaphorePermit = permit;
            let undelivered = task.deliver(batch).await;
            match spool {
                Some(spool) => {
                    spool.wait_turn(ticket).await;
                    task.settle(undelivered, Some(&spool)).await;
                    spool.done_turn(ticket);
                }
                None => task.settle(undelivered, None).await,
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    if let Err(e) = sink.shutdown().await {
        tracing::warn!(target: "tracepost::pipeline", sink = %stats.name, error = %e, "sink shutdown failed");
    }
}

/// Replays the spool oldest first whenever it holds something, until shutdown.
async fn replay<S: Sink>(
    sink: Arc<S>,
    options: SinkOptions,
    stats: Arc<SinkStats>,
    closing: Closing,
    spool: Arc<SpoolHandle>,
    returns: Arc<Returns>,
) {
    let delivery = Delivery {
        sink,
        options,
        stats: stats.clone(),
        closing: closing.clone(),
        returns,
        spooled: true,
        replaying: true,
    };
    let mut attempt = 0u32;
    loop {
        let stop_at = *closing.borrow();
        if stop_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
            return;
        }
        let next = spool.with(|s| s.peek()).await;
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                spool.update_gauges(&stats);
                if stop_at.is_some() {
                    return;
                }
                let mut closing = closing.clone();
                tokio::select! {
                    _ = spool.wake.notified() => {}
                    _ = closing.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(target: "tracepost::spool", sink = %stats.name, error = %e, "cannot read the spool");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let n = batch.len() as u64;
        // One attempt per round (with bisection of permanent failures); the spool is the
        // durable buffer, so a failing sink is retried with backoff for as long as it takes.
        match delivery.attempt_all(batch).await {
            None => {
                attempt = 0;
                stats.replayed(n);
                if let Err(e) = spool.with(|s| s.ack()).await {
                    tracing::warn!(target: "tracepost::spool", sink = %stats.name, error = %e, "cannot advance the spool");
                }
                spool.update_gauges(&stats);
            }
            Some((_, error)) => {
                stats.set_down(&error);
                stats.retried();
                let wait = delivery.options.retry.delay_after(attempt, &error);
                attempt = attempt.saturating_add(1);
                let sleep = tokio::time::sleep(wait);
                match stop_at {
                    Some(t) => {
                        let _ = tokio::time::timeout_at(t, sleep).await;
                    }
                    None => {
                        let mut closing = closing.clone();
                        tokio::select! { _ = sleep => {}, _ = closing.changed() => {} }
                    }
                }
            }
        }
    }
}

struct Delivery<S> {
    sink: Arc<S>,
    options: SinkOptions,
    stats: Arc<SinkStats>,
    closing: Closing,
    /// Where delivered batches go to be freed by capturing threads.
    returns: Arc<Returns>,
    /// Whether undeliverable batches go to a spool.
    spooled: bool,
    /// Replaying the spool: a failed batch stays whole at the spool's head (it is sent again
    /// as it was stored), so what a failed send settled is not counted yet — the sink
    /// reports it when the batch goes through.
    replaying: bool,
}

impl<S: Sink> Delivery<S> {
    /// One send, bounded by the send timeout and the shutdown deadline; a panic in the sink
    /// is caught and becomes a temporary error.
    async fn send_once(&self, batch: &Batch) -> Result<crate::sink::SinkOutcome, SinkError> {
        let mut limit = tokio::time::Instant::now() + self.options.send_timeout;
        if let Some(stop) = *self.closing.borrow() {
            limit = limit.min(stop);
        }
        // Internal while polled: what the sink logs is never captured (see `scope`).
        let send =
            AssertUnwindSafe(crate::scope::internal(self.sink.send(batch.clone()))).catch_unwind();
        match tokio::time::timeout_at(limit, send).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                self.stats.panicked();
                tracing::error!(target: "tracepost::pipeline", sink = %self.stats.name, panic = %message,
                    "the sink panicked; treated as a temporary failure");
                Err(SinkError::temporary(format!("sink panicked: {message}"))
                    .with_kind(SinkErrorKind::Panicked))
            }
            Err(_) => Err(SinkError::temporary(format!(
                "send timed out after {:?}",
                self.options.send_timeout
            ))
            .with_kind(SinkErrorKind::Timeout)),
        }
    }

    /// Sends `batch` once, splitting on permanent errors. Returns the part that failed
    /// temporarily or was refused whole (with its error), if any; events rejected for their
    /// data are counted. A refusal is never split: no event is at fault.
    async fn attempt_all(&self, batch: Batch) -> Option<(Batch, SinkError)> {
        let mut work = vec![batch];
        let mut failed: Option<(Batch, SinkError)> = None;
        while let Some(batch) = work.pop() {
            if let Some((rest, _)) = &mut failed {
                rest.extend(batch);
                continue;
            }
            let (batch, e) = match self.send_once(&batch).await {
                Ok(outcome) => {
                    self.delivered(&batch, outcome);
                    self.returns.put(batch);
                    continue;
                }
                Err(e) => match self.take_settled(batch, e) {
                    Some(rest) => rest,
                    None => continue,
                },
            };
            self.stats.error(&e);
            self.stats.set_last_error(Some(e.to_string()));
            if !e.is_permanent() {
                failed = Some((batch, e));
            } else if batch.len() > 1 {
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                work.push(second);
                work.push(first);
            } else {
                tracing::warn!(target: "tracepost::pipeline", sink = %self.stats.name,
                    id = %batch[0].id, error = %e, "sink refused an event permanently; dropped");
                self.stats.rejected("permanent_error");
            }
        }
        failed
    }

    /// Counts what a failed send settled (stored or refused for good) and returns the rest
    /// with the error; `None` when the send settled the whole batch after all.
    fn take_settled(&self, batch: Batch, mut e: SinkError) -> Option<(Batch, SinkError)> {
        if self.replaying {
            return Some((batch, e));
        }
        let Some(settled) = e.take_settled() else {
            return Some((batch, e));
        };
        let done: std::collections::HashSet<uuid::Uuid> = settled
            .delivered
            .iter()
            .copied()
            .chain(settled.rejected.iter().map(|r| r.id))
            .collect();
        let (finished, rest): (Batch, Batch) =
            batch.into_iter().partition(|ev| done.contains(&ev.id));
        if !finished.is_empty() {
            let in_batch: std::collections::HashSet<uuid::Uuid> =
                finished.iter().map(|ev| ev.id).collect();
            let mut rejected = settled.rejected;
            rejected.retain(|r| in_batch.contains(&r.id));
            self.delivered(&finished, crate::sink::SinkOutcome { rejected });
        }
        (!rest.is_empty()).then_some((rest, e))
    }

    fn delivered(&self, batch: &Batch, outcome: crate::sink::SinkOutcome) {
        let rejected = outcome.rejected.len() as u64;
        if let Some(first) = outcome.rejected.first() {
            // One line per batch: a bad batch must not flood the logs.
            tracing::warn!(target: "tracepost::pipeline", sink = %self.stats.name, rejected,
                first_id = %first.id, reason = %first.reason, detail = %first.detail,
                "sink rejected events; dropped");
        }
        for r in &outcome.rejected {
            self.stats.rejected(&r.reason);
        }
        self.stats
            .sent((batch.len() as u64).saturating_sub(rejected));
        self.stats.set_up();
    }

    /// Delivers with retries; returns what is still undelivered when the retries run out or
    /// the shutdown deadline passes, and which of the two it was. A batch the destination
    /// refuses whole is parked at once with a spool, and otherwise held here and retried
    /// every `refused_interval` until it is accepted or shutdown's deadline passes.
    async fn deliver(&self, batch: Batch) -> Option<(Batch, DropReason)> {
        let started = Instant::now();
        let mut pending = batch;
        let mut attempt = 0;
        let result = loop {
            match self.attempt_all(pending).await {
                None => break None,
                Some((rest, error)) => {
                    let stop_at = *self.closing.borrow();
                    let past_deadline = stop_at.is_some_and(|t| tokio::time::Instant::now() >= t);
                    // With a spool the durable place to wait is the disk, not a retry loop
                    // holding memory and a delivery slot: give up early and park the batch.
                    let max_retries = match (error.is_refused(), self.spooled) {
                        (true, true) => 0,
                        (true, false) => u32::MAX,
                        (false, true) => self.options.retry.max_retries.min(2),
                        (false, false) => self.options.retry.max_retries,
                    };
                    if error.is_refused() {
                        self.stats.set_down(&error);
                    }
                    if attempt >= max_retries || past_deadline {
                        if !error.is_refused() {
                            tracing::warn!(target: "tracepost::pipeline", sink = %self.stats.name,
                                events = rest.len(), attempts = attempt + 1, error = %error,
                                "could not deliver a batch after its retries");
                        }
                        self.stats.set_down(&error);
                        let reason = if past_deadline {
                            DropReason::Shutdown
                        } else {
                            DropReason::RetriesExhausted
                        };
                        break Some((rest, reason));
                    }
                    self.stats.mark_retrying();
                    let wait = self.options.retry.delay_after(attempt, &error);
                    tracing::debug!(target: "tracepost::pipeline", sink = %self.stats.name,
                        attempt, ?wait, error = %error, "sink error; retrying");
                    self.stats.retried();
                    let sleep = tokio::time::sleep(wait);
                    match stop_at {
                        Some(t) => {
                            let _ = tokio::time::timeout_at(t, sleep).await;
                        }
                        None => {
                            // Shutdown cuts a long wait short: one more attempt, then the deadline.
                            let mut closing = self.closing.clone();
                            tokio::select! { _ = sleep => {}, _ = closing.changed() => {} }
                        }
                    }
                    attempt = attempt.saturating_add(1);
                    pending = rest;
                }
            }
        };
        self.stats.batch_latency(started.elapsed().as_secs_f64());
        result
    }

    /// What happens to an undelivered batch: the spool, or a counted drop.
    async fn settle(&self, undelivered: Option<(Batch, DropReason)>, spool: Option<&SpoolHandle>) {
        let Some((batch, reason)) = undelivered else {
            return;
        };
        match spool {
            Some(spool) => spool.park(batch, &self.stats).await,
            None => {
                tracing::warn!(target: "tracepost::pipeline", sink = %self.stats.name, events = batch.len(),
                    reason = reason.as_str(), "events dropped");
                self.stats.dropped(reason, batch.len() as u64);
            }
        }
    }
}
