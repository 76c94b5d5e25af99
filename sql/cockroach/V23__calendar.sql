-- Issue 17: calendar sync through a per-tenant CalDAV bridge (src/calendar/).
-- Three tenant-owned tables (tenant_id, home_region, keys led by tenant_id, RLS
-- enabled and forced): the tenant's CalDAV accounts (credentials sealed with the
-- tenant's DEK, never stored in plaintext), the calendars its users link, and
-- the synced events. Why and how: sql/README.md (V23), README "Calendar".
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS before CREATE POLICY.
-- CockroachDB: every table REGIONAL BY ROW AS crdb_region (each DDL commits on its own, so re-runs are safe).

-- A CalDAV account a tenant admin connects. `secret_sealed` is the password or
-- token (write-only in the API). The sync state is the account's: `status`,
-- `failure_streak` and `next_sync_at` are the backoff after failed syncs.
CREATE TABLE IF NOT EXISTS calendar_accounts (
    tenant_id       uuid        NOT NULL REFERENCES tenants (id),
    id              uuid        NOT NULL,
    home_region     text        NOT NULL,
    crdb_region  crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    base_url        text        NOT NULL,
    username        text        NOT NULL,
    auth_kind       text        NOT NULL CHECK (auth_kind IN ('password', 'token')),
    secret_sealed   bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'ok', 'failing', 'unauthorized')),
    last_sync_at    timestamptz,
    last_success_at timestamptz,
    last_error      text,
    failure_streak  integer     NOT NULL DEFAULT 0,
    next_sync_at    timestamptz NOT NULL DEFAULT now(),
    last_check_at   timestamptz,
    last_check_ok   boolean,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
) LOCALITY REGIONAL BY ROW AS crdb_region;

-- A calendar collection (`path` on the account's server) a user linked. The
-- sync position: `sync_token` (RFC 6578), else `ctag` (CalendarServer getctag).
CREATE TABLE IF NOT EXISTS calendar_links (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    home_region    text        NOT NULL,
    crdb_region  crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    account_id     uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    path           text        NOT NULL,
    display_name   text        NOT NULL DEFAULT '',
    sync_token     text,
    ctag           text,
    last_synced_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, account_id, user_id, path),
    FOREIGN KEY (tenant_id, account_id) REFERENCES calendar_accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
) LOCALITY REGIONAL BY ROW AS crdb_region;

-- One calendar object resource (an .ics) of a linked calendar, as last synced
-- or written through. `ics` is the object as the server has it (exceptions of
-- a recurring event included: one resource per UID); the other columns are
-- its master event, for the window query. A recurring row is expanded at read
-- time within the asked window.
CREATE TABLE IF NOT EXISTS calendar_events (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    crdb_region  crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    calendar_id uuid        NOT NULL,
    href        text        NOT NULL,
    uid         text        NOT NULL,
    etag        text        NOT NULL,
    ics         text        NOT NULL,
    summary     text        NOT NULL DEFAULT '',
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    time_zone   text,
    all_day     boolean     NOT NULL DEFAULT false,
    attendees   jsonb       NOT NULL DEFAULT '[]',
    recurring   boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, calendar_id, href),
    FOREIGN KEY (tenant_id, calendar_id) REFERENCES calendar_links (tenant_id, id) ON DELETE CASCADE
) LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE INDEX IF NOT EXISTS calendar_events_window_idx
    ON calendar_events (tenant_id, calendar_id, starts_at);

ALTER TABLE calendar_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_accounts FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON calendar_accounts;
CREATE POLICY tenant_isolation ON calendar_accounts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE calendar_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_links FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON calendar_links;
CREATE POLICY tenant_isolation ON calendar_links
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE calendar_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_events FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON calendar_events;
CREATE POLICY tenant_isolation ON calendar_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_accounts, calendar_links, calendar_events TO meridian_app;

-- The platform's health view (`GET /v1/calendar-health`): every tenant's
-- accounts' stored sync state, across tenants in one statement. SECURITY
-- DEFINER so it reads past RLS; it returns state only (no URL path, user name,
-- secret or event), to platform staff only (the route's policy).
CREATE OR REPLACE FUNCTION calendar_health()
    RETURNS TABLE (tenant_id uuid, home_region text, account_id uuid, host text,
                   status text, last_sync_at timestamptz, last_success_at timestamptz,
                   last_error text, failure_streak integer, last_check_at timestamptz,
                   last_check_ok boolean, calendars bigint)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT a.tenant_id, a.home_region, a.id, split_part(split_part(a.base_url, '://', 2), '/', 1),
           a.status, a.last_sync_at, a.last_success_at, a.last_error, a.failure_streak,
           a.last_check_at, a.last_check_ok,
           (SELECT count(*) FROM public.calendar_links l WHERE l.tenant_id = a.tenant_id AND l.account_id = a.id)
      FROM public.calendar_accounts a
     ORDER BY a.tenant_id, a.id
$$;
REVOKE ALL ON FUNCTION calendar_health() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION calendar_health() TO meridian_app;

-- The tenants homed in a region that have calendar accounts (the bulk sync and
-- the active health check visit only those). SECURITY DEFINER like above.
CREATE OR REPLACE FUNCTION calendar_tenants(region text) RETURNS TABLE (tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT DISTINCT a.tenant_id FROM public.calendar_accounts a WHERE a.home_region = region
$$;
REVOKE ALL ON FUNCTION calendar_tenants(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION calendar_tenants(text) TO meridian_app;

-- A probe of another tenant's calendar account, linked calendar or event is
-- audited like the other kinds (src/scope/probes.rs): V22's function (V17's
-- kinds, export, erasure) plus them.
CREATE OR REPLACE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
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
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;
