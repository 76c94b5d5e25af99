-- Retention (issue 16 item 4), CockroachDB: the same column and index as
-- sql/postgres/V27__retention.sql. `tenants` stays GLOBAL (one more nullable
-- column, no rewrite); `messages` is REGIONAL BY ROW AS crdb_region, so the
-- index is implicitly partitioned by crdb_region and the tenant's batch reads
-- its home region's partition only. Unverified on a cluster.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS retention jsonb;

CREATE INDEX IF NOT EXISTS messages_retention_idx ON messages (tenant_id, created_at);
