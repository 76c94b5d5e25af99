-- Issue 16, the audit chain's cost on the write path: a tenant's event is
-- chained after its transaction commits instead of inside it. The writing
-- transaction inserts the event with `seq` and `hash` NULL (no head row, so a
-- tenant's audited writes no longer serialise on it); each region's nodes run
-- the sealer (src/audit/seal.rs), which takes a trail's unchained events in
-- (created_at, id) order, links them after the head in the node
-- (src/audit/chain.rs) and records the links with `audit_seal`, one
-- transaction per batch. Why and how: sql/README.md (V30), README "Audit".

-- The sealer's work list: only unchained events are in it, so it stays small.
CREATE INDEX audit_events_unsealed_idx ON audit_events (home_region, tenant_id, created_at, id)
    WHERE seq IS NULL;

-- The tenants of a region with unchained events. SECURITY DEFINER (owned by the
-- migrating role), like calendar_tenants (V23): ids only, across tenants.
CREATE FUNCTION audit_unsealed_trails(region text, n integer) RETURNS TABLE (tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT DISTINCT e.tenant_id FROM public.audit_events e
     WHERE e.seq IS NULL AND e.home_region = $1
     LIMIT $2
$$;
REVOKE ALL ON FUNCTION audit_unsealed_trails(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_unsealed_trails(text, integer) TO meridian_app;

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
