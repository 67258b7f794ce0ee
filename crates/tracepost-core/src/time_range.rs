//! The range of event timestamps a store accepts, and what happens to events outside it —
//! the same rules in every store (Postgres, SQLite), modelled on Loki's
//! `reject_old_samples_max_age` and `creation_grace_period`.
//!
//! ```
//! use std::time::Duration;
//! use tracepost_core::time_range::{OutOfRange, TimeRange};
//!
//! let range = TimeRange::new()
//!     .max_age(Duration::from_secs(7 * 86_400))
//!     .outside(OutOfRange::Restamp);
//! let window = range.resolve(None);
//! let now_us = 1_800_000_000_000_000;
//! assert_eq!(window.check(now_us - 8 * 86_400_000_000, now_us), Err("too_old"));
//! ```

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

/// What happens to an event whose timestamp is outside the accepted [`TimeRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutOfRange {
    /// Refuse the event: the store returns it in
    /// [`SinkOutcome::rejected`](crate::SinkOutcome) with the reason `too_old` or
    /// `too_far_in_future`, counted by reason (the default, as Loki does).
    #[default]
    Reject,
    /// Store the event under the time it was received, with its own timestamp kept in the
    /// attribute [`ORIGINAL_TIMESTAMP_ATTRIBUTE`].
    Restamp,
}

/// The range of event timestamps the store accepts, relative to the clock of the process
/// writing: from `max_age` ago to `max_ahead` from now. The Postgres and SQLite sinks take it
/// with their builders' `time_range`. In Postgres each accepted day gets its own partitions, so
/// the range also bounds how many partitions that sink can ever create.
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

    /// The range in microseconds, given the store's retention (an event older than the
    /// retention is never accepted: it would be deleted at once).
    pub fn resolve(self, retention: Option<Duration>) -> TimeWindow {
        let back = match (self.max_age, retention) {
            (Some(a), Some(r)) => a.min(r),
            (Some(a), None) => a,
            (None, Some(r)) => r,
            (None, None) => DEFAULT_MAX_AGE,
        };
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
        TimeWindow {
            back_us: micros(back).min(i64::MAX / 4),
            ahead_us: micros(self.max_ahead).min(i64::MAX / 4),
            outside: self.outside,
        }
    }
}

/// A resolved [`TimeRange`]: microseconds back and ahead of "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// How far back events are accepted, in µs.
    pub back_us: i64,
    /// How far ahead events are accepted, in µs.
    pub ahead_us: i64,
    /// What happens to the others.
    pub outside: OutOfRange,
}

impl TimeWindow {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_checks_both_ends_and_follows_retention() {
        let w = TimeRange::new()
            .max_age(Duration::from_secs(60))
            .max_ahead(Duration::from_secs(10))
            .resolve(None);
        let now = 1_000_000_000_000;
        assert_eq!(w.check(now - 60_000_000, now), Ok(()));
        assert_eq!(w.check(now - 60_000_001, now), Err("too_old"));
        assert_eq!(w.check(now + 10_000_000, now), Ok(()));
        assert_eq!(w.check(now + 10_000_001, now), Err("too_far_in_future"));
        let day = Duration::from_secs(86_400);
        let us = |d: Duration| d.as_micros() as i64;
        assert_eq!(TimeRange::new().resolve(None).back_us, us(DEFAULT_MAX_AGE));
        assert_eq!(TimeRange::new().resolve(Some(day)).back_us, us(day));
        assert_eq!(
            TimeRange::new()
                .max_age(10 * day)
                .resolve(Some(3 * day))
                .back_us,
            us(3 * day)
        );
        let w = TimeRange::new()
            .max_age(Duration::MAX)
            .max_ahead(Duration::MAX)
            .resolve(None);
        assert_eq!(w.check(0, 1_000), Ok(()));
    }
}
