-- Exact usage for quotas: stored bytes per tenant, and the AI token ledger.
-- Counters are updated in the same SERIALIZABLE transaction as the change they
-- count, with a guard in the UPDATE itself, so concurrent writers can never push a
-- tenant past its cap (a conflicting writer gets 40001 and is retried).

CREATE TABLE tenant_usage (
    tenant_id     uuid   NOT NULL PRIMARY KEY,
    home_region   text   NOT NULL,
    storage_bytes bigint NOT NULL DEFAULT 0 CHECK (storage_bytes >= 0),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);

INSERT INTO tenant_usage (tenant_id, home_region, storage_bytes)
SELECT t.id, t.home_region, COALESCE((SELECT sum(octet_length(m.body)) FROM messages m WHERE m.tenant_id = t.id), 0)
FROM tenants t;

-- AI tokens per tenant per calendar month (UTC): committed use plus open reservations.
CREATE TABLE ai_usage (
    tenant_id   uuid   NOT NULL,
    month       date   NOT NULL,
    home_region text   NOT NULL,
    used        bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved    bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (tenant_id, month),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);

CREATE TABLE ai_reservations (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    home_region text        NOT NULL,
    month       date        NOT NULL,
    tokens      bigint      NOT NULL CHECK (tokens > 0),
    used_tokens bigint      CHECK (used_tokens >= 0),
    status      text        NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'committed', 'released')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, home_region) REFERENCES tenants (id, home_region) ON UPDATE CASCADE
);

ALTER TABLE tenant_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_usage
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ai_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_usage
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ai_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_reservations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE ON tenant_usage, ai_usage, ai_reservations TO meridian_app;
