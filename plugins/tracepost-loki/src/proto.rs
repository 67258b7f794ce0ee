//! The protobuf messages of Loki's push API, written by hand with `prost` derives.
//!
//! They mirror `pkg/push/push.proto` of grafana/loki (package `logproto`):
//!
//! ```text
//! message PushRequest      { repeated StreamAdapter streams = 1; string format = 2; }
//! message StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! message EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                            repeated LabelPairAdapter structuredMetadata = 3;
//!                            repeated LabelPairAdapter parsed = 4; /* query path only */ }
//! message LabelPairAdapter { string name = 1; string value = 2; }
//! // google/protobuf/timestamp.proto
//! message Timestamp        { int64 seconds = 1; int32 nanos = 2; }
//! ```
//!
//! `format` (server-side only: `loki` or `otlp`), `hash` (Loki fills it in) and `parsed` (query
//! responses only) are not sent by clients; `hash` is kept so that decoding round-trips.
//! The body of `POST /loki/api/v1/push` is a `PushRequest`, compressed as one raw snappy block
//! (not the framed format), with `Content-Type: application/x-protobuf`.

/// The body of a push: streams of entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// One element per label set.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// One stream: its labels (Prometheus form, `{a="b", c="d"}`) and its entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set, e.g. `{kind="error", level="error", service="shop-api"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The entries, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Filled in by Loki; clients leave it 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// One log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When it happened (always set: Loki treats the field as non-nullable).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Per-entry, non-indexed key/value pairs (Loki ≥ 2.9).
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// A name/value pair of structured metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The name (a valid label name).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// From nanoseconds since the Unix epoch.
    pub fn from_unix_nanos(nanos: u64) -> Self {
        Timestamp {
            seconds: (nanos / 1_000_000_000) as i64,
            nanos: (nanos % 1_000_000_000) as i32,
        }
    }

    /// Nanoseconds since the Unix epoch (0 before it).
    pub fn unix_nanos(&self) -> u64 {
        if self.seconds < 0 {
            return 0;
        }
        self.seconds as u64 * 1_000_000_000 + self.nanos.max(0) as u64
    }
}
