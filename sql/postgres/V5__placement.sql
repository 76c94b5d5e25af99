-- PostgreSQL: nothing to place. One server holds every row; CockroachDB's V5 makes
-- the V2-V4 tables REGIONAL BY ROW / GLOBAL there. LIST partitioning by region was
-- measured and rejected (15-35% slower page reads: ../shared/DESIGN.md), and no
-- crdb_region column exists on PostgreSQL. Kept as a version so both dialects share
-- one numbering (a later portable V6 applies to both).
SELECT 1;
