-- As sql/postgres/V30__audit_sealer.sql: tenant events are chained after their
-- transaction commits, by the region's sealer (src/audit/seal.rs). Functions
-- without the SET option (dialect guard), names qualified; the admin owner is
-- not filtered by RLS, so the tenant is named explicitly. Unverified on a
-- cluster. Under REGIONAL BY ROW the partial index is partitioned by region like
-- the table, so a region's sealer reads its own region's rows.

CREATE INDEX audit_events_unsealed_idx ON audit_events (home_region, tenant_id, created_at, id)
    WHERE seq IS NULL;

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

-- The sealer's pass over a region, in one transaction for many tenants: the
-- region's unchained events (at most `n`, by tenant, then (created_at, id)),
-- each with its trail's head as it is now (0 and NULL when the trail has none).
-- A deliberate hole in RLS, like `search_messages`: it returns event content
-- across tenants, but only of events not yet chained, and only to the sealer
-- (the service role could read any one tenant's events by its setting anyway).
CREATE OR REPLACE FUNCTION public.audit_unsealed_batch(region text, n integer)
    RETURNS TABLE (tenant_id uuid, id uuid, created_at timestamptz, actor text, action text,
                   target_kind text, target_id text, details jsonb, sealed bytea,
                   head_seq int8, head_hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT e.tenant_id, e.id, e.created_at, e.actor, e.action, e.target_kind, e.target_id,
           e.details, e.sealed, COALESCE(h.seq, 0), h.hash
      FROM public.audit_events e LEFT JOIN public.audit_heads h ON h.tenant_id = e.tenant_id
     WHERE e.seq IS NULL AND e.home_region = region
     ORDER BY e.tenant_id, e.created_at, e.id
     LIMIT n
$$;
REVOKE ALL ON FUNCTION public.audit_unsealed_batch(text, integer) FROM public;
GRANT EXECUTE ON FUNCTION public.audit_unsealed_batch(text, integer) TO meridian_app;

-- Records a pass's links: event i of tenant `tenants[i]` gets `seqs[i]` and
-- `hashes[i]` (only where seq IS NULL); trail j (`heads[j]`, homed in
-- `regions[j]`) moves from `prevs[j]` to (`tops[j]`, `top_hashes[j]`) only if it
-- is still at `prevs[j]` (or, at 0, is created). Returns (events chained, heads
-- moved); the sealer rolls back unless both are whole. Concurrent passes: the
-- second's updates of the same rows fail serialization and it retries.
CREATE OR REPLACE FUNCTION public.audit_seal_batch(tenants uuid[], ids uuid[], seqs int8[], hashes bytea[],
                                 heads uuid[], regions text[], prevs int8[], tops int8[],
                                 top_hashes bytea[])
    RETURNS TABLE (chained int8, moved int8)
    LANGUAGE sql VOLATILE SECURITY DEFINER AS $$
    WITH linked AS (
        UPDATE public.audit_events e SET seq = u.seq, hash = u.hash
          FROM unnest(tenants, ids, seqs, hashes) AS u(tenant_id, id, seq, hash)
         WHERE e.tenant_id = u.tenant_id AND e.id = u.id AND e.seq IS NULL
        RETURNING 1
    ), moved AS (
        UPDATE public.audit_heads h SET seq = u.top, hash = u.top_hash
          FROM unnest(heads, prevs, tops, top_hashes) AS u(tenant_id, prev, top, top_hash)
         WHERE h.tenant_id = u.tenant_id AND h.seq = u.prev
        RETURNING 1
    ), created AS (
        INSERT INTO public.audit_heads (tenant_id, home_region, seq, hash)
        SELECT u.tenant_id, u.region, u.top, u.top_hash
          FROM unnest(heads, regions, prevs, tops, top_hashes) AS u(tenant_id, region, prev, top, top_hash)
         WHERE u.prev = 0
           AND NOT EXISTS (SELECT 1 FROM public.audit_heads h WHERE h.tenant_id = u.tenant_id)
        ON CONFLICT (tenant_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM linked), (SELECT count(*) FROM moved) + (SELECT count(*) FROM created)
$$;
REVOKE ALL ON FUNCTION public.audit_seal_batch(uuid[], uuid[], int8[], bytea[], uuid[], text[], int8[], int8[], bytea[]) FROM public;
GRANT EXECUTE ON FUNCTION public.audit_seal_batch(uuid[], uuid[], int8[], bytea[], uuid[], text[], int8[], int8[], bytea[]) TO meridian_app;
