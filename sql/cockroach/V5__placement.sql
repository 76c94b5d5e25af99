-- CockroachDB: place the tables that the portable V2 and V3 created (and that
-- sql/postgres/V5__placement.sql leaves alone). Idempotent: ADD COLUMN IF NOT
-- EXISTS, and setting a table's current locality again changes nothing.
--
-- Tenant-owned usage rows live in their tenant's home region, like every other
-- tenant-owned row: an EU tenant's usage must not sit in us-east1.
ALTER TABLE tenant_usage ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED;
ALTER TABLE tenant_usage SET LOCALITY REGIONAL BY ROW AS crdb_region;

ALTER TABLE ai_usage ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED;
ALTER TABLE ai_usage SET LOCALITY REGIONAL BY ROW AS crdb_region;

ALTER TABLE ai_reservations ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT NULL AS (CASE home_region
        WHEN 'us-east1' THEN 'us-east1'
        WHEN 'europe-west1' THEN 'europe-west1'
        WHEN 'europe-west3' THEN 'europe-west3'
        WHEN 'europe-north1' THEN 'europe-north1'
        WHEN 'asia-southeast1' THEN 'asia-southeast1'
    END) STORED;
ALTER TABLE ai_reservations SET LOCALITY REGIONAL BY ROW AS crdb_region;

-- Drained flags: read by every node every probe interval, written by an operator
-- a few times a year: GLOBAL.
ALTER TABLE region_state SET LOCALITY GLOBAL;
