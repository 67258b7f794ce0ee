-- `span` events (kind `span`): the span's parent id, duration and status, as the event's
-- `span` object ({"name", "parent_span_id", "duration_ms", "status"}). Its trace and span
-- ids are the events' `trace_id` and `span_id` columns.
ALTER TABLE {schema}.events ADD COLUMN IF NOT EXISTS span jsonb;
