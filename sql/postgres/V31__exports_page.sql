-- Issue 18 (console, list of exports): `GET /v1/exports` pages a tenant's
-- exports newest first by `(created_at, id)` like every other list
-- (`store::page::keyset_sql!`). The primary key `(tenant_id, id)` orders by id
-- only and the V22 indexes by expiry or id alone, so without these the page
-- would sort every export of the tenant. Owners and compliance officers read
-- the whole tenant's (`exports_page_idx`); any other user only the exports
-- they asked for (`exports_requester_page_idx`, so one user's page does not
-- walk everyone's). Checked by tests/api/plans.rs as the service role.
-- Idempotent: IF NOT EXISTS.

CREATE INDEX IF NOT EXISTS exports_page_idx
    ON exports (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS exports_requester_page_idx
    ON exports (tenant_id, requested_by, created_at DESC, id DESC);
