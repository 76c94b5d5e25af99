-- As sql/postgres/V31__exports_page.sql: the newest-first pages of a tenant's
-- exports (`GET /v1/exports`), all of them or one requester's. Under REGIONAL
-- BY ROW the indexes are partitioned by region like the table. Unverified on a
-- cluster.

CREATE INDEX IF NOT EXISTS exports_page_idx
    ON exports (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS exports_requester_page_idx
    ON exports (tenant_id, requested_by, created_at DESC, id DESC);
