-- tracepost schema, version 1. `{schema}` is replaced by the configured schema name.

-- Every event, partitioned by day on `timestamp`. The primary key (timestamp, id) makes
-- `id` the idempotency key: an event keeps its id and timestamp across redeliveries.
CREATE TABLE {schema}.events (
    id              uuid        NOT NULL,
    timestamp       timestamptz NOT NULL,
    timestamp_ns    smallint    NOT NULL DEFAULT 0, -- nanoseconds below the microsecond
    kind            text        NOT NULL,
    level           text        NOT NULL,
    service         text        NOT NULL,
    environment     text,
    release         text,
    host            text,
    trace_id        text,
    span_id         text,
    request_id      text,
    session_id      text,
    user_id         text,
    message         text        NOT NULL,
    fingerprint     text,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    error_type      text,
    error_message   text,
    error_backtrace text,
    error_location  text,
    breadcrumbs     jsonb,
    schema_version  integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (timestamp, id)
) PARTITION BY RANGE (timestamp);

CREATE INDEX events_attributes_gin ON {schema}.events USING gin (attributes jsonb_path_ops);
CREATE INDEX events_kind_ts ON {schema}.events (kind, timestamp);
CREATE INDEX events_service_ts ON {schema}.events (service, timestamp);
CREATE INDEX events_fingerprint_ts ON {schema}.events (fingerprint, timestamp) WHERE fingerprint IS NOT NULL;
CREATE INDEX events_trace_id ON {schema}.events (trace_id) WHERE trace_id IS NOT NULL;
-- No index on user_id here: every random-order index costs ingest throughput; a user's
-- requests are indexed in request_snapshots (a tenth of the rows), and other events of a user
-- are found within a time range.
-- No index on `id` alone: ids are UUIDv7, so a lookup by id also bounds `timestamp` and uses
-- the primary key:
--   WHERE id = $1 AND timestamp >= {schema}.uuid7_time($1) - interval '1 second'
--                 AND timestamp <  {schema}.uuid7_time($1) + interval '1 second'

-- The time (ms precision) in the first 48 bits of a UUIDv7.
CREATE FUNCTION {schema}.uuid7_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_timestamp(('x' || lpad(replace(left(id::text, 13), '-', ''), 16, '0'))::bit(64)::bigint / 1000.0);

-- One row per captured HTTP request (kind `request`, and HTTP errors), linked by event id.
CREATE TABLE {schema}.request_snapshots (
    event_id         uuid        NOT NULL,
    timestamp        timestamptz NOT NULL, -- the event's timestamp (partition key)
    service          text        NOT NULL,
    user_id          text,       -- the event's user, for "one user's requests"
    method           text        NOT NULL,
    route            text        NOT NULL,
    path             text        NOT NULL,
    query            text,
    status           integer     NOT NULL,
    duration_ms      double precision NOT NULL,
    request_bytes    bigint      NOT NULL,
    response_bytes   bigint      NOT NULL,
    client_address   text,
    http_version     text,
    request_headers  jsonb,      -- [[name, value], …] in order
    response_headers jsonb,
    request_body     jsonb,      -- {"text", "encoding", "truncated", "content_type"}
    response_body    jsonb,
    PRIMARY KEY (timestamp, event_id)
) PARTITION BY RANGE (timestamp);

CREATE INDEX request_snapshots_route_ts ON {schema}.request_snapshots (route, timestamp);
CREATE INDEX request_snapshots_event_id ON {schema}.request_snapshots (event_id);
CREATE INDEX request_snapshots_user_id_ts ON {schema}.request_snapshots (user_id, timestamp)
    WHERE user_id IS NOT NULL;

-- One row per route, method and window (a minute by default), from `metric_window` events.
CREATE TABLE {schema}.metric_windows (
    event_id     uuid        NOT NULL,
    timestamp    timestamptz NOT NULL, -- the event's timestamp (partition key)
    start        timestamptz NOT NULL,
    start_ns     smallint    NOT NULL DEFAULT 0,
    seconds      integer     NOT NULL,
    service      text        NOT NULL,
    environment  text,
    method       text        NOT NULL,
    route        text        NOT NULL,
    count        bigint      NOT NULL,
    errors       bigint      NOT NULL,
    p50_ms       double precision NOT NULL,
    p95_ms       double precision NOT NULL,
    p99_ms       double precision NOT NULL,
    max_ms       double precision NOT NULL,
    bytes_in     bigint      NOT NULL,
    bytes_out    bigint      NOT NULL,
    PRIMARY KEY (timestamp, event_id)
) PARTITION BY RANGE (timestamp);

CREATE INDEX metric_windows_route_start ON {schema}.metric_windows (route, start);

-- Errors grouped by fingerprint, kept current by the sink from the rows it inserts.
CREATE TABLE {schema}.issues (
    fingerprint   text        PRIMARY KEY,
    service       text        NOT NULL,
    error_type    text,
    title         text        NOT NULL,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    count         bigint      NOT NULL,
    last_event_id uuid        NOT NULL,
    status        text        NOT NULL DEFAULT 'unresolved'
                  CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX issues_last_seen ON {schema}.issues (last_seen);

-- Per-batch issue counts, written in the same transaction as the events (no row locks
-- shared between concurrent writers), folded into `issues` right after each commit.
-- Usually empty; `issues` plus this table is always exact.
CREATE TABLE {schema}.issue_deltas (
    fingerprint   text        NOT NULL,
    service       text        NOT NULL,
    error_type    text,
    title         text        NOT NULL,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    count         bigint      NOT NULL,
    last_event_id uuid        NOT NULL
);

-- Projects and their API keys, for an ingest API. Keys are stored as SHA-256 hashes only.
CREATE TABLE {schema}.projects (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   bigint      NOT NULL REFERENCES {schema}.projects (id) ON DELETE CASCADE,
    key_hash     bytea       NOT NULL UNIQUE,
    prefix       text        NOT NULL, -- the first characters, to tell keys apart
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
