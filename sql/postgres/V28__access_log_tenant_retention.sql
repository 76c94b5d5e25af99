-- Issue 16: the access log is covered by the tenant's retention. The retention
-- job (`compliance::retention_job`) deletes the current tenant's access-log rows
-- older than min(audit_days, access_log.retention_days): the access log is a
-- record of actions like the audit trail, so it follows the audit retention and
-- its floor (only a platform admin lowers it below the plan's floor), and the
-- node's platform-wide `access_log.retention_days` stays the ceiling
-- (`prune_access_log`, V25). The service role has no DELETE on access_log, so
-- this definer function is the only way, and it deletes only the rows of the
-- tenant named by the same setting RLS uses. Why and how: sql/README.md (V28).

CREATE OR REPLACE FUNCTION prune_tenant_access_log(p_before timestamptz, p_limit integer)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
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
REVOKE ALL ON FUNCTION prune_tenant_access_log(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_tenant_access_log(timestamptz, integer) TO meridian_app;
