-- Issue 16, CockroachDB: the same function as
-- sql/postgres/V28__access_log_tenant_retention.sql (SECURITY DEFINER without
-- the `SET` option, docs/cockroachdb.md row 3; tables schema-qualified; `int4`
-- for PostgreSQL's `integer`). `access_log` is REGIONAL BY ROW and its key is
-- led by tenant_id, so the delete reads the tenant's home partition only.
-- Unverified on a cluster.

CREATE OR REPLACE FUNCTION prune_tenant_access_log(p_before timestamptz, p_limit int4)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    WITH gone AS (
        DELETE FROM public.access_log
         WHERE (tenant_id, first_at, id) IN (
               SELECT tenant_id, first_at, id FROM public.access_log
                WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
                  AND first_at < p_before
                ORDER BY first_at
                LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION prune_tenant_access_log(timestamptz, int4) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_tenant_access_log(timestamptz, int4) TO meridian_app;
