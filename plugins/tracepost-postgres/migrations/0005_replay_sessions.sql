-- One row per recorded browser session, folded from `replay` events (one per stored segment)
-- in the transaction that inserts them; the rules are tracepost_core::replay_index's.
-- Segments live in object storage under replays/{session_day}/{session_id}/.
CREATE TABLE {schema}.replay_sessions (
    session_id       text        PRIMARY KEY,
    visitor_id       text,
    user_id          text,
    started_at       timestamptz NOT NULL, -- first recorded rrweb event (ms precision)
    ended_at         timestamptz NOT NULL, -- last recorded rrweb event
    duration_ms      bigint      NOT NULL,
    first_url        text,                 -- URL of the earliest segment that has one
    first_url_at     timestamptz,
    urls             text[]      NOT NULL DEFAULT '{}', -- distinct page URLs (at most 100)
    page_count       integer     NOT NULL,
    segment_count    integer     NOT NULL,
    error_count      bigint      NOT NULL,
    bytes            bigint      NOT NULL, -- stored gzip bytes
    missing_segments integer     NOT NULL, -- segments the browser could not upload
    session_day      date        NOT NULL  -- UTC day the session started: the key prefix
);
CREATE INDEX replay_sessions_started ON {schema}.replay_sessions (started_at DESC, session_id);
CREATE INDEX replay_sessions_ended ON {schema}.replay_sessions (ended_at);
CREATE INDEX replay_sessions_user ON {schema}.replay_sessions (user_id, started_at)
    WHERE user_id IS NOT NULL;
-- Events of a session (the viewer's side panel, sessions by error fingerprint).
CREATE INDEX events_session ON {schema}.events (session_id, timestamp) WHERE session_id IS NOT NULL;
