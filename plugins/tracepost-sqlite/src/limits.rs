//! The accepted time range: core's [`tracepost_core::time_range`], the one type the Postgres
//! sink uses too, so both stores accept the same events with the same rejection reasons.

pub(crate) use tracepost_core::time_range::TimeWindow as Window;
pub use tracepost_core::time_range::{
    OutOfRange, TimeRange, DEFAULT_MAX_AGE, DEFAULT_MAX_AHEAD, ORIGINAL_TIMESTAMP_ATTRIBUTE,
};
