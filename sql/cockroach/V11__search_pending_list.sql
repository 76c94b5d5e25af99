-- CockroachDB: nothing to do. Its inverted index (messages_search_idx) is written
-- in the writing transaction and has no pending list (PostgreSQL's V11 turns GIN's
-- fastupdate off). Kept as a version so both dialects share one numbering.
SELECT 1;
