//! What `/health` reports: each sink's state.

use std::time::Duration;

use super::Health;

/// The pipeline's health: the worst state of any sink, and each sink's.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// `down` if any sink is down, else `degraded` if any is, else `up`.
    pub state: Health,
    /// Per sink.
    pub sinks: Vec<SinkHealth>,
}

impl HealthReport {
    /// The report as JSON (`{"status": "up", "sinks": [...]}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.state.as_str(),
            "sinks": self.sinks.iter().map(|s| serde_json::json!({
                "name": s.name,
                "state": s.state.as_str(),
                "last_error": s.last_error,
                "queued_events": s.queued_events,
                "spool_bytes": s.spool_bytes,
                "oldest_spooled_age_seconds": s.oldest_spooled_age.map(|d| d.as_secs()),
            })).collect::<Vec<_>>(),
        })
    }
}

/// One sink's health.
#[derive(Debug, Clone)]
pub struct SinkHealth {
    /// The sink's name.
    pub name: String,
    /// Up, degraded or down.
    pub state: Health,
    /// The last delivery error, while failing.
    pub last_error: Option<String>,
    /// Events waiting in memory.
    pub queued_events: usize,
    /// Bytes waiting in the disk spool.
    pub spool_bytes: u64,
    /// Age of the oldest spooled event.
    pub oldest_spooled_age: Option<Duration>,
}
