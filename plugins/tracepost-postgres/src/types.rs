//! Wire types: timestamps and pre-serialised JSON in Postgres' binary format.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tracepost_core::Timestamp;

/// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` as microseconds since 2000-01-01 UTC (Postgres' own representation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PgTs(pub i64);

impl PgTs {
    /// The timestamp, and the nanoseconds below the microsecond that Postgres can't hold.
    pub fn split(ts: Timestamp) -> (PgTs, i16) {
        let nanos = ts.unix_nanos();
        let micros = (nanos / 1000) as i64;
        (PgTs(micros - PG_EPOCH_MICROS), (nanos % 1000) as i16)
    }

    pub fn from_unix_micros(micros: i64) -> PgTs {
        PgTs(micros - PG_EPOCH_MICROS)
    }

    pub fn unix_micros(self) -> i64 {
        self.0 + PG_EPOCH_MICROS
    }

    /// Back to a [`Timestamp`], adding the sub-microsecond nanoseconds.
    pub fn join(self, ns: i16) -> Timestamp {
        let micros = self.unix_micros().max(0) as u64;
        Timestamp::from_unix_nanos(micros * 1000 + ns.clamp(0, 999) as u64)
    }
}

impl ToSql for PgTs {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_i64(self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTs {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let b: [u8; 8] = raw.try_into().map_err(|_| "bad timestamptz length")?;
        Ok(PgTs(i64::from_be_bytes(b)))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }
}

/// Already-serialised JSON sent as `jsonb` (or `json`).
#[derive(Debug, Clone)]
pub(crate) struct Json(pub String);

impl ToSql for Json {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Json {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let raw = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb version".into()),
            }
        } else {
            raw
        };
        Ok(Json(std::str::from_utf8(raw)?.to_owned()))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// Days since the Unix epoch of a time in microseconds since the Unix epoch.
pub(crate) fn day_of(unix_micros: i64) -> i64 {
    unix_micros.div_euclid(86_400_000_000)
}

/// `(year, month, day)` of a day number (days since 1970-01-01), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number of a `(year, month, day)`.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYYMMDD` of a day number.
pub(crate) fn day_suffix(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}{m:02}{d:02}")
}

/// `YYYY-MM-DD 00:00:00+00` of a day number, for partition bounds.
pub(crate) fn day_literal(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02} 00:00:00+00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for day in [-1000, -1, 0, 1, 59, 60, 10_957, 20_415, 20_780, 100_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day, "{y}-{m}-{d}");
        }
        assert_eq!(day_suffix(0), "19700101");
        assert_eq!(day_suffix(20_415), "20251123");
        assert_eq!(day_literal(10_957), "2000-01-01 00:00:00+00");
    }

    #[test]
    fn timestamp_split_join() {
        let ts = Timestamp::from_unix_nanos(1_763_899_200_123_456_789);
        let (pg, ns) = PgTs::split(ts);
        assert_eq!(ns, 789);
        assert_eq!(pg.join(ns), ts);
        assert_eq!(pg.unix_micros(), 1_763_899_200_123_456);
    }
}
