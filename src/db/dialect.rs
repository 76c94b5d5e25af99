//! The two SQL dialects Meridian runs on, and the few statements that must differ.
//!
//! Production is CockroachDB (>= 25.2); laptops and CI run PostgreSQL 15. Almost every
//! statement is written once, in the subset both accept. Where they cannot agree, the
//! statement lives here, once per dialect, and the set is picked at start from the
//! configured dialect (`database.dialect`), so a handler never branches on it.
//!
//! `tests/dialect_guard.rs` fails when SQL in `src/` uses a construct CockroachDB
//! does not support; the PostgreSQL-only statements below sit between its
//! `dialect-guard: postgres-only` markers, which that lint skips.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Postgres,
    Cockroach,
}

impl Dialect {
    /// Recognises the server from `SELECT version()`: CockroachDB answers
    /// "CockroachDB CCL v25.2.0 (…)", PostgreSQL "PostgreSQL 15.x …".
    pub fn from_version(version: &str) -> Self {
        if version.contains("CockroachDB") {
            Dialect::Cockroach
        } else {
            Dialect::Postgres
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Cockroach => "cockroach",
        }
    }

    pub fn statements(self) -> &'static Statements {
        match self {
            Dialect::Postgres => &POSTGRES,
            Dialect::Cockroach => &COCKROACH,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "cockroach" | "cockroachdb" => Ok(Dialect::Cockroach),
            other => Err(format!(
                "unknown database dialect {other:?} (postgres or cockroach)"
            )),
        }
    }
}

/// The statements whose text depends on the dialect.
#[derive(Debug)]
pub struct Statements {
    /// Ranked full-text search of one tenant's messages: `$1` tenant, `$2` the user's query
    /// text, `$3` limit, `$4` offset, `$5` how many matches at most are ranked (the first
    /// the index yields; `limits.cost.search_candidates`). The tsquery is written inline
    /// (twice: filter and rank) rather than joined from `FROM`: CockroachDB has no inverted
    /// joins on `TSVECTOR`, so a joined tsquery cannot use the inverted index
    /// (docs/cockroachdb.md, row 5); PostgreSQL uses `messages_search_idx` either way.
    pub search: &'static str,
    /// True when the connected role escapes row-level security: the service must
    /// never run as such a role (RLS is the database's tenant wall). PostgreSQL:
    /// superusers and BYPASSRLS roles. CockroachDB: members of `admin` (exempt
    /// from RLS even when it is forced) and BYPASSRLS roles.
    pub privileged_role: &'static str,
    /// Appends one event to the platform trail of a region, in the transaction
    /// of the change it records (tenant events are chained after their commit
    /// instead: `audit::seal`): the head row (`platform_audit_heads`, created by
    /// the first append) moves to the next seq and `hash = SHA-256(head hash ||
    /// $8)` and the event is inserted with both, in one statement. The trail is
    /// the tenant's home region when the event is about a tenant (`$4`), else the
    /// node's (`$7`). `$1` id, `$2`
    /// actor, `$3` action, `$5` details, `$6` created_at, `$8` canonical, `$9`
    /// genesis, `$10` sealed details (V33; NULL for most). Returns the trail's region.
    pub platform_audit_append: &'static str,
}

// dialect-guard: postgres-only begin
/// `websearch_to_tsquery` accepts what users type (words, "phrases", -exclusions,
/// `or`); CockroachDB does not have it.
///
/// Search calls `search_messages` (sql/postgres/V7__search.sql, bounded in
/// V9__search_bound.sql): written inline,
/// the statement runs under RLS, where PostgreSQL cannot use `@@` as an index
/// condition (`ts_match_vq` is not leakproof), so it read every row of the tenant
/// or of the table. The function runs as its owner with the policy's predicate
/// written out, and is planned on `messages_search_idx` with both conditions.
static POSTGRES: Statements = Statements {
    search: "SELECT id, channel_id, author_id, body, created_at, rank
             FROM public.search_messages($1, $2, $3, $4, $5)",
    privileged_role: "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    platform_audit_append: "WITH head AS (
        INSERT INTO platform_audit_heads AS h (region, seq, hash)
        SELECT COALESCE((SELECT t.home_region FROM tenants t WHERE t.id = $4::uuid), $7::text),
               1, sha256($9::bytea || $8::bytea)
        ON CONFLICT (region) DO UPDATE SET seq = h.seq + 1, hash = sha256(h.hash || $8::bytea)
        RETURNING region, seq, hash)
     INSERT INTO platform_audit_events (id, actor, action, tenant_id, details, created_at,
                                        region, seq, hash, sealed)
     SELECT $1::uuid, $2::text, $3::text, $4::uuid, $5::jsonb, $6::timestamptz,
            head.region, head.seq, head.hash, $10::bytea FROM head
     RETURNING region",
};
// dialect-guard: postgres-only end

/// `plainto_tsquery` is the closest CockroachDB function that accepts arbitrary
/// user text without a syntax error (every word must match; quotes, `-` and `or`
/// are not operators there). Documented in docs/cockroachdb.md.
static COCKROACH: Statements = Statements {
    search: "SELECT m.id, m.channel_id, m.author_id, m.body, m.created_at,
                    ts_rank(m.body_tsv, plainto_tsquery('english', $2)) AS rank
             FROM (SELECT id, channel_id, author_id, body, created_at, body_tsv FROM messages
                   WHERE tenant_id = $1 AND body_tsv @@ plainto_tsquery('english', $2)
                   LIMIT $5) AS m
             ORDER BY rank DESC, m.created_at DESC, m.id DESC
             LIMIT $3 OFFSET $4",
    privileged_role: "SELECT pg_has_role(current_user, 'admin', 'MEMBER')
                            OR coalesce((SELECT rolbypassrls FROM pg_roles WHERE rolname = \
                                current_user), false)",
    // sha256() returns hex text on CockroachDB (bytea on PostgreSQL).
    platform_audit_append: "WITH head AS (
        INSERT INTO platform_audit_heads AS h (region, seq, hash)
        SELECT COALESCE((SELECT t.home_region FROM tenants t WHERE t.id = $4::uuid), $7::text),
               1, decode(sha256($9::bytea || $8::bytea), 'hex')
        ON CONFLICT (region) DO UPDATE SET seq = h.seq + 1, hash = decode(sha256(h.hash || $8::bytea), 'hex')
        RETURNING region, seq, hash)
     INSERT INTO platform_audit_events (id, actor, action, tenant_id, details, created_at,
                                        region, seq, hash, sealed)
     SELECT $1::uuid, $2::text, $3::text, $4::uuid, $5::jsonb, $6::timestamptz,
            head.region, head.seq, head.hash, $10::bytea FROM head
     RETURNING region",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_server_from_its_version_string() {
        assert_eq!(
            Dialect::from_version(
                "CockroachDB CCL v25.2.1 (x86_64-pc-linux-gnu, built 2025/06/01, go1.23.7)"
            ),
            Dialect::Cockroach
        );
        assert_eq!(
            Dialect::from_version("PostgreSQL 15.14 (Debian 15.14-0+deb12u1) on x86_64"),
            Dialect::Postgres
        );
    }

    #[test]
    fn parses_the_configured_names() {
        assert_eq!("cockroach".parse(), Ok(Dialect::Cockroach));
        assert_eq!("postgres".parse(), Ok(Dialect::Postgres));
        assert!("mysql".parse::<Dialect>().is_err());
    }

    #[test]
    fn the_cockroach_statements_avoid_postgres_only_functions() {
        // Names the PostgreSQL-only function to check its absence.
        // dialect-guard: postgres-only begin
        assert!(!COCKROACH.search.contains("websearch_to_tsquery"));
        // dialect-guard: postgres-only end
        assert!(COCKROACH.search.contains("plainto_tsquery"));
    }
}
