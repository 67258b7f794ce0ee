//! What the store accepts, and how much work one batch may make the server do: the accepted
//! time range, the partition budget, and how the write path reacts to the SQLSTATEs that say
//! the server is short of something.

use std::time::Duration;

/// How far back events are accepted when neither [`TimeRange::max_age`] nor a retention is
/// set: 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// How far ahead of the receiving clock events are accepted by default: 10 minutes (Loki's
/// default `creation_grace_period`).
pub const DEFAULT_MAX_AHEAD: Duration = Duration::from_secs(600);

/// The attribute that keeps an event's own timestamp when [`OutOfRange::Restamp`] stores it
/// under the time it was received (RFC 3339 with nanoseconds).
pub const ORIGINAL_TIMESTAMP_ATTRIBUTE: &str = "tracepost.original_timestamp";

/// Day partitions one write creates at most; the rows of further missing days go to the
/// default partition and are moved out by the background maintenance.
pub(crate) const NEW_DAYS_PER_WRITE: usize = 8;

/// Day partitions created per minute at most, by writes and maintenance together (each day is
/// three tables: `events`, `request_snapshots`, `metric_windows`).
pub(crate) const NEW_DAYS_PER_MINUTE: u32 = 60;

/// Days (the default partition counting as one) one write transaction writes to at most: a
/// batch spanning more days is written in several transactions. Writing to a partition locks
/// it and each of its indexes until the commit: 7 for `events`, 5 for `request_snapshots`, 3
/// for `metric_windows`, the same again for the parent tables. Three days of all three tables
/// make 60 locks, under the server's default `max_locks_per_transaction` of 64.
pub(crate) const PARTITIONS_PER_TRANSACTION: usize = 3;

/// Day partitions the background maintenance moves out of the default partition per run.
pub(crate) const DRAIN_DAYS_PER_RUN: usize = 32;

/// After a partition could not be created (a lock held too long, the server short of
/// memory), writes stop creating partitions for this long; their rows go to the default
/// partition meanwhile.
pub(crate) const CREATE_BACKOFF: Duration = Duration::from_secs(30);

/// `lock_timeout` for the sink's DDL (partition creation, retention): a long-running query on
/// the tables makes the DDL give up instead of queueing everyone else behind it.
pub(crate) const DDL_LOCK_TIMEOUT: &str = "2s";

/// What happens to an event whose timestamp is outside the accepted [`TimeRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutOfRange {
    /// Refuse the event: it is returned in
    /// [`SinkOutcome::rejected`](tracepost_core::SinkOutcome) with the reason `too_old` or
    /// `too_far_in_future`, and counted by reason in
    /// [`IngestStats::rejected`](crate::IngestStats) (the default, as Loki does).
    #[default]
    Reject,
    /// Store the event under the time it was received, with its own timestamp kept in the
    /// attribute [`ORIGINAL_TIMESTAMP_ATTRIBUTE`]; counted in
    /// [`IngestStats::restamped`](crate::IngestStats).
    Restamp,
}

/// The range of event timestamps the store accepts, relative to the clock of the process
/// writing: from `max_age` ago to `max_ahead` from now. Set it with
/// [`PostgresSinkBuilder::time_range`](crate::PostgresSinkBuilder::time_range).
///
/// Each accepted day gets its own partitions, so the range also bounds how many partitions
/// the sink can ever create: about `max_age` in days, plus the days ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    max_age: Option<Duration>,
    max_ahead: Duration,
    outside: OutOfRange,
}

impl Default for TimeRange {
    fn default() -> Self {
        TimeRange {
            max_age: None,
            max_ahead: DEFAULT_MAX_AHEAD,
            outside: OutOfRange::Reject,
        }
    }
}

impl TimeRange {
    /// The default: back to the retention (or [`DEFAULT_MAX_AGE`] without one), ahead by
    /// [`DEFAULT_MAX_AHEAD`], events outside rejected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept events up to this old (Loki: `reject_old_samples_max_age`). Never more than the
    /// retention: an event older than that would land in a partition retention drops.
    #[must_use]
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// Accept events up to this far ahead of the receiving clock (Loki:
    /// `creation_grace_period`).
    #[must_use]
    pub fn max_ahead(mut self, d: Duration) -> Self {
        self.max_ahead = d;
        self
    }

    /// What to do with events outside the range (default [`OutOfRange::Reject`]).
    #[must_use]
    pub fn outside(mut self, policy: OutOfRange) -> Self {
        self.outside = policy;
        self
    }

    /// The range in microseconds, given the retention.
    pub(crate) fn resolve(self, retention: Option<Duration>) -> Window {
        let back = match (self.max_age, retention) {
            (Some(a), Some(r)) => a.min(r),
            (Some(a), None) => a,
            (None, Some(r)) => r,
            (None, None) => DEFAULT_MAX_AGE,
        };
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
        Window {
            back_us: micros(back).min(i64::MAX / 4),
            ahead_us: micros(self.max_ahead).min(i64::MAX / 4),
            outside: self.outside,
        }
    }
}

/// A resolved [`TimeRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub back_us: i64,
    pub ahead_us: i64,
    pub outside: OutOfRange,
}

impl Window {
    /// `Err(reason)` when `ts_us` (Unix microseconds) is outside the range at `now_us`.
    pub fn check(&self, ts_us: i64, now_us: i64) -> Result<(), &'static str> {
        if ts_us < now_us.saturating_sub(self.back_us) {
            Err("too_old")
        } else if ts_us > now_us.saturating_add(self.ahead_us) {
            Err("too_far_in_future")
        } else {
            Ok(())
        }
    }
}

/// How the write path reacts to a server error beyond its [class](crate::error::class_of),
/// so that no batch is retried whole, the same way, until the pipeline gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pressure {
    /// The batch's size can cause it (memory, the lock table, `temp_file_limit`): write the
    /// halves separately; only a single event that still fails makes the batch temporary.
    Split,
    /// The server is short of something one batch doesn't change (disk, connections, a lock
    /// held by someone else): retry the batch, but not before this long.
    Wait(Duration),
}

/// The reaction to a SQLSTATE, for the codes that say the server is short of something
/// (class 53) or a lock could not be had (class 55); `None` for every other code.
pub(crate) fn pressure(code: &str) -> Option<Pressure> {
    match code {
        // out_of_memory, which is also "out of shared memory" when the lock table is full.
        "53200" => Some(Pressure::Split),
        // configuration_limit_exceeded: temp_file_limit, max_locks_per_transaction, …
        "53400" => Some(Pressure::Split),
        // disk_full: nothing to do but wait for space.
        "53100" => Some(Pressure::Wait(Duration::from_secs(60))),
        // too_many_connections: the server is full of clients; back off for longer than the
        // pipeline's first retries so as not to add to the crowd.
        "53300" => Some(Pressure::Wait(Duration::from_secs(5))),
        // insufficient_resources and any future code of the class.
        c if c.starts_with("53") => Some(Pressure::Wait(Duration::from_secs(10))),
        // lock_not_available (lock_timeout, NOWAIT) and object_in_use.
        "55P03" | "55006" => Some(Pressure::Wait(Duration::from_secs(1))),
        _ => None,
    }
}

/// The wait to ask the pipeline for before retrying a batch that failed with `code`.
pub(crate) fn retry_after(code: &str) -> Option<Duration> {
    match pressure(code)? {
        Pressure::Wait(d) => Some(d),
        Pressure::Split => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{class_of, Class};

    #[test]
    fn class_53_is_never_a_blind_retry() {
        // Every insufficient-resources code is temporary for the batch as a whole (it is not
        // the data's fault) and has a reaction beyond "retry the same batch at once".
        for (code, reaction) in [
            ("53000", Pressure::Wait(Duration::from_secs(10))), // insufficient_resources
            ("53100", Pressure::Wait(Duration::from_secs(60))), // disk_full
            ("53200", Pressure::Split),                         // out_of_memory
            ("53300", Pressure::Wait(Duration::from_secs(5))),  // too_many_connections
            ("53400", Pressure::Split),                         // configuration_limit_exceeded
        ] {
            assert_eq!(class_of(code), Class::Temporary, "{code}");
            assert_eq!(pressure(code), Some(reaction), "{code}");
        }
        assert_eq!(retry_after("53300"), Some(Duration::from_secs(5)));
        assert_eq!(retry_after("53200"), None); // split, not waited on
    }

    #[test]
    fn lock_errors_wait_and_deadlocks_retry() {
        for code in ["55P03", "55006"] {
            assert_eq!(class_of(code), Class::Temporary, "{code}");
            assert_eq!(
                pressure(code),
                Some(Pressure::Wait(Duration::from_secs(1))),
                "{code}"
            );
        }
        // A deadlock or serialization failure is about timing, not the batch: the pipeline's
        // own backoff retries it (a bounded number of times).
        for code in ["40P01", "40001"] {
            assert_eq!(class_of(code), Class::Temporary, "{code}");
            assert_eq!(pressure(code), None, "{code}");
        }
        // Data errors and others have no resource reaction.
        for code in ["22P05", "23505", "54000", "42P01", "08006", "57P01"] {
            assert_eq!(pressure(code), None, "{code}");
        }
    }

    #[test]
    fn the_range_follows_retention() {
        let day = Duration::from_secs(86_400);
        let us = |d: Duration| d.as_micros() as i64;
        assert_eq!(TimeRange::new().resolve(None).back_us, us(DEFAULT_MAX_AGE));
        assert_eq!(TimeRange::new().resolve(Some(day)).back_us, us(day));
        // An explicit age never goes past the retention.
        let r = TimeRange::new().max_age(10 * day);
        assert_eq!(r.resolve(Some(3 * day)).back_us, us(3 * day));
        assert_eq!(r.resolve(Some(30 * day)).back_us, us(10 * day));
        assert_eq!(r.resolve(None).back_us, us(10 * day));
        // Huge durations don't overflow.
        let w = TimeRange::new()
            .max_age(Duration::MAX)
            .max_ahead(Duration::MAX)
            .resolve(None);
        assert_eq!(w.check(0, 1_000), Ok(()));
        assert_eq!(w.check(i64::MAX / 8, 1_000), Ok(()));
    }

    #[test]
    fn the_window_checks_both_ends() {
        let w = TimeRange::new()
            .max_age(Duration::from_secs(60))
            .max_ahead(Duration::from_secs(10))
            .resolve(None);
        let now = 1_000_000_000_000;
        assert_eq!(w.check(now, now), Ok(()));
        assert_eq!(w.check(now - 60_000_000, now), Ok(()));
        assert_eq!(w.check(now - 60_000_001, now), Err("too_old"));
        assert_eq!(w.check(now + 10_000_000, now), Ok(()));
        assert_eq!(w.check(now + 10_000_001, now), Err("too_far_in_future"));
        assert_eq!(w.check(0, now), Err("too_old"));
        assert_eq!(w.outside, OutOfRange::Reject);
    }
}
