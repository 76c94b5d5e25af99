-- Issue 18, CockroachDB: the same function as sql/postgres/V32__top_tenants.sql
-- (the region's top tenants by load from `usage_samples`), SECURITY DEFINER
-- without the `SET` option (docs/cockroachdb.md row 3; tables
-- schema-qualified) and `int4` for PostgreSQL's `integer`. Unverified on a
-- cluster. Why and how: src/limits/top.rs, sql/README.md (V32).
-- Idempotent: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION top_tenants(p_region text, p_from timestamptz, p_by text, p_limit int4)
RETURNS TABLE (tenant_id uuid, slug text, requests bigint, jobs bigint, storage_bytes bigint,
               ai_tokens bigint)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
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
REVOKE ALL ON FUNCTION top_tenants(text, timestamptz, text, int4) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION top_tenants(text, timestamptz, text, int4) TO meridian_app;
