//! The CockroachDB dialect guard: fails when a migration that runs on CockroachDB
//! (`sql/*.sql`, `sql/cockroach/*.sql`) or SQL text in `src/` uses a construct that
//! CockroachDB (>= 25.2) does not support, and when a CockroachDB table is created
//! without a deliberate placement.
//!
//! It is a lint, not a proof: it matches text (case-insensitive, whitespace
//! collapsed), it knows only the constructs listed in `RULES`, and it cannot tell
//! whether CockroachDB accepts what it lets through. Only running the schema and
//! the suite on a real cluster (`MERIDIAN_TEST_COCKROACH_URL`, docs/cockroachdb.md)
//! shows that. Every rule names its source; the same list, with the decisions
//! taken, is in docs/cockroachdb.md.
//!
//! Exempt: `sql/postgres/` (PostgreSQL-only by construction) and, in `src/`, text
//! between `dialect-guard: postgres-only begin` and `… end` markers (the PostgreSQL
//! half of `src/db/dialect.rs`). In `src/` only string literals are checked (that
//! is where SQL lives; Rust's own `=>` would otherwise match); in `.sql` files
//! everything but `--` comment lines, which may name a construct to say why it is
//! not used.

use std::path::{Path, PathBuf};

struct Rule {
    /// What is refused, as written in a finding.
    what: &'static str,
    /// Does this normalised (upper-case, single-spaced) text use it?
    matches: fn(&str) -> bool,
    /// Where CockroachDB's lack of support is documented.
    source: &'static str,
}

/// `GRANT <privileges> (<columns>) ON …`: a column list right after a privilege.
/// `GRANT` must be a word of its own followed by a privilege: an identifier or
/// prose that ends in "grant" (`createCalendarGrant`, "a calendar grant") is
/// not the statement.
fn column_grant(text: &str) -> bool {
    const PRIVILEGES: [&str; 6] = ["SELECT", "INSERT", "UPDATE", "DELETE", "REFERENCES", "ALL"];
    text.match_indices("GRANT ").any(|(at, _)| {
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        let rest = &text[at + 6..];
        if !starts_word || !PRIVILEGES.iter().any(|p| rest.starts_with(p)) {
            return false;
        }
        let head = rest.split(" ON ").next().unwrap_or_default();
        head.contains('(') && !head.contains("SELECT 1")
    })
}

/// `make_interval(secs => …)` and any other `name => value` argument.
fn named_argument(text: &str) -> bool {
    text.contains("=>")
}

/// `CREATE [OR REPLACE] FUNCTION … SET <param>` before the body.
fn function_set_option(text: &str) -> bool {
    text.match_indices("CREATE OR REPLACE FUNCTION ")
        .chain(text.match_indices("CREATE FUNCTION "))
        .any(|(at, _)| {
            let header = text[at..].split(" AS $").next().unwrap_or_default();
            header.contains(" SET ")
        })
}

const RULES: &[Rule] = &[
    Rule {
        what: "CREATE EXTENSION (e.g. btree_gin: \"extension btree_gin is not yet supported\")",
        matches: |t| t.contains("CREATE EXTENSION"),
        source: "https://github.com/cockroachdb/cockroach/issues/51992 ; https://github.com/temporalio/temporal/issues/4136",
    },
    Rule {
        what: "DO $$ … $$ blocks (DDL inside DO is refused; CREATE ROLE IF NOT EXISTS instead)",
        matches: |t| t.contains("DO $") || t.contains("DO LANGUAGE"),
        source: "https://github.com/cockroachdb/cockroach/issues/107345 ; https://github.com/cockroachdb/cockroach/issues/173163 (DDL allowed in procedures, not functions or DO blocks)",
    },
    Rule {
        what: "CREATE FUNCTION … SET <parameter> (e.g. SET search_path) routine option",
        matches: function_set_option,
        source: "the issue's review (V); CREATE FUNCTION grammar: https://www.cockroachlabs.com/docs/v25.2/create-function",
    },
    Rule {
        what: "column-level GRANT (GRANT UPDATE (col) ON …)",
        matches: column_grant,
        source: "https://github.com/cockroachdb/cockroach/issues/72766 (open)",
    },
    Rule {
        what: "websearch_to_tsquery()",
        matches: |t| t.contains("WEBSEARCH_TO_TSQUERY"),
        source: "https://www.cockroachlabs.com/docs/v25.2/full-text-search#unsupported-features ; https://github.com/cockroachdb/cockroach/issues/41288",
    },
    Rule {
        what: "ts_rank_cd(), setweight(), tsquery_phrase() (full-text functions CockroachDB lacks)",
        matches: |t| {
            t.contains("TS_RANK_CD") || t.contains("SETWEIGHT(") || t.contains("TSQUERY_PHRASE")
        },
        source: "https://www.cockroachlabs.com/docs/v25.2/full-text-search#unsupported-features",
    },
    Rule {
        what: "named arguments (`name => value`, e.g. make_interval(secs => $1))",
        matches: named_argument,
        source: "https://github.com/cockroachdb/cockroach/issues/122264 (docs known limitation)",
    },
    Rule {
        what: "ALTER COLUMN … TYPE crdb_internal_region (keep home_region text; add a computed crdb_region)",
        matches: |t| t.contains("TYPE CRDB_INTERNAL_REGION"),
        source: "https://www.cockroachlabs.com/docs/v25.2/alter-table#alter-column-data-types (limitations); the issue's review (V)",
    },
    Rule {
        what: "LISTEN / NOTIFY",
        matches: |t| t.contains("LISTEN ") || t.contains("NOTIFY "),
        source: "https://github.com/cockroachdb/cockroach/issues/41522 ; ../shared/DESIGN.md",
    },
    Rule {
        what: "pg_advisory_lock / pg_advisory_xact_lock",
        matches: |t| t.contains("PG_ADVISORY"),
        source: "https://github.com/cockroachdb/cockroach/issues/13546",
    },
    Rule {
        what: "CREATE DATABASE … TEMPLATE",
        matches: |t| t.contains("CREATE DATABASE") && t.contains(" TEMPLATE "),
        source: "https://www.cockroachlabs.com/docs/v25.2/create-database (no TEMPLATE clause)",
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Upper-case, comment lines dropped, whitespace collapsed.
fn normalise(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("--") || l.starts_with("//"))
        })
        .collect();
    kept.join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Drops the text between postgres-only markers.
fn without_postgres_only(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.contains("dialect-guard: postgres-only begin") {
            skipping = true;
        } else if line.contains("dialect-guard: postgres-only end") {
            skipping = false;
        } else if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The contents of the string literals of Rust source (`"…"` with escapes, raw
/// `r"…"`/`r#"…"#`), one per line; `'"'` char literals are skipped.
fn string_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' if chars.get(i + 1) == Some(&'"') && chars.get(i + 2) == Some(&'\'') => i += 3,
            '\'' if chars.get(i + 1) == Some(&'\\') => i += 4,
            'r' if matches!(chars.get(i + 1), Some('"') | Some('#'))
                && (i == 0 || !chars[i - 1].is_alphanumeric() && chars[i - 1] != '_') =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                j += 1;
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = chars[j..].iter().collect();
                let end = rest.find(&close).unwrap_or(rest.len());
                out.push_str(&rest[..end]);
                out.push('\n');
                i = j + rest[..end].chars().count() + close.chars().count();
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    } else {
                        out.push(chars[i]);
                    }
                    i += 1;
                }
                out.push('\n');
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn files(dir: &Path, ext: &str, recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if recursive {
                out.extend(files(&path, ext, true));
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The files that run on CockroachDB, with their text as checked.
fn checked_files() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut out = Vec::new();
    for path in files(&root.join("sql"), "sql", false)
        .into_iter()
        .chain(files(&root.join("sql/cockroach"), "sql", false))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        out.push((path, text));
    }
    for path in files(&root.join("src"), "rs", true) {
        let text = std::fs::read_to_string(&path).unwrap();
        out.push((path, string_literals(&without_postgres_only(&text))));
    }
    out
}

fn findings(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let text = normalise(text);
        for rule in RULES {
            if (rule.matches)(&text) {
                found.push(format!(
                    "{}: uses {} — unsupported on CockroachDB ({})",
                    path.strip_prefix(root()).unwrap_or(path).display(),
                    rule.what,
                    rule.source
                ));
            }
        }
    }
    found
}

#[test]
fn nothing_that_runs_on_cockroachdb_uses_an_unsupported_construct() {
    let found = findings(&checked_files());
    assert!(found.is_empty(), "dialect guard:\n{}", found.join("\n"));
}

/// The rules do catch what the issue found on main (a lint that matches nothing
/// proves nothing).
#[test]
fn the_rules_catch_the_constructs_found_on_main() {
    let samples = [
        "CREATE EXTENSION IF NOT EXISTS btree_gin;",
        "DO $$ BEGIN CREATE ROLE meridian_app LOGIN; END $$;",
        "CREATE FUNCTION f() RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$ SELECT 1 $$;",
        "GRANT UPDATE (home_region) ON audit_events TO meridian_app;",
        "GRANT SELECT, UPDATE (home_region) ON t TO meridian_app;",
        "FROM messages m, websearch_to_tsquery('english', $2) q",
        "now() + make_interval(secs => $3)",
        "ALTER TABLE users ALTER COLUMN home_region TYPE crdb_internal_region USING home_region::crdb_internal_region;",
        "LISTEN jobs;",
        "CREATE DATABASE t TEMPLATE meridian_template",
    ];
    let rust = string_literals(
        "let a = match x { 1 => \"now() + make_interval(secs => $3)\", _ => r#\"x\"# }; let q = '\"';",
    );
    assert!(
        rust.contains("make_interval(secs => $3)") && !rust.contains("1 =>"),
        "{rust}"
    );
    for sample in samples {
        let found = findings(&[(PathBuf::from("sample.sql"), sample.to_owned())]);
        assert!(!found.is_empty(), "not caught: {sample}");
    }
    // And the portable forms pass.
    for fine in [
        "GRANT SELECT, INSERT ON tenants TO meridian_app;",
        "now() + $3::float8 * interval '1 second'",
        "CREATE OR REPLACE FUNCTION resource_owner(kind text) RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER AS $$ SELECT 1 $$;",
        "WHERE m.body_tsv @@ plainto_tsquery('english', $2)",
        // Words ending in "grant" in string literals (operation ids, messages).
        "createCalendarGrant\ncalendar grant\nnot a valid (x) id ON",
    ] {
        let found = findings(&[(PathBuf::from("sample.sql"), fine.to_owned())]);
        assert!(found.is_empty(), "false positive: {found:?}");
    }
}

/// Placement: in the CockroachDB migration set, every table with a `home_region`
/// column (tenant-owned) is `REGIONAL BY ROW AS crdb_region`, and every other table
/// has an explicit locality. A new table (wave 2: jobs, sessions, keys, …) that
/// forgets either fails here.
#[test]
fn every_cockroachdb_table_is_placed_deliberately() {
    let root = root();
    let set: Vec<String> = files(&root.join("sql"), "sql", false)
        .into_iter()
        .chain(files(&root.join("sql/cockroach"), "sql", false))
        .map(|p| normalise(&std::fs::read_to_string(p).unwrap()))
        .collect();
    let all = set.join(" ");
    let mut problems = Vec::new();
    for text in &set {
        for (at, _) in text.match_indices("CREATE TABLE ") {
            let rest = text[at + 13..].trim_start_matches("IF NOT EXISTS ");
            let name = rest.split([' ', '(']).next().unwrap_or_default().to_owned();
            let body = rest.split(");").next().unwrap_or_default();
            // Tenant-owned: a tenant_id and a home_region (tenants itself has
            // neither tenant_id: it is the GLOBAL directory).
            let tenant_owned = body.contains("TENANT_ID ") && body.contains("HOME_REGION ");
            let inline = text[at..].split(';').next().unwrap_or_default();
            let placed_rbr = inline.contains("LOCALITY REGIONAL BY ROW AS CRDB_REGION")
                || all.contains(&format!(
                    "ALTER TABLE {name} SET LOCALITY REGIONAL BY ROW AS CRDB_REGION"
                ));
            let placed_any = inline.contains(" LOCALITY ")
                || all.contains(&format!("ALTER TABLE {name} SET LOCALITY "));
            if tenant_owned && !placed_rbr {
                problems.push(format!(
                    "{name}: tenant-owned (home_region) but not REGIONAL BY ROW AS crdb_region"
                ));
            } else if !placed_any {
                problems.push(format!("{name}: no LOCALITY on CockroachDB"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
