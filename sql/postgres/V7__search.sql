-- Search that uses its index under row-level security (PostgreSQL).
--
-- Why a function: as meridian_app (RLS forced), PostgreSQL may not evaluate
-- `body_tsv @@ tsquery` ahead of the policy's condition, because ts_match_vq is not
-- LEAKPROOF; so `@@` can never be an index condition, and search read every row of
-- the tenant (or the whole table) and filtered. Marking ts_match_vq LEAKPROOF was
-- rejected: it needs a superuser, changes a catalog property for every role and
-- every query in the database (and is lost by a dump/restore), and its soundness
-- (no error that depends on row content) is not something this project can vouch
-- for. CockroachDB has no such switch at all.
--
-- search_messages runs as its owner (the migrating role, which RLS does not bind
-- when it is a superuser), so the planner may use messages_search_idx with both
-- the tenant and the `@@` condition. RLS is then not the wall inside it: the
-- predicate below is, and it is the policy's own predicate, on the same setting
-- (`app.tenant_id`, set per transaction by the service). It also requires the
-- caller's tenant argument to be that tenant, so the application's predicate
-- stays in force too. Unset or '' setting: NULL, no row; malformed: an error, as
-- with RLS. The caller passes only data (query text, limit, offset): no
-- expression of the caller is evaluated next to another tenant's row, which is
-- what RLS's barrier protects against and why a plain view would not do.
-- Keep it this small: every line of it is trusted.
--
-- If the owner is not a superuser (but owns the table, which forces RLS on its
-- owner), the policy still applies inside: results stay correct, only the plan
-- falls back. tests/api/plans.rs fails on that fallback.
--
-- SET search_path, and schema-qualified names: a caller cannot redirect a name
-- to an object of its own while the function runs with the owner's rights.
-- No parallel workers: the body is planned without its arguments' values, so for
-- a large tenant it was a parallel bitmap heap scan, and starting the workers cost
-- more than the scan (tenant of 1 M messages, as meridian_app: p50 16.3 -> 4.5 ms
-- for a selective term, 15.2 -> 0.27 ms for a term matching nothing); one search
-- also stays on one core, whatever its tenant's size.
CREATE OR REPLACE FUNCTION public.search_messages(tenant uuid, query text, lim bigint, skip bigint)
    RETURNS TABLE (id uuid, channel_id uuid, author_id uuid, body text, created_at timestamptz, rank real)
    LANGUAGE sql STABLE SECURITY DEFINER ROWS 50
    SET search_path = pg_catalog, pg_temp
    SET max_parallel_workers_per_gather = 0 AS $$
    SELECT m.id, m.channel_id, m.author_id, m.body, m.created_at,
           pg_catalog.ts_rank(m.body_tsv, pg_catalog.websearch_to_tsquery('english', $2)) AS rank
    FROM public.messages m
    WHERE m.tenant_id = $1
      AND m.tenant_id = NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::uuid
      AND m.body_tsv @@ pg_catalog.websearch_to_tsquery('english', $2)
    ORDER BY rank DESC, m.created_at DESC, m.id DESC
    LIMIT $3 OFFSET $4
$$;
REVOKE ALL ON FUNCTION public.search_messages(uuid, text, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.search_messages(uuid, text, bigint, bigint) TO meridian_app;
