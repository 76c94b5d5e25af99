-- As sql/postgres/V35__definer_floors.sql, without its column-level GRANT on
-- `audit_events` (dialect guard; not written for CockroachDB yet, README "Not
-- yet"): `prune_usage_samples` never deletes a sample younger than one day (the
-- shortest `usage_history.retention_days` the node accepts), whatever cutoff it
-- is given. Unverified on a cluster.

CREATE OR REPLACE FUNCTION prune_usage_samples(p_region text, p_before timestamptz, p_limit int4)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    WITH gone AS (
        DELETE FROM public.usage_samples
         WHERE (tenant_id, bucket_start) IN (
               SELECT tenant_id, bucket_start FROM public.usage_samples
                WHERE home_region = p_region
                  AND bucket_start < LEAST(p_before, now() - INTERVAL '1 day')
                LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
