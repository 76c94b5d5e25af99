-- Online, batched relocation. A one-statement cascade of tenants.home_region would
-- move every row of a tenant in one transaction (locks, retries, minutes for a
-- large tenant). Instead the tenant's rows reference tenants(id) only, and a
-- relocation switches tenants.home_region first, then moves the rows' home_region
-- in small batches (each batch one transaction; on CockroachDB each updated row
-- moves to its new region). Reads filter on tenant_id, never home_region, so the
-- tenant keeps reading and writing throughout.
ALTER TABLE users           DROP CONSTRAINT users_tenant_id_home_region_fkey;
ALTER TABLE channels        DROP CONSTRAINT channels_tenant_id_home_region_fkey;
ALTER TABLE messages        DROP CONSTRAINT messages_tenant_id_home_region_fkey;
ALTER TABLE audit_events    DROP CONSTRAINT audit_events_tenant_id_home_region_fkey;
ALTER TABLE tenant_usage    DROP CONSTRAINT tenant_usage_tenant_id_home_region_fkey;
ALTER TABLE ai_usage        DROP CONSTRAINT ai_usage_tenant_id_home_region_fkey;
ALTER TABLE ai_reservations DROP CONSTRAINT ai_reservations_tenant_id_home_region_fkey;

ALTER TABLE users           ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE channels        ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE messages        ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE audit_events    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE tenant_usage    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE ai_usage        ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE ai_reservations ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);

-- One row per relocation: the job, its progress and its verification. Platform
-- data (GLOBAL on CockroachDB). A lease lets any node resume a relocation whose
-- worker died.
CREATE TABLE relocations (
    id            uuid        NOT NULL PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
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
    finished_at   timestamptz
);
CREATE UNIQUE INDEX relocations_one_active ON relocations (tenant_id) WHERE status IN ('pending', 'running');
CREATE INDEX relocations_tenant_idx ON relocations (tenant_id, created_at DESC);

GRANT SELECT, INSERT, UPDATE ON relocations TO meridian_app;

-- Audit events stay append-only for their content; a relocation may only move them.
GRANT UPDATE (home_region) ON audit_events TO meridian_app;
