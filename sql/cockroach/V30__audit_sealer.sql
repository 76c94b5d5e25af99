-- As sql/postgres/V30__audit_sealer.sql: tenant events are chained after their
-- transaction commits, by the region's sealer (src/audit/seal.rs). Functions
-- without the SET option (dialect guard), names qualified; the admin owner is
-- not filtered by RLS, so the tenant is named explicitly. Unverified on a
-- cluster. Under REGIONAL BY ROW the partial index is partitioned by region like
-- the table, so a region's sealer reads its own region's rows.

CREATE INDEX audit_events_unsealed_idx ON audit_events (home_region, tenant_id, created_at, id)
    WHERE seq IS NULL;

CREATE OR REPLACE FUNCTION public.audit_unsealed_trails(region text, n integer)
    RETURNS TABLE (tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT DISTINCT e.tenant_id FROM public.audit_events e
     WHERE e.seq IS NULL AND e.home_region = region
     LIMIT n
$$;
REVOKE ALL ON FUNCTION public.audit_unsealed_trails(text, integer) FROM public;
GRANT EXECUTE ON FUNCTION public.audit_unsealed_trails(text, integer) TO meridian_app;

CREATE OR REPLACE FUNCTION public.audit_seal(ids uuid[], seqs int8[], hashes bytea[], prev_seq int8)
    RETURNS int8
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    WITH chained AS (
        UPDATE public.audit_events e SET seq = u.seq, hash = u.hash
          FROM unnest(ids, seqs, hashes) AS u(id, seq, hash)
         WHERE e.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND e.id = u.id AND e.seq IS NULL
        RETURNING 1
    ), head AS (
        UPDATE public.audit_heads
           SET seq = seqs[array_length(seqs, 1)], hash = hashes[array_length(hashes, 1)]
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND seq = prev_seq
           AND (SELECT count(*) FROM chained) = array_length(ids, 1)
        RETURNING 1
    )
    SELECT CASE WHEN EXISTS (SELECT 1 FROM head) THEN (SELECT count(*) FROM chained) ELSE 0 END
$$;
REVOKE ALL ON FUNCTION public.audit_seal(uuid[], int8[], bytea[], int8) FROM public;
GRANT EXECUTE ON FUNCTION public.audit_seal(uuid[], int8[], bytea[], int8) TO meridian_app;
