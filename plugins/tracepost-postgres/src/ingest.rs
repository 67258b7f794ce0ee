//! The write path: events → staging table (binary COPY or multi-row INSERT) → one statement
//! that inserts into the partitioned tables with `ON CONFLICT DO NOTHING` and updates issues
//! from the rows actually inserted.

use std::borrow::Cow;
use std::collections::HashSet;
use std::error::Error;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tracepost_core::replay_index::{fold_entries, ReplayIndexEntry};
use tracepost_core::{Event, Rejection};
use uuid::Uuid;

use crate::error::{classify, describe, is_missing_partition, Class};
use crate::limits::{pressure, OutOfRange, Pressure, Window, ORIGINAL_TIMESTAMP_ATTRIBUTE};
use crate::types::{Json, PgTs};

/// How batches are written. All three store the same rows; they differ in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestMethod {
    /// Binary `COPY` straight into the tables, in one transaction with the issue counts
    /// (the default and the fastest). When the batch holds an event that is already stored
    /// (a redelivery), the `COPY` fails as a whole on the primary key and the batch is
    /// written again with [`CopyMerge`](Self::CopyMerge).
    #[default]
    Copy,
    /// Binary `COPY` into a per-connection temporary table, then one statement that inserts
    /// with `ON CONFLICT DO NOTHING` and counts issues from the rows actually inserted.
    CopyMerge,
    /// Like `CopyMerge`, but filling the temporary table with multi-row
    /// `INSERT … VALUES (…), (…)`: the baseline the benchmark compares against.
    MultiRowInsert,
}

/// The name of the per-connection temporary staging table.
pub(crate) const STAGE: &str = "tracepost_stage";

/// Staging columns: the events columns, then the request snapshot's, then the metric window's.
const COLS: [(&str, &str); 51] = [
    ("id", "uuid"),
    ("timestamp", "timestamptz"),
    ("timestamp_ns", "int2"),
    ("kind", "text"),
    ("level", "text"),
    ("service", "text"),
    ("environment", "text"),
    ("release", "text"),
    ("host", "text"),
    ("trace_id", "text"),
    ("span_id", "text"),
    ("request_id", "text"),
    ("session_id", "text"),
    ("user_id", "text"),
    ("message", "text"),
    ("fingerprint", "text"),
    ("attributes", "jsonb"),
    ("error_type", "text"),
    ("error_message", "text"),
    ("error_backtrace", "text"),
    ("error_location", "text"),
    ("breadcrumbs", "jsonb"),
    ("schema_version", "int4"),
    ("span", "jsonb"),
    // request snapshot
    ("req_method", "text"),
    ("req_route", "text"),
    ("req_path", "text"),
    ("req_query", "text"),
    ("req_status", "int4"),
    ("req_duration_ms", "float8"),
    ("req_request_bytes", "int8"),
    ("req_response_bytes", "int8"),
    ("req_client_address", "text"),
    ("req_http_version", "text"),
    ("req_request_headers", "jsonb"),
    ("req_response_headers", "jsonb"),
    ("req_request_body", "jsonb"),
    ("req_response_body", "jsonb"),
    // metric window
    ("m_start", "timestamptz"),
    ("m_start_ns", "int2"),
    ("m_seconds", "int4"),
    ("m_method", "text"),
    ("m_route", "text"),
    ("m_count", "int8"),
    ("m_errors", "int8"),
    ("m_p50_ms", "float8"),
    ("m_p95_ms", "float8"),
    ("m_p99_ms", "float8"),
    ("m_max_ms", "float8"),
    ("m_bytes_in", "int8"),
    ("m_bytes_out", "int8"),
];

/// Number of `events` columns at the start of [`COLS`].
const EVENT_COLS: usize = 24;

const TYPES: [Type; 51] = {
    const T: Type = Type::TEXT;
    [
        Type::UUID,
        Type::TIMESTAMPTZ,
        Type::INT2,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        Type::JSONB,
        T,
        T,
        T,
        T,
        Type::JSONB,
        Type::INT4,
        Type::JSONB,
        // request
        T,
        T,
        T,
        T,
        Type::INT4,
        Type::FLOAT8,
        Type::INT8,
        Type::INT8,
        T,
        T,
        Type::JSONB,
        Type::JSONB,
        Type::JSONB,
        Type::JSONB,
        // metric
        Type::TIMESTAMPTZ,
        Type::INT2,
        Type::INT4,
        T,
        T,
        Type::INT8,
        Type::INT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::INT8,
        Type::INT8,
    ]
};

/// `request_snapshots` columns, and where each comes from in [`COLS`].
const REQ_COLS: [(&str, usize); 18] = [
    ("event_id", 0),
    ("timestamp", 1),
    ("service", 5),
    ("user_id", 13),
    ("method", 24),
    ("route", 25),
    ("path", 26),
    ("query", 27),
    ("status", 28),
    ("duration_ms", 29),
    ("request_bytes", 30),
    ("response_bytes", 31),
    ("client_address", 32),
    ("http_version", 33),
    ("request_headers", 34),
    ("response_headers", 35),
    ("request_body", 36),
    ("response_body", 37),
];

/// `metric_windows` columns, and where each comes from in [`COLS`].
const MET_COLS: [(&str, usize); 17] = [
    ("event_id", 0),
    ("timestamp", 1),
    ("start", 38),
    ("start_ns", 39),
    ("seconds", 40),
    ("service", 5),
    ("environment", 6),
    ("method", 41),
    ("route", 42),
    ("count", 43),
    ("errors", 44),
    ("p50_ms", 45),
    ("p95_ms", 46),
    ("p99_ms", 47),
    ("max_ms", 48),
    ("bytes_in", 49),
    ("bytes_out", 50),
];

fn direct_copy_sql(schema: &str, table: &str, cols: &[&str]) -> String {
    format!(
        "COPY {schema}.{table} ({}) FROM STDIN (FORMAT binary)",
        cols.join(", ")
    )
}

/// `CREATE TEMP TABLE` for the staging table (run once per connection).
pub(crate) fn stage_ddl() -> String {
    let cols: Vec<String> = COLS.iter().map(|(n, t)| format!("{n} {t}")).collect();
    format!(
        "CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({}) ON COMMIT DELETE ROWS",
        cols.join(", ")
    )
}

pub(crate) fn copy_sql() -> String {
    let cols: Vec<&str> = COLS.iter().map(|(n, _)| *n).collect();
    format!(
        "COPY {STAGE} ({}) FROM STDIN (FORMAT binary)",
        cols.join(", ")
    )
}

fn insert_sql(rows: usize) -> String {
    let cols: Vec<&str> = COLS.iter().map(|(n, _)| *n).collect();
    let mut sql = format!("INSERT INTO {STAGE} ({}) VALUES ", cols.join(", "));
    let mut p = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLS.len() {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&p.to_string());
            p += 1;
        }
        sql.push(')');
    }
    sql
}

/// The statement that moves the staged rows into the schema's tables.
pub(crate) fn merge_sql(schema: &str) -> String {
    let event_cols: Vec<&str> = COLS[..EVENT_COLS].iter().map(|(n, _)| *n).collect();
    let event_cols = event_cols.join(", ");
    format!(
        "WITH ins AS (
    INSERT INTO {schema}.events ({event_cols})
    SELECT {event_cols} FROM {STAGE}
    ON CONFLICT DO NOTHING
    RETURNING id, timestamp, kind, level, service, message, fingerprint, error_type
), req AS (
    INSERT INTO {schema}.request_snapshots (event_id, timestamp, service, user_id, method, route, path,
        query, status, duration_ms, request_bytes, response_bytes, client_address, http_version,
        request_headers, response_headers, request_body, response_body)
    SELECT s.id, s.timestamp, s.service, s.user_id, s.req_method, s.req_route, s.req_path, s.req_query,
        s.req_status, s.req_duration_ms, s.req_request_bytes, s.req_response_bytes,
        s.req_client_address, s.req_http_version, s.req_request_headers, s.req_response_headers,
        s.req_request_body, s.req_response_body
    FROM {STAGE} s JOIN ins ON ins.id = s.id AND ins.timestamp = s.timestamp
    WHERE s.req_method IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
), met AS (
    INSERT INTO {schema}.metric_windows (event_id, timestamp, start, start_ns, seconds, service,
        environment, method, route, count, errors, p50_ms, p95_ms, p99_ms, max_ms, bytes_in,
        bytes_out)
    SELECT s.id, s.timestamp, s.m_start, s.m_start_ns, s.m_seconds, s.service, s.environment,
        s.m_method, s.m_route, s.m_count, s.m_errors, s.m_p50_ms, s.m_p95_ms, s.m_p99_ms,
        s.m_max_ms, s.m_bytes_in, s.m_bytes_out
    FROM {STAGE} s JOIN ins ON ins.id = s.id AND ins.timestamp = s.timestamp
    WHERE s.m_start IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
), iss AS (
    INSERT INTO {schema}.issue_deltas (fingerprint, service, error_type, title, first_seen,
        last_seen, count, last_event_id)
    SELECT fingerprint,
        (array_agg(service ORDER BY timestamp DESC, id DESC))[1],
        (array_agg(error_type ORDER BY timestamp DESC, id DESC))[1],
        (array_agg(message ORDER BY timestamp DESC, id DESC))[1],
        min(timestamp), max(timestamp), count(*),
        (array_agg(id ORDER BY timestamp DESC, id DESC))[1]
    FROM ins
    WHERE kind = 'error' AND fingerprint IS NOT NULL
    GROUP BY fingerprint
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM req), (SELECT count(*) FROM met),
       (SELECT count(*) FROM iss),
       (SELECT coalesce(array_agg(id), '{{}}') FROM ins WHERE kind = 'replay')"
    )
}

/// Folds the pending per-batch issue counts into `issues`. Each delta row is deleted and
/// counted exactly once, even with concurrent folds (a row deleted by another fold is
/// skipped); the short transaction keeps row locks on `issues` brief.
pub(crate) fn fold_sql(schema: &str) -> String {
    let newer = "(EXCLUDED.last_seen, EXCLUDED.last_event_id) >= (i.last_seen, i.last_event_id)";
    format!(
        "WITH d AS (
    DELETE FROM {schema}.issue_deltas RETURNING *
), agg AS (
    SELECT fingerprint,
        (array_agg(service ORDER BY last_seen DESC, last_event_id DESC))[1] AS service,
        (array_agg(error_type ORDER BY last_seen DESC, last_event_id DESC))[1] AS error_type,
        (array_agg(title ORDER BY last_seen DESC, last_event_id DESC))[1] AS title,
        min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(count)::bigint AS count,
        (array_agg(last_event_id ORDER BY last_seen DESC, last_event_id DESC))[1] AS last_event_id
    FROM d GROUP BY fingerprint
)
INSERT INTO {schema}.issues AS i (fingerprint, service, error_type, title, first_seen, last_seen,
    count, last_event_id)
SELECT fingerprint, service, error_type, title, first_seen, last_seen, count, last_event_id
FROM agg ORDER BY fingerprint
ON CONFLICT (fingerprint) DO UPDATE SET
    count = i.count + EXCLUDED.count,
    first_seen = LEAST(i.first_seen, EXCLUDED.first_seen),
    last_event_id = CASE WHEN {newer} THEN EXCLUDED.last_event_id ELSE i.last_event_id END,
    title = CASE WHEN {newer} THEN EXCLUDED.title ELSE i.title END,
    error_type = CASE WHEN {newer} THEN EXCLUDED.error_type ELSE i.error_type END,
    service = CASE WHEN {newer} THEN EXCLUDED.service ELSE i.service END,
    last_seen = GREATEST(i.last_seen, EXCLUDED.last_seen),
    status = CASE WHEN i.status = 'resolved' THEN 'unresolved' ELSE i.status END,
    regressed_at = CASE WHEN i.status = 'resolved' THEN EXCLUDED.last_seen ELSE i.regressed_at END,
    updated_at = now()"
    )
}

/// One event flattened into staging columns, borrowing its strings.
pub(crate) struct StageRow<'a> {
    pub id: Uuid,
    pub ts: PgTs,
    ts_ns: i16,
    kind: &'static str,
    level: &'static str,
    service: &'a str,
    environment: Option<&'a str>,
    release: Option<&'a str>,
    host: Option<&'a str>,
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    request_id: Option<&'a str>,
    session_id: Option<&'a str>,
    user_id: Option<&'a str>,
    message: &'a str,
    fingerprint: Option<&'a str>,
    attributes: Json,
    error_type: Option<&'a str>,
    error_message: Option<&'a str>,
    error_backtrace: Option<&'a str>,
    error_location: Option<&'a str>,
    breadcrumbs: Option<Json>,
    schema_version: i32,
    span: Option<Json>,
    req_method: Option<&'a str>,
    req_route: Option<&'a str>,
    req_path: Option<&'a str>,
    req_query: Option<&'a str>,
    req_status: Option<i32>,
    req_duration_ms: Option<f64>,
    req_request_bytes: Option<i64>,
    req_response_bytes: Option<i64>,
    req_client_address: Option<&'a str>,
    req_http_version: Option<&'a str>,
    req_request_headers: Option<Json>,
    req_response_headers: Option<Json>,
    req_request_body: Option<Json>,
    req_response_body: Option<Json>,
    m_start: Option<PgTs>,
    m_start_ns: Option<i16>,
    m_seconds: Option<i32>,
    m_method: Option<&'a str>,
    m_route: Option<&'a str>,
    m_count: Option<i64>,
    m_errors: Option<i64>,
    m_p50_ms: Option<f64>,
    m_p95_ms: Option<f64>,
    m_p99_ms: Option<f64>,
    m_max_ms: Option<f64>,
    m_bytes_in: Option<i64>,
    m_bytes_out: Option<i64>,
    /// What a replay event adds to the replay index (not a staging column).
    pub replay: Option<ReplayIndexEntry>,
}

/// Why an event can't be stored, found before it reaches the server.
fn reject(event: &Event, reason: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection {
        id: event.id,
        reason: Cow::Borrowed(reason),
        detail: detail.into(),
    }
}

fn has_nul(s: &str) -> bool {
    s.as_bytes().contains(&0)
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| has_nul(k) || value_has_nul(v)),
        _ => false,
    }
}

fn to_i64(event: &Event, field: &str, v: u64) -> Result<i64, Rejection> {
    i64::try_from(v).map_err(|_| {
        reject(
            event,
            "out_of_range",
            format!("{field} = {v} exceeds bigint"),
        )
    })
}

fn json<T: serde::Serialize + ?Sized>(event: &Event, v: &T) -> Result<Json, Rejection> {
    serde_json::to_string(v)
        .map(Json)
        .map_err(|e| reject(event, "invalid_data", e.to_string()))
}

/// Whether any text of the event holds a NUL character, which Postgres can't store.
pub(crate) fn event_has_nul(e: &Event) -> bool {
    let texts = [
        Some(e.message.as_str()),
        Some(e.resource.service.as_str()),
        e.resource.environment.as_deref(),
        e.resource.release.as_deref(),
        e.resource.host.as_deref(),
        e.trace_id.as_deref(),
        e.span_id.as_deref(),
        e.request_id.as_deref(),
        e.session_id.as_deref(),
        e.user_id.as_deref(),
        e.fingerprint.as_deref(),
    ];
    let mut nul = texts.iter().flatten().any(|s| has_nul(s))
        || e.attributes
            .iter()
            .any(|(k, v)| has_nul(k) || value_has_nul(v))
        || e.breadcrumbs
            .iter()
            .any(|b| has_nul(&b.message) || has_nul(&b.target))
        || e.span
            .as_ref()
            .is_some_and(|s| has_nul(&s.name) || s.parent_span_id.as_deref().is_some_and(has_nul));
    if let Some(err) = &e.error {
        nul |= has_nul(&err.error_type)
            || has_nul(&err.message)
            || err.backtrace.as_deref().is_some_and(has_nul)
            || err.location.as_deref().is_some_and(has_nul);
    }
    if let Some(r) = &e.request {
        let body_nul = |b: &Option<tracepost_core::CapturedBody>| {
            b.as_ref().is_some_and(|b| {
                has_nul(&b.text)
                    || has_nul(&b.encoding)
                    || b.content_type.as_deref().is_some_and(has_nul)
            })
        };
        nul |= [&r.method, &r.route, &r.path].iter().any(|s| has_nul(s))
            || r.query.as_deref().is_some_and(has_nul)
            || r.client_address.as_deref().is_some_and(has_nul)
            || r.http_version.as_deref().is_some_and(has_nul)
            || r.request_headers
                .iter()
                .chain(&r.response_headers)
                .any(|(k, v)| has_nul(k) || has_nul(v))
            || body_nul(&r.request_body)
            || body_nul(&r.response_body);
    }
    if let Some(m) = &e.metric {
        nul |= has_nul(&m.method) || has_nul(&m.route);
    }
    nul
}

/// `e` as Postgres can store it: unchanged when it holds no NUL character, else with every
/// NUL (in any text, key or value, at any depth) replaced by U+FFFD — Postgres can't store
/// NUL, and losing the event (or a span out of a kept trace) for one character would be worse
/// than marking it. Refused (`nul_byte`) only when that replacement fails.
pub(crate) fn nul_free(e: &Arc<Event>) -> Result<Arc<Event>, Rejection> {
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(o) => {
                let taken = std::mem::take(o);
                for (k, mut v) in taken {
                    scrub(&mut v);
                    o.insert(k.replace('\0', "\u{fffd}"), v);
                }
            }
            _ => {}
        }
    }
    if !event_has_nul(e) {
        return Ok(e.clone());
    }
    serde_json::to_value(&**e)
        .ok()
        .and_then(|mut v| {
            scrub(&mut v);
            serde_json::from_value(v).ok()
        })
        .map(Arc::new)
        .ok_or_else(|| {
            reject(
                e,
                "nul_byte",
                "text contains a NUL character, which Postgres can't store, and replacing it failed",
            )
        })
}

impl<'a> StageRow<'a> {
    /// Flattens an event, refusing what Postgres would refuse anyway (integers beyond
    /// `bigint`) without a round trip. Events reach it free of NUL characters ([`nul_free`]).
    pub fn new(e: &'a Event) -> Result<Self, Rejection> {
        let (ts, ts_ns) = PgTs::split(e.timestamp);
        let mut row = StageRow {
            id: e.id,
            ts,
            ts_ns,
            kind: e.kind.as_str(),
            level: e.level.as_str(),
            service: &e.resource.service,
            environment: e.resource.environment.as_deref(),
            release: e.resource.release.as_deref(),
            host: e.resource.host.as_deref(),
            trace_id: e.trace_id.as_deref(),
            span_id: e.span_id.as_deref(),
            request_id: e.request_id.as_deref(),
            session_id: e.session_id.as_deref(),
            user_id: e.user_id.as_deref(),
            message: &e.message,
            fingerprint: e.fingerprint.as_deref(),
            attributes: json(e, &e.attributes)?,
            error_type: None,
            error_message: None,
            error_backtrace: None,
            error_location: None,
            breadcrumbs: None,
            schema_version: i32::try_from(e.schema).unwrap_or(i32::MAX),
            span: None,
            req_method: None,
            req_route: None,
            req_path: None,
            req_query: None,
            req_status: None,
            req_duration_ms: None,
            req_request_bytes: None,
            req_response_bytes: None,
            req_client_address: None,
            req_http_version: None,
            req_request_headers: None,
            req_response_headers: None,
            req_request_body: None,
            req_response_body: None,
            m_start: None,
            m_start_ns: None,
            m_seconds: None,
            m_method: None,
            m_route: None,
            m_count: None,
            m_errors: None,
            m_p50_ms: None,
            m_p95_ms: None,
            m_p99_ms: None,
            m_max_ms: None,
            m_bytes_in: None,
            m_bytes_out: None,
            replay: ReplayIndexEntry::from_event(e),
        };
        if let Some(err) = &e.error {
            row.error_type = Some(&err.error_type);
            row.error_message = Some(&err.message);
            row.error_backtrace = err.backtrace.as_deref();
            row.error_location = err.location.as_deref();
        }
        if !e.breadcrumbs.is_empty() {
            row.breadcrumbs = Some(json(e, &e.breadcrumbs)?);
        }
        if let Some(span) = &e.span {
            row.span = Some(json(e, span)?);
        }
        if let Some(r) = &e.request {
            row.req_method = Some(&r.method);
            row.req_route = Some(&r.route);
            row.req_path = Some(&r.path);
            row.req_query = r.query.as_deref();
            row.req_status = Some(i32::from(r.status));
            row.req_duration_ms = Some(r.duration_ms);
            row.req_request_bytes = Some(to_i64(e, "request_bytes", r.request_bytes)?);
            row.req_response_bytes = Some(to_i64(e, "response_bytes", r.response_bytes)?);
            row.req_client_address = r.client_address.as_deref();
            row.req_http_version = r.http_version.as_deref();
            if !r.request_headers.is_empty() {
                row.req_request_headers = Some(json(e, &r.request_headers)?);
            }
            if !r.response_headers.is_empty() {
                row.req_response_headers = Some(json(e, &r.response_headers)?);
            }
            if let Some(b) = &r.request_body {
                row.req_request_body = Some(json(e, b)?);
            }
            if let Some(b) = &r.response_body {
                row.req_response_body = Some(json(e, b)?);
            }
        }
        if let Some(m) = &e.metric {
            let (start, start_ns) = PgTs::split(m.start);
            row.m_start = Some(start);
            row.m_start_ns = Some(start_ns);
            row.m_seconds = Some(
                i32::try_from(m.seconds)
                    .map_err(|_| reject(e, "out_of_range", "metric window seconds"))?,
            );
            row.m_method = Some(&m.method);
            row.m_route = Some(&m.route);
            row.m_count = Some(to_i64(e, "count", m.count)?);
            row.m_errors = Some(to_i64(e, "errors", m.errors)?);
            row.m_p50_ms = Some(m.p50_ms);
            row.m_p95_ms = Some(m.p95_ms);
            row.m_p99_ms = Some(m.p99_ms);
            row.m_max_ms = Some(m.max_ms);
            row.m_bytes_in = Some(to_i64(e, "bytes_in", m.bytes_in)?);
            row.m_bytes_out = Some(to_i64(e, "bytes_out", m.bytes_out)?);
        }
        Ok(row)
    }

    /// Moves the row to `now_us` (Unix microseconds), keeping the event's own timestamp in
    /// the attribute [`ORIGINAL_TIMESTAMP_ATTRIBUTE`].
    fn restamp(&mut self, e: &Event, now_us: i64) -> Result<(), Rejection> {
        let mut attributes = e.attributes.clone();
        attributes.insert(
            ORIGINAL_TIMESTAMP_ATTRIBUTE.to_owned(),
            Value::String(e.timestamp.to_string()),
        );
        self.attributes = json(e, &attributes)?;
        self.ts = PgTs::from_unix_micros(now_us);
        self.ts_ns = 0;
        Ok(())
    }

    fn fields(&self) -> [&(dyn ToSql + Sync); 51] {
        [
            &self.id,
            &self.ts,
            &self.ts_ns,
            &self.kind,
            &self.level,
            &self.service,
            &self.environment,
            &self.release,
            &self.host,
            &self.trace_id,
            &self.span_id,
            &self.request_id,
            &self.session_id,
            &self.user_id,
            &self.message,
            &self.fingerprint,
            &self.attributes,
            &self.error_type,
            &self.error_message,
            &self.error_backtrace,
            &self.error_location,
            &self.breadcrumbs,
            &self.schema_version,
            &self.span,
            &self.req_method,
            &self.req_route,
            &self.req_path,
            &self.req_query,
            &self.req_status,
            &self.req_duration_ms,
            &self.req_request_bytes,
            &self.req_response_bytes,
            &self.req_client_address,
            &self.req_http_version,
            &self.req_request_headers,
            &self.req_response_headers,
            &self.req_request_body,
            &self.req_response_body,
            &self.m_start,
            &self.m_start_ns,
            &self.m_seconds,
            &self.m_method,
            &self.m_route,
            &self.m_count,
            &self.m_errors,
            &self.m_p50_ms,
            &self.m_p95_ms,
            &self.m_p99_ms,
            &self.m_max_ms,
            &self.m_bytes_in,
            &self.m_bytes_out,
        ]
    }
}

/// Encodes rows in the binary COPY format: the fields at `pick` of every row.
fn encode_copy<'r, 'a: 'r>(
    rows: impl Iterator<Item = &'r StageRow<'a>>,
    pick: &[usize],
    capacity: usize,
) -> Result<BytesMut, Box<dyn Error + Sync + Send>> {
    let mut buf = BytesMut::with_capacity(capacity * 400 + 32);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for row in rows {
        let fields = row.fields();
        buf.put_i16(pick.len() as i16);
        for &i in pick {
            let at = buf.len();
            buf.put_i32(0);
            let len = match fields[i].to_sql_checked(&TYPES[i], &mut buf)? {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(buf.len() - at - 4).map_err(|_| "value too large")?,
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    buf.put_i16(-1);
    Ok(buf)
}

/// What one successful write did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub events: u64,
    pub requests: u64,
    pub metrics: u64,
    pub issues: u64,
}

/// Folds a batch's replay entries into `replay_sessions` (the rules of
/// `tracepost_core::replay_index`; the batch is pre-folded so each session is touched once).
pub(crate) fn replay_upsert_sql(schema: &str) -> String {
    let ms = |x: &str| format!("(timestamptz 'epoch' + {x} * interval '1 millisecond')");
    let merged = "(SELECT coalesce(array_agg(x ORDER BY o), '{}') FROM (SELECT x, min(o) AS o         FROM unnest(r.urls || EXCLUDED.urls) WITH ORDINALITY AS t(x, o) GROUP BY x         ORDER BY min(o) LIMIT 100) m)";
    let earlier = "EXCLUDED.first_url IS NOT NULL AND (r.first_url IS NULL         OR EXCLUDED.first_url_at < r.first_url_at)";
    let dur = |a: &str, b: &str| format!("round(extract(epoch FROM {b} - {a}) * 1000)::bigint");
    format!(
        "INSERT INTO {schema}.replay_sessions AS r (session_id, visitor_id, user_id, started_at,
    ended_at, duration_ms, first_url, first_url_at, urls, page_count, segment_count, error_count,
    bytes, missing_segments, session_day)
SELECT u.sid, u.vid, u.uid, {start}, {end}, u.e - u.s, u.url,
    CASE WHEN u.url IS NULL THEN NULL ELSE {url_at} END,
    ARRAY(SELECT jsonb_array_elements_text(u.urls::jsonb)),
    jsonb_array_length(u.urls::jsonb), u.n, u.errors, u.bytes, u.missing, u.day::date
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::int8[],
    $8::text[], $9::int4[], $10::int8[], $11::int8[], $12::int4[], $13::text[])
    AS u(sid, vid, uid, s, e, url, url_ms, urls, n, errors, bytes, missing, day)
ON CONFLICT (session_id) DO UPDATE SET
    visitor_id = coalesce(EXCLUDED.visitor_id, r.visitor_id),
    user_id = coalesce(EXCLUDED.user_id, r.user_id),
    started_at = LEAST(r.started_at, EXCLUDED.started_at),
    ended_at = GREATEST(r.ended_at, EXCLUDED.ended_at),
    duration_ms = {duration},
    first_url = CASE WHEN {earlier} THEN EXCLUDED.first_url ELSE r.first_url END,
    first_url_at = CASE WHEN {earlier} THEN EXCLUDED.first_url_at ELSE r.first_url_at END,
    urls = {merged},
    page_count = cardinality({merged}),
    segment_count = r.segment_count + EXCLUDED.segment_count,
    error_count = r.error_count + EXCLUDED.error_count,
    bytes = r.bytes + EXCLUDED.bytes,
    missing_segments = GREATEST(r.missing_segments, EXCLUDED.missing_segments),
    session_day = LEAST(r.session_day, EXCLUDED.session_day)",
        start = ms("u.s"),
        end = ms("u.e"),
        url_at = ms("u.url_ms"),
        duration = dur(
            "LEAST(r.started_at, EXCLUDED.started_at)",
            "GREATEST(r.ended_at, EXCLUDED.ended_at)"
        ),
    )
}

/// Upserts the replay sessions of the rows written (inside the write's transaction).
async fn upsert_replays<'r>(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    rows: impl Iterator<Item = &'r StageRow<'r>>,
) -> Result<(), tokio_postgres::Error> {
    let entries: Vec<ReplayIndexEntry> = rows.filter_map(|r| r.replay.clone()).collect();
    if entries.is_empty() {
        return Ok(());
    }
    // One lock order for every writer (by session id): concurrent batches touching the same
    // sessions wait for each other instead of deadlocking.
    let mut folded = fold_entries(&entries);
    folded.sort_by(|a, b| a.entry.session_id.cmp(&b.entry.session_id));
    let col = |f: &dyn Fn(&tracepost_core::replay_index::FoldedEntry) -> Option<String>| {
        folded.iter().map(f).collect::<Vec<Option<String>>>()
    };
    let sids = col(&|f| Some(f.entry.session_id.clone()));
    let vids = col(&|f| f.entry.visitor_id.clone());
    let uids = col(&|f| f.entry.user_id.clone());
    let starts: Vec<i64> = folded.iter().map(|f| f.entry.start_ms).collect();
    let ends: Vec<i64> = folded.iter().map(|f| f.entry.end_ms).collect();
    let urls = col(&|f| f.entry.first_url.clone());
    let url_ms: Vec<i64> = folded.iter().map(|f| f.first_url_ms).collect();
    let url_lists = col(&|f| serde_json::to_string(&f.urls).ok());
    let n: Vec<i32> = folded
        .iter()
        .map(|f| i32::try_from(f.segments).unwrap_or(i32::MAX))
        .collect();
    let errors: Vec<i64> = folded.iter().map(|f| f.entry.errors).collect();
    let bytes: Vec<i64> = folded.iter().map(|f| f.entry.bytes).collect();
    let missing: Vec<i32> = folded
        .iter()
        .map(|f| i32::try_from(f.entry.missing_segments).unwrap_or(i32::MAX))
        .collect();
    let days = col(&|f| Some(f.entry.session_day.to_string()));
    let stmt = client.prepare_cached(&sql.replay_upsert).await?;
    client
        .execute(
            &stmt,
            &[
                &sids, &vids, &uids, &starts, &ends, &urls, &url_ms, &url_lists, &n, &errors,
                &bytes, &missing, &days,
            ],
        )
        .await?;
    Ok(())
}

/// Statements this module needs, as SQL text (prepared and cached per connection).
pub(crate) struct Statements {
    pub copy: String,
    pub merge: String,
    pub fold: String,
    pub copy_events: String,
    pub copy_requests: String,
    pub copy_metrics: String,
    pub insert_deltas: String,
    pub replay_upsert: String,
}

impl Statements {
    pub fn new(schema: &str) -> Self {
        let event_cols: Vec<&str> = COLS[..EVENT_COLS].iter().map(|(n, _)| *n).collect();
        let req_cols: Vec<&str> = REQ_COLS.iter().map(|(n, _)| *n).collect();
        let met_cols: Vec<&str> = MET_COLS.iter().map(|(n, _)| *n).collect();
        Statements {
            copy: copy_sql(),
            merge: merge_sql(schema),
            fold: fold_sql(schema),
            copy_events: direct_copy_sql(schema, "events", &event_cols),
            copy_requests: direct_copy_sql(schema, "request_snapshots", &req_cols),
            copy_metrics: direct_copy_sql(schema, "metric_windows", &met_cols),
            insert_deltas: format!(
                "INSERT INTO {schema}.issue_deltas (fingerprint, service, error_type, title, \
                 first_seen, last_seen, count, last_event_id) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::timestamptz[], $6::timestamptz[], $7::int8[], $8::uuid[])"
            ),
            replay_upsert: replay_upsert_sql(schema),
        }
    }
}

#[derive(Debug)]
enum WriteError {
    Db(tokio_postgres::Error),
    /// The rows could not be encoded (a bug: `StageRow::new` checks what COPY needs).
    Encode(String),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Db(e)
    }
}

async fn copy_in(
    client: &deadpool_postgres::Client,
    sql: &str,
    data: BytesMut,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = client.prepare_cached(sql).await?;
    let sink = client.copy_in::<_, bytes::Bytes>(&stmt).await?;
    futures_util::pin_mut!(sink);
    let mut data = data.freeze();
    while !data.is_empty() {
        let chunk = data.split_to(data.len().min(1 << 20));
        sink.send(chunk).await?;
    }
    sink.finish().await
}

/// Issue counts of a batch, per fingerprint, computed here when every row is inserted.
fn deltas(rows: &[StageRow<'_>]) -> Option<[Box<dyn ToSql + Sync + Send>; 8]> {
    struct D<'a> {
        first: PgTs,
        last: (PgTs, Uuid),
        count: i64,
        row: &'a StageRow<'a>,
    }
    let mut by_fp: std::collections::BTreeMap<&str, D<'_>> = Default::default();
    for r in rows {
        let (true, Some(fp)) = (r.kind == "error", r.fingerprint) else {
            continue;
        };
        let d = by_fp.entry(fp).or_insert(D {
            first: r.ts,
            last: (r.ts, r.id),
            count: 0,
            row: r,
        });
        d.count += 1;
        d.first = d.first.min(r.ts);
        if (r.ts, r.id) >= d.last {
            d.last = (r.ts, r.id);
            d.row = r;
        }
    }
    if by_fp.is_empty() {
        return None;
    }
    let owned = |s: Option<&str>| s.map(str::to_owned);
    Some([
        Box::new(by_fp.keys().map(|k| k.to_string()).collect::<Vec<_>>()),
        Box::new(
            by_fp
                .values()
                .map(|d| d.row.service.to_owned())
                .collect::<Vec<_>>(),
        ),
        Box::new(
            by_fp
                .values()
                .map(|d| owned(d.row.error_type))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            by_fp
                .values()
                .map(|d| d.row.message.to_owned())
                .collect::<Vec<_>>(),
        ),
        Box::new(by_fp.values().map(|d| d.first).collect::<Vec<_>>()),
        Box::new(by_fp.values().map(|d| d.last.0).collect::<Vec<_>>()),
        Box::new(by_fp.values().map(|d| d.count).collect::<Vec<_>>()),
        Box::new(by_fp.values().map(|d| d.last.1).collect::<Vec<_>>()),
    ])
}

/// One transaction: stage the rows, merge them, commit — or, for [`IngestMethod::Copy`],
/// COPY straight into the tables.
async fn write_rows(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    method: IngestMethod,
    rows: &[StageRow<'_>],
) -> Result<Written, WriteError> {
    let all: Vec<usize> = (0..COLS.len()).collect();
    client.batch_execute("BEGIN").await?;
    let result = async {
        let written = match method {
            IngestMethod::Copy => {
                let enc = |e: Box<dyn Error + Sync + Send>| WriteError::Encode(e.to_string());
                let event_pick: Vec<usize> = (0..EVENT_COLS).collect();
                let data = encode_copy(rows.iter(), &event_pick, rows.len()).map_err(enc)?;
                let events = copy_in(client, &sql.copy_events, data).await?;
                let with_req = rows.iter().filter(|r| r.req_method.is_some());
                let n_req = with_req.clone().count();
                let mut requests = 0;
                if n_req > 0 {
                    let pick: Vec<usize> = REQ_COLS.iter().map(|(_, i)| *i).collect();
                    let data = encode_copy(with_req, &pick, n_req).map_err(enc)?;
                    requests = copy_in(client, &sql.copy_requests, data).await?;
                }
                let with_met = rows.iter().filter(|r| r.m_start.is_some());
                let n_met = with_met.clone().count();
                let mut metrics = 0;
                if n_met > 0 {
                    let pick: Vec<usize> = MET_COLS.iter().map(|(_, i)| *i).collect();
                    let data = encode_copy(with_met, &pick, n_met).map_err(enc)?;
                    metrics = copy_in(client, &sql.copy_metrics, data).await?;
                }
                let mut issues = 0;
                if let Some(params) = deltas(rows) {
                    let stmt = client.prepare_cached(&sql.insert_deltas).await?;
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    issues = client.execute(&stmt, &refs).await?;
                }
                upsert_replays(client, sql, rows.iter()).await?;
                Written {
                    events,
                    requests,
                    metrics,
                    issues,
                }
            }
            IngestMethod::CopyMerge | IngestMethod::MultiRowInsert => {
                if method == IngestMethod::CopyMerge {
                    let data = encode_copy(rows.iter(), &all, rows.len())
                        .map_err(|e| WriteError::Encode(e.to_string()))?;
                    copy_in(client, &sql.copy, data).await?;
                } else {
                    stage_insert(client, rows).await?;
                }
                let merge = client.prepare_cached(&sql.merge).await?;
                let row = client.query_one(&merge, &[]).await?;
                let replays: Vec<Uuid> = row.get(4);
                if !replays.is_empty() {
                    let replays: HashSet<Uuid> = replays.into_iter().collect();
                    upsert_replays(client, sql, rows.iter().filter(|r| replays.contains(&r.id)))
                        .await?;
                }
                Written {
                    events: row.get::<_, i64>(0) as u64,
                    requests: row.get::<_, i64>(1) as u64,
                    metrics: row.get::<_, i64>(2) as u64,
                    issues: row.get::<_, i64>(3) as u64,
                }
            }
        };
        client.batch_execute("COMMIT").await?;
        Ok(written)
    }
    .await;
    if result.is_err() && !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn stage_insert(
    client: &deadpool_postgres::Client,
    rows: &[StageRow<'_>],
) -> Result<(), tokio_postgres::Error> {
    let per_statement = (u16::MAX as usize / COLS.len()).min(1000);
    for chunk in rows.chunks(per_statement) {
        let stmt = client.prepare_cached(&insert_sql(chunk.len())).await?;
        let params: Vec<&(dyn ToSql + Sync)> = chunk.iter().flat_map(|r| r.fields()).collect();
        client.execute(&stmt, &params).await?;
    }
    Ok(())
}

/// The result of writing a batch with bad rows split out.
#[derive(Debug, Default)]
pub(crate) struct BatchResult {
    pub written: Written,
    pub rejected: Vec<Rejection>,
    /// Ranges split in halves because the server was short of resources.
    pub resource_splits: u64,
}

/// Why a batch as a whole failed.
pub(crate) enum BatchFailure {
    Temporary(tokio_postgres::Error),
    Permanent(tokio_postgres::Error),
    MissingPartition(tokio_postgres::Error),
    Encode(String),
}

/// Writes rows; when the server refuses some row's data, splits the range in halves (each
/// its own transaction) until the bad rows stand alone, stores the rest and reports those.
/// With [`IngestMethod::Copy`], a range holding an already-stored event is written again
/// with [`IngestMethod::CopyMerge`].
///
/// `parts` are the ranges of `rows` written as separate transactions to begin with (the
/// store cuts a batch so that one transaction touches few partitions).
pub(crate) async fn write_splitting(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    method: IngestMethod,
    rows: &[StageRow<'_>],
    parts: Vec<std::ops::Range<usize>>,
) -> Result<BatchResult, BatchFailure> {
    let mut out = BatchResult::default();
    let mut todo: Vec<_> = parts.into_iter().rev().map(|r| (r, method)).collect();
    while let Some((range, method)) = todo.pop() {
        if range.is_empty() {
            continue;
        }
        let e = match write_rows(client, sql, method, &rows[range.clone()]).await {
            Ok(w) => {
                out.written.events += w.events;
                out.written.requests += w.requests;
                out.written.metrics += w.metrics;
                out.written.issues += w.issues;
                continue;
            }
            Err(WriteError::Encode(e)) => return Err(BatchFailure::Encode(e)),
            Err(WriteError::Db(e)) => e,
        };
        if method == IngestMethod::Copy && e.code().is_some_and(|c| c.code() == "23505") {
            // Already stored (a redelivery): write this range idempotently.
            todo.push((range, IngestMethod::CopyMerge));
            continue;
        }
        if is_missing_partition(&e) {
            return Err(BatchFailure::MissingPartition(e));
        }
        if e.code().and_then(|c| pressure(c.code())) == Some(Pressure::Split) {
            // Out of memory or over a configured limit: this range may be too much for the
            // server at once, so write its halves separately. Only a single event that still
            // fails makes the batch temporary (the server itself is short, not the batch big).
            if range.len() == 1 {
                return Err(BatchFailure::Temporary(e));
            }
            tracing::warn!(target: "tracepost::postgres", events = range.len(), error = %describe(&e),
                "the server is short of resources: writing the batch in halves");
            out.resource_splits += 1;
            let mid = range.start + range.len() / 2;
            todo.push((mid..range.end, method));
            todo.push((range.start..mid, method));
            continue;
        }
        match classify(&e) {
            Class::Data(reason) if range.len() == 1 => out.rejected.push(Rejection {
                id: rows[range.start].id,
                reason: Cow::Borrowed(reason),
                detail: describe(&e),
            }),
            Class::Data(_) => {
                let mid = range.start + range.len() / 2;
                todo.push((mid..range.end, method));
                todo.push((range.start..mid, method));
            }
            Class::Temporary => return Err(BatchFailure::Temporary(e)),
            Class::Permanent => return Err(BatchFailure::Permanent(e)),
        }
    }
    Ok(out)
}

/// Flattens a batch: drops repeated ids, rejects what can't be stored, and applies the
/// accepted time range at `now_us` (Unix microseconds): an event outside it is rejected with
/// a reason or restamped, as the window says. Returns the rows and how many were restamped.
pub(crate) fn stage_rows<'a>(
    batch: impl IntoIterator<Item = &'a Event>,
    window: &Window,
    now_us: i64,
    rejected: &mut Vec<Rejection>,
) -> (Vec<StageRow<'a>>, u64) {
    let iter = batch.into_iter();
    let mut seen = HashSet::with_capacity(iter.size_hint().0);
    let mut rows = Vec::with_capacity(iter.size_hint().0);
    let mut restamped = 0;
    for event in iter {
        if !seen.insert(event.id) {
            continue;
        }
        let mut row = match StageRow::new(event) {
            Ok(row) => row,
            Err(r) => {
                rejected.push(r);
                continue;
            }
        };
        let Err(reason) = window.check(row.ts.unix_micros(), now_us) else {
            rows.push(row);
            continue;
        };
        match window.outside {
            OutOfRange::Reject => rejected.push(reject(
                event,
                reason,
                format!(
                    "timestamp {} is outside the accepted range ({} s back to {} s ahead of \
                     the receiving clock)",
                    event.timestamp,
                    window.back_us / 1_000_000,
                    window.ahead_us / 1_000_000
                ),
            )),
            OutOfRange::Restamp => match row.restamp(event, now_us) {
                Ok(()) => {
                    restamped += 1;
                    rows.push(row);
                }
                Err(r) => rejected.push(r),
            },
        }
    }
    (rows, restamped)
}
