-- Security review of 2026-11-30: `prune_usage_samples` (V29), a SECURITY
-- DEFINER function the service role can call, deleted whatever was older than
-- the caller's cutoff, `now()` included. The retention is a node setting
-- (`usage_history.retention_days`) the database cannot read, but the node's
-- validation refuses anything under one day; so the function never deletes a
-- sample younger than one day, whatever cutoff it is given. Why and how:
-- sql/README.md (V35), README "Security: the classes of attack covered".
--
-- And the service role inserts audit events without `seq` and `hash`: only
-- the sealing functions (V30) set them. (They still record the links the node
-- computed; `GET /v1/audit/verify` recomputes every link. Recomputing them in
-- SQL was tried and left out: README "Not yet".)

CREATE OR REPLACE FUNCTION prune_usage_samples(p_region text, p_before timestamptz, p_limit integer)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH gone AS (
        DELETE FROM public.usage_samples
         WHERE (tenant_id, bucket_start) IN (
               SELECT tenant_id, bucket_start FROM public.usage_samples
                WHERE home_region = p_region
                  -- The floor: the shortest retention the node accepts.
                  AND bucket_start < LEAST(p_before, now() - interval '1 day')
                LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Events are inserted unchained: seq and hash are the sealing functions' only.
REVOKE INSERT ON audit_events FROM meridian_app;
GRANT INSERT (tenant_id, id, home_region, actor, action, target_kind, target_id, details,
              created_at, sealed) ON audit_events TO meridian_app;
