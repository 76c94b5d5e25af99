-- CockroachDB version of sql/postgres/V12__ai_engine.sql (same statements; the
-- functions without a pinned search_path, like V8's). tenants is GLOBAL and
-- ai_reservations REGIONAL BY ROW already (V5): new columns follow their table.

-- Each tenant's summary engine (issue 13): `extractive` (in process, the default)
-- or `external` (the node's OpenAI-compatible engine), and whether the tenant
-- lets that engine run outside its residency. Directory columns: cached with the
-- tenant's config (config_version), re-read by the summary request's transaction
-- and by the job before it sends anything.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS ai_engine text NOT NULL DEFAULT 'extractive'
    CHECK (ai_engine IN ('extractive', 'external'));
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS ai_external_outside_residency boolean NOT NULL DEFAULT false;

-- One open AI reservation per job: a job's new attempt releases the open one of
-- an attempt that died before it, and an expired lease releases it (below).
ALTER TABLE ai_reservations ADD COLUMN IF NOT EXISTS job_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS ai_reservations_open_job_idx ON ai_reservations (tenant_id, job_id)
    WHERE status = 'reserved' AND job_id IS NOT NULL;

-- The age of the region's oldest ready job in one index probe (job_region_stats).
CREATE INDEX IF NOT EXISTS jobs_ready_idx ON jobs (home_region, run_after) WHERE state = 'queued';

-- A lease that expired (its worker died or stalled) returns the job to the queue
-- or makes it dead, as in V8, and now also releases the job's open AI reservation
-- in the same statement: tokens held by a dead worker go back to the tenant's
-- month at once, never twice (only `reserved` rows move). The final SELECT reads
-- every CTE so that no dialect can skip one.
CREATE OR REPLACE FUNCTION public.expire_job_leases(region text)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER
    AS $$
    WITH expired AS (
        UPDATE public.jobs j
           SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
               error = 'lease expired (worker lost)', lease_owner = NULL, lease_until = NULL,
               run_after = now(), updated_at = now(),
               finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END
         WHERE j.state = 'running' AND j.home_region = $1 AND j.lease_until < now()
        RETURNING j.tenant_id, j.id
    ), released AS (
        UPDATE public.ai_reservations r
           SET status = 'released', settled_at = now()
          FROM expired e
         WHERE r.tenant_id = e.tenant_id AND r.job_id = e.id AND r.status = 'reserved'
        RETURNING r.tenant_id, r.month, r.tokens
    ), returned AS (
        UPDATE public.ai_usage u
           SET reserved = u.reserved - s.tokens
          FROM (SELECT tenant_id, month, sum(tokens)::bigint AS tokens FROM released GROUP BY tenant_id, month) s
         WHERE u.tenant_id = s.tenant_id AND u.month = s.month
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM expired) + 0 * (SELECT count(*) FROM returned)
$$;

-- Region totals for /metrics, at a bounded cost: queued and running are counted
-- up to 10,000 each (a scrape reads at most that many index entries however long
-- the queue; 10000 reads "10,000 or more"), and the oldest ready job's age is one
-- probe of jobs_ready_idx. No tenant in the answer.
CREATE OR REPLACE FUNCTION public.job_region_stats(region text)
    RETURNS TABLE (queued bigint, running bigint, oldest_queued_secs float8)
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
    SELECT (SELECT count(*) FROM (SELECT 1 FROM public.jobs WHERE state = 'queued' AND home_region = $1 LIMIT 10000) q),
           (SELECT count(*) FROM (SELECT 1 FROM public.jobs WHERE state = 'running' AND home_region = $1 LIMIT 10000) r),
           (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(run_after)), 0)::float8
              FROM public.jobs WHERE state = 'queued' AND home_region = $1 AND run_after <= now())
$$;

REVOKE ALL ON FUNCTION public.expire_job_leases(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.job_region_stats(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.expire_job_leases(text) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.job_region_stats(text) TO meridian_app;
