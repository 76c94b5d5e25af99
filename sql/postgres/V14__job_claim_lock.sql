-- Issue 13 item 5: one tenant's claims no longer abort each other. Why and the
-- figures: docs/jobs.md ("Draining one tenant's flood").
--
-- V8's claim_job counts the tenant's running rows and leases its oldest ready job
-- in one SERIALIZABLE statement: concurrent claims of one tenant (and the finishes
-- of its jobs) fail with 40001 several times per job. claim_job_locked takes the
-- tenant's row lock first, then counts and leases in a fresh statement; the
-- caller runs it at READ COMMITTED, where each statement of this VOLATILE function
-- takes a new snapshot. Exact: claims of one tenant hold the same row lock until
-- they commit, so they run one after another and the count (taken after the lock
-- is granted) sees every earlier claim; only a claim adds a running row, so a
-- count that misses a concurrent finish can only under-run the cap.
-- FOR NO KEY UPDATE, not FOR UPDATE: it conflicts with itself but not with the
-- FOR KEY SHARE that every insert referencing tenants(id) takes, so enqueueing
-- and other writes of the tenant never wait for a claim. The tenants row is not
-- written: no hot counter.
CREATE OR REPLACE FUNCTION public.claim_job_locked(region text, tenant uuid, owner text, lease_secs float8, cap bigint)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, attempts integer, max_attempts integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM public.tenants t WHERE t.id = tenant FOR NO KEY UPDATE;
    RETURN QUERY
    UPDATE public.jobs j
       SET state = 'running', attempts = j.attempts + 1, lease_owner = owner,
           lease_until = now() + lease_secs * interval '1 second', started_at = now(), updated_at = now()
     WHERE j.id = (SELECT q.id FROM public.jobs q
                    WHERE q.state = 'queued' AND q.home_region = region AND q.tenant_id = tenant
                      AND q.run_after <= now()
                      AND (SELECT count(*) FROM public.jobs r WHERE r.state = 'running' AND r.tenant_id = tenant) < cap
                    ORDER BY q.run_after, q.id LIMIT 1
                    FOR UPDATE SKIP LOCKED)
    RETURNING j.id, j.tenant_id, j.kind, j.attempts, j.max_attempts;
END
$$;

REVOKE ALL ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.claim_job_locked(text, uuid, text, float8, bigint) TO meridian_app;
