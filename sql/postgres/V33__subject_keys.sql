-- Issue 16 (personal data and the chain): a key per data subject, and sealed
-- personal details in the platform trail.
--
-- `subject_keys`: one random 256-bit key per user whose personal details an
-- audit event carries (`audit::record_personal`), stored sealed with the
-- tenant's keyring (bound to the tenant, `subject_keys`, `key_sealed` and the
-- subject id). The event's details are sealed with this key, so user erasure,
-- which deletes the row in its final transaction, removes them from the trail
-- while the chain (which hashes the ciphertext) still verifies; tenant erasure
-- deletes every row (and destroys the tenant's keys that wrap them anyway).
-- Tenant-owned (tenant_id, home_region, key led by tenant_id, RLS enabled and
-- forced), moved by a relocation, re-encrypted by a DEK rotation (it is in
-- `crypto::rotation::ENCRYPTED`).
--
-- `platform_audit_events.sealed`: personal or tenant-identifying details of a
-- platform event about a tenant (a tenant's name), sealed with that tenant's
-- keyring; NULL on every older event, which the canonical form already encodes
-- as an absent optional, so older events verify unchanged.
-- Why and how: src/audit/personal.rs, sql/README.md (V33).
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS.

CREATE TABLE IF NOT EXISTS subject_keys (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    subject_id  uuid        NOT NULL,
    home_region text        NOT NULL,
    key_sealed  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subject_id)
);

ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON subject_keys;
CREATE POLICY tenant_isolation ON subject_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The service creates and reads its tenant's keys, user erasure and tenant
-- erasure delete them, a rotation re-encrypts `key_sealed` and a relocation
-- moves `home_region` (RLS bounds all of it to the current tenant).
GRANT SELECT, INSERT, DELETE, UPDATE (home_region, key_sealed) ON subject_keys TO meridian_app;

ALTER TABLE platform_audit_events ADD COLUMN IF NOT EXISTS sealed bytea;
