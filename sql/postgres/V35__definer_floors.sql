-- Security review of 2026-11-30: two SECURITY DEFINER functions the service
-- role can call trusted their caller's arguments. The database now enforces
-- what the node's code only promised. Why and how: sql/README.md (V35),
-- README "Security: the classes of attack covered".
--
-- 1. `prune_usage_samples` (V29) deleted whatever was older than the caller's
--    cutoff, `now()` included. The retention is a node setting
--    (`usage_history.retention_days`) the database cannot read, but the node's
--    validation refuses anything under one day; so the function never deletes
--    a sample younger than one day, whatever cutoff it is given.
-- 2. `audit_seal_batch` and `audit_seal` (V30) recorded the seqs and hashes the
--    caller computed. They now recompute every link from the stored row
--    (`audit_canonical`, the encoding of docs/audit-format.md, and sha256) and
--    refuse (raise) a link that does not chain: a hash that is not
--    SHA-256(previous || canonical(event)), a seq that is not the next one from
--    the head, an event that is not the named trail's, already chained, listed
--    twice or homed elsewhere, a trail head that is not its trail's last link.
--    Stale input (the head moved, or an event was chained, since the caller
--    read them) is not refused but applies nothing, as before.
--    The one part SQL cannot reproduce: serde_json's rounding of a decimal
--    number with more than 2^53 as significand or more than 22 fraction
--    digits, and of an integer beyond i64/u64; an event whose details hold such
--    a number keeps the caller's hash (`audit_canonical` is NULL), which
--    `GET /v1/audit/verify` recomputes like every link.
-- 3. The service role inserts events without seq and hash (it cannot link one
--    itself any more): only the functions above set them.

CREATE OR REPLACE FUNCTION prune_usage_samples(p_region text, p_before timestamptz, p_limit integer)
RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH gone AS (
        DELETE FROM public.usage_samples
         WHERE (tenant_id, bucket_start) IN (
               SELECT tenant_id, bucket_start FROM public.usage_samples
                WHERE home_region = p_region
                  -- The floor: the shortest retention the node accepts.
                  AND bucket_start < LEAST(p_before, now() - interval '1 day')
                LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- A JSON string as serde_json writes it: `"` and `\` escaped, the control
-- characters as \b \t \n \f \r or \u00xx (lower-case hex), nothing else.
CREATE FUNCTION audit_json_string(s text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = public AS $$
DECLARE
    c integer;
BEGIN
    IF s !~ '[\x01-\x1f"\\]' THEN
        RETURN '"' || s || '"';
    END IF;
    s := replace(s, '\', '\\');
    s := replace(s, '"', '\"');
    s := replace(s, chr(8), '\b');
    s := replace(s, chr(9), '\t');
    s := replace(s, chr(10), '\n');
    s := replace(s, chr(12), '\f');
    s := replace(s, chr(13), '\r');
    FOR c IN 1..31 LOOP
        IF c NOT IN (8, 9, 10, 12, 13) THEN
            s := replace(s, chr(c), '\u00' || lpad(to_hex(c), 2, '0'));
        END IF;
    END LOOP;
    RETURN '"' || s || '"';
END
$$;

-- A jsonb number (its numeric text) as serde_json writes the value it parses
-- from that text: an integer within i64 (negative) or u64 as it is; any other
-- number as an f64, in ryu's shortest form ("1.5", "100.0", "1e-7",
-- "1.234e30"). PostgreSQL's float8 output has the same shortest digits (it is
-- Ryu too, with extra_float_digits > 0); only the layout differs, redone here.
-- NULL where serde_json's own rounding may differ from the correctly rounded
-- value (see the header): the caller's hash is then not checked.
CREATE FUNCTION audit_json_number(t text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = public SET extra_float_digits = 1 AS $$
DECLARE
    body text := ltrim(t, '-');
    int_part text;
    frac text;
    s text;
    neg boolean;
    digits text;
    kk integer;
    len integer;
BEGIN
    IF position('.' IN body) = 0 THEN
        IF (left(t, 1) = '-' AND body::numeric <= 9223372036854775808)
           OR (left(t, 1) <> '-' AND body::numeric <= 18446744073709551615) THEN
            RETURN t;
        END IF;
        RETURN NULL;
    END IF;
    int_part := split_part(body, '.', 1);
    frac := split_part(body, '.', 2);
    -- serde_json computes (significand as f64) / 10^fraction digits: one
    -- correctly rounded division, so PostgreSQL's cast, when both are exact.
    IF COALESCE(NULLIF(ltrim(int_part || frac, '0'), ''), '0')::numeric > 9007199254740992
       OR length(frac) > 22 THEN
        RETURN NULL;
    END IF;
    s := t::double precision::text;
    neg := left(s, 1) = '-';
    s := ltrim(s, '-');
    IF position('e' IN s) > 0 THEN
        digits := replace(split_part(s, 'e', 1), '.', '');
        kk := split_part(s, 'e', 2)::integer + 1;
    ELSE
        int_part := split_part(s, '.', 1);
        digits := int_part || split_part(s, '.', 2);
        kk := CASE WHEN int_part = '0' THEN 0 ELSE length(int_part) END;
        IF int_part = '0' THEN
            digits := split_part(s, '.', 2);
        END IF;
    END IF;
    -- 10^(kk-1) <= |value| < 10^kk, value = 0.digits * 10^kk.
    WHILE left(digits, 1) = '0' LOOP
        digits := substr(digits, 2);
        kk := kk - 1;
    END LOOP;
    digits := rtrim(digits, '0');
    IF digits = '' THEN
        RETURN CASE WHEN neg THEN '-0.0' ELSE '0.0' END;
    END IF;
    len := length(digits);
    s := CASE
        WHEN kk - len >= 0 AND kk <= 16 THEN digits || repeat('0', kk - len) || '.0'
        WHEN kk > 0 AND kk <= 16 THEN left(digits, kk) || '.' || substr(digits, kk + 1)
        WHEN kk > -5 AND kk <= 0 THEN '0.' || repeat('0', -kk) || digits
        WHEN len = 1 THEN digits || 'e' || (kk - 1)
        ELSE left(digits, 1) || '.' || substr(digits, 2) || 'e' || (kk - 1)
    END;
    RETURN CASE WHEN neg THEN '-' || s ELSE s END;
END
$$;

-- `chain::canonical_json` in SQL: object keys sorted by their UTF-8 bytes, no
-- whitespace, scalars as serde_json writes them. NULL if any number is one
-- `audit_json_number` cannot reproduce.
CREATE FUNCTION audit_json(j jsonb) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = public AS $$
DECLARE
    kind text := jsonb_typeof(j);
    result text;
    missing boolean;
BEGIN
    IF kind = 'object' THEN
        SELECT '{' || COALESCE(string_agg(audit_json_string(k) || ':' || part, ','
                                          ORDER BY k COLLATE "C"), '') || '}',
               COALESCE(bool_or(part IS NULL), false)
          INTO result, missing
          FROM (SELECT e.key AS k, audit_json(e.value) AS part FROM jsonb_each(j) AS e) AS p;
    ELSIF kind = 'array' THEN
        SELECT '[' || COALESCE(string_agg(part, ',' ORDER BY n), '') || ']',
               COALESCE(bool_or(part IS NULL), false)
          INTO result, missing
          FROM (SELECT a.n, audit_json(a.value) AS part
                  FROM jsonb_array_elements(j) WITH ORDINALITY AS a(value, n)) AS p;
    ELSIF kind = 'string' THEN
        RETURN audit_json_string(j #>> '{}');
    ELSIF kind = 'number' THEN
        RETURN audit_json_number(j #>> '{}');
    ELSE
        RETURN j::text;
    END IF;
    RETURN CASE WHEN missing THEN NULL ELSE result END;
END
$$;

-- `chain::canonical` of a stored tenant event (docs/audit-format.md, version
-- 1): a field is a big-endian u32 length and the bytes, an optional a 0 byte
-- or a 1 byte and a field. NULL when the details cannot be reproduced.
CREATE FUNCTION audit_canonical(e public.audit_events) RETURNS bytea
    LANGUAGE sql IMMUTABLE SET search_path = public AS $$
    SELECT convert_to('meridian-audit-event-v1', 'UTF8') || '\x00'::bytea
        || int4send(16) || uuid_send(e.id)
        || int8send((extract(epoch FROM e.created_at) * 1000000)::bigint)
        || int4send(octet_length(e.actor)) || convert_to(e.actor, 'UTF8')
        || int4send(octet_length(e.action)) || convert_to(e.action, 'UTF8')
        || '\x01'::bytea || int4send(16) || uuid_send(e.tenant_id)
        || CASE WHEN e.target_kind IS NULL THEN '\x00'::bytea
                ELSE '\x01'::bytea || int4send(octet_length(e.target_kind))
                     || convert_to(e.target_kind, 'UTF8') END
        || CASE WHEN e.target_id IS NULL THEN '\x00'::bytea
                ELSE '\x01'::bytea || int4send(octet_length(e.target_id))
                     || convert_to(e.target_id, 'UTF8') END
        || int4send(octet_length(convert_to(audit_json(e.details), 'UTF8')))
        || convert_to(audit_json(e.details), 'UTF8')
        || CASE WHEN e.sealed IS NULL THEN '\x00'::bytea
                ELSE '\x01'::bytea || int4send(octet_length(e.sealed)) || e.sealed END
$$;

-- The check both sealing functions make before they write: `ids` (in order)
-- are unchained events of `tenant` (homed in `region`, if named), linked after
-- the trail's head at `prev` with `seqs` prev+1, prev+2, … and each hash
-- SHA-256(previous hash || canonical(event)), the previous hash being the
-- head's, itself the trail's genesis (seq 0) or its last event's or anchor's.
-- Raises on a link that does not chain; false when the input is stale (the
-- head is not at `prev`, or an event was chained meanwhile); true otherwise.
-- Locks the head and the events. Not a definer: it runs as the function that
-- calls it.
CREATE FUNCTION audit_check_links(tenant uuid, region text, ids uuid[], seqs bigint[],
                                  hashes bytea[], prev bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = public AS $$
DECLARE
    genesis constant bytea := decode(repeat('00', 32), 'hex');
    head_seq bigint;
    head_hash bytea;
    link bytea;
    canonical bytea;
    e public.audit_events;
    i integer;
BEGIN
    IF cardinality(ids) IS DISTINCT FROM cardinality(seqs)
       OR cardinality(ids) IS DISTINCT FROM cardinality(hashes) OR cardinality(ids) = 0 THEN
        RAISE EXCEPTION 'audit link refused: % ids, % seqs, % hashes',
            cardinality(ids), cardinality(seqs), cardinality(hashes);
    END IF;
    IF (SELECT count(DISTINCT x) FROM unnest(ids) AS x) <> cardinality(ids) THEN
        RAISE EXCEPTION 'audit link refused: an event listed twice';
    END IF;
    SELECT h.seq, h.hash INTO head_seq, head_hash
      FROM public.audit_heads h WHERE h.tenant_id = tenant FOR UPDATE;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := genesis;
    END IF;
    IF head_seq IS DISTINCT FROM prev THEN
        RETURN false;
    END IF;
    IF head_seq = 0 AND head_hash <> genesis THEN
        RAISE EXCEPTION 'audit link refused: tenant %''s head at 0 is not the genesis hash', tenant;
    END IF;
    IF head_seq > 0
       AND NOT EXISTS (SELECT 1 FROM public.audit_events x
                        WHERE x.tenant_id = tenant AND x.seq = head_seq AND x.hash = head_hash)
       AND NOT EXISTS (SELECT 1 FROM public.audit_checkpoints c
                        WHERE c.tenant_id = tenant AND c.seq = head_seq AND c.hash = head_hash
                          AND c.kind = 'anchor') THEN
        RAISE EXCEPTION 'audit link refused: tenant %''s head is not its last link', tenant;
    END IF;
    link := head_hash;
    FOR i IN 1..cardinality(ids) LOOP
        SELECT * INTO e FROM public.audit_events x
         WHERE x.tenant_id = tenant AND x.id = ids[i] FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit link refused: % is not an event of tenant %', ids[i], tenant;
        END IF;
        IF e.seq IS NOT NULL THEN
            RETURN false;
        END IF;
        IF region IS NOT NULL AND e.home_region <> region THEN
            RAISE EXCEPTION 'audit link refused: event % is homed in %, not %',
                ids[i], e.home_region, region;
        END IF;
        IF seqs[i] IS DISTINCT FROM prev + i THEN
            RAISE EXCEPTION 'audit link refused: event % given seq %, the next is %',
                ids[i], seqs[i], prev + i;
        END IF;
        canonical := audit_canonical(e);
        IF canonical IS NOT NULL THEN
            IF hashes[i] IS DISTINCT FROM sha256(link || canonical) THEN
                RAISE EXCEPTION 'audit link refused: event % (seq %) does not chain', ids[i], seqs[i];
            END IF;
        ELSIF hashes[i] IS NULL OR octet_length(hashes[i]) <> 32 THEN
            RAISE EXCEPTION 'audit link refused: event % has no 32-byte hash', ids[i];
        END IF;
        link := hashes[i];
    END LOOP;
    RETURN true;
END
$$;

-- As V30, after `audit_check_links` for the current tenant: 0 if stale.
CREATE OR REPLACE FUNCTION audit_seal(ids uuid[], seqs bigint[], hashes bytea[], prev_seq bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    tenant uuid := NULLIF(current_setting('app.tenant_id', true), '')::uuid;
    n bigint;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'audit link refused: no tenant';
    END IF;
    IF NOT public.audit_check_links(tenant, NULL, ids, seqs, hashes, prev_seq) THEN
        RETURN 0;
    END IF;
    WITH chained AS (
        UPDATE public.audit_events e SET seq = u.seq, hash = u.hash
          FROM unnest(ids, seqs, hashes) AS u(id, seq, hash)
         WHERE e.tenant_id = tenant AND e.id = u.id AND e.seq IS NULL
        RETURNING 1
    ), head AS (
        UPDATE public.audit_heads h
           SET seq = seqs[cardinality(seqs)], hash = hashes[cardinality(hashes)]
         WHERE h.tenant_id = tenant AND h.seq = prev_seq
           AND (SELECT count(*) FROM chained) = cardinality(ids)
        RETURNING 1
    )
    SELECT CASE WHEN EXISTS (SELECT 1 FROM head) THEN (SELECT count(*) FROM chained) ELSE 0 END
      INTO n;
    RETURN n;
END
$$;

-- As V30, after `audit_check_links` for each trail of the batch: every event
-- belongs to a trail listed once in `heads`, each trail's events are its run
-- in the batch's order, its top is its last link, and its region is where its
-- events are homed. (0, 0) if any trail is stale.
CREATE OR REPLACE FUNCTION audit_seal_batch(tenants uuid[], ids uuid[], seqs bigint[], hashes bytea[],
                                            heads uuid[], regions text[], prevs bigint[], tops bigint[],
                                            top_hashes bytea[])
    RETURNS TABLE (chained bigint, moved bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
#variable_conflict use_column
DECLARE
    j integer;
    run_ids uuid[];
    run_seqs bigint[];
    run_hashes bytea[];
    stale boolean := false;
BEGIN
    IF cardinality(tenants) IS DISTINCT FROM cardinality(ids)
       OR cardinality(heads) IS DISTINCT FROM cardinality(regions)
       OR cardinality(heads) IS DISTINCT FROM cardinality(prevs)
       OR cardinality(heads) IS DISTINCT FROM cardinality(tops)
       OR cardinality(heads) IS DISTINCT FROM cardinality(top_hashes) THEN
        RAISE EXCEPTION 'audit link refused: arrays of different lengths';
    END IF;
    IF (SELECT count(DISTINCT x) FROM unnest(heads) AS x) <> cardinality(heads) THEN
        RAISE EXCEPTION 'audit link refused: a trail listed twice';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(tenants) AS t(id) WHERE t.id IS NULL OR t.id <> ALL (heads)) THEN
        RAISE EXCEPTION 'audit link refused: an event of a trail whose head does not move';
    END IF;
    FOR j IN 1..COALESCE(cardinality(heads), 0) LOOP
        SELECT array_agg(u.id ORDER BY u.n), array_agg(u.seq ORDER BY u.n),
               array_agg(u.hash ORDER BY u.n)
          INTO run_ids, run_seqs, run_hashes
          FROM unnest(tenants, ids, seqs, hashes) WITH ORDINALITY AS u(tenant_id, id, seq, hash, n)
         WHERE u.tenant_id = heads[j];
        IF run_ids IS NULL THEN
            RAISE EXCEPTION 'audit link refused: trail % moves without events', heads[j];
        END IF;
        IF run_seqs[cardinality(run_seqs)] IS DISTINCT FROM tops[j]
           OR run_hashes[cardinality(run_hashes)] IS DISTINCT FROM top_hashes[j] THEN
            RAISE EXCEPTION 'audit link refused: trail %''s new head is not its last link', heads[j];
        END IF;
        IF NOT public.audit_check_links(heads[j], regions[j], run_ids, run_seqs, run_hashes,
                                        prevs[j]) THEN
            stale := true;
        END IF;
    END LOOP;
    IF stale THEN
        RETURN QUERY SELECT 0::bigint, 0::bigint;
        RETURN;
    END IF;
    RETURN QUERY
    WITH linked_rows AS (
        UPDATE public.audit_events e SET seq = u.seq, hash = u.hash
          FROM unnest(tenants, ids, seqs, hashes) AS u(tenant_id, id, seq, hash)
         WHERE e.tenant_id = u.tenant_id AND e.id = u.id AND e.seq IS NULL
        RETURNING 1
    ), moved_rows AS (
        UPDATE public.audit_heads h SET seq = u.top, hash = u.top_hash
          FROM unnest(heads, prevs, tops, top_hashes) AS u(tenant_id, prev, top, top_hash)
         WHERE h.tenant_id = u.tenant_id AND h.seq = u.prev
        RETURNING 1
    ), created_rows AS (
        INSERT INTO public.audit_heads (tenant_id, home_region, seq, hash)
        SELECT u.tenant_id, u.region, u.top, u.top_hash
          FROM unnest(heads, regions, prevs, tops, top_hashes) AS u(tenant_id, region, prev, top, top_hash)
         WHERE u.prev = 0
           AND NOT EXISTS (SELECT 1 FROM public.audit_heads h WHERE h.tenant_id = u.tenant_id)
        ON CONFLICT (tenant_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM linked_rows),
           (SELECT count(*) FROM moved_rows) + (SELECT count(*) FROM created_rows);
END
$$;

REVOKE ALL ON FUNCTION audit_json_string(text), audit_json_number(text), audit_json(jsonb),
    audit_canonical(public.audit_events),
    audit_check_links(uuid, text, uuid[], bigint[], bytea[], bigint) FROM PUBLIC;

-- Events are inserted unchained: seq and hash are the sealing functions' only.
REVOKE INSERT ON audit_events FROM meridian_app;
GRANT INSERT (tenant_id, id, home_region, actor, action, target_kind, target_id, details,
              created_at, sealed) ON audit_events TO meridian_app;
