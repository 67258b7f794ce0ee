-- tracepost schema, version 2: a default partition for each partitioned table.
--
-- A row whose day has no partition yet (the sink creates a bounded number of day partitions
-- per write and per minute) lands here instead of failing the insert. The sink moves such
-- rows into their own day partition when it creates it (in the background, a bounded number
-- of days per run), and retention deletes rows of expired days from here.
CREATE TABLE {schema}.events_default PARTITION OF {schema}.events DEFAULT;
CREATE TABLE {schema}.request_snapshots_default PARTITION OF {schema}.request_snapshots DEFAULT;
CREATE TABLE {schema}.metric_windows_default PARTITION OF {schema}.metric_windows DEFAULT;
