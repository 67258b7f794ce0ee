//! One worker per sink: collect a batch, deliver it with retries, split it on permanent errors.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::options::SinkOptions;
use super::stats::{DropReason, SinkStats};
use crate::event::Event;
use crate::sink::{Batch, Sink, SinkError};

pub(crate) async fn run<S: Sink>(
    sink: Arc<S>,
    options: SinkOptions,
    mut rx: mpsc::Receiver<Arc<Event>>,
    stats: Arc<SinkStats>,
    mut closing: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight));
    let mut tasks = JoinSet::new();
    let mut closed = *closing.borrow();
    if closed {
        rx.close();
    }
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
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        tasks.spawn(deliver(
            sink.clone(),
            batch,
            options.clone(),
            stats.clone(),
            permit,
        ));
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    if let Err(e) = sink.shutdown().await {
        tracing::warn!(target: "tracepost::pipeline", sink = %stats.name, error = %e, "sink shutdown failed");
    }
}

/// Delivers one batch: retries temporary errors; on a permanent error, splits the batch in
/// halves until the events the sink refuses are isolated, and drops only those.
async fn deliver<S: Sink>(
    sink: Arc<S>,
    batch: Batch,
    options: SinkOptions,
    stats: Arc<SinkStats>,
    _permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let mut work = vec![batch];
    while let Some(batch) = work.pop() {
        let mut attempt = 0;
        loop {
            let result =
                match tokio::time::timeout(options.send_timeout, sink.send(batch.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(SinkError::temporary(format!(
                        "send timed out after {:?}",
                        options.send_timeout
                    ))),
                };
            match result {
                Ok(outcome) => {
                    let rejected = outcome.rejected.len() as u64;
                    for r in &outcome.rejected {
                        tracing::warn!(target: "tracepost::pipeline", sink = %stats.name, id = %r.id,
                            reason = %r.reason, detail = %r.detail, "sink rejected an event; dropped");
                    }
                    stats.dropped(DropReason::Rejected, rejected);
                    stats.sent((batch.len() as u64).saturating_sub(rejected));
                    stats.set_last_error(None);
                    break;
                }
                Err(e) if !e.is_temporary() => {
                    stats.set_last_error(Some(e.to_string()));
                    if batch.len() > 1 {
                        let mut first = batch;
                        let second = first.split_off(first.len() / 2);
                        work.push(second);
                        work.push(first);
                    } else {
                        tracing::warn!(target: "tracepost::pipeline", sink = %stats.name,
                            id = %batch[0].id, error = %e, "sink refused an event permanently; dropped");
                        stats.dropped(DropReason::Rejected, 1);
                    }
                    break;
                }
                Err(e) => {
                    stats.set_last_error(Some(e.to_string()));
                    if attempt >= options.retry.max_retries {
                        tracing::warn!(target: "tracepost::pipeline", sink = %stats.name,
                            events = batch.len(), attempts = attempt + 1, error = %e,
                            "giving up on a batch after its retries; dropped");
                        stats.dropped(DropReason::RetriesExhausted, batch.len() as u64);
                        break;
                    }
                    let wait = options.retry.backoff(attempt, e.retry_after());
                    tracing::debug!(target: "tracepost::pipeline", sink = %stats.name,
                        attempt, ?wait, error = %e, "temporary sink error; retrying");
                    stats.retried();
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
    stats.batch_latency(started.elapsed().as_secs_f64());
}
