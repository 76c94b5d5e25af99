-- CockroachDB: nothing to migrate. PostgreSQL's V9 bounds the work of
-- search_messages (at most `candidates` matches ranked); on CockroachDB search
-- is the inline statement of src/db/dialect.rs, which carries the same bound
-- (a LIMIT on the matches before ranking). Kept as a version so both dialects
-- share one numbering.
SELECT 1;
