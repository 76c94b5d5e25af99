-- CockroachDB only (>= 25.2). The multi-region database, applied by
-- `meridian migrate` (src/db/migrate.rs) BEFORE the versioned migrations, so every
-- table can be placed by the migration that creates it. Every statement is
-- idempotent: the runner applies this file on every run. {database} is the
-- connected database. Regions = regions/*.toml ids (= the nodes' --locality
-- region=…); checked by src/db/migrate.rs `cockroach_regions_match_the_topology`.
-- Citations: docs/cockroachdb.md.

-- Auto-rehoming would move a row to whichever region last wrote it (a forwarded or
-- failed-over write would move an EU tenant's rows out of the EU). Off for every
-- role, before any table is made REGIONAL BY ROW.
ALTER ROLE ALL SET experimental_enable_auto_rehoming = false;

ALTER DATABASE {database} SET PRIMARY REGION "us-east1";
ALTER DATABASE {database} ADD REGION IF NOT EXISTS "europe-west1";
ALTER DATABASE {database} ADD REGION IF NOT EXISTS "europe-west3";
ALTER DATABASE {database} ADD REGION IF NOT EXISTS "europe-north1";
ALTER DATABASE {database} ADD REGION IF NOT EXISTS "asia-southeast1";

-- Survive the loss of a whole region (needs at least three database regions).
ALTER DATABASE {database} SURVIVE REGION FAILURE;

-- Keep the EU's replicas in the EU: rows homed in a super region's member keep all
-- their replicas (failover ones included) inside it. A super region must satisfy
-- the survival goal on its own, so under SURVIVE REGION FAILURE it needs three
-- regions: hence europe-north1. The runner skips this once "eu" exists (there is no
-- IF NOT EXISTS form); enable_super_regions is set on the runner's session.
ALTER DATABASE {database} ADD SUPER REGION "eu" VALUES "europe-west1", "europe-west3", "europe-north1";
