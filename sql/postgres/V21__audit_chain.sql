-- Issue 16 part 1 (tamper-evident audit): each trail is a hash chain. A tenant's
-- trail is its audit_events; the platform trail is kept per region
-- (platform_audit_events.region: the home region of the tenant an event is about,
-- else the recording node's region). Every event gets its trail's next `seq` (no
-- gaps) and `hash` = SHA-256(previous hash || canonical(event)) (src/audit/chain.rs,
-- docs/audit-format.md). Appends go through the trail's head row (audit_heads,
-- platform_audit_heads), updated in the statement that inserts the event, so
-- appends to one trail are serialised and each sees the previous head.
-- Why and how: sql/README.md (V21), README "Audit".

-- Personal details an event must carry are sealed with the tenant's keyring
-- (`sealed`); the chain hashes the ciphertext, so destroying the tenant's keys
-- removes the personal data and the chain still verifies.
ALTER TABLE audit_events ADD COLUMN seq bigint;
ALTER TABLE audit_events ADD COLUMN hash bytea;
ALTER TABLE audit_events ADD COLUMN sealed bytea;
CREATE UNIQUE INDEX audit_events_seq_idx ON audit_events (tenant_id, seq);

-- Events before V21 have no tenant-less region: an event about a tenant joins the
-- trail of the tenant's home region; one about no tenant the primary region's.
ALTER TABLE platform_audit_events ADD COLUMN region text;
ALTER TABLE platform_audit_events ADD COLUMN seq bigint;
ALTER TABLE platform_audit_events ADD COLUMN hash bytea;
UPDATE platform_audit_events p
   SET region = COALESCE((SELECT t.home_region FROM tenants t WHERE t.id = p.tenant_id), 'us-east1');
ALTER TABLE platform_audit_events ALTER COLUMN region SET NOT NULL;
CREATE UNIQUE INDEX platform_audit_events_seq_idx ON platform_audit_events (region, seq);

-- The head of each tenant's chain: its last seq and hash.
CREATE TABLE audit_heads (
    tenant_id   uuid   NOT NULL PRIMARY KEY REFERENCES tenants (id),
    home_region text   NOT NULL,
    seq         bigint NOT NULL,
    hash        bytea  NOT NULL
);
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

CREATE TABLE platform_audit_heads (
    region text   NOT NULL PRIMARY KEY,
    seq    bigint NOT NULL,
    hash   bytea  NOT NULL
);

-- Signed checkpoints of a chain: (trail, seq, hash at seq) signed with the
-- platform's Ed25519 key `key_id` (src/crypto/signing.rs; base64url). `kind`: `periodic`
-- (the scheduled job), `export` (taken for an export), `anchor` (retention deleted
-- the events up to `seq`; verification starts from here).
CREATE TABLE audit_checkpoints (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    seq         bigint      NOT NULL,
    home_region text        NOT NULL,
    hash        bytea       NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('periodic', 'export', 'anchor')),
    signed_at   timestamptz NOT NULL,
    key_id      text        NOT NULL,
    signature   text        NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

CREATE TABLE platform_audit_checkpoints (
    region    text        NOT NULL,
    seq       bigint      NOT NULL,
    hash      bytea       NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('periodic', 'export', 'anchor')),
    signed_at timestamptz NOT NULL,
    key_id    text        NOT NULL,
    signature text        NOT NULL,
    PRIMARY KEY (region, seq)
);

-- The tenants whose events predate the chain. `meridian migrate` chains their
-- events in (created_at, id) order after the migrations (src/audit/backfill.rs)
-- and removes them from this list. Read with forced RLS lifted for this one
-- statement, as the migrating role may own the table without being a superuser.
CREATE TABLE audit_chain_pending (tenant_id uuid NOT NULL PRIMARY KEY);
ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY;
INSERT INTO audit_chain_pending SELECT DISTINCT tenant_id FROM audit_events WHERE seq IS NULL;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;

-- Retention (issue 16 item 4): the service role has no DELETE on audit events.
-- This function deletes the current tenant's events up to `upto` only when a
-- checkpoint at `upto` with that event's hash exists (the anchor the chain is
-- verified from afterwards); it returns how many it deleted. Same precautions
-- as search_messages (V7): owned by the migrating role, pinned search_path.
CREATE FUNCTION audit_truncate_through(upto bigint) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
    WITH anchor AS (
        SELECT 1 FROM public.audit_checkpoints c
          JOIN public.audit_events e ON e.tenant_id = c.tenant_id AND e.seq = c.seq AND e.hash = c.hash
         WHERE c.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND c.seq = $1
    ), gone AS (
        DELETE FROM public.audit_events
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
           AND seq <= $1 AND EXISTS (SELECT 1 FROM anchor)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION audit_truncate_through(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_truncate_through(bigint) TO meridian_app;

-- Events stay insert-only (plus V4's UPDATE (home_region) for relocations, which
-- the hash does not cover); heads move with appends; checkpoints are insert-only.
GRANT SELECT, INSERT, UPDATE ON audit_heads, platform_audit_heads TO meridian_app;
GRANT SELECT, INSERT ON audit_checkpoints, platform_audit_checkpoints TO meridian_app;
GRANT UPDATE (home_region) ON audit_checkpoints TO meridian_app;
