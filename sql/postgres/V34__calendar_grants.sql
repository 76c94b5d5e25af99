-- Calendar collections are granted to users (the security review's calendar
-- finding): a tenant admin grants a collection (`path`) of a CalDAV account to
-- one user, or to everyone in the tenant (`user_id` NULL); `POST /v1/me/calendars`
-- inserts a link only when a grant for the caller or for everyone exists (the
-- INSERT's own SELECT reads the grant, `calendar::store::calendars::LINK_SQL`),
-- and revoking a grant deletes, in its transaction, the links no other grant
-- covers (their events by the V23 cascade). `path` is the canonical form the
-- API stores for links too (`calendar::path`), so grant and link compare as
-- strings.
-- Tenant-owned (tenant_id, home_region, key led by tenant_id, RLS enabled and
-- forced), moved by a relocation, emptied by a tenant erasure; a user erasure
-- deletes the user's grants. Why and how: sql/README.md (V34), README "Calendar".
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS, ON CONFLICT DO NOTHING.

CREATE TABLE IF NOT EXISTS calendar_grants (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    account_id  uuid        NOT NULL,
    path        text        NOT NULL,
    -- NULL: everyone in the tenant.
    user_id     uuid,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES calendar_accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
-- One grant per (account, path, user), and one per (account, path) for
-- everyone. Two indexes rather than PostgreSQL 15's NULLS NOT DISTINCT, which
-- CockroachDB does not have: the same statements in both dialects. The first
-- is also the link's grant lookup (tenant, account, path → user or NULL).
CREATE UNIQUE INDEX IF NOT EXISTS calendar_grants_user_key
    ON calendar_grants (tenant_id, account_id, path, user_id);
CREATE UNIQUE INDEX IF NOT EXISTS calendar_grants_everyone_key
    ON calendar_grants (tenant_id, account_id, path) WHERE user_id IS NULL;
-- The grants list of an account, newest first (`GET …/grants`).
CREATE INDEX IF NOT EXISTS calendar_grants_page_idx
    ON calendar_grants (tenant_id, account_id, created_at DESC, id DESC);

ALTER TABLE calendar_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_grants FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON calendar_grants;
CREATE POLICY tenant_isolation ON calendar_grants
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The service creates, lists and revokes grants, user and tenant erasure delete
-- them and a relocation moves `home_region` (RLS bounds it to the tenant).
GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_grants TO meridian_app;

-- Existing links keep working: a grant to its user for every link there is
-- (one per link: V23's unique key on links is the grant's). `meridian migrate`
-- runs as a superuser (CockroachDB: an admin), which forced RLS does not
-- filter. `created_by` NULL: made by this migration, not by an admin.
INSERT INTO calendar_grants (tenant_id, id, home_region, account_id, path, user_id, created_by, created_at)
SELECT l.tenant_id, gen_random_uuid(), l.home_region, l.account_id, l.path, l.user_id, NULL::uuid, l.created_at
  FROM calendar_links l
ON CONFLICT DO NOTHING;

-- A probe of another tenant's grant is audited like the other kinds
-- (src/scope/probes.rs): V23's function plus `calendar_grant`.
CREATE OR REPLACE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT CASE kind
        WHEN 'user'    THEN (SELECT tenant_id FROM public.users    WHERE id = resource_id LIMIT 1)
        WHEN 'channel' THEN (SELECT tenant_id FROM public.channels WHERE id = resource_id LIMIT 1)
        WHEN 'tenant'  THEN (SELECT id        FROM public.tenants  WHERE id = resource_id)
        WHEN 'job'     THEN (SELECT tenant_id FROM public.jobs     WHERE id = resource_id LIMIT 1)
        WHEN 'webhook' THEN (SELECT tenant_id FROM public.webhook_endpoints WHERE id = resource_id LIMIT 1)
        WHEN 'summary' THEN (SELECT tenant_id FROM public.channel_summaries WHERE id = resource_id LIMIT 1)
        WHEN 'identity_provider' THEN (SELECT tenant_id FROM public.identity_providers WHERE id = resource_id LIMIT 1)
        WHEN 'impersonation' THEN (SELECT tenant_id FROM public.impersonations WHERE id = resource_id LIMIT 1)
        WHEN 'export'  THEN (SELECT tenant_id FROM public.exports  WHERE id = resource_id LIMIT 1)
        WHEN 'erasure' THEN (SELECT tenant_id FROM public.erasures WHERE id = resource_id LIMIT 1)
        WHEN 'calendar_account' THEN (SELECT tenant_id FROM public.calendar_accounts WHERE id = resource_id LIMIT 1)
        WHEN 'calendar' THEN (SELECT tenant_id FROM public.calendar_links WHERE id = resource_id LIMIT 1)
        WHEN 'calendar_event' THEN (SELECT tenant_id FROM public.calendar_events WHERE id = resource_id LIMIT 1)
        WHEN 'calendar_grant' THEN (SELECT tenant_id FROM public.calendar_grants WHERE id = resource_id LIMIT 1)
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;
