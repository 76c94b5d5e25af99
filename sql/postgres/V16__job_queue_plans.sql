-- Issue 13 item 5: the queue's plans no longer depend on the table's statistics,
-- and a claim never waits behind another claim of the same tenant. Why and the
-- figures: docs/jobs.md ("Fairness under a flood").
--
-- Cause: the skip scan of job_queue_heads and the claim's "oldest ready job of
-- this tenant" were left to the planner, which chose by jobs' statistics. After
-- one tenant enqueued 100,000 jobs and before autovacuum's next ANALYZE (up to a
-- minute or more), the statistics still said "almost nothing is queued", and the
-- planner read jobs_ready_idx (home_region, run_after) — every ready job of the
-- region — and sorted, once per probe: ~40 ms and ~2,100 buffers per tenant
-- looked at, ~300 ms per heads call, ~25 ms per claim. Passes took seconds, so
-- the other tenants' jobs waited seconds. Once analyzed, it chose jobs_tenant_idx
-- (every job the tenant ever had) instead: cheap on a fresh table, not on one
-- with history.
--
-- Fix: each probe orders by the full key of jobs_queue_idx (home_region fixed by
-- equality), and the functions run with sorts disabled (function-level SET):
-- every other index, and a sequential scan, would need a sort for that order, so
-- jobs_queue_idx is the only plan without one, whatever the statistics say. A
-- probe is one index descent again (tests/api/jobs.rs counts its buffers).
--
-- The claim's tenant lock is now taken with SKIP LOCKED: when another node's
-- claim of the same tenant holds it, this claim leases nothing ("busy, next
-- pass") instead of waiting, so a pass never stalls on the flooding tenant while
-- other tenants' jobs wait behind it. Still exact: a claim counts and leases only
-- while holding the lock, as in V14.
CREATE OR REPLACE FUNCTION public.job_queue_heads(region text, after uuid, n integer)
    RETURNS TABLE (tenant_id uuid, running bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_sort = off
    SET enable_incremental_sort = off AS $$
    WITH RECURSIVE heads (t, k) AS (
        (SELECT q.tenant_id, 1 FROM public.jobs q
          WHERE q.state = 'queued' AND q.home_region = $1 AND q.tenant_id > $2 AND q.run_after <= now()
          ORDER BY q.tenant_id, q.run_after, q.id LIMIT 1)
        UNION ALL
        SELECT (SELECT q.tenant_id FROM public.jobs q
                 WHERE q.state = 'queued' AND q.home_region = $1 AND q.tenant_id > h.t AND q.run_after <= now()
                 ORDER BY q.tenant_id, q.run_after, q.id LIMIT 1), h.k + 1
          FROM heads h WHERE h.t IS NOT NULL AND h.k < $3
    )
    SELECT h.t, (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = h.t)
      FROM heads h WHERE h.t IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION public.claim_job_locked(region text, tenant uuid, owner text, lease_secs float8, cap bigint)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, attempts integer, max_attempts integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_sort = off
    SET enable_incremental_sort = off AS $$
BEGIN
    PERFORM 1 FROM public.tenants t WHERE t.id = tenant FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN; -- another claim of this tenant holds it (or the tenant is gone)
    END IF;
    RETURN QUERY
    UPDATE public.jobs j
       SET state = 'running', attempts = j.attempts + 1, lease_owner = owner,
           lease_until = now() + lease_secs * interval '1 second', started_at = now(), updated_at = now()
     WHERE j.id = (SELECT q.id FROM public.jobs q
                    WHERE q.state = 'queued' AND q.home_region = region AND q.tenant_id = tenant
                      AND q.run_after <= now()
                      AND (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = tenant) < cap
                    ORDER BY q.run_after, q.id LIMIT 1
                    FOR UPDATE SKIP LOCKED)
    RETURNING j.id, j.tenant_id, j.kind, j.attempts, j.max_attempts;
END
$$;

REVOKE ALL ON FUNCTION public.job_queue_heads(text, uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.job_queue_heads(text, uuid, integer) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) TO meridian_app;
