-- CockroachDB: nothing yet. sql/postgres/V6__search.sql adds search_messages, a
-- SECURITY DEFINER function that lets PostgreSQL use messages_search_idx for `@@`
-- under row-level security. The CockroachDB search statement stays inline
-- (src/db/dialect.rs) until the same change is verified on a cluster: whether
-- `@@` passes CockroachDB's RLS barrier (added in 25.3, cockroach#147348), and
-- whether a SQL function body is planned on the inverted index with its
-- arguments, have not been run here (docs/cockroachdb.md, Known gaps). A
-- migration that fails on the cluster would block every deploy; this one cannot.
-- Kept as a version so both dialects share one numbering.
SELECT 1;
