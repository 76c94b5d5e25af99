-- Issue 16 part 1 (tamper-evident audit), CockroachDB: as sql/postgres/V21, with
-- the new tenant-owned tables REGIONAL BY ROW and the platform trail placed per
-- region (platform_audit_events becomes REGIONAL BY ROW on its trail's region, so
-- an EU tenant's platform events stay in the EU). Idempotent (IF NOT EXISTS,
-- DROP POLICY IF EXISTS before CREATE POLICY). Why and how: sql/README.md (V21),
-- docs/cockroachdb.md. Not yet run on a cluster (docs/cockroachdb.md, Known gaps).

ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS hash bytea;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS sealed bytea;
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_seq_idx ON audit_events (tenant_id, seq);

ALTER TABLE platform_audit_events ADD COLUMN IF NOT EXISTS region text NOT NULL DEFAULT 'us-east1';
ALTER TABLE platform_audit_events ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE platform_audit_events ADD COLUMN IF NOT EXISTS hash bytea;
UPDATE platform_audit_events p
   SET region = COALESCE((SELECT t.home_region FROM tenants t WHERE t.id = p.tenant_id), 'us-east1')
 WHERE p.seq IS NULL;
ALTER TABLE platform_audit_events ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT NULL AS (CASE region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED;
ALTER TABLE platform_audit_events SET LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE UNIQUE INDEX IF NOT EXISTS platform_audit_events_seq_idx ON platform_audit_events (region, seq);

CREATE TABLE IF NOT EXISTS audit_heads (
    tenant_id   uuid   NOT NULL PRIMARY KEY REFERENCES tenants (id),
    home_region text   NOT NULL,
    crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    seq         bigint NOT NULL,
    hash        bytea  NOT NULL
) LOCALITY REGIONAL BY ROW AS crdb_region;
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON audit_heads;
CREATE POLICY tenant_isolation ON audit_heads
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

CREATE TABLE IF NOT EXISTS platform_audit_heads (
    region      text   NOT NULL PRIMARY KEY,
    crdb_region crdb_internal_region NOT NULL AS (CASE region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    seq         bigint NOT NULL,
    hash        bytea  NOT NULL
) LOCALITY REGIONAL BY ROW AS crdb_region;

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    seq         bigint      NOT NULL,
    home_region text        NOT NULL,
    crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    hash        bytea       NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('periodic', 'export', 'anchor')),
    signed_at   timestamptz NOT NULL,
    key_id      text        NOT NULL,
    signature   text        NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) LOCALITY REGIONAL BY ROW AS crdb_region;
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON audit_checkpoints;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

CREATE TABLE IF NOT EXISTS platform_audit_checkpoints (
    region      text        NOT NULL,
    crdb_region crdb_internal_region NOT NULL AS (CASE region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    seq         bigint      NOT NULL,
    hash        bytea       NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('periodic', 'export', 'anchor')),
    signed_at   timestamptz NOT NULL,
    key_id      text        NOT NULL,
    signature   text        NOT NULL,
    PRIMARY KEY (region, seq)
) LOCALITY REGIONAL BY ROW AS crdb_region;

-- The migrating role is an admin here, which RLS does not filter.
-- Read only by the migrator (from any region, once): kept in the primary region.
CREATE TABLE IF NOT EXISTS audit_chain_pending (tenant_id uuid NOT NULL PRIMARY KEY)
    LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;
INSERT INTO audit_chain_pending SELECT DISTINCT tenant_id FROM audit_events WHERE seq IS NULL
    ON CONFLICT (tenant_id) DO NOTHING;

-- As on PostgreSQL; the owner (an admin) is not filtered by RLS, so the tenant is
-- named explicitly. No SET search_path option (dialect guard): names are qualified.
CREATE OR REPLACE FUNCTION public.audit_truncate_through(upto bigint) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    WITH gone AS (
        DELETE FROM public.audit_events
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND seq <= $1
           AND EXISTS (SELECT 1 FROM public.audit_checkpoints c
                         JOIN public.audit_events e
                           ON e.tenant_id = c.tenant_id AND e.seq = c.seq AND e.hash = c.hash
                        WHERE c.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
                          AND c.seq = $1)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION public.audit_truncate_through(bigint) FROM public;
GRANT EXECUTE ON FUNCTION public.audit_truncate_through(bigint) TO meridian_app;

-- No column-level privileges here (V4): UPDATE on audit_checkpoints is the
-- relocation's; the signature makes a changed row detectable.
GRANT SELECT, INSERT, UPDATE ON audit_heads, platform_audit_heads TO meridian_app;
GRANT SELECT, INSERT, UPDATE ON audit_checkpoints TO meridian_app;
GRANT SELECT, INSERT ON platform_audit_checkpoints TO meridian_app;
