-- Issue 16 item 5 (residency attestation): which regions served each tenant's
-- requests, per UTC day. Each node counts the requests it served with the
-- tenant's data (a tenant transaction opened here) and flushes its counts every
-- `residency.served_flush_ms` through `record_served_regions`. Tenant-owned
-- (tenant_id, home_region, key led by tenant_id, RLS enabled and forced), moved
-- by a relocation. Why and how: src/tenancy/served.rs, src/tenancy/attest.rs,
-- sql/README.md (V24), README "Residency attestation".
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS, CREATE OR REPLACE.

CREATE TABLE IF NOT EXISTS tenant_served_regions (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    region      text        NOT NULL,
    day         date        NOT NULL,
    home_region text        NOT NULL,
    requests    bigint      NOT NULL CHECK (requests >= 0),
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, region, day)
);

ALTER TABLE tenant_served_regions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_served_regions FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenant_served_regions;
CREATE POLICY tenant_isolation ON tenant_served_regions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The service reads its tenant's rows; only the function below writes counts,
-- and a relocation moves rows (home_region).
GRANT SELECT, UPDATE (home_region) ON tenant_served_regions TO meridian_app;

-- One flush of a node's counts for many tenants in one statement. SECURITY
-- DEFINER so it writes across tenants; it takes nothing but ids and counts, and
-- the row's home_region is the tenant's own, read here (a tenant being relocated
-- gets its new home for new days; existing rows are moved by the relocation).
CREATE OR REPLACE FUNCTION record_served_regions(
    p_region text, p_tenants uuid[], p_requests bigint[], p_at timestamptz
) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    INSERT INTO public.tenant_served_regions AS s
           (tenant_id, region, day, home_region, requests, first_seen, last_seen)
    SELECT t.id, p_region, (p_at AT TIME ZONE 'UTC')::date, t.home_region, x.n, p_at, p_at
      FROM unnest(p_tenants, p_requests) AS x (id, n)
      JOIN public.tenants t ON t.id = x.id
     WHERE x.n > 0
    ON CONFLICT (tenant_id, region, day) DO UPDATE
       SET requests = s.requests + EXCLUDED.requests,
           last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen)
$$;
REVOKE ALL ON FUNCTION record_served_regions(text, uuid[], bigint[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_served_regions(text, uuid[], bigint[], timestamptz) TO meridian_app;
