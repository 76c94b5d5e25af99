-- Issue 15 part 2 (envelope encryption): each tenant's data keys (DEKs), wrapped
-- by the key-encryption key (KEK) of the tenant's jurisdiction, and the sealed
-- columns of the stored secrets. Tenant-owned (tenant_id, home_region, keys led by
-- tenant_id, RLS enabled and forced). Why and how: src/crypto/keyring.rs,
-- sql/README.md (V18), README "Encryption at rest".
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS before CREATE POLICY.

-- One version of a tenant's DEK. `wrapped` is the DEK sealed by the KEK `kek_id`
-- of `jurisdiction` (never the key itself); NULL once `destroyed`
-- (crypto-shredding: the row stays as evidence, the key is gone). `active` seals
-- new data (at most one per tenant); `retired` opens old data only; the rotation
-- job sets `drained_at` on a retired version once no ciphertext under it is left,
-- and counts what it re-sealed under the new version in `rewritten`.
CREATE TABLE IF NOT EXISTS tenant_keys (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    version      integer     NOT NULL CHECK (version >= 1),
    home_region  text        NOT NULL,
    crdb_region  crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east1' THEN 'us-east1' WHEN 'europe-west1' THEN 'europe-west1' WHEN 'europe-west3' THEN 'europe-west3' WHEN 'europe-north1' THEN 'europe-north1' WHEN 'asia-southeast1' THEN 'asia-southeast1' END) STORED,
    jurisdiction text        NOT NULL,
    kek_id       text        NOT NULL,
    wrapped      bytea,
    state        text        NOT NULL DEFAULT 'active'
                             CHECK (state IN ('active', 'retired', 'destroyed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    drained_at   timestamptz,
    destroyed_at timestamptz,
    rewritten    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, version),
    CHECK ((state = 'destroyed') = (wrapped IS NULL))
) LOCALITY REGIONAL BY ROW AS crdb_region;
-- At most one active version per tenant: two racing first seals (or rotations)
-- cannot both commit one. CockroachDB supports partial unique indexes on
-- REGIONAL BY ROW tables (uniqueness is checked across the regions' partitions).
CREATE UNIQUE INDEX IF NOT EXISTS tenant_keys_one_active ON tenant_keys (tenant_id)
    WHERE state = 'active';

ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenant_keys;
CREATE POLICY tenant_isolation ON tenant_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- No DELETE: a destroyed version stays (state, destroyed_at) as evidence.
GRANT SELECT, INSERT, UPDATE ON tenant_keys TO meridian_app;

-- Stored secrets, sealed with the tenant's DEK (src/crypto/secrets.rs). The
-- plaintext columns stay for nodes of the previous version during a rolling
-- upgrade and for rows written before it; the node seals them and sets them to
-- NULL (`keys.seal_plaintext` sweep, README "Encryption at rest"), so none is
-- left after the upgrade. `webhook_endpoints.secret` may now be NULL.
ALTER TABLE identity_providers ADD COLUMN IF NOT EXISTS secret_sealed bytea;
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS secret_sealed bytea;
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS previous_secret_sealed bytea;
ALTER TABLE webhook_endpoints ALTER COLUMN secret DROP NOT NULL;
