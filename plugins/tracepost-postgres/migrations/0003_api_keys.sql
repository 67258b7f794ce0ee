-- Project API keys for the log routes: tpk_ keys looked up by their 12-character prefix,
-- optionally requiring signed requests.
ALTER TABLE {schema}.api_keys
    ADD COLUMN require_signature boolean NOT NULL DEFAULT false;
CREATE INDEX api_keys_prefix ON {schema}.api_keys (prefix) WHERE revoked_at IS NULL;
