-- Issue 16 item 5 (residency attestation): which regions served each tenant's
-- requests, per UTC day. Each node counts the requests it served with the
-- tenant's data (a tenant transaction opened here) and flushes its counts every
-- `residency.served_flush_ms` through `record_served_regions`. Tenant-owned
-- (tenant_id, home_region, key led by tenant_id, RLS enabled and forced),
-- REGIONAL BY ROW on the home region, moved by a relocation. Why and how:
-- src/tenancy/served.rs, src/tenancy/attest.rs, sql/README.md (V24), README
-- "Residency attestation". Not run on a cluster here (docs/cockroachdb.md).
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS, CREATE OR REPLACE.

CREATE TABLE IF NOT EXISTS tenant_served_regions (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    region      text        NOT NULL,
    day         date        NOT NULL,
    home_region text        NOT NULL,
    crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    requests    bigint      NOT NULL CHECK (requests >= 0),
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, region, day)
) LOCALITY REGIONAL BY ROW AS crdb_region;

ALTER TABLE tenant_served_regions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_served_regions FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenant_served_regions;
CREATE POLICY tenant_isolation ON tenant_served_regions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- CockroachDB has no column-level GRANT (docs/cockroachdb.md, dialect guard):
-- UPDATE on the whole table, which RLS still bounds to the current tenant's
-- rows; the service itself only moves `home_region` (relocation).
GRANT SELECT, UPDATE ON tenant_served_regions TO meridian_app;

-- SECURITY DEFINER without the `SET` routine option (docs/cockroachdb.md row 3):
-- every table is schema-qualified.
CREATE OR REPLACE FUNCTION record_served_regions(
    p_region text, p_tenants uuid[], p_requests int8[], p_at timestamptz
) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    INSERT INTO public.tenant_served_regions AS s
           (tenant_id, region, day, home_region, requests, first_seen, last_seen)
    SELECT t.id, p_region, (p_at AT TIME ZONE 'UTC')::date, t.home_region, x.n, p_at, p_at
      FROM unnest(p_tenants, p_requests) AS x (id, n)
      JOIN public.tenants t ON t.id = x.id
     WHERE x.n > 0
    ON CONFLICT (tenant_id, region, day) DO UPDATE
       SET requests = s.requests + excluded.requests,
           last_seen = GREATEST(s.last_seen, excluded.last_seen)
$$;
REVOKE ALL ON FUNCTION record_served_regions(text, uuid[], int8[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_served_regions(text, uuid[], int8[], timestamptz) TO meridian_app;
