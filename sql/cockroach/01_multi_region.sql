-- CockroachDB only (>= v25.2). Apply AFTER the portable migrations in sql/ have run
-- against the CockroachDB database (see sql/README.md). Not run on PostgreSQL.
--
-- Regions must match regions/*.toml (CockroachDB region names = node --locality region=…).

ALTER DATABASE meridian SET PRIMARY REGION "us-east1";
ALTER DATABASE meridian ADD REGION "europe-west1";
ALTER DATABASE meridian ADD REGION "europe-west3";
ALTER DATABASE meridian ADD REGION "asia-southeast1";

-- Survive the loss of a whole region (needs at least three regions).
ALTER DATABASE meridian SURVIVE REGION FAILURE;

-- Keep each jurisdiction's replicas inside it: a super region's rows (including
-- failover replicas) are only placed in its member regions. A super region needs
-- enough regions to satisfy SURVIVE REGION FAILURE within it; for jurisdictions
-- with fewer regions, see sql/README.md.
SET enable_super_regions = 'on';
ALTER DATABASE meridian ADD SUPER REGION "eu" VALUES "europe-west1", "europe-west3";

-- home_region becomes CockroachDB's region enum so rows can be homed by it. The
-- columns sit in composite foreign keys and indexes, which needs the general
-- ALTER COLUMN TYPE (an online schema change in CockroachDB).
SET enable_experimental_alter_column_type_general = true;
ALTER TABLE users        ALTER COLUMN home_region TYPE crdb_internal_region USING home_region::crdb_internal_region;
ALTER TABLE channels     ALTER COLUMN home_region TYPE crdb_internal_region USING home_region::crdb_internal_region;
ALTER TABLE messages     ALTER COLUMN home_region TYPE crdb_internal_region USING home_region::crdb_internal_region;
ALTER TABLE audit_events ALTER COLUMN home_region TYPE crdb_internal_region USING home_region::crdb_internal_region;
ALTER TABLE tenants      ALTER COLUMN home_region TYPE crdb_internal_region USING home_region::crdb_internal_region;

-- Tenant-owned rows live in their tenant's home region: local reads and writes there.
ALTER TABLE users        SET LOCALITY REGIONAL BY ROW AS home_region;
ALTER TABLE channels     SET LOCALITY REGIONAL BY ROW AS home_region;
ALTER TABLE messages     SET LOCALITY REGIONAL BY ROW AS home_region;
ALTER TABLE audit_events SET LOCALITY REGIONAL BY ROW AS home_region;

-- The directory is read on every node and changes rarely: GLOBAL tables give
-- consistent local reads everywhere at the cost of slower writes.
ALTER TABLE tenants SET LOCALITY GLOBAL;
ALTER TABLE platform_audit_events SET LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;

-- Never let CockroachDB re-home rows to the region that last wrote them: a
-- forwarded or failed-over write would silently move a tenant's data, possibly
-- out of its residency. Relocation is an explicit, audited update of home_region.
SET CLUSTER SETTING sql.defaults.experimental_auto_rehoming.enabled = false;
ALTER ROLE ALL SET experimental_enable_auto_rehoming = false;

-- "Reads stay local" is checked, not assumed: run the API's queries for a tenant
-- at a gateway in its home region in a session with
--   SET enforce_home_region = on;
-- and a query that would have to leave the region fails instead of crossing.
-- It is deliberately not set for the service role: failover (serving a tenant from
-- another region while its home is down or drained) and relocation (rows not yet
-- moved) read across regions on purpose.
