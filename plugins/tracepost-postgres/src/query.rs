//! Reading events back: filters, keyset pagination, an activity histogram, top issues — the
//! shared query API of [`tracepost_core::store`], implemented on PostgreSQL.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tracepost_core::object_store::Day;
use tracepost_core::replay_index::{ts_to_ms, ReplayFilter, ReplaySession, MAX_SESSIONS_PER_QUERY};
use tracepost_core::store::analytics::{
    AnalyticsQuery, AnalyticsSummary, FunnelQuery, FunnelStep, TopRow, HOST_PATTERN, MAX_TOP_ROWS,
    SCHEME_AUTHORITY_PATTERN, VISITOR_ATTRIBUTE,
};
use tracepost_core::store::{
    fill_histogram, width_micros, Cursor, EventFilter, EventPage, HistogramBucket, Issue,
    IssueStatus, Store, StoreError,
};
use tracepost_core::{
    Breadcrumb, CapturedBody, ErrorDetail, Event, Kind, Level, MetricWindow, RequestSnapshot,
    SpanDetail, Timestamp,
};
use uuid::Uuid;

use crate::error::PgError;
use crate::store::PgStore;
use crate::types::{Json, PgTs};

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn push(params: &mut Params, v: impl ToSql + Sync + Send + 'static) -> String {
    params.push(Box::new(v));
    format!("${}", params.len())
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn where_clause(f: &EventFilter, params: &mut Params) -> Result<Vec<String>, PgError> {
    let mut w = Vec::new();
    if !f.kinds.is_empty() {
        let kinds: Vec<String> = f.kinds.iter().map(|k| k.as_str().to_owned()).collect();
        w.push(format!("e.kind = ANY({}::text[])", push(params, kinds)));
    }
    if !f.levels.is_empty() {
        let levels: Vec<String> = f.levels.iter().map(|l| l.as_str().to_owned()).collect();
        w.push(format!("e.level = ANY({}::text[])", push(params, levels)));
    }
    if let Some(s) = &f.service {
        w.push(format!("e.service = {}", push(params, s.clone())));
    }
    if let Some(t) = f.since {
        w.push(format!("e.timestamp >= {}", push(params, PgTs::split(t).0)));
    }
    if let Some(t) = f.until {
        w.push(format!("e.timestamp < {}", push(params, PgTs::split(t).0)));
    }
    if let Some(m) = &f.message_contains {
        w.push(format!("e.message ILIKE {}", push(params, like_escape(m))));
    }
    if !f.attributes.is_empty() {
        let json = serde_json::to_string(&f.attributes)
            .map_err(|e| PgError::Config(format!("attribute filter: {e}")))?;
        w.push(format!(
            "e.attributes @> {}::jsonb",
            push(params, Json(json))
        ));
    }
    for (col, v) in [
        ("fingerprint", &f.fingerprint),
        ("trace_id", &f.trace_id),
        ("user_id", &f.user_id),
        ("request_id", &f.request_id),
        ("session_id", &f.session_id),
    ] {
        if let Some(v) = v {
            w.push(format!("e.{col} = {}", push(params, v.clone())));
        }
    }
    Ok(w)
}

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

const EVENT_SELECT: &str = "e.id, e.timestamp, e.timestamp_ns, e.kind, e.level, e.service,
    e.environment, e.release, e.host, e.trace_id, e.span_id, e.request_id, e.session_id,
    e.user_id, e.message, e.fingerprint, e.attributes, e.error_type, e.error_message,
    e.error_backtrace, e.error_location, e.breadcrumbs, e.schema_version,
    r.method, r.route, r.path, r.query, r.status, r.duration_ms, r.request_bytes,
    r.response_bytes, r.client_address, r.http_version, r.request_headers, r.response_headers,
    r.request_body, r.response_body,
    m.start, m.start_ns, m.seconds, m.method, m.route, m.count, m.errors, m.p50_ms, m.p95_ms,
    m.p99_ms, m.max_ms, m.bytes_in, m.bytes_out, e.span";

fn event_from(s: &str) -> String {
    format!(
        "{s}.events e
         LEFT JOIN {s}.request_snapshots r ON r.event_id = e.id AND r.timestamp = e.timestamp
         LEFT JOIN {s}.metric_windows m ON m.event_id = e.id AND m.timestamp = e.timestamp"
    )
}

fn parse_json<T: serde::de::DeserializeOwned>(v: Option<Json>) -> Result<Option<T>, PgError> {
    v.map(|j| serde_json::from_str(&j.0))
        .transpose()
        .map_err(|e| PgError::Config(format!("stored JSON: {e}")))
}

fn parse_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, PgError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| PgError::Config(format!("unknown kind or level {s:?}")))
}

fn event_from_row(row: &Row) -> Result<Event, PgError> {
    let kind: Kind = parse_name(row.get::<_, &str>(3))?;
    let level: Level = parse_name(row.get::<_, &str>(4))?;
    let mut e = Event::new(kind, level, row.get::<_, String>(14));
    e.id = row.get(0);
    e.timestamp = row.get::<_, PgTs>(1).join(row.get(2));
    e.resource.service = row.get(5);
    e.resource.environment = row.get(6);
    e.resource.release = row.get(7);
    e.resource.host = row.get(8);
    e.trace_id = row.get(9);
    e.span_id = row.get(10);
    e.request_id = row.get(11);
    e.session_id = row.get(12);
    e.user_id = row.get(13);
    e.fingerprint = row.get(15);
    e.attributes = parse_json(Some(row.get::<_, Json>(16)))?.unwrap_or_default();
    if let Some(error_type) = row.get::<_, Option<String>>(17) {
        e.error = Some(ErrorDetail {
            error_type,
            message: row.get::<_, Option<String>>(18).unwrap_or_default(),
            backtrace: row.get(19),
            location: row.get(20),
        });
    }
    e.breadcrumbs = parse_json::<Vec<Breadcrumb>>(row.get(21))?.unwrap_or_default();
    e.span = parse_json::<SpanDetail>(row.get(50))?;
    e.schema = u32::try_from(row.get::<_, i32>(22)).unwrap_or(0);
    if let Some(method) = row.get::<_, Option<String>>(23) {
        e.request = Some(RequestSnapshot {
            method,
            route: row.get(24),
            path: row.get(25),
            query: row.get(26),
            status: u16::try_from(row.get::<_, i32>(27)).unwrap_or(0),
            duration_ms: row.get(28),
            request_bytes: row.get::<_, i64>(29) as u64,
            response_bytes: row.get::<_, i64>(30) as u64,
            client_address: row.get(31),
            http_version: row.get(32),
            request_headers: parse_json(row.get(33))?.unwrap_or_default(),
            response_headers: parse_json(row.get(34))?.unwrap_or_default(),
            request_body: parse_json::<CapturedBody>(row.get(35))?,
            response_body: parse_json::<CapturedBody>(row.get(36))?,
        });
    }
    if let Some(start) = row.get::<_, Option<PgTs>>(37) {
        e.metric = Some(MetricWindow {
            start: start.join(row.get(38)),
            seconds: row.get::<_, i32>(39) as u32,
            method: row.get(40),
            route: row.get(41),
            count: row.get::<_, i64>(42) as u64,
            errors: row.get::<_, i64>(43) as u64,
            p50_ms: row.get(44),
            p95_ms: row.get(45),
            p99_ms: row.get(46),
            max_ms: row.get(47),
            bytes_in: row.get::<_, i64>(48) as u64,
            bytes_out: row.get::<_, i64>(49) as u64,
        });
    }
    Ok(e)
}

fn issue_from_row(row: &Row) -> Issue {
    let count = row.get::<_, i64>(6) as u64;
    Issue::new(
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get::<_, PgTs>(4).join(0),
        row.get::<_, PgTs>(5).join(0),
        count,
        row.get::<_, Option<i64>>(9).map_or(count, |n| n as u64),
        row.get(7),
        IssueStatus::parse(row.get(8)),
    )
    .with_regressed_at(row.get::<_, Option<PgTs>>(10).map(|t| t.join(0)))
    .with_users(row.get::<_, i64>(11) as u64)
}

/// After the window count: the regression time and the users affected (distinct user ids
/// of the issue's events; `count(DISTINCT)` skips NULLs).
fn issue_extra(s: &str) -> String {
    format!(
        "i.regressed_at, (SELECT count(DISTINCT e.user_id) FROM {s}.events e
            WHERE e.fingerprint = i.fingerprint AND e.kind = 'error')"
    )
}

impl PgStore {
    /// Events matching `filter`, newest first, at most `limit` (1–10 000); pass the
    /// returned [`EventPage::next`] as `after` for the next page (keyset pagination on
    /// `(timestamp, id)`: stable while new events arrive).
    pub async fn events(
        &self,
        filter: &EventFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<EventPage, PgError> {
        let limit = limit.clamp(1, 10_000);
        let mut params = Params::new();
        let mut w = where_clause(filter, &mut params)?;
        if let Some(c) = after {
            let ts = push(&mut params, PgTs::from_unix_micros(c.unix_micros()));
            let id = push(&mut params, c.id());
            w.push(format!("(e.timestamp, e.id) < ({ts}, {id})"));
        }
        let sql = format!(
            "SELECT {EVENT_SELECT} FROM {} {} ORDER BY e.timestamp DESC, e.id DESC LIMIT {}",
            event_from(self.schema()),
            where_sql(&w),
            limit + 1
        );
        let client = self.client().await?;
        let rows = client.query(&sql, &refs(&params)).await?;
        let more = rows.len() > limit;
        let mut events = Vec::with_capacity(rows.len().min(limit));
        let mut next = None;
        for row in rows.iter().take(limit) {
            events.push(event_from_row(row)?);
            next = Some(Cursor::new(row.get::<_, PgTs>(1).unix_micros(), row.get(0)));
        }
        Ok(EventPage::new(events, if more { next } else { None }))
    }

    /// One event by id. Ids are UUIDv7 (their first 48 bits are the event's time in ms), so
    /// the lookup searches the primary key around that time first, and only then everywhere.
    pub async fn event(&self, id: Uuid) -> Result<Option<Event>, PgError> {
        let client = self.client().await?;
        let base = format!(
            "SELECT {EVENT_SELECT} FROM {} WHERE e.id = $1",
            event_from(self.schema())
        );
        if let Some(ts) = id.get_timestamp() {
            let (secs, nanos) = ts.to_unix();
            let micros = secs as i64 * 1_000_000 + i64::from(nanos / 1000);
            let (from, to) = (
                PgTs::from_unix_micros(micros - 1_000_000),
                PgTs::from_unix_micros(micros + 1_000_000),
            );
            let sql = format!("{base} AND e.timestamp >= $2 AND e.timestamp < $3 LIMIT 1");
            if let Some(row) = client.query_opt(&sql, &[&id, &from, &to]).await? {
                return event_from_row(&row).map(Some);
            }
        }
        client
            .query_opt(&format!("{base} LIMIT 1"), &[&id])
            .await?
            .map(|r| event_from_row(&r))
            .transpose()
    }

    /// Counts of matching events per time bucket of `width`, oldest first. Buckets without
    /// events are included (as 0) when the filter has both `since` and `until`.
    pub async fn histogram(
        &self,
        filter: &EventFilter,
        width: std::time::Duration,
    ) -> Result<Vec<HistogramBucket>, PgError> {
        let width_us = width_micros(width);
        let mut params = Params::new();
        let w = where_clause(filter, &mut params)?;
        let secs = push(&mut params, width_us as f64 / 1e6);
        let sql = format!(
            "SELECT date_bin(make_interval(secs => {secs}), e.timestamp, \
             TIMESTAMPTZ '2000-01-01 00:00:00+00') AS b, count(*) \
             FROM {}.events e {} GROUP BY b ORDER BY b",
            self.schema(),
            where_sql(&w)
        );
        let client = self.client().await?;
        let rows = client.query(&sql, &refs(&params)).await?;
        let found: Vec<(i64, u64)> = rows
            .iter()
            .map(|r| (r.get::<_, PgTs>(0).unix_micros(), r.get::<_, i64>(1) as u64))
            .collect();
        match (filter.since, filter.until) {
            (Some(since), Some(until)) => fill_histogram(
                found,
                PgTs::split(since).0.unix_micros(),
                PgTs::split(until).0.unix_micros(),
                width_us,
            )
            .map_err(|e| PgError::Config(e.to_string())),
            _ => Ok(found
                .into_iter()
                .map(|(b, n)| HistogramBucket::new(PgTs::from_unix_micros(b).join(0), n))
                .collect()),
        }
    }

    /// The issues with the most events: since `since` (counted from the events table) or,
    /// without it, all time (from the issues table). Ties go to the most recently seen.
    pub async fn top_issues(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<Issue>, PgError> {
        let s = self.schema();
        let limit = limit.clamp(1, 10_000) as i64;
        self.fold_issues().await?;
        let client = self.client().await?;
        let cols = "i.fingerprint, i.service, i.error_type, i.title, i.first_seen, i.last_seen, \
                    i.count, i.last_event_id, i.status";
        let extra = issue_extra(s);
        let rows = match since {
            Some(t) => {
                client
                    .query(
                        &format!(
                            "SELECT {cols}, w.n, {extra} FROM (
                                SELECT fingerprint, count(*) AS n FROM {s}.events
                                WHERE kind = 'error' AND fingerprint IS NOT NULL
                                  AND timestamp >= $1
                                GROUP BY fingerprint) w
                             JOIN {s}.issues i USING (fingerprint)
                             ORDER BY w.n DESC, i.last_seen DESC, i.fingerprint LIMIT $2"
                        ),
                        &[&PgTs::split(t).0, &limit],
                    )
                    .await?
            }
            None => {
                client
                    .query(
                        &format!(
                            "SELECT {cols}, NULL::bigint, {extra} FROM {s}.issues i
                             ORDER BY i.count DESC, i.last_seen DESC, i.fingerprint LIMIT $1"
                        ),
                        &[&limit],
                    )
                    .await?
            }
        };
        Ok(rows.iter().map(issue_from_row).collect())
    }

    /// One issue by fingerprint.
    pub async fn issue(&self, fingerprint: &str) -> Result<Option<Issue>, PgError> {
        let s = self.schema();
        self.fold_issues().await?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT i.fingerprint, i.service, i.error_type, i.title, i.first_seen,
                        i.last_seen, i.count, i.last_event_id, i.status, NULL::bigint, {}
                     FROM {s}.issues i WHERE i.fingerprint = $1",
                    issue_extra(s)
                ),
                &[&fingerprint],
            )
            .await?;
        Ok(row.as_ref().map(issue_from_row))
    }

    /// Sets an issue's status; false when there is no such issue.
    pub async fn set_issue_status(
        &self,
        fingerprint: &str,
        status: IssueStatus,
    ) -> Result<bool, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let n = client
            .execute(
                &format!(
                    "UPDATE {s}.issues SET status = $2, updated_at = now(), regressed_at = NULL
                     WHERE fingerprint = $1"
                ),
                &[&fingerprint, &status.as_str()],
            )
            .await?;
        Ok(n > 0)
    }
}

const REPLAY_COLS: &str = "r.session_id, r.visitor_id, r.user_id,
    round(extract(epoch FROM r.started_at) * 1000)::bigint,
    round(extract(epoch FROM r.ended_at) * 1000)::bigint, r.first_url, r.page_count,
    r.segment_count, r.error_count, r.bytes, r.missing_segments,
    to_char(r.session_day, 'YYYY-MM-DD')";

fn replay_from_row(row: &Row) -> Result<ReplaySession, PgError> {
    let day: String = row.get(11);
    let day = Day::parse_iso(&day).ok_or_else(|| {
        PgError::Config(format!(
            "stored replay_sessions.session_day {day:?} is not yyyy-mm-dd"
        ))
    })?;
    Ok(ReplaySession::new(
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get::<_, i32>(6).max(0) as u32,
        row.get::<_, i32>(7).max(0) as u32,
        row.get::<_, i64>(8).max(0) as u64,
        row.get::<_, i64>(9).max(0) as u64,
        row.get::<_, i32>(10).max(0) as u32,
        day,
    ))
}

impl PgStore {
    /// Recorded sessions (see [`Store::replay_sessions`]).
    pub async fn replay_sessions(
        &self,
        f: &ReplayFilter,
        limit: usize,
    ) -> Result<Vec<ReplaySession>, PgError> {
        let s = self.schema();
        let mut params: Params = Vec::new();
        let mut w = Vec::new();
        if let Some(u) = &f.user_id {
            w.push(format!("r.user_id = {}", push(&mut params, u.clone())));
        }
        if let Some(u) = &f.url_contains {
            w.push(format!(
                "EXISTS (SELECT 1 FROM unnest(r.urls) x WHERE strpos(lower(x), lower({})) > 0)",
                push(&mut params, u.clone())
            ));
        }
        if let Some(t) = f.since {
            let t = PgTs::from_unix_micros(ts_to_ms(t) * 1000);
            w.push(format!("r.ended_at >= {}", push(&mut params, t)));
        }
        if let Some(t) = f.until {
            let t = PgTs::from_unix_micros(ts_to_ms(t) * 1000);
            w.push(format!("r.started_at < {}", push(&mut params, t)));
        }
        if let Some(fp) = &f.fingerprint {
            w.push(format!(
                "EXISTS (SELECT 1 FROM {s}.events e WHERE e.session_id = r.session_id \
                 AND e.fingerprint = {})",
                push(&mut params, fp.clone())
            ));
        }
        let limit = push(&mut params, limit.clamp(1, MAX_SESSIONS_PER_QUERY) as i64);
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {REPLAY_COLS} FROM {s}.replay_sessions r {} \
                     ORDER BY r.started_at DESC, r.session_id LIMIT {limit}",
                    where_sql(&w)
                ),
                &refs(&params),
            )
            .await?;
        rows.iter().map(replay_from_row).collect()
    }

    /// One recorded session by id.
    pub async fn replay_session(&self, session_id: &str) -> Result<Option<ReplaySession>, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {REPLAY_COLS} FROM {s}.replay_sessions r WHERE r.session_id = $1"),
                &[&session_id],
            )
            .await?;
        row.as_ref().map(replay_from_row).transpose()
    }

    /// Deletes the index rows of sessions that ended before `cutoff`; returns how many.
    pub async fn delete_replay_sessions_before(&self, cutoff: Timestamp) -> Result<u64, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let cutoff = PgTs::from_unix_micros(ts_to_ms(cutoff) * 1000);
        Ok(client
            .execute(
                &format!("DELETE FROM {s}.replay_sessions WHERE ended_at < $1"),
                &[&cutoff],
            )
            .await?)
    }
}

/// The analytics facts of each `analytics` event in `[$1, $2)`, computed in SQL as
/// [`AnalyticsFacts`](tracepost_core::store::analytics::AnalyticsFacts) computes them (the
/// same patterns), as a CTE named `a`.
fn analytics_cte(s: &str) -> String {
    let host = |x: &str| format!("nullif(lower(substring({x} from '{HOST_PATTERN}')), '')");
    format!(
        "a AS MATERIALIZED (
            SELECT timestamp AS ts, event, visitor, path, {host_u} AS host,
                   {host_r} AS referrer_host, name
            FROM (SELECT e.timestamp,
                         e.attributes->>'analytics.event' AS event,
                         coalesce(e.attributes->>'{VISITOR_ATTRIBUTE}', e.session_id) AS visitor,
                         CASE WHEN e.attributes->>'url.full' IS NULL THEN NULL
                              ELSE coalesce(nullif(substring(regexp_replace(
                                  e.attributes->>'url.full', '{SCHEME_AUTHORITY_PATTERN}', '')
                                  from '^[^?#]*'), ''), '/') END AS path,
                         e.attributes->>'url.full' AS u,
                         e.attributes->>'page.referrer' AS r,
                         e.attributes->>'event.name' AS name
                  FROM {s}.events e
                  WHERE e.kind = 'analytics' AND e.timestamp >= $1 AND e.timestamp < $2) x)",
        host_u = host("u"),
        host_r = host("r"),
    )
}

impl PgStore {
    /// Page views, visitors, top pages and referrers (see [`Store::analytics`]).
    pub async fn analytics(&self, q: &AnalyticsQuery) -> Result<AnalyticsSummary, PgError> {
        q.check().map_err(|e| PgError::Config(e.to_string()))?;
        let cte = analytics_cte(self.schema());
        let (since, until) = (PgTs::split(q.since).0, PgTs::split(q.until).0);
        let limit = q.limit.clamp(1, MAX_TOP_ROWS) as i64;
        let secs = width_micros(q.bucket) as f64 / 1e6;
        let internal = "referrer_host IS NOT NULL AND referrer_host = host";
        let external = "referrer_host IS NOT NULL AND (host IS NULL OR referrer_host <> host)";
        let client = self.client().await?;
        let totals = client
            .query_one(
                &format!(
                    "WITH {cte} SELECT
                        count(*) FILTER (WHERE event = 'pageview'),
                        count(DISTINCT visitor) FILTER (WHERE event = 'pageview'),
                        count(*) FILTER (WHERE event = 'track'),
                        count(*) FILTER (WHERE event = 'pageview' AND {internal}),
                        count(*) FILTER (WHERE event = 'pageview' AND referrer_host IS NULL)
                     FROM a"
                ),
                &[&since, &until],
            )
            .await?;
        let mut out = AnalyticsSummary::new();
        let n = |i: usize| totals.get::<_, i64>(i) as u64;
        (
            out.pageviews,
            out.visitors,
            out.tracks,
            out.internal_views,
            out.direct_views,
        ) = (n(0), n(1), n(2), n(3), n(4));
        let series = client
            .query(
                &format!(
                    "WITH {cte} SELECT date_bin(make_interval(secs => $3), ts,
                        TIMESTAMPTZ '2000-01-01 00:00:00+00') AS b, count(*),
                        count(DISTINCT visitor)
                     FROM a WHERE event = 'pageview' GROUP BY b ORDER BY b"
                ),
                &[&since, &until, &secs],
            )
            .await?;
        let found = series
            .iter()
            .map(|r| {
                (
                    r.get::<_, PgTs>(0).unix_micros(),
                    r.get::<_, i64>(1) as u64,
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect();
        out.series =
            AnalyticsSummary::fill_series(q, found).map_err(|e| PgError::Config(e.to_string()))?;
        for (key, cond, into) in [
            ("path", "path IS NOT NULL", &mut out.top_pages),
            ("referrer_host", external, &mut out.referrers),
        ] {
            let rows = client
                .query(
                    &format!(
                        "WITH {cte} SELECT {key}, count(*) AS n, count(DISTINCT visitor)
                         FROM a WHERE event = 'pageview' AND {cond}
                         GROUP BY {key} ORDER BY n DESC, {key} COLLATE \"C\" LIMIT $3"
                    ),
                    &[&since, &until, &limit],
                )
                .await?;
            *into = rows
                .iter()
                .map(|r| {
                    TopRow::new(
                        r.get(0),
                        r.get::<_, i64>(1) as u64,
                        r.get::<_, i64>(2) as u64,
                    )
                })
                .collect();
        }
        Ok(out)
    }

    /// Visitors reaching each funnel step in order (see [`Store::funnel`]).
    pub async fn funnel(&self, q: &FunnelQuery) -> Result<Vec<u64>, PgError> {
        q.check().map_err(|e| PgError::Config(e.to_string()))?;
        let mut params = Params::new();
        push(&mut params, PgTs::split(q.since).0);
        push(&mut params, PgTs::split(q.until).0);
        let mut ctes = vec![analytics_cte(self.schema())];
        let mut counts = Vec::new();
        for (i, step) in q.steps.iter().enumerate() {
            let v = push(&mut params, step.value().to_owned());
            let m = match step {
                FunnelStep::Page(_) => format!("a.event = 'pageview' AND a.path = {v}"),
                FunnelStep::Event(_) => format!("a.event = 'track' AND a.name = {v}"),
            };
            let (join, after) = if i == 0 {
                (String::new(), String::new())
            } else {
                (
                    format!(" JOIN s{i} ON s{i}.visitor = a.visitor"),
                    format!(" AND a.ts >= s{i}.t"),
                )
            };
            ctes.push(format!(
                "s{n} AS (SELECT a.visitor, min(a.ts) AS t FROM a{join}
                    WHERE a.visitor IS NOT NULL AND {m}{after} GROUP BY a.visitor)",
                n = i + 1
            ));
            counts.push(format!("(SELECT count(*) FROM s{})", i + 1));
        }
        let sql = format!("WITH {} SELECT {}", ctes.join(",\n"), counts.join(", "));
        let client = self.client().await?;
        let row = client.query_one(&sql, &refs(&params)).await?;
        Ok((0..q.steps.len())
            .map(|i| row.get::<_, i64>(i) as u64)
            .collect())
    }
}

fn where_sql(w: &[String]) -> String {
    if w.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", w.join(" AND "))
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match &e {
            PgError::Config(_) => StoreError::InvalidQuery(e.to_string()),
            // Down, or refusing everything until someone fixes it (authentication, a
            // missing database or table): the store can't answer now (HTTP 503), whatever
            // the question.
            e if e.is_temporary() || e.is_refused() => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// The shared query API ([`tracepost_core::store::Store`]) on PostgreSQL: the same answers
/// as the SQLite store for the same events (checked by `tracepost-sqlite`'s query suite).
impl Store for PgStore {
    fn events<'a>(
        &'a self,
        filter: &'a EventFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>> {
        async move { Ok(PgStore::events(self, filter, limit, after).await?) }.boxed()
    }

    fn event(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Event>, StoreError>> {
        async move { Ok(PgStore::event(self, id).await?) }.boxed()
    }

    fn histogram<'a>(
        &'a self,
        filter: &'a EventFilter,
        width: std::time::Duration,
    ) -> BoxFuture<'a, Result<Vec<HistogramBucket>, StoreError>> {
        async move { Ok(PgStore::histogram(self, filter, width).await?) }.boxed()
    }

    fn top_issues(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Issue>, StoreError>> {
        async move { Ok(PgStore::top_issues(self, since, limit).await?) }.boxed()
    }

    fn issue<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<Issue>, StoreError>> {
        async move { Ok(PgStore::issue(self, fingerprint).await?) }.boxed()
    }

    fn set_issue_status<'a>(
        &'a self,
        fingerprint: &'a str,
        status: IssueStatus,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move { Ok(PgStore::set_issue_status(self, fingerprint, status).await?) }.boxed()
    }

    fn replay_sessions<'a>(
        &'a self,
        filter: &'a ReplayFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ReplaySession>, StoreError>> {
        async move { Ok(PgStore::replay_sessions(self, filter, limit).await?) }.boxed()
    }

    fn replay_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ReplaySession>, StoreError>> {
        async move { Ok(PgStore::replay_session(self, session_id).await?) }.boxed()
    }

    fn delete_replay_sessions_before(
        &self,
        cutoff: Timestamp,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        async move { Ok(PgStore::delete_replay_sessions_before(self, cutoff).await?) }.boxed()
    }

    fn analytics<'a>(
        &'a self,
        query: &'a AnalyticsQuery,
    ) -> BoxFuture<'a, Result<AnalyticsSummary, StoreError>> {
        async move {
            query.check()?;
            Ok(PgStore::analytics(self, query).await?)
        }
        .boxed()
    }

    fn funnel<'a>(&'a self, query: &'a FunnelQuery) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        async move {
            query.check()?;
            Ok(PgStore::funnel(self, query).await?)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_is_escaped() {
        assert_eq!(like_escape("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
