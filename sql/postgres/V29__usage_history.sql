-- Issue 18 (console, usage over time): one row per tenant per UTC hour with what
-- the tenant used in that hour (requests, jobs created) and where its gauges
-- stood (storage bytes, AI tokens used this month). Written off the request
-- path: every node samples its region's tenants every
-- `usage_history.sample_interval_ms` through `sample_usage` (one statement for
-- the region; a tenant with nothing new gets no row), read by
-- `GET /v1/usage/history`, pruned by `prune_usage_samples` past
-- `usage_history.retention_days`. Tenant-owned (tenant_id, home_region, key
-- led by tenant_id, RLS enabled and forced), moved by a relocation, emptied by
-- a tenant erasure. Why and how: src/limits/history.rs, sql/README.md (V29).
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS, CREATE OR REPLACE.

CREATE TABLE IF NOT EXISTS usage_samples (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    bucket_start  timestamptz NOT NULL,
    home_region   text        NOT NULL,
    requests      bigint      NOT NULL CHECK (requests >= 0),
    jobs          bigint      NOT NULL CHECK (jobs >= 0),
    storage_bytes bigint      NOT NULL CHECK (storage_bytes >= 0),
    ai_tokens     bigint      NOT NULL CHECK (ai_tokens >= 0),
    sampled_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, bucket_start)
);

-- Retention deletes by region and age (`prune_usage_samples`).
CREATE INDEX IF NOT EXISTS usage_samples_prune_idx ON usage_samples (home_region, bucket_start);

ALTER TABLE usage_samples ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_samples FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON usage_samples;
CREATE POLICY tenant_isolation ON usage_samples
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The service reads its tenant's rows, a relocation moves them and a tenant
-- erasure deletes them (RLS bounds both to the current tenant); only the
-- functions below write rows.
GRANT SELECT, DELETE, UPDATE (home_region) ON usage_samples TO meridian_app;

-- One sample of the hour [p_from, p_to) for every active tenant homed in
-- p_region: requests from the access log (what the node recorded per member
-- request; V25), jobs created (ids are time-ordered v7 UUIDs: p_jobs_lo and
-- p_jobs_hi bound the hour), storage (the shards' used bytes, V6) and the AI
-- tokens used in the hour's month. Every lookup is by the tenant's key. The
-- counters are recomputed, never added, so two nodes of a region sampling
-- the same hour write the same row. p_gauges false (a late pass over the
-- previous hour) keeps that hour's gauges as they were at its end. A tenant
-- with no row yet for the hour gets one only when something moved since its
-- last row (requests or jobs, or a gauge that differs): idle tenants cost no
-- rows. Returns the rows written.
CREATE OR REPLACE FUNCTION sample_usage(
    p_region text, p_from timestamptz, p_to timestamptz, p_jobs_lo uuid, p_jobs_hi uuid,
    p_gauges boolean
) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH x AS (
        SELECT t.id AS tenant_id, t.home_region,
               COALESCE((SELECT sum(a.requests) FROM public.access_log a
                          WHERE a.tenant_id = t.id AND a.first_at >= p_from
                            AND a.first_at < p_to), 0)::bigint AS requests,
               (SELECT count(*) FROM public.jobs j
                 WHERE j.tenant_id = t.id AND j.id >= p_jobs_lo AND j.id < p_jobs_hi)::bigint AS jobs,
               COALESCE((SELECT sum(u.used_bytes) FROM public.tenant_usage_shards u
                          WHERE u.tenant_id = t.id), 0)::bigint AS storage_bytes,
               COALESCE((SELECT g.used FROM public.ai_usage g
                          WHERE g.tenant_id = t.id
                            AND g.month = date_trunc('month', p_from AT TIME ZONE 'UTC')::date), 0)::bigint AS ai_tokens
          FROM public.tenants t
         WHERE t.home_region = p_region AND t.status = 'active'
    ), due AS (
        SELECT x.* FROM x
          LEFT JOIN LATERAL (
               SELECT s.bucket_start, s.storage_bytes, s.ai_tokens FROM public.usage_samples s
                WHERE s.tenant_id = x.tenant_id AND s.bucket_start <= p_from
                ORDER BY s.bucket_start DESC LIMIT 1) l ON true
         WHERE l.bucket_start = p_from OR x.requests > 0 OR x.jobs > 0
            OR l.bucket_start IS NULL OR l.storage_bytes <> x.storage_bytes
            OR l.ai_tokens <> x.ai_tokens
    ), written AS (
        INSERT INTO public.usage_samples AS s
               (tenant_id, bucket_start, home_region, requests, jobs, storage_bytes, ai_tokens,
                sampled_at)
        SELECT due.tenant_id, p_from, due.home_region, due.requests, due.jobs,
               due.storage_bytes, due.ai_tokens, now()
          FROM due
        ON CONFLICT (tenant_id, bucket_start) DO UPDATE
           SET requests = excluded.requests, jobs = excluded.jobs,
               storage_bytes = CASE WHEN p_gauges THEN excluded.storage_bytes ELSE s.storage_bytes END,
               ai_tokens = CASE WHEN p_gauges THEN excluded.ai_tokens ELSE s.ai_tokens END,
               sampled_at = excluded.sampled_at
        RETURNING 1)
    SELECT count(*) FROM written
$$;
REVOKE ALL ON FUNCTION sample_usage(text, timestamptz, timestamptz, uuid, uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sample_usage(text, timestamptz, timestamptz, uuid, uuid, boolean) TO meridian_app;

-- Retention: deletes up to p_limit samples older than p_before of the tenants
-- homed in p_region (each node prunes its own region's); returns how many.
CREATE OR REPLACE FUNCTION prune_usage_samples(p_region text, p_before timestamptz, p_limit integer)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH gone AS (
        DELETE FROM public.usage_samples
         WHERE (tenant_id, bucket_start) IN (
               SELECT tenant_id, bucket_start FROM public.usage_samples
                WHERE home_region = p_region AND bucket_start < p_before
                LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION prune_usage_samples(text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_usage_samples(text, timestamptz, integer) TO meridian_app;
