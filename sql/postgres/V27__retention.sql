-- Retention (issue 16 item 4). Why and how: src/compliance/retention/,
-- sql/README.md (V27).
--
-- The tenant's retention policy as set through `PUT /v1/tenants/{id}/retention`:
-- {"messages_days": N|null, "audit_days": M}. NULL: the plan's defaults
-- (`limits::plans::Plan::retention`). Read by the writing transaction and by
-- the retention job in their own transactions, never from the directory cache.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS retention jsonb;

-- The retention job's delete batch, `WHERE tenant_id = $1 AND created_at < $2
-- ORDER BY created_at LIMIT n`: without this index it reads the tenant's whole
-- messages_page_idx range (every channel) and sorts. Tenant-led, so the batch
-- never touches another tenant's rows.
CREATE INDEX IF NOT EXISTS messages_retention_idx ON messages (tenant_id, created_at);
