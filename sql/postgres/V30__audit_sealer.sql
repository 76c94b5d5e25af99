-- Issue 16, the audit chain's cost on the write path: a tenant's event is
-- chained after its transaction commits instead of inside it. The writing
-- transaction inserts the event with `seq` and `hash` NULL (no head row, so a
-- tenant's audited writes no longer serialise on it); each region's nodes run
-- the sealer (src/audit/seal.rs), which reads the region's unchained events by
-- tenant in (created_at, id) order with each trail's head
-- (`audit_unsealed_batch`), links them in the node (src/audit/chain.rs) and
-- records the links and the heads with `audit_seal_batch`, one transaction per
-- batch across tenants; a checkpoint chains its own tenant first with
-- `audit_seal`. Why and how: sql/README.md (V30), README "Audit".

-- The sealer's work list: only unchained events are in it, so it stays small.
CREATE INDEX audit_events_unsealed_idx ON audit_events (home_region, tenant_id, created_at, id)
    WHERE seq IS NULL;

-- Records the links of a batch of the current tenant's (`app.tenant_id`)
-- unchained events: each `ids[i]` gets `seqs[i]` and `hashes[i]`, and the head
-- moves from `prev_seq` to the last of them, in one statement. The service role
-- has no UPDATE on events: this sets seq and hash only where seq IS NULL, and
-- moves the head only if every event of the batch was unchained and the head is
-- still at `prev_seq`. It returns the events chained (0 if the head did not
-- move); the sealer rolls back unless that is the whole batch.
CREATE FUNCTION audit_seal(ids uuid[], seqs bigint[], hashes bytea[], prev_seq bigint)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH chained AS (
        UPDATE public.audit_events e SET seq = u.seq, hash = u.hash
          FROM unnest($1, $2, $3) AS u(id, seq, hash)
         WHERE e.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND e.id = u.id AND e.seq IS NULL
        RETURNING 1
    ), head AS (
        UPDATE public.audit_heads
           SET seq = $2[array_length($2, 1)], hash = $3[array_length($3, 1)]
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND seq = $4
           AND (SELECT count(*) FROM chained) = array_length($1, 1)
        RETURNING 1
    )
    SELECT CASE WHEN EXISTS (SELECT 1 FROM head) THEN (SELECT count(*) FROM chained) ELSE 0 END
$$;
REVOKE ALL ON FUNCTION audit_seal(uuid[], bigint[], bytea[], bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_seal(uuid[], bigint[], bytea[], bigint) TO meridian_app;

-- The sealer's pass over a region, in one transaction for many tenants: the
-- region's unchained events (at most `n`, by tenant, then (created_at, id)),
-- each with its trail's head as it is now (0 and NULL when the trail has none).
-- A deliberate hole in RLS, like `search_messages`: it returns event content
-- across tenants, but only of events not yet chained, and only to the sealer
-- (the service role could read any one tenant's events by its setting anyway).
CREATE FUNCTION audit_unsealed_batch(region text, n integer)
    RETURNS TABLE (tenant_id uuid, id uuid, created_at timestamptz, actor text, action text,
                   target_kind text, target_id text, details jsonb, sealed bytea,
                   head_seq bigint, head_hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT e.tenant_id, e.id, e.created_at, e.actor, e.action, e.target_kind, e.target_id,
           e.details, e.sealed, COALESCE(h.seq, 0), h.hash
      FROM public.audit_events e LEFT JOIN public.audit_heads h ON h.tenant_id = e.tenant_id
     WHERE e.seq IS NULL AND e.home_region = $1
     ORDER BY e.tenant_id, e.created_at, e.id
     LIMIT $2
$$;
REVOKE ALL ON FUNCTION audit_unsealed_batch(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_unsealed_batch(text, integer) TO meridian_app;

-- Records a pass's links: event i of tenant `tenants[i]` gets `seqs[i]` and
-- `hashes[i]` (only where seq IS NULL); trail j (`heads[j]`, homed in
-- `regions[j]`) moves from `prevs[j]` to (`tops[j]`, `top_hashes[j]`) only if it
-- is still at `prevs[j]` (or, at 0, is created). Returns (events chained, heads
-- moved); the sealer rolls back unless both are whole. Concurrent passes: the
-- second's updates of the same rows fail serialization and it retries.
CREATE FUNCTION audit_seal_batch(tenants uuid[], ids uuid[], seqs bigint[], hashes bytea[],
                                 heads uuid[], regions text[], prevs bigint[], tops bigint[],
                                 top_hashes bytea[])
    RETURNS TABLE (chained bigint, moved bigint)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH linked AS (
        UPDATE public.audit_events e SET seq = u.seq, hash = u.hash
          FROM unnest($1, $2, $3, $4) AS u(tenant_id, id, seq, hash)
         WHERE e.tenant_id = u.tenant_id AND e.id = u.id AND e.seq IS NULL
        RETURNING 1
    ), moved AS (
        UPDATE public.audit_heads h SET seq = u.top, hash = u.top_hash
          FROM unnest($5, $7, $8, $9) AS u(tenant_id, prev, top, top_hash)
         WHERE h.tenant_id = u.tenant_id AND h.seq = u.prev
        RETURNING 1
    ), created AS (
        INSERT INTO public.audit_heads (tenant_id, home_region, seq, hash)
        SELECT u.tenant_id, u.region, u.top, u.top_hash
          FROM unnest($5, $6, $7, $8, $9) AS u(tenant_id, region, prev, top, top_hash)
         WHERE u.prev = 0
           AND NOT EXISTS (SELECT 1 FROM public.audit_heads h WHERE h.tenant_id = u.tenant_id)
        ON CONFLICT (tenant_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM linked), (SELECT count(*) FROM moved) + (SELECT count(*) FROM created)
$$;
REVOKE ALL ON FUNCTION audit_seal_batch(uuid[], uuid[], bigint[], bytea[], uuid[], text[], bigint[], bigint[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_seal_batch(uuid[], uuid[], bigint[], bytea[], uuid[], text[], bigint[], bigint[], bytea[]) TO meridian_app;
