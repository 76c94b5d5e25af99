-- Meridian foundation schema (portable: PostgreSQL 15 and CockroachDB >= 25.2).
-- CockroachDB-only DDL (multi-region localities) lives in sql/cockroach/.
--
-- Every tenant-owned table carries tenant_id and home_region; keys and unique
-- constraints lead with tenant_id; row-level security on tenant_id is the second wall
-- behind the application's own tenant predicate. The service connects as
-- meridian_app, which owns nothing and only gets DML grants.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'meridian_app') THEN
        CREATE ROLE meridian_app LOGIN;
    END IF;
END
$$;

CREATE EXTENSION IF NOT EXISTS btree_gin;

-- The tenant directory: platform data, read by every node into its cache.
CREATE TABLE tenants (
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
    -- Target of the composite foreign keys below: changing a tenant's home_region
    -- cascades to every row it owns (on CockroachDB this moves the rows).
    CONSTRAINT tenants_id_home_region_key UNIQUE (id, home_region)
);
CREATE INDEX tenants_updated_at_idx ON tenants (updated_at);

CREATE TABLE users (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    home_region  text        NOT NULL,
    email        text        NOT NULL,
    display_name text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer', 'compliance')),
    status       text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'deleted')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);
CREATE UNIQUE INDEX users_email_key ON users (tenant_id, lower(email)) WHERE status <> 'deleted';
-- Lets the cross-tenant probe find an id's owner without a tenant prefix.
CREATE INDEX users_id_idx ON users (id);

CREATE TABLE channels (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    name        text        NOT NULL,
    topic       text        NOT NULL DEFAULT '',
    created_by  uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT channels_name_key UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);
CREATE INDEX channels_id_idx ON channels (id);

CREATE TABLE messages (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    channel_id  uuid        NOT NULL,
    author_id   uuid        NOT NULL,
    body        text        NOT NULL,
    body_tsv    tsvector    GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);
-- The messages page: 50 newest of a channel, keyset-paged.
CREATE INDEX messages_page_idx ON messages (tenant_id, channel_id, created_at DESC, id DESC);
-- Tenant-prefixed inverted index: a search can only ever walk one tenant's postings.
CREATE INDEX messages_search_idx ON messages USING gin (tenant_id, body_tsv);

CREATE TABLE audit_events (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target_kind text,
    target_id   text,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);
CREATE INDEX audit_events_page_idx ON audit_events (tenant_id, created_at DESC, id DESC);

-- Platform-level events (tenant provisioning, cross-tenant denials): not tenant-owned.
CREATE TABLE platform_audit_events (
    id         uuid        NOT NULL PRIMARY KEY,
    actor      text        NOT NULL,
    action     text        NOT NULL,
    tenant_id  uuid,
    details    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX platform_audit_events_page_idx ON platform_audit_events (created_at DESC, id DESC);

-- Row-level security: the tenant is set per transaction with
-- set_config('app.tenant_id', <uuid>, true). Unset (NULL or '') matches nothing.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON channels
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON messages
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Which tenant owns a user or channel id. The one deliberate hole in RLS: it returns
-- only the owning tenant id, so a 404 for another tenant's id can be audited as a
-- cross-tenant attempt. SECURITY DEFINER runs as the table owner.
CREATE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT CASE kind
        WHEN 'user'    THEN (SELECT tenant_id FROM users    WHERE id = resource_id LIMIT 1)
        WHEN 'channel' THEN (SELECT tenant_id FROM channels WHERE id = resource_id LIMIT 1)
        WHEN 'tenant'  THEN (SELECT id        FROM tenants  WHERE id = resource_id)
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;

GRANT SELECT, INSERT, UPDATE ON tenants TO meridian_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, channels, messages TO meridian_app;
GRANT SELECT, INSERT ON audit_events, platform_audit_events TO meridian_app;
