-- Issue 14 part 4 (impersonation, "view as org"): a platform admin's time-boxed,
-- reason-required access to one tenant, and the tenant's own policy on whether
-- such an access may write. Tenant-owned (tenant_id, home_region, keys led by
-- tenant_id, RLS enabled and forced); every request made under one is recorded
-- in the tenant's audit trail (src/impersonation/, README "Impersonation").
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS before CREATE POLICY.

-- Owner-controlled: may an impersonation started in `write` mode write? Read in
-- the writing transaction's prologue on every write under an impersonation,
-- never from the directory cache (not part of `TenantRecord`).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS impersonation_writes boolean NOT NULL DEFAULT false;

-- One impersonation: who (`actor`, the platform admin's name), why, what mode,
-- until when; `revoked_at`/`revoked_by` once an owner or a platform admin ends it.
-- Its token names the row (`imp`), and every request re-reads it.
CREATE TABLE IF NOT EXISTS impersonations (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    actor       text        NOT NULL,
    reason      text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    mode        text        NOT NULL CHECK (mode IN ('read', 'write')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text,
    PRIMARY KEY (tenant_id, id)
) LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE INDEX IF NOT EXISTS impersonations_expiry_idx ON impersonations (tenant_id, expires_at DESC);

ALTER TABLE impersonations ENABLE ROW LEVEL SECURITY;
ALTER TABLE impersonations FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON impersonations;
CREATE POLICY tenant_isolation ON impersonations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- No DELETE: an impersonation's row is evidence; it ends by revocation or expiry.
GRANT SELECT, INSERT, UPDATE ON impersonations TO meridian_app;

-- A probe of another tenant's impersonation id is audited like the other kinds
-- (src/scope/probes.rs): V13's function plus the kind `impersonation`.
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
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;
