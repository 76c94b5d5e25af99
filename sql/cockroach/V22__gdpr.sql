-- Issue 16 parts 2–3 (GDPR export, user erasure). Tenant-owned tables
-- (tenant_id, home_region, keys led by tenant_id, RLS enabled and forced) and
-- directory columns on `tenants`. Why and how: src/compliance/, sql/README.md
-- (V22), README "Compliance".
-- The same tables and columns as sql/postgres/V22__gdpr.sql (which says why);
-- `exports` is REGIONAL BY ROW AS crdb_region like every tenant-owned table,
-- `tenants` stays GLOBAL. Unverified on a cluster.
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS before CREATE POLICY.

-- One export: a job builds a zip (NDJSON per table + manifest.json) into the
-- export storage of the tenant's home region (`storage_region`), sealed in
-- chunks with the tenant's data key version `key_version`. `size` is the
-- archive's plaintext size (what a download serves), `sha256` its digest.
-- `deleted_at`: the sweep removed the stored file after `expires_at`.
CREATE TABLE IF NOT EXISTS exports (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    home_region    text        NOT NULL,
    crdb_region    crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    requested_by   uuid        NOT NULL,
    scope          text        NOT NULL CHECK (scope IN ('tenant', 'user')),
    subject_user   uuid,
    state          text        NOT NULL DEFAULT 'queued'
                               CHECK (state IN ('queued', 'ready', 'failed', 'expired')),
    job_id         uuid,
    storage_region text,
    object_key     text,
    key_version    integer,
    chunk_size     integer,
    size           bigint,
    sha256         text,
    counts         jsonb,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    ready_at       timestamptz,
    expires_at     timestamptz,
    deleted_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((scope = 'user') = (subject_user IS NOT NULL)),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
) LOCALITY REGIONAL BY ROW AS crdb_region;
-- The sweep's walk: ready exports by expiry.
CREATE INDEX IF NOT EXISTS exports_expiry_idx ON exports (tenant_id, expires_at) WHERE state = 'ready';
-- Lets the cross-tenant probe find an id's owner without a tenant prefix.
CREATE INDEX IF NOT EXISTS exports_id_idx ON exports (id);

ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE exports FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON exports;
CREATE POLICY tenant_isolation ON exports
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
-- DELETE: tenant erasure removes every row of the tenant.
GRANT SELECT, INSERT, UPDATE, DELETE ON exports TO meridian_app;

-- One user erasure: the policy it applied, its progress per table (`counts`,
-- updated in the transaction of each batch, so a resumed job goes on where the
-- last one stopped) and, once done, the signed receipt.
CREATE TABLE IF NOT EXISTS erasures (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    home_region    text        NOT NULL,
    crdb_region    crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    subject_user   uuid        NOT NULL,
    policy         text        NOT NULL CHECK (policy IN ('anonymize', 'delete')),
    requested_by   text        NOT NULL,
    state          text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
    job_id         uuid,
    counts         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    receipt        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
) LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE INDEX IF NOT EXISTS erasures_id_idx ON erasures (id);

ALTER TABLE erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasures FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON erasures;
CREATE POLICY tenant_isolation ON erasures
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON erasures TO meridian_app;

-- The tenant's erasure policy for users (`anonymize`: personal fields removed,
-- messages kept under a tombstone; `delete`: messages removed too), read by the
-- erasure request in its transaction (not cached).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS erasure_policy text NOT NULL DEFAULT 'anonymize';
ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_erasure_policy_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_erasure_policy_check
    CHECK (erasure_policy IN ('anonymize', 'delete'));

-- A probe of another tenant's export id is audited like the other kinds
-- (src/scope/probes.rs): V17's function plus the kinds `export` and `erasure`.
CREATE OR REPLACE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT CASE kind
        WHEN 'user'    THEN (SELECT tenant_id FROM public.users    WHERE id = resource_id LIMIT 1)
        WHEN 'channel' THEN (SELECT tenant_id FROM public.channels WHERE id = resource_id LIMIT 1)
        WHEN 'tenant'  THEN (SELECT id        FROM public.tenants  WHERE id = resource_id)
        WHEN 'job'     THEN (SELECT tenant_id FROM public.jobs     WHERE id = resource_id LIMIT 1)
        WHEN 'webhook' THEN (SELECT tenant_id FROM public.webhook_endpoints WHERE id = resource_id LIMIT 1)
        WHEN 'summary' THEN (SELECT tenant_id FROM public.channel_summaries WHERE id = resource_id LIMIT 1)
        WHEN 'identity_provider' THEN (SELECT tenant_id FROM public.identity_providers WHERE id = resource_id LIMIT 1)
        WHEN 'impersonation' THEN (SELECT tenant_id FROM public.impersonations WHERE id = resource_id LIMIT 1)
        WHEN 'export'  THEN (SELECT tenant_id FROM public.exports  WHERE id = resource_id LIMIT 1)
        WHEN 'erasure' THEN (SELECT tenant_id FROM public.erasures WHERE id = resource_id LIMIT 1)
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;
