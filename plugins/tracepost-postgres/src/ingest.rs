//! The write path: events → staging table (binary COPY or multi-row INSERT) → one statement
//! that inserts into the partitioned tables with `ON CONFLICT DO NOTHING` and updates issues
//! from the rows actually inserted.

use std::borrow::Cow;
use std::collections::HashSet;
use std::error::Error;

use bytes::{BufMut, BytesMut};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tracepost_core::{Event, Rejection};
use uuid::Uuid;

use crate::error::{classify, describe, is_missing_partition, Class};
use crate::types::{Json, PgTs};

/// How batches reach the staging table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestMethod {
    /// Binary `COPY … FROM STDIN` (the default and the fast one).
    #[default]
    Copy,
    /// Multi-row `INSERT … VALUES (…), (…)` with bound parameters: the baseline the
    /// benchmark compares against. Same result, slower.
    MultiRowInsert,
}

/// The name of the per-connection temporary staging table.
pub(crate) const STAGE: &str = "tracepost_stage";

/// Staging columns: the events columns, then the request snapshot's, then the metric window's.
const COLS: [(&str, &str); 50] = [
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
const EVENT_COLS: usize = 23;

const TYPES: [Type; 50] = {
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
    INSERT INTO {schema}.request_snapshots (event_id, timestamp, service, method, route, path,
        query, status, duration_ms, request_bytes, response_bytes, client_address, http_version,
        request_headers, response_headers, request_body, response_body)
    SELECT s.id, s.timestamp, s.service, s.req_method, s.req_route, s.req_path, s.req_query,
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
    INSERT INTO {schema}.issues AS i (fingerprint, service, error_type, title, first_seen,
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
    ORDER BY fingerprint
    ON CONFLICT (fingerprint) DO UPDATE SET
        count = i.count + EXCLUDED.count,
        first_seen = LEAST(i.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(i.last_seen, EXCLUDED.last_seen),
        last_event_id = CASE WHEN EXCLUDED.last_seen >= i.last_seen
            THEN EXCLUDED.last_event_id ELSE i.last_event_id END,
        title = CASE WHEN EXCLUDED.last_seen >= i.last_seen
            THEN EXCLUDED.title ELSE i.title END,
        error_type = CASE WHEN EXCLUDED.last_seen >= i.last_seen
            THEN EXCLUDED.error_type ELSE i.error_type END,
        service = CASE WHEN EXCLUDED.last_seen >= i.last_seen
            THEN EXCLUDED.service ELSE i.service END,
        status = CASE WHEN i.status = 'resolved' THEN 'unresolved' ELSE i.status END,
        updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM req), (SELECT count(*) FROM met),
       (SELECT count(*) FROM iss)"
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
    i64::try_from(v)
        .map_err(|_| reject(event, "out_of_range", format!("{field} = {v} exceeds bigint")))
}

fn json<T: serde::Serialize + ?Sized>(event: &Event, v: &T) -> Result<Json, Rejection> {
    serde_json::to_string(v)
        .map(Json)
        .map_err(|e| reject(event, "invalid_data", e.to_string()))
}

impl<'a> StageRow<'a> {
    /// Flattens an event, refusing what Postgres would refuse anyway (NUL characters in
    /// text, integers beyond `bigint`) without a round trip.
    pub fn new(e: &'a Event) -> Result<Self, Rejection> {
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
            || e
                .attributes
                .iter()
                .any(|(k, v)| has_nul(k) || value_has_nul(v))
            || e
                .breadcrumbs
                .iter()
                .any(|b| has_nul(&b.message) || has_nul(&b.target));
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
                || r
                    .request_headers
                    .iter()
                    .chain(&r.response_headers)
                    .any(|(k, v)| has_nul(k) || has_nul(v))
                || body_nul(&r.request_body)
                || body_nul(&r.response_body);
        }
        if let Some(m) = &e.metric {
            nul |= has_nul(&m.method) || has_nul(&m.route);
        }
        if nul {
            return Err(reject(
                e,
                "nul_byte",
                "text contains a NUL character, which Postgres can't store",
            ));
        }

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

    fn fields(&self) -> [&(dyn ToSql + Sync); 50] {
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

/// Encodes rows in the binary COPY format.
fn encode_copy(rows: &[StageRow<'_>]) -> Result<BytesMut, Box<dyn Error + Sync + Send>> {
    let mut buf = BytesMut::with_capacity(rows.len() * 400 + 32);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for row in rows {
        buf.put_i16(COLS.len() as i16);
        for (field, ty) in row.fields().into_iter().zip(TYPES.iter()) {
            let at = buf.len();
            buf.put_i32(0);
            let len = match field.to_sql_checked(ty, &mut buf)? {
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

/// Statements this module needs, as SQL text (prepared and cached per connection).
pub(crate) struct Statements {
    pub copy: String,
    pub merge: String,
}

/// One transaction: stage the rows, merge them, commit.
pub(crate) async fn write_rows(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    method: IngestMethod,
    rows: &[StageRow<'_>],
) -> Result<Written, tokio_postgres::Error> {
    let merge = client.prepare_cached(&sql.merge).await?;
    client.batch_execute("BEGIN").await?;
    let result = async {
        match method {
            IngestMethod::Copy => {
                let copy = client.prepare_cached(&sql.copy).await?;
                let data = encode_copy(rows).map_err(|e| {
                    // Unreachable for rows that passed `StageRow::new`; surface as a conversion error.
                    tracing::error!(target: "tracepost::postgres", error = %e, "encoding COPY data");
                    e
                });
                let data = match data {
                    Ok(d) => d,
                    Err(_) => {
                        // Let the server report it: an empty COPY never fails, so fall back
                        // to row-by-row INSERTs, which produce a proper error.
                        return stage_insert(client, rows).await.map(|_| Written::default());
                    }
                };
                let sink = client.copy_in::<_, bytes::Bytes>(&copy).await?;
                futures_util::pin_mut!(sink);
                let mut data = data.freeze();
                while !data.is_empty() {
                    let chunk = data.split_to(data.len().min(1 << 20));
                    sink.send(chunk).await?;
                }
                sink.finish().await?;
            }
            IngestMethod::MultiRowInsert => stage_insert(client, rows).await?,
        }
        let row = client.query_one(&merge, &[]).await?;
        let written = Written {
            events: row.get::<_, i64>(0) as u64,
            requests: row.get::<_, i64>(1) as u64,
            metrics: row.get::<_, i64>(2) as u64,
            issues: row.get::<_, i64>(3) as u64,
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
}

/// Why a batch as a whole failed.
pub(crate) enum BatchFailure {
    Temporary(tokio_postgres::Error),
    Permanent(tokio_postgres::Error),
    MissingPartition(tokio_postgres::Error),
}

/// Writes rows; when the server refuses some row's data, splits the range in halves (each
/// its own transaction) until the bad rows stand alone, stores the rest and reports those.
pub(crate) async fn write_splitting(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    method: IngestMethod,
    rows: &[StageRow<'_>],
) -> Result<BatchResult, BatchFailure> {
    let mut out = BatchResult::default();
    let mut todo = vec![0..rows.len()];
    while let Some(range) = todo.pop() {
        if range.is_empty() {
            continue;
        }
        match write_rows(client, sql, method, &rows[range.clone()]).await {
            Ok(w) => {
                out.written.events += w.events;
                out.written.requests += w.requests;
                out.written.metrics += w.metrics;
                out.written.issues += w.issues;
            }
            Err(e) if is_missing_partition(&e) => return Err(BatchFailure::MissingPartition(e)),
            Err(e) => match classify(&e) {
                Class::Data(reason) if range.len() == 1 => out.rejected.push(Rejection {
                    id: rows[range.start].id,
                    reason: Cow::Borrowed(reason),
                    detail: describe(&e),
                }),
                Class::Data(_) => {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
                Class::Temporary => return Err(BatchFailure::Temporary(e)),
                Class::Permanent => return Err(BatchFailure::Permanent(e)),
            },
        }
    }
    Ok(out)
}

/// Flattens a batch: drops repeated ids, rejects what can't be stored.
pub(crate) fn stage_rows<'a>(
    batch: impl IntoIterator<Item = &'a Event>,
    rejected: &mut Vec<Rejection>,
) -> Vec<StageRow<'a>> {
    let iter = batch.into_iter();
    let mut seen = HashSet::with_capacity(iter.size_hint().0);
    let mut rows = Vec::with_capacity(iter.size_hint().0);
    for event in iter {
        if !seen.insert(event.id) {
            continue;
        }
        match StageRow::new(event) {
            Ok(row) => rows.push(row),
            Err(r) => rejected.push(r),
        }
    }
    rows
}
