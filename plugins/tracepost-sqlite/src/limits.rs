//! The accepted time range: the same rules, defaults and rejection reasons as the Postgres
//! sink's (`tracepost_postgres::TimeRange`), so both stores accept the same events.

use std::time::Duration;

/// How far back events are accepted when neither [`TimeRange::max_age`] nor a retention is
/// set: 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// How far ahead of the receiving clock events are accepted by default: 10 minutes.
pub const DEFAULT_MAX_AHEAD: Duration = Duration::from_secs(600);

/// The attribute that keeps an event's own timestamp when [`OutOfRange::Restamp`] stores it
/// under the time it was received (RFC 3339 with nanoseconds).
pub const ORIGINAL_TIMESTAMP_ATTRIBUTE: &str = "tracepost.original_timestamp";

/// What happens to an event whose timestamp is outside the accepted [`TimeRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutOfRange {
    /// Refuse the event: it is returned in [`SinkOutcome::rejected`](tracepost_core::SinkOutcome)
    /// with the reason `too_old` or `too_far_in_future` (the default).
    #[default]
    Reject,
    /// Store the event under the time it was received, with its own timestamp kept in the
    /// attribute [`ORIGINAL_TIMESTAMP_ATTRIBUTE`].
    Restamp,
}

/// The range of event timestamps the store accepts, relative to the writing process's
/// clock: from `max_age` ago (never more than the retention) to `max_ahead` from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    max_age: Option<Duration>,
    max_ahead: Option<Duration>,
    outside: OutOfRange,
}

impl TimeRange {
    /// The default: back to the retention (or [`DEFAULT_MAX_AGE`] without one), ahead by
    /// [`DEFAULT_MAX_AHEAD`], events outside rejected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept events up to this old (never more than the retention).
    #[must_use]
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// Accept events up to this far ahead of the receiving clock.
    #[must_use]
    pub fn max_ahead(mut self, d: Duration) -> Self {
        self.max_ahead = Some(d);
        self
    }

    /// What to do with events outside the range (default [`OutOfRange::Reject`]).
    #[must_use]
    pub fn outside(mut self, policy: OutOfRange) -> Self {
        self.outside = policy;
        self
    }

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
            ahead_us: micros(self.max_ahead.unwrap_or(DEFAULT_MAX_AHEAD)).min(i64::MAX / 4),
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
