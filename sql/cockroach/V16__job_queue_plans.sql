-- Issue 13 item 5 (CockroachDB twin of sql/postgres/V16__job_queue_plans.sql; why:
-- docs/jobs.md, "Fairness under a flood"). Unverified on a cluster.
--
-- On PostgreSQL the planner chose the skip scan's and the claim's index from stale
-- statistics (jobs_ready_idx, every ready job of the region, sorted per probe)
-- while one tenant's flood was not yet analyzed. CockroachDB's optimizer also
-- plans from statistics that trail a bulk insert, and its functions take no SET
-- options, so the same statements name the index instead (table@index hint):
-- jobs_queue_idx serves both orders with one seek per probe.
--
-- The tenant lock still waits here (no reliance on SKIP LOCKED, DESIGN.md); the
-- PostgreSQL twin skips a tenant whose lock another claim holds.
CREATE OR REPLACE FUNCTION public.job_queue_heads(region text, after uuid, n integer)
    RETURNS TABLE (tenant_id uuid, running bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
    WITH RECURSIVE heads (t, k) AS (
        (SELECT q.tenant_id, 1 FROM public.jobs@jobs_queue_idx AS q
          WHERE q.state = 'queued' AND q.home_region = $1 AND q.tenant_id > $2 AND q.run_after <= now()
          ORDER BY q.tenant_id, q.run_after, q.id LIMIT 1)
        UNION ALL
        SELECT (SELECT q.tenant_id FROM public.jobs@jobs_queue_idx AS q
                 WHERE q.state = 'queued' AND q.home_region = $1 AND q.tenant_id > h.t AND q.run_after <= now()
                 ORDER BY q.tenant_id, q.run_after, q.id LIMIT 1), h.k + 1
          FROM heads h WHERE h.t IS NOT NULL AND h.k < $3
    )
    SELECT h.t, (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = h.t)
      FROM heads h WHERE h.t IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION public.claim_job_locked(region text, tenant uuid, owner text, lease_secs float8, cap bigint)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, attempts integer, max_attempts integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    AS $$
    SELECT 1 FROM public.tenants t WHERE t.id = $2 FOR NO KEY UPDATE;
    UPDATE public.jobs@jobs_queue_idx AS j
       SET state = 'running', attempts = j.attempts + 1, lease_owner = $3,
           lease_until = now() + $4 * interval '1 second', started_at = now(), updated_at = now()
     WHERE j.state = 'queued' AND j.home_region = $1 AND j.tenant_id = $2 AND j.run_after <= now()
       AND (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = $2) < $5
     ORDER BY j.run_after, j.id LIMIT 1
    RETURNING j.id, j.tenant_id, j.kind, j.attempts, j.max_attempts;
$$;

REVOKE ALL ON FUNCTION public.job_queue_heads(text, uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.job_queue_heads(text, uuid, integer) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) TO meridian_app;
