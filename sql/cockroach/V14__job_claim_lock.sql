-- Issue 13 item 5 (CockroachDB twin of sql/postgres/V14__job_claim_lock.sql; why:
-- docs/jobs.md, "Draining one tenant's flood"). Unverified on a cluster.
--
-- The tenant's row lock first, then V8's count-and-lease statement: one tenant's
-- claims queue behind each other on the lock instead of aborting each other.
-- Under SERIALIZABLE (CockroachDB's default) the count stays exact as in V8; under
-- READ COMMITTED (when the cluster enables it) each statement reads a fresh
-- snapshot after the lock is granted, so the count sees every earlier claim of the
-- tenant. CockroachDB treats FOR NO KEY UPDATE as FOR UPDATE; its foreign keys
-- take no shared lock on tenants, so enqueueing does not wait for it.
CREATE OR REPLACE FUNCTION public.claim_job_locked(region text, tenant uuid, owner text, lease_secs float8, cap bigint)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, attempts integer, max_attempts integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    AS $$
    SELECT 1 FROM public.tenants t WHERE t.id = $2 FOR NO KEY UPDATE;
    UPDATE public.jobs j
       SET state = 'running', attempts = j.attempts + 1, lease_owner = $3,
           lease_until = now() + $4 * interval '1 second', started_at = now(), updated_at = now()
     WHERE j.state = 'queued' AND j.home_region = $1 AND j.tenant_id = $2 AND j.run_after <= now()
       AND (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = $2) < $5
     ORDER BY j.run_after, j.id LIMIT 1
    RETURNING j.id, j.tenant_id, j.kind, j.attempts, j.max_attempts;
$$;

REVOKE ALL ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) TO meridian_app;
