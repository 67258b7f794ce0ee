//! A bounded load generator: `clients` connections, each sending requests at `rate_per_client`
//! per second until told to stop, recording every latency.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        addr: SocketAddr,
        path: &'static str,
        clients: usize,
        rate_per_client: f64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok, failed, latencies) =
                    (stop.clone(), ok.clone(), failed.clone(), latencies.clone());
                tokio::spawn(async move {
                    let period = Duration::from_secs_f64(1.0 / rate_per_client);
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        let t = Instant::now();
                        match tokio::time::timeout(
                            Duration::from_secs(10),
                            super::try_get(addr, path),
                        )
                        .await
                        {
                            Ok(Some(_status)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                latencies.lock().push(t.elapsed());
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            latencies,
            tasks,
        }
    }

    /// The latencies recorded since the last call (or the start), sorted; the clients go on.
    pub fn take_window(&self) -> Vec<Duration> {
        let mut l = std::mem::take(&mut *self.latencies.lock());
        l.sort();
        l
    }

    /// Stops the clients and returns the latencies, sorted.
    pub async fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let mut l = std::mem::take(&mut *self.latencies.lock());
        l.sort();
        l
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}
