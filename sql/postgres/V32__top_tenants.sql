-- Issue 18 (console, platform view): the tenants of a region that used the
-- most in the last hours, from the hourly `usage_samples` (V29), for
-- `GET /v1/regions/{id}/top-tenants`. The samples are tenant-owned under
-- forced RLS, so a platform caller (no tenant set) reads none of them; this
-- function is the one hole for this read, and returns counters and slugs
-- only (no names, plans or content). One grouped read over
-- `usage_samples_prune_idx (home_region, bucket_start)`: the samples of the
-- region since p_from, summed per tenant (requests, jobs) or at their highest
-- in the window (the gauges: storage bytes, AI tokens of the month), the
-- p_limit largest by p_by ('requests', 'jobs', 'storage', 'ai_tokens'; ties
-- by tenant id), then each one's slug by key. Cost: every sample of the
-- region in the window (active tenants x hours) plus a top-N sort; idle
-- tenants have no rows (sample_usage writes none). Why and how:
-- src/limits/top.rs, sql/README.md (V32).
-- Idempotent: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION top_tenants(p_region text, p_from timestamptz, p_by text, p_limit integer)
RETURNS TABLE (tenant_id uuid, slug text, requests bigint, jobs bigint, storage_bytes bigint,
               ai_tokens bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    -- The slug by key per listed tenant (a join would hash the whole directory).
    SELECT top.tenant_id, (SELECT t.slug FROM public.tenants t WHERE t.id = top.tenant_id),
           top.requests, top.jobs, top.storage_bytes, top.ai_tokens
      FROM (SELECT s.tenant_id, sum(s.requests)::bigint AS requests, sum(s.jobs)::bigint AS jobs,
                   max(s.storage_bytes) AS storage_bytes, max(s.ai_tokens) AS ai_tokens
              FROM public.usage_samples s
             WHERE s.home_region = p_region AND s.bucket_start >= p_from
             GROUP BY s.tenant_id
             ORDER BY CASE p_by WHEN 'requests' THEN sum(s.requests)
                                WHEN 'jobs' THEN sum(s.jobs)
                                WHEN 'storage' THEN max(s.storage_bytes)
                                ELSE max(s.ai_tokens) END DESC, s.tenant_id
             LIMIT p_limit) top
     ORDER BY CASE p_by WHEN 'requests' THEN top.requests
                        WHEN 'jobs' THEN top.jobs
                        WHEN 'storage' THEN top.storage_bytes
                        ELSE top.ai_tokens END DESC, top.tenant_id
$$;
REVOKE ALL ON FUNCTION top_tenants(text, timestamptz, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION top_tenants(text, timestamptz, text, integer) TO meridian_app;
