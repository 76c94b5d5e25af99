-- Issue 14 (sign-in): each tenant's identity providers (OIDC, LDAP), the external
-- identities they vouch for, OIDC sign-ins in flight, and Meridian sessions
-- (refresh-token families). All
-- tenant-owned: tenant_id and home_region, keys led by tenant_id, RLS enabled and
-- forced. Why and how: sql/README.md (V13), src/identity/, src/sessions/.
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS before CREATE POLICY.

-- A tenant's identity provider. `config` holds the kind's settings that are not
-- secret (issuer, client id / URL, bind DN, base DN); `secret` (the OIDC client
-- secret or the LDAP service password) is write-only in the API and kept in its
-- own column so the data-protection issue can encrypt it in place.
CREATE TABLE IF NOT EXISTS identity_providers (
    tenant_id             uuid        NOT NULL REFERENCES tenants (id),
    id                    uuid        NOT NULL,
    home_region           text        NOT NULL,
    kind                  text        NOT NULL CHECK (kind IN ('oidc', 'ldap')),
    name                  text        NOT NULL,
    enabled               boolean     NOT NULL DEFAULT true,
    config                jsonb       NOT NULL DEFAULT '{}',
    secret                text,
    role_mappings         jsonb       NOT NULL DEFAULT '[]',
    default_role          text,
    allowed_email_domains text[]      NOT NULL DEFAULT '{}',
    redirect_uris         text[]      NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- Who a provider says a user is: (provider, subject) -> user. Sign-in finds users
-- here, never by email alone.
CREATE TABLE IF NOT EXISTS external_identities (
    tenant_id   uuid        NOT NULL,
    provider_id uuid        NOT NULL,
    subject     text        NOT NULL,
    home_region text        NOT NULL,
    user_id     uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider_id, subject),
    FOREIGN KEY (tenant_id, provider_id) REFERENCES identity_providers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

-- Refresh tokens: only the SHA-256 of the token is stored. A sign-in starts a
-- family; each refresh marks its token `rotated` and adds the next one to the
-- family. Presenting a rotated (or revoked) token revokes the whole family.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    provider_id uuid,
    token_hash  bytea       NOT NULL,
    state       text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'rotated', 'revoked')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON refresh_tokens (tenant_id, family_id);

-- OIDC sign-ins in flight: created by /oidc/start, used up by the callback (at
-- most once: `used_at`). `state_hash` is the SHA-256 of the `state` sent to the
-- provider; the nonce and the PKCE code verifier never leave the database but
-- in the authorization request (the nonce) and the token request (the verifier).
CREATE TABLE IF NOT EXISTS oidc_sign_ins (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    home_region   text        NOT NULL,
    provider_id   uuid        NOT NULL,
    state_hash    bytea       NOT NULL,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    redirect_uri  text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, state_hash),
    FOREIGN KEY (tenant_id, provider_id) REFERENCES identity_providers (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE identity_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_providers FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON identity_providers;
CREATE POLICY tenant_isolation ON identity_providers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE external_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE external_identities FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON external_identities;
CREATE POLICY tenant_isolation ON external_identities
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON refresh_tokens;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE oidc_sign_ins ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_sign_ins FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON oidc_sign_ins;
CREATE POLICY tenant_isolation ON oidc_sign_ins
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON identity_providers, external_identities, refresh_tokens, oidc_sign_ins TO meridian_app;

-- A probe of another tenant's identity provider is audited like one of its
-- webhooks (src/scope/probes.rs asks whose the id is): V10's function plus the
-- kind `identity_provider`. SECURITY DEFINER so it sees across tenants; it
-- returns only a tenant id.
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
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;
