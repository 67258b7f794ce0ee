//! The window in which a client's timestamps are believed.
//!
//! A browser with a wrong clock, a log line stamped `0` or a record from the year 2500 would
//! otherwise sort an event out of every time-bounded query (and out of retention). Each
//! route checks the time an event claims against the server's receive time: within
//! [`MAX_AGE`] before it and [`MAX_AHEAD`] after it, the client's time is kept; outside, the
//! event gets the receive time and keeps what the client sent in the attribute
//! [`CLIENT_TIMESTAMP`].

use std::time::Duration;

use serde_json::{Map, Value};
use tracepost_core::Timestamp;

/// How far in the past a client's timestamp is believed: 7 days (a client that buffered
/// while offline, a collector replaying its queue).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far in the future a client's timestamp is believed: 5 minutes of clock skew (the
/// signature tolerance of the log routes).
pub const MAX_AHEAD: Duration = Duration::from_secs(300);
/// The attribute that keeps a timestamp the server did not believe, as the client sent it
/// (the browser's `ts` in ms, the batch's `timestamp`, OTLP's `timeUnixNano` as a string).
pub const CLIENT_TIMESTAMP: &str = "client.timestamp";

/// `claimed` (ns since the epoch) if it is within the window around `received`, else
/// `None`.
pub fn believe(claimed_ns: u64, received: Timestamp) -> Option<Timestamp> {
    let r = received.unix_nanos();
    let earliest = r.saturating_sub(MAX_AGE.as_nanos() as u64);
    let latest = r.saturating_add(MAX_AHEAD.as_nanos() as u64);
    (earliest..=latest)
        .contains(&claimed_ns)
        .then(|| Timestamp::from_unix_nanos(claimed_ns))
}

/// The time to give an event that claims `claimed_ns`: the claim when believed, else
/// `received` with `as_sent` kept in `attributes` under [`CLIENT_TIMESTAMP`].
pub fn settle(
    claimed_ns: u64,
    received: Timestamp,
    as_sent: Value,
    attributes: &mut Map<String, Value>,
) -> Timestamp {
    believe(claimed_ns, received).unwrap_or_else(|| {
        attributes.insert(CLIENT_TIMESTAMP.into(), as_sent);
        received
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_around_the_receive_time() {
        let now = Timestamp::now();
        let n = now.unix_nanos();
        assert!(believe(n, now).is_some());
        assert!(believe(n - 3600 * 1_000_000_000, now).is_some());
        assert!(believe(0, now).is_none());
        assert!(believe(n + 3600 * 1_000_000_000, now).is_none());
        let mut a = Map::new();
        assert_eq!(settle(0, now, 0.into(), &mut a), now);
        assert_eq!(a[CLIENT_TIMESTAMP], 0);
    }
}
