-- When a resolved issue happened again (a regression); cleared when its status is set by hand.
ALTER TABLE {schema}.issues ADD COLUMN IF NOT EXISTS regressed_at timestamptz;
