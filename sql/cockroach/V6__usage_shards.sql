-- Storage usage in shards with escrow grants (issue 11): the write path no longer
-- updates the tenant's one `tenant_usage` row.
--
-- Each shard row holds a grant taken from the tenant's cap and the bytes spent from
-- it. A post updates one shard row only (`used_bytes + n <= granted_bytes` in the
-- UPDATE's predicate). A grant is taken from the central row, `tenant_usage`, whose
-- `granted_bytes` is the sum of the shards' grants and never passes the cap when it
-- grows: used <= granted per shard and sum(granted) <= cap, so sum(used) <= cap.
-- `cap_bytes` is the cap a shard's grant was taken under: a post whose cap differs
-- (the limit was changed) goes through the central row again.
-- Why and how: sql/README.md, src/store/usage.rs.
--
-- CockroachDB: tenant-owned, so REGIONAL BY ROW AS crdb_region like every other
-- tenant table; a tenant's shard rows sit in its home region, and posts contend
-- per row (per key), not per range, so 32 rows of one tenant in one range do not
-- serialize each other.
-- Idempotent (a re-run changes nothing; each DDL commits on its own here): IF NOT EXISTS, DROP POLICY IF EXISTS, and
-- the bytes move only from rows whose storage_bytes is still > 0.
CREATE TABLE IF NOT EXISTS tenant_usage_shards (
    tenant_id     uuid     NOT NULL REFERENCES tenants (id),
    shard         smallint NOT NULL CHECK (shard >= 0),
    home_region   text     NOT NULL,
    crdb_region   crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED,
    used_bytes    bigint   NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    granted_bytes bigint   NOT NULL DEFAULT 0,
    cap_bytes     bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, shard),
    CHECK (used_bytes <= granted_bytes)
) LOCALITY REGIONAL BY ROW AS crdb_region;

-- The central row: the sum of the tenant's shard grants. `storage_bytes` is no
-- longer read or written (moved to shard 0 below).
ALTER TABLE tenant_usage ADD COLUMN IF NOT EXISTS granted_bytes bigint NOT NULL DEFAULT 0 CHECK (granted_bytes >= 0);

ALTER TABLE tenant_usage_shards ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage_shards FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenant_usage_shards;
CREATE POLICY tenant_isolation ON tenant_usage_shards
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON tenant_usage_shards TO meridian_app;

-- Existing usage moves to shard 0, fully spent (used = granted): totals unchanged.
INSERT INTO tenant_usage_shards (tenant_id, shard, home_region, used_bytes, granted_bytes)
SELECT tenant_id, 0, home_region, storage_bytes, storage_bytes FROM tenant_usage WHERE storage_bytes > 0
ON CONFLICT (tenant_id, shard) DO NOTHING;
UPDATE tenant_usage SET granted_bytes = granted_bytes + storage_bytes, storage_bytes = 0 WHERE storage_bytes > 0;
