-- Per-tenant encryption of message bodies and channel summaries (issue 15); the
-- same columns and checks as sql/postgres/V19__encrypted_messages.sql (which
-- says why). tenants is GLOBAL; messages and channel_summaries are already
-- REGIONAL BY ROW AS crdb_region, and added columns follow their placement.
-- CockroachDB refuses DDL in a DO block, so the checks are dropped and re-added
-- (IF EXISTS) to stay idempotent; NOT VALID skips the scan as on PostgreSQL.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS encrypt_messages boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS body_enc bytea;
ALTER TABLE channel_summaries ADD COLUMN IF NOT EXISTS sealed bytea;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_body_sealed;
ALTER TABLE messages ADD CONSTRAINT messages_body_sealed
    CHECK (body_enc IS NULL OR body = '') NOT VALID;
ALTER TABLE channel_summaries DROP CONSTRAINT IF EXISTS channel_summaries_sealed;
ALTER TABLE channel_summaries ADD CONSTRAINT channel_summaries_sealed
    CHECK (sealed IS NULL OR (summary IS NULL AND sentences IS NULL)) NOT VALID;
