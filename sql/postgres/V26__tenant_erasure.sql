-- Issue 16 item 3 (tenant erasure): `DELETE /v1/tenants/{id}` suspends the tenant
-- with `erase_after` = now + grace; `POST /v1/tenants/{id}/restore` cancels it
-- until then; afterwards a platform job of the tenant's home region deletes every
-- row of the tenant and leaves the `tenants` row as a tombstone (status `erased`,
-- slug kept, name replaced) so its id and slug are never reused and its receipt
-- can be found. Why and how: src/compliance/tenant_erasure.rs, sql/README.md (V26),
-- README "Compliance", docs/runbooks/erasure.md.

ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('active', 'suspended', 'erased'));
-- Set while an erasure is pending (and kept once erased): the directory cache
-- carries it, so every node refuses the tenant's requests with
-- `tenant_pending_erasure` until a restore clears it.
ALTER TABLE tenants ADD COLUMN erase_after timestamptz;

-- One tenant erasure: platform data about a tenant (like `relocations`), kept
-- after the erasure as its record; no personal data (ids, counts, the receipt).
-- `state`: pending (in the grace) → cancelled (restored) | running (the job's
-- first transaction, which re-checks pending and the grace under the row lock)
-- → done (receipt signed). At most one pending, running or done per tenant.
CREATE TABLE tenant_erasures (
    id              uuid        NOT NULL PRIMARY KEY,
    tenant_id       uuid        NOT NULL REFERENCES tenants (id),
    home_region     text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'cancelled', 'running', 'done')),
    previous_status text        NOT NULL CHECK (previous_status IN ('active', 'suspended')),
    erase_after     timestamptz NOT NULL,
    requested_by    text        NOT NULL,
    cancelled_by    text,
    job_id          uuid,
    counts          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    receipt         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE UNIQUE INDEX tenant_erasures_one_live ON tenant_erasures (tenant_id)
    WHERE state IN ('pending', 'running', 'done');
CREATE INDEX tenant_erasures_tenant_idx ON tenant_erasures (tenant_id, created_at DESC);
GRANT SELECT, INSERT, UPDATE ON tenant_erasures TO meridian_app;

-- The tenant's rows in the tables the service role may not delete from (the
-- audit trail and its head and checkpoints, the outbox, impersonations, usage
-- and AI ledgers, jobs, served regions, the access log, relocations): up to
-- p_limit rows of `p_table` of the current tenant (app.tenant_id), and only while
-- that tenant's erasure is `running` (the platform decided it and the grace is
-- over), so no tenant transaction can use it to wipe its own trail. Returns how
-- many rows it deleted. Same precautions as search_messages (V7).
CREATE FUNCTION erase_tenant_rows(p_table text, p_limit integer) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH cur AS (
        SELECT e.tenant_id AS t FROM public.tenant_erasures e
         WHERE e.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND e.state = 'running'
    ), a AS (
        DELETE FROM public.audit_events WHERE p_table = 'audit_events'
           AND tenant_id = (SELECT t FROM cur) AND id IN (
               SELECT id FROM public.audit_events WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), ah AS (
        DELETE FROM public.audit_heads WHERE p_table = 'audit_heads' AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), ac AS (
        DELETE FROM public.audit_checkpoints WHERE p_table = 'audit_checkpoints'
           AND tenant_id = (SELECT t FROM cur) AND seq IN (
               SELECT seq FROM public.audit_checkpoints WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), ap AS (
        DELETE FROM public.audit_chain_pending WHERE p_table = 'audit_chain_pending'
           AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), oe AS (
        DELETE FROM public.outbox_events WHERE p_table = 'outbox_events'
           AND tenant_id = (SELECT t FROM cur) AND id IN (
               SELECT id FROM public.outbox_events WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), oh AS (
        DELETE FROM public.outbox_heads WHERE p_table = 'outbox_heads' AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), im AS (
        DELETE FROM public.impersonations WHERE p_table = 'impersonations'
           AND tenant_id = (SELECT t FROM cur) AND id IN (
               SELECT id FROM public.impersonations WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), tu AS (
        DELETE FROM public.tenant_usage WHERE p_table = 'tenant_usage' AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), ts AS (
        DELETE FROM public.tenant_usage_shards WHERE p_table = 'tenant_usage_shards'
           AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), au AS (
        DELETE FROM public.ai_usage WHERE p_table = 'ai_usage' AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), ar AS (
        DELETE FROM public.ai_reservations WHERE p_table = 'ai_reservations'
           AND tenant_id = (SELECT t FROM cur) AND id IN (
               SELECT id FROM public.ai_reservations WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), jb AS (
        DELETE FROM public.jobs WHERE p_table = 'jobs'
           AND tenant_id = (SELECT t FROM cur) AND id IN (
               SELECT id FROM public.jobs WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), sr AS (
        DELETE FROM public.tenant_served_regions WHERE p_table = 'tenant_served_regions'
           AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    ), al AS (
        DELETE FROM public.access_log WHERE p_table = 'access_log'
           AND tenant_id = (SELECT t FROM cur) AND (first_at, id) IN (
               SELECT first_at, id FROM public.access_log WHERE tenant_id = (SELECT t FROM cur) LIMIT p_limit)
        RETURNING 1
    ), rl AS (
        DELETE FROM public.relocations WHERE p_table = 'relocations' AND tenant_id = (SELECT t FROM cur)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM ah) + (SELECT count(*) FROM ac)
         + (SELECT count(*) FROM ap) + (SELECT count(*) FROM oe) + (SELECT count(*) FROM oh)
         + (SELECT count(*) FROM im) + (SELECT count(*) FROM tu) + (SELECT count(*) FROM ts)
         + (SELECT count(*) FROM au) + (SELECT count(*) FROM ar) + (SELECT count(*) FROM jb)
         + (SELECT count(*) FROM sr) + (SELECT count(*) FROM al) + (SELECT count(*) FROM rl)
$$;
REVOKE ALL ON FUNCTION erase_tenant_rows(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erase_tenant_rows(text, integer) TO meridian_app;
