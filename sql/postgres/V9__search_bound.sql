-- Bounded search work (issue 11, item 5). V7's search_messages ranked every match
-- of the query: a word in 200,000 of a tenant's messages fetched and ranked all of
-- them to answer 20, and six such searches filled two cores while other tenants'
-- page reads waited. This version takes at most `candidates` matches from
-- messages_search_idx (in the order the bitmap scan yields them: physical order)
-- and ranks only those. A term with at most `candidates` matches gets exactly what
-- V7 gave; a commoner one gets the best of `candidates` of its matches, and its
-- pages end after them. The node passes `limits.cost.search_candidates`.
--
-- The 4-argument V7 function stays, unchanged, for nodes of the previous version
-- during a rolling deploy. Everything V7 says about trust holds here: the same
-- predicate (the caller's tenant and the RLS setting), SECURITY DEFINER with a
-- fixed search_path, no parallel workers, only data from the caller.
CREATE OR REPLACE FUNCTION public.search_messages(tenant uuid, query text, lim bigint, skip bigint, candidates bigint)
    RETURNS TABLE (id uuid, channel_id uuid, author_id uuid, body text, created_at timestamptz, rank real)
    LANGUAGE sql STABLE SECURITY DEFINER ROWS 50
    SET search_path = pg_catalog, pg_temp
    SET max_parallel_workers_per_gather = 0 AS $$
    SELECT c.id, c.channel_id, c.author_id, c.body, c.created_at,
           pg_catalog.ts_rank(c.body_tsv, pg_catalog.websearch_to_tsquery('english', $2)) AS rank
    FROM (
        SELECT m.id, m.channel_id, m.author_id, m.body, m.created_at, m.body_tsv
        FROM public.messages m
        WHERE m.tenant_id = $1
          AND m.tenant_id = NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::uuid
          AND m.body_tsv @@ pg_catalog.websearch_to_tsquery('english', $2)
        LIMIT $5
    ) c
    ORDER BY rank DESC, c.created_at DESC, c.id DESC
    LIMIT $3 OFFSET $4
$$;
REVOKE ALL ON FUNCTION public.search_messages(uuid, text, bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.search_messages(uuid, text, bigint, bigint, bigint) TO meridian_app;
