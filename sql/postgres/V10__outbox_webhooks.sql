-- Issue 13: the transactional outbox (outbox_events, outbox_heads), webhook
-- endpoints and their delivery log, channel summaries. All tenant-owned: tenant_id
-- and home_region, keys led by tenant_id, RLS enabled and forced.
-- Why and how: sql/README.md (V10), src/outbox.rs, src/webhooks/, src/summaries/.
-- Idempotent: IF NOT EXISTS, DROP POLICY IF EXISTS before CREATE POLICY.
CREATE TABLE IF NOT EXISTS outbox_events (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    id           uuid        NOT NULL,
    home_region  text        NOT NULL,
    -- The tenant's order, assigned by the dispatcher (NULL until then): writers
    -- never touch a per-tenant counter row, so posting stays free of a hot row.
    seq          bigint,
    kind         text        NOT NULL,
    subject_kind text,
    subject_id   text,
    data         jsonb       NOT NULL DEFAULT '{}',
    -- clock_timestamp(), not now(): events of one transaction keep their order.
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, seq)
);
CREATE INDEX IF NOT EXISTS outbox_events_unsequenced_idx
    ON outbox_events (tenant_id, created_at, id) WHERE seq IS NULL;

-- The dispatcher's position per tenant: the last sequence number handed out.
-- Written by the dispatcher only (one per tenant at a time: it locks this row).
CREATE TABLE IF NOT EXISTS outbox_heads (
    tenant_id   uuid   NOT NULL REFERENCES tenants (id),
    home_region text   NOT NULL,
    last_seq    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id)
);

-- Webhook endpoints. `secret` is write-only in the API (shown once); after a
-- rotation `previous_secret` signs too until `previous_expires_at`.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    tenant_id           uuid        NOT NULL REFERENCES tenants (id),
    id                  uuid        NOT NULL,
    home_region         text        NOT NULL,
    url                 text        NOT NULL,
    description         text        NOT NULL DEFAULT '',
    event_types         text[]      NOT NULL DEFAULT '{}',
    secret              text        NOT NULL,
    previous_secret     text,
    previous_expires_at timestamptz,
    enabled             boolean     NOT NULL DEFAULT true,
    disabled_reason     text,
    failure_streak      integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- One row per (endpoint, event): the delivery log. Sent in `seq` order per
-- endpoint; `next_attempt_at` is the backoff.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    home_region     text        NOT NULL,
    endpoint_id     uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    seq             bigint      NOT NULL,
    event_kind      text        NOT NULL,
    payload         text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, endpoint_id, event_id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_queue_idx
    ON webhook_deliveries (tenant_id, endpoint_id, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_log_idx
    ON webhook_deliveries (tenant_id, endpoint_id, created_at DESC, id DESC);

-- Channel summaries, stored with the tenant's rows.
CREATE TABLE IF NOT EXISTS channel_summaries (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    home_region   text        NOT NULL,
    channel_id    uuid        NOT NULL,
    state         text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    since         timestamptz,
    until         timestamptz,
    max_sentences integer     NOT NULL,
    engine        text        NOT NULL,
    summary       text,
    sentences     jsonb,
    tokens_used   bigint,
    error         text,
    job_id        uuid,
    requested_by  uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE outbox_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_events FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON outbox_events;
CREATE POLICY tenant_isolation ON outbox_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE outbox_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_heads FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON outbox_heads;
CREATE POLICY tenant_isolation ON outbox_heads
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON webhook_endpoints;
CREATE POLICY tenant_isolation ON webhook_endpoints
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON webhook_deliveries;
CREATE POLICY tenant_isolation ON webhook_deliveries
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE channel_summaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_summaries FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON channel_summaries;
CREATE POLICY tenant_isolation ON channel_summaries
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Events are never updated by the API (only sequenced) and never deleted by it.
GRANT SELECT, INSERT, UPDATE ON outbox_events, outbox_heads TO meridian_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints, webhook_deliveries, channel_summaries TO meridian_app;

-- A probe of another tenant's webhook or summary is audited like one of its
-- channel (src/scope/probes.rs asks whose the id is): V8's function plus the
-- new kinds. SECURITY DEFINER so it sees across tenants; it returns only a tenant id.
CREATE OR REPLACE FUNCTION resource_owner(kind text, resource_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT CASE kind
        WHEN 'user'    THEN (SELECT tenant_id FROM users    WHERE id = resource_id LIMIT 1)
        WHEN 'channel' THEN (SELECT tenant_id FROM channels WHERE id = resource_id LIMIT 1)
        WHEN 'tenant'  THEN (SELECT id        FROM tenants  WHERE id = resource_id)
        WHEN 'job'     THEN (SELECT tenant_id FROM jobs     WHERE id = resource_id LIMIT 1)
        WHEN 'webhook' THEN (SELECT tenant_id FROM webhook_endpoints WHERE id = resource_id LIMIT 1)
        WHEN 'summary' THEN (SELECT tenant_id FROM channel_summaries WHERE id = resource_id LIMIT 1)
    END
$$;
REVOKE ALL ON FUNCTION resource_owner(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resource_owner(text, uuid) TO meridian_app;
