-- Issue 14 (platform accounts): the people who run the platform, who sign in
-- through the platform's own OIDC provider (settings `platform_identity`), their
-- sessions (refresh-token families) and their OIDC sign-ins in flight. Platform
-- data, not tenant-owned: no tenant_id, no home_region, no RLS (like tenants and
-- platform_audit_events); the API reaches it only through platform scopes.
-- Why and how: sql/README.md (V15), src/platform/.

-- A platform user is found by (issuer, subject), never by email; only users
-- created here (`meridian platform add-admin`, POST /v1/platform/users) sign in.
CREATE TABLE IF NOT EXISTS platform_users (
    id         uuid        NOT NULL PRIMARY KEY,
    issuer     text        NOT NULL,
    subject    text        NOT NULL,
    email      text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('platform_admin', 'operator')),
    status     text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT platform_users_identity_key UNIQUE (issuer, subject)
);

-- As refresh_tokens (V13), for platform users: only the SHA-256 is stored.
CREATE TABLE IF NOT EXISTS platform_refresh_tokens (
    id         uuid        NOT NULL PRIMARY KEY,
    family_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES platform_users (id),
    token_hash bytea       NOT NULL,
    state      text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'rotated', 'revoked')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT platform_refresh_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX IF NOT EXISTS platform_refresh_tokens_family_idx ON platform_refresh_tokens (family_id);

-- As oidc_sign_ins (V13), for the platform's provider.
CREATE TABLE IF NOT EXISTS platform_oidc_sign_ins (
    id            uuid        NOT NULL PRIMARY KEY,
    state_hash    bytea       NOT NULL,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    redirect_uri  text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    CONSTRAINT platform_oidc_sign_ins_state_key UNIQUE (state_hash)
);

GRANT SELECT, INSERT, UPDATE ON platform_users, platform_refresh_tokens, platform_oidc_sign_ins TO meridian_app;
