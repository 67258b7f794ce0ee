//! What the store accepts, and how much work one batch may make the server do: the accepted
//! time range, the partition budget, and how the write path reacts to the SQLSTATEs that say
//! the server is short of something.

use std::time::Duration;

pub(crate) use tracepost_core::time_range::TimeWindow as Window;
pub use tracepost_core::time_range::{
    OutOfRange, TimeRange, DEFAULT_MAX_AGE, DEFAULT_MAX_AHEAD, ORIGINAL_TIMESTAMP_ATTRIBUTE,
};

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
