-- CockroachDB version of sql/postgres/V8__jobs.sql (idempotent, placed from the
-- start: REGIONAL BY ROW like every tenant table, so a region's queue lives in
-- that region). Differences: no `SET search_path` on functions (unsupported;
-- names are schema-qualified instead) and the claim is CockroachDB's documented
-- queue pattern, `UPDATE … ORDER BY … LIMIT 1 RETURNING` under a lease, instead
-- of `FOR UPDATE SKIP LOCKED` (docs/cockroachdb.md, docs/jobs.md).
--
-- Background jobs (issue 13): one table, homed like every tenant row, claimed by
-- the worker pool of the job's home region. Why each piece: docs/jobs.md.
--
-- tenant_id is NULL for platform jobs (schedules of the region itself); those
-- belong to home_region and are visible only to a transaction that asked for them
-- (`app.platform_jobs`), never to a tenant's.
CREATE TABLE IF NOT EXISTS jobs (
    id              uuid        NOT NULL PRIMARY KEY,
    tenant_id       uuid        REFERENCES tenants (id),
    home_region     text        NOT NULL,
    kind            text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state           text        NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    run_after       timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_until     timestamptz,
    idempotency_key text        CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    result          jsonb,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    crdb_region     crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED,
    CONSTRAINT jobs_lease_check CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_until IS NOT NULL))
) LOCALITY REGIONAL BY ROW AS crdb_region;
-- The tenant's list, newest first (ids are time-ordered v7 UUIDs).
CREATE INDEX IF NOT EXISTS jobs_tenant_idx ON jobs (tenant_id, id DESC);
-- Idempotency: one job per key per tenant; platform keys per region.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency_idx ON jobs (tenant_id, idempotency_key)
    WHERE tenant_id IS NOT NULL AND idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_platform_idempotency_idx ON jobs (home_region, idempotency_key)
    WHERE tenant_id IS NULL AND idempotency_key IS NOT NULL;
-- The queue: walked tenant by tenant (round robin), oldest ready job first.
CREATE INDEX IF NOT EXISTS jobs_queue_idx ON jobs (home_region, tenant_id, run_after, id) WHERE state = 'queued';
-- Running jobs: per-tenant concurrency counts these rows (no counter row), and
-- expired leases are found by region.
CREATE INDEX IF NOT EXISTS jobs_running_idx ON jobs (tenant_id) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_leases_idx ON jobs (home_region, lease_until) WHERE state = 'running';

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON jobs;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           OR (tenant_id IS NULL AND current_setting('app.platform_jobs', true) = 'on'))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           OR (tenant_id IS NULL AND current_setting('app.platform_jobs', true) = 'on'));
GRANT SELECT, INSERT, UPDATE ON jobs TO meridian_app;

-- The worker's cross-tenant path. The service role sees one tenant's jobs at a
-- time (RLS above); a worker must find and lease the next job of any tenant of its
-- region. These SECURITY DEFINER functions are that path and nothing more: they
-- return ids, tenant ids, kinds and counts (never a payload, result or error: the
-- worker reads those in the job's tenant transaction, under RLS), and they only
-- move a job to `running` under a lease or an expired lease back to `queued`.
-- Same reasoning and precautions as search_messages (V7): owned by the migrating
-- role, pinned search_path, schema-qualified names.

-- Tenants of `region` with a ready queued job, in tenant-id order after `after`
-- (a node's round-robin cursor), at most `n`; a recursive skip scan of
-- jobs_queue_idx, so a tenant with 100,000 queued jobs costs one probe, not
-- 100,000 rows. `running` is the tenant's running jobs (its concurrency in use).
CREATE OR REPLACE FUNCTION public.job_queue_heads(region text, after uuid, n integer)
    RETURNS TABLE (tenant_id uuid, running bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
    WITH RECURSIVE heads (t, k) AS (
        (SELECT q.tenant_id, 1 FROM public.jobs q
          WHERE q.state = 'queued' AND q.home_region = $1 AND q.tenant_id > $2 AND q.run_after <= now()
          ORDER BY q.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT q.tenant_id FROM public.jobs q
                 WHERE q.state = 'queued' AND q.home_region = $1 AND q.tenant_id > h.t AND q.run_after <= now()
                 ORDER BY q.tenant_id LIMIT 1), h.k + 1
          FROM heads h WHERE h.t IS NOT NULL AND h.k < $3
    )
    SELECT h.t, (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = h.t)
      FROM heads h WHERE h.t IS NOT NULL
$$;

-- Leases the oldest ready job of `tenant` in `region` to `owner` for `lease_secs`,
-- if the tenant runs fewer than `cap` jobs. PostgreSQL: FOR UPDATE SKIP LOCKED, so
-- two workers never take one job and never wait for each other. The count and the
-- lease are one statement of one SERIALIZABLE transaction: two claims that both
-- saw cap - 1 running cannot both commit (40001, retried). CockroachDB: a plain
-- `UPDATE … LIMIT 1`; two workers updating one row serialize on its write intent
-- and the second re-evaluates `state = 'queued'`, so one job is leased once.
CREATE OR REPLACE FUNCTION public.claim_job(region text, tenant uuid, owner text, lease_secs float8, cap bigint)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, attempts integer, max_attempts integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    AS $$
    UPDATE public.jobs j
       SET state = 'running', attempts = j.attempts + 1, lease_owner = $3,
           lease_until = now() + $4 * interval '1 second', started_at = now(), updated_at = now()
     WHERE j.state = 'queued' AND j.home_region = $1 AND j.tenant_id = $2 AND j.run_after <= now()
       AND (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = $2) < $5
     ORDER BY j.run_after, j.id LIMIT 1
    RETURNING j.id, j.tenant_id, j.kind, j.attempts, j.max_attempts
$$;

-- The same for the region's platform jobs (tenant_id IS NULL).
CREATE OR REPLACE FUNCTION public.claim_platform_job(region text, owner text, lease_secs float8, cap bigint)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, attempts integer, max_attempts integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    AS $$
    UPDATE public.jobs j
       SET state = 'running', attempts = j.attempts + 1, lease_owner = $2,
           lease_until = now() + $3 * interval '1 second', started_at = now(), updated_at = now()
     WHERE j.state = 'queued' AND j.home_region = $1 AND j.tenant_id IS NULL AND j.run_after <= now()
       AND (SELECT count(*) FROM public.jobs r
             WHERE r.state = 'running' AND r.home_region = $1 AND r.tenant_id IS NULL) < $4
     ORDER BY j.run_after, j.id LIMIT 1
    RETURNING j.id, j.tenant_id, j.kind, j.attempts, j.max_attempts
$$;

-- Jobs of `region` whose lease expired (their worker died or stalled): back to
-- `queued` for another worker, or `dead` when no attempt is left. Returns how many.
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
        RETURNING 1
    )
    SELECT count(*) FROM expired
$$;

-- Region totals for /metrics: counts by state for the live states and the age of
-- the oldest ready queued job. No tenant in the answer.
CREATE OR REPLACE FUNCTION public.job_region_stats(region text)
    RETURNS TABLE (queued bigint, running bigint, oldest_queued_secs float8)
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
    SELECT (SELECT count(*) FROM public.jobs WHERE state = 'queued' AND home_region = $1),
           (SELECT count(*) FROM public.jobs WHERE state = 'running' AND home_region = $1),
           (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(run_after)), 0)::float8
              FROM public.jobs WHERE state = 'queued' AND home_region = $1 AND run_after <= now())
$$;

REVOKE ALL ON FUNCTION public.job_queue_heads(text, uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.claim_job(text, uuid, text, float8, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.claim_platform_job(text, text, float8, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.expire_job_leases(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.job_region_stats(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.job_queue_heads(text, uuid, integer) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.claim_job(text, uuid, text, float8, bigint) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.claim_platform_job(text, text, float8, bigint) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.expire_job_leases(text) TO meridian_app;
GRANT EXECUTE ON FUNCTION public.job_region_stats(text) TO meridian_app;

-- A 404 for another tenant's job is audited like one for its channel (V1's
-- resource_owner, which names only the owning tenant, learns the kind `job`).
CREATE OR REPLACE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT CASE kind
        WHEN 'user'    THEN (SELECT tenant_id FROM public.users    WHERE id = resource_id LIMIT 1)
        WHEN 'channel' THEN (SELECT tenant_id FROM public.channels WHERE id = resource_id LIMIT 1)
        WHEN 'tenant'  THEN (SELECT id        FROM public.tenants  WHERE id = resource_id)
        WHEN 'job'     THEN (SELECT tenant_id FROM public.jobs     WHERE id = resource_id LIMIT 1)
    END
$$;
