-- Issue 16 (access log): members' reads and writes of tenant data, compact:
-- one row per (user, method, route, path) per node flush (about a second),
-- with the number of requests and the first and last time. Written off the
-- request path, in batches, through `record_access`; pruned by
-- `prune_access_log`. Tenant-owned (tenant_id, home_region, key led by
-- tenant_id, RLS enabled and forced), moved by a relocation. Why and how:
-- src/access_log.rs, sql/README.md (V25), README "Access log".
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS, CREATE OR REPLACE.

CREATE TABLE IF NOT EXISTS access_log (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    first_at    timestamptz NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    user_id     uuid        NOT NULL,
    method      text        NOT NULL,
    route       text        NOT NULL,
    path        text        NOT NULL,
    last_at     timestamptz NOT NULL,
    requests    int4     NOT NULL CHECK (requests > 0),
    region      text        NOT NULL,
    crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    PRIMARY KEY (tenant_id, first_at, id)
) LOCALITY REGIONAL BY ROW AS crdb_region;

-- Retention deletes by region and age (`prune_access_log`).
CREATE INDEX IF NOT EXISTS access_log_prune_idx ON access_log (home_region, first_at);

ALTER TABLE access_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_log FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON access_log;
CREATE POLICY tenant_isolation ON access_log
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The service reads its tenant's rows and a relocation moves them; only the
-- functions below write or delete.
-- CockroachDB has no column-level GRANT (docs/cockroachdb.md, dialect guard):
-- UPDATE on the whole table, which RLS still bounds to the current tenant's
-- rows; the service itself only moves `home_region` (relocation).
GRANT SELECT, UPDATE ON access_log TO meridian_app;

-- One node flush for many tenants in one statement. SECURITY DEFINER (without
-- the `SET` option, docs/cockroachdb.md row 3; tables schema-qualified) so it
-- writes across tenants; home_region is the tenant's own, read here.
CREATE OR REPLACE FUNCTION record_access(
    p_region text, p_ids uuid[], p_tenants uuid[], p_users uuid[], p_methods text[],
    p_routes text[], p_paths text[], p_first timestamptz[], p_last timestamptz[],
    p_requests int4[]
) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    INSERT INTO public.access_log
           (tenant_id, first_at, id, home_region, user_id, method, route, path, last_at,
            requests, region)
    SELECT t.id, x.first_at, x.id, t.home_region, x.user_id, x.method, x.route, x.path,
           x.last_at, x.requests, p_region
      FROM unnest(p_ids, p_tenants, p_users, p_methods, p_routes, p_paths, p_first, p_last,
                  p_requests)
           AS x (id, tenant_id, user_id, method, route, path, first_at, last_at, requests)
      JOIN public.tenants t ON t.id = x.tenant_id
    ON CONFLICT (tenant_id, first_at, id) DO NOTHING
$$;
REVOKE ALL ON FUNCTION record_access(text, uuid[], uuid[], uuid[], text[], text[], text[], timestamptz[], timestamptz[], int4[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_access(text, uuid[], uuid[], uuid[], text[], text[], text[], timestamptz[], timestamptz[], int4[]) TO meridian_app;

-- Retention: deletes up to p_limit rows older than p_before of the tenants
-- homed in p_region (each node prunes its own region's); returns how many.
CREATE OR REPLACE FUNCTION prune_access_log(p_region text, p_before timestamptz, p_limit int4)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    WITH gone AS (
        DELETE FROM public.access_log
         WHERE (tenant_id, first_at, id) IN (
               SELECT tenant_id, first_at, id FROM public.access_log
                WHERE home_region = p_region AND first_at < p_before
                LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION prune_access_log(text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_access_log(text, timestamptz, integer) TO meridian_app;
