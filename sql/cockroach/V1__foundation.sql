-- Meridian foundation schema, CockroachDB (>= 25.2) version of
-- sql/postgres/V1__foundation.sql: the same tables, columns, keys, indexes,
-- policies and grants, written the way CockroachDB accepts them, idempotent (every
-- statement can be re-run: with autocommit_before_ddl each DDL commits on its own,
-- so a failure half-way leaves earlier statements applied and the version
-- unrecorded; the next `meridian migrate` re-runs the file) and placed from the
-- start: sql/cockroach/database.sql has already made the database multi-region.
-- What differs from PostgreSQL, and why (citations in docs/cockroachdb.md):
-- * CREATE ROLE IF NOT EXISTS instead of a DO block (DDL inside DO is refused);
-- * no CREATE EXTENSION btree_gin (not supported; not needed: CockroachDB builds a
--   multi-column inverted index with tenant_id as a plain prefix column);
-- * the SECURITY DEFINER function has no `SET search_path` (unimplemented for
--   routines); its body names every table schema-qualified instead;
-- * the composite (tenant_id, home_region) foreign keys that V4 replaces on
--   PostgreSQL are never created: rows reference tenants (id) from the start;
-- * home_region stays text (what the application binds and reads); the row's
--   placement comes from crdb_region, a computed crdb_internal_region column
--   mapping each region name to itself (an unknown name gives NULL and the row is
--   refused), and every tenant-owned table is REGIONAL BY ROW AS crdb_region.

CREATE ROLE IF NOT EXISTS meridian_app WITH LOGIN;

-- The tenant directory: read by every node into its cache, changed rarely.
-- GLOBAL: consistent local reads in every region, slower writes.
CREATE TABLE IF NOT EXISTS tenants (
    id             uuid        NOT NULL PRIMARY KEY,
    slug           text        NOT NULL,
    name           text        NOT NULL,
    home_region    text        NOT NULL,
    residency      jsonb,
    plan           text        NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    limits         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    config_version bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    -- Target of V2's composite foreign keys (which V4 drops again, as on PostgreSQL).
    CONSTRAINT tenants_id_home_region_key UNIQUE (id, home_region)
) LOCALITY GLOBAL;
CREATE INDEX IF NOT EXISTS tenants_updated_at_idx ON tenants (updated_at);

CREATE TABLE IF NOT EXISTS users (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    home_region  text        NOT NULL,
    email        text        NOT NULL,
    display_name text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer', 'compliance')),
    status       text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'deleted')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    crdb_region    crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (tenant_id, lower(email)) WHERE status <> 'deleted';
-- Lets the cross-tenant probe find an id's owner without a tenant prefix.
CREATE INDEX IF NOT EXISTS users_id_idx ON users (id);

CREATE TABLE IF NOT EXISTS channels (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    name        text        NOT NULL,
    topic       text        NOT NULL DEFAULT '',
    created_by  uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    crdb_region    crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT channels_name_key UNIQUE (tenant_id, name),
    CONSTRAINT channels_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE INDEX IF NOT EXISTS channels_id_idx ON channels (id);

CREATE TABLE IF NOT EXISTS messages (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    channel_id  uuid        NOT NULL,
    author_id   uuid        NOT NULL,
    body        text        NOT NULL,
    body_tsv    tsvector    NOT NULL AS (to_tsvector('english', body)) STORED,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    crdb_region    crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT messages_tenant_id_channel_id_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT messages_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) LOCALITY REGIONAL BY ROW AS crdb_region;
-- The messages page: 50 newest of a channel, keyset-paged.
CREATE INDEX IF NOT EXISTS messages_page_idx ON messages (tenant_id, channel_id, created_at DESC, id DESC);
-- Tenant-prefixed inverted index (tenant_id a plain prefix column, body_tsv the
-- inverted one): a search can only ever walk one tenant's postings.
CREATE INVERTED INDEX IF NOT EXISTS messages_search_idx ON messages (tenant_id, body_tsv);

CREATE TABLE IF NOT EXISTS audit_events (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target_kind text,
    target_id   text,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    crdb_region    crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT audit_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) LOCALITY REGIONAL BY ROW AS crdb_region;
CREATE INDEX IF NOT EXISTS audit_events_page_idx ON audit_events (tenant_id, created_at DESC, id DESC);

-- Platform-level events (tenant provisioning, cross-tenant denials): not
-- tenant-owned content; written from every region, read by platform admins.
-- Kept in the primary region (a GLOBAL table would make every append slow).
CREATE TABLE IF NOT EXISTS platform_audit_events (
    id         uuid        NOT NULL PRIMARY KEY,
    actor      text        NOT NULL,
    action     text        NOT NULL,
    tenant_id  uuid,
    details    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
) LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;
CREATE INDEX IF NOT EXISTS platform_audit_events_page_idx ON platform_audit_events (created_at DESC, id DESC);

-- Row-level security, as on PostgreSQL. Admin roles bypass RLS on CockroachDB even
-- when it is forced: the service must connect as meridian_app, never as an admin.
-- A policy is dropped and created again so the file can be re-run; between the
-- two, RLS is enabled with no policy, which denies everything (fails closed).
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON users;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE channels FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON channels;
CREATE POLICY tenant_isolation ON channels
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON messages;
CREATE POLICY tenant_isolation ON messages
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON audit_events;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Which tenant owns a user or channel id. The one deliberate hole in RLS: it returns
-- only the owning tenant id, so a 404 for another tenant's id can be audited as a
-- cross-tenant attempt. SECURITY DEFINER runs as the function's owner (the
-- migrating admin). CockroachDB has no `SET search_path` on routines, so the body
-- schema-qualifies every table rather than trusting the caller's search_path.
CREATE OR REPLACE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT CASE kind
        WHEN 'user'    THEN (SELECT tenant_id FROM public.users    WHERE id = resource_id LIMIT 1)
        WHEN 'channel' THEN (SELECT tenant_id FROM public.channels WHERE id = resource_id LIMIT 1)
        WHEN 'tenant'  THEN (SELECT id        FROM public.tenants  WHERE id = resource_id)
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM public;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;

GRANT SELECT, INSERT, UPDATE ON tenants TO meridian_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, channels, messages TO meridian_app;
GRANT SELECT, INSERT ON audit_events, platform_audit_events TO meridian_app;
