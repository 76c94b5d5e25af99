-- CockroachDB version of sql/postgres/V4__relocation.sql. Idempotent (see V1).
-- On PostgreSQL V4 swaps V1's composite (tenant_id, home_region) ON UPDATE CASCADE
-- foreign keys for plain tenants (id) ones so relocation moves rows in batches. On
-- CockroachDB V1 never created the composite ones; only V2's three tables have
-- them (V2 is portable), so only those are swapped here.
ALTER TABLE tenant_usage    DROP CONSTRAINT IF EXISTS tenant_usage_tenant_id_home_region_fkey;
ALTER TABLE ai_usage        DROP CONSTRAINT IF EXISTS ai_usage_tenant_id_home_region_fkey;
ALTER TABLE ai_reservations DROP CONSTRAINT IF EXISTS ai_reservations_tenant_id_home_region_fkey;
ALTER TABLE tenant_usage    DROP CONSTRAINT IF EXISTS tenant_usage_tenant_id_fkey;
ALTER TABLE ai_usage        DROP CONSTRAINT IF EXISTS ai_usage_tenant_id_fkey;
ALTER TABLE ai_reservations DROP CONSTRAINT IF EXISTS ai_reservations_tenant_id_fkey;
ALTER TABLE tenant_usage    ADD CONSTRAINT tenant_usage_tenant_id_fkey    FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE ai_usage        ADD CONSTRAINT ai_usage_tenant_id_fkey        FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE ai_reservations ADD CONSTRAINT ai_reservations_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);

-- One row per relocation: the job, its progress and its verification. Platform
-- data (no tenant content: ids, region names, row counts). Written once per moved
-- batch, read by the progress endpoint and at node start: kept in the primary
-- region rather than GLOBAL (a GLOBAL write waits out the clock-uncertainty
-- window, once per batch).
CREATE TABLE IF NOT EXISTS relocations (
    id            uuid        NOT NULL PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    from_region   text        NOT NULL,
    to_region     text        NOT NULL,
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    counts_before jsonb,
    counts_after  jsonb,
    moved         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    requested_by  text        NOT NULL,
    lease_owner   text,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CONSTRAINT relocations_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;
CREATE UNIQUE INDEX IF NOT EXISTS relocations_one_active ON relocations (tenant_id) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS relocations_tenant_idx ON relocations (tenant_id, created_at DESC);

GRANT SELECT, INSERT, UPDATE ON relocations TO meridian_app;

-- A relocation moves audit events by updating their home_region. PostgreSQL grants
-- UPDATE on that one column; CockroachDB has no column-level privileges, so the
-- service role gets UPDATE on the table: a weaker guarantee than on PostgreSQL
-- (see docs/cockroachdb.md, "Known gaps").
GRANT UPDATE ON audit_events TO meridian_app;
