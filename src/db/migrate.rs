//! The migration runner: versioned files (`V<n>__<name>.sql`) embedded in the
//! binary and applied with refinery as the schema owner. The service role
//! (`meridian_app`) is created by the first migration; its password is set here.
//!
//! One schema, two dialects. A dialect's migration set is the portable files in
//! `sql/` plus its own files in `sql/postgres/` or `sql/cockroach/`; a version lives
//! in exactly one place per dialect (checked by `sets_are_well_formed`). V1 and V4
//! are per dialect: PostgreSQL keeps the original files byte for byte (moved to
//! `sql/postgres/`, so databases that applied them keep matching refinery's
//! checksums), CockroachDB gets its own (see `sql/README.md`).
//!
//! On CockroachDB the database is made multi-region first
//! (`sql/cockroach/database.sql`: regions, survival goal, super regions,
//! auto-rehoming off), so every versioned migration can place its tables with
//! `LOCALITY …` in the statement that creates them.

use refinery::Migration;

use super::dialect::Dialect;
use super::tls::DbTlsSettings;

/// (refinery name, SQL). Files not listed here are not applied: keep these lists,
/// `sql/` and `sql/README.md` in step (`listed_files_are_the_files_on_disk`).
const PORTABLE: &[(&str, &str)] = &[
    ("V2__usage", include_str!("../../sql/V2__usage.sql")),
    (
        "V3__region_state",
        include_str!("../../sql/V3__region_state.sql"),
    ),
];

const POSTGRES: &[(&str, &str)] = &[
    (
        "V1__foundation",
        include_str!("../../sql/postgres/V1__foundation.sql"),
    ),
    (
        "V4__relocation",
        include_str!("../../sql/postgres/V4__relocation.sql"),
    ),
    (
        "V5__placement",
        include_str!("../../sql/postgres/V5__placement.sql"),
    ),
    (
        "V6__usage_shards",
        include_str!("../../sql/postgres/V6__usage_shards.sql"),
    ),
    (
        "V7__search",
        include_str!("../../sql/postgres/V7__search.sql"),
    ),
    ("V8__jobs", include_str!("../../sql/postgres/V8__jobs.sql")),
    (
        "V9__search_bound",
        include_str!("../../sql/postgres/V9__search_bound.sql"),
    ),
    (
        "V10__outbox_webhooks",
        include_str!("../../sql/postgres/V10__outbox_webhooks.sql"),
    ),
    (
        "V11__search_pending_list",
        include_str!("../../sql/postgres/V11__search_pending_list.sql"),
    ),
    (
        "V12__ai_engine",
        include_str!("../../sql/postgres/V12__ai_engine.sql"),
    ),
    (
        "V13__identity",
        include_str!("../../sql/postgres/V13__identity.sql"),
    ),
    (
        "V14__job_claim_lock",
        include_str!("../../sql/postgres/V14__job_claim_lock.sql"),
    ),
    (
        "V15__platform_accounts",
        include_str!("../../sql/postgres/V15__platform_accounts.sql"),
    ),
    (
        "V16__job_queue_plans",
        include_str!("../../sql/postgres/V16__job_queue_plans.sql"),
    ),
    (
        "V17__impersonation",
        include_str!("../../sql/postgres/V17__impersonation.sql"),
    ),
    (
        "V18__tenant_keys",
        include_str!("../../sql/postgres/V18__tenant_keys.sql"),
    ),
    (
        "V19__encrypted_messages",
        include_str!("../../sql/postgres/V19__encrypted_messages.sql"),
    ),
    (
        "V21__audit_chain",
        include_str!("../../sql/postgres/V21__audit_chain.sql"),
    ),
    (
        "V22__gdpr",
        include_str!("../../sql/postgres/V22__gdpr.sql"),
    ),
    (
        "V23__calendar",
        include_str!("../../sql/postgres/V23__calendar.sql"),
    ),
    (
        "V24__residency_attestation",
        include_str!("../../sql/postgres/V24__residency_attestation.sql"),
    ),
    (
        "V25__access_log",
        include_str!("../../sql/postgres/V25__access_log.sql"),
    ),
    (
        "V26__tenant_erasure",
        include_str!("../../sql/postgres/V26__tenant_erasure.sql"),
    ),
    (
        "V27__retention",
        include_str!("../../sql/postgres/V27__retention.sql"),
    ),
    (
        "V28__access_log_tenant_retention",
        include_str!("../../sql/postgres/V28__access_log_tenant_retention.sql"),
    ),
    (
        "V29__usage_history",
        include_str!("../../sql/postgres/V29__usage_history.sql"),
    ),
    (
        "V30__audit_sealer",
        include_str!("../../sql/postgres/V30__audit_sealer.sql"),
    ),
    (
        "V31__exports_page",
        include_str!("../../sql/postgres/V31__exports_page.sql"),
    ),
    (
        "V32__top_tenants",
        include_str!("../../sql/postgres/V32__top_tenants.sql"),
    ),
    (
        "V33__subject_keys",
        include_str!("../../sql/postgres/V33__subject_keys.sql"),
    ),
    (
        "V34__calendar_grants",
        include_str!("../../sql/postgres/V34__calendar_grants.sql"),
    ),
    (
        "V35__definer_floors",
        include_str!("../../sql/postgres/V35__definer_floors.sql"),
    ),
];

const COCKROACH: &[(&str, &str)] = &[
    (
        "V1__foundation",
        include_str!("../../sql/cockroach/V1__foundation.sql"),
    ),
    (
        "V4__relocation",
        include_str!("../../sql/cockroach/V4__relocation.sql"),
    ),
    (
        "V5__placement",
        include_str!("../../sql/cockroach/V5__placement.sql"),
    ),
    (
        "V6__usage_shards",
        include_str!("../../sql/cockroach/V6__usage_shards.sql"),
    ),
    (
        "V7__search",
        include_str!("../../sql/cockroach/V7__search.sql"),
    ),
    ("V8__jobs", include_str!("../../sql/cockroach/V8__jobs.sql")),
    (
        "V9__search_bound",
        include_str!("../../sql/cockroach/V9__search_bound.sql"),
    ),
    (
        "V10__outbox_webhooks",
        include_str!("../../sql/cockroach/V10__outbox_webhooks.sql"),
    ),
    (
        "V11__search_pending_list",
        include_str!("../../sql/cockroach/V11__search_pending_list.sql"),
    ),
    (
        "V12__ai_engine",
        include_str!("../../sql/cockroach/V12__ai_engine.sql"),
    ),
    (
        "V13__identity",
        include_str!("../../sql/cockroach/V13__identity.sql"),
    ),
    (
        "V14__job_claim_lock",
        include_str!("../../sql/cockroach/V14__job_claim_lock.sql"),
    ),
    (
        "V15__platform_accounts",
        include_str!("../../sql/cockroach/V15__platform_accounts.sql"),
    ),
    (
        "V16__job_queue_plans",
        include_str!("../../sql/cockroach/V16__job_queue_plans.sql"),
    ),
    (
        "V17__impersonation",
        include_str!("../../sql/cockroach/V17__impersonation.sql"),
    ),
    (
        "V18__tenant_keys",
        include_str!("../../sql/cockroach/V18__tenant_keys.sql"),
    ),
    (
        "V19__encrypted_messages",
        include_str!("../../sql/cockroach/V19__encrypted_messages.sql"),
    ),
    (
        "V21__audit_chain",
        include_str!("../../sql/cockroach/V21__audit_chain.sql"),
    ),
    (
        "V22__gdpr",
        include_str!("../../sql/cockroach/V22__gdpr.sql"),
    ),
    (
        "V23__calendar",
        include_str!("../../sql/cockroach/V23__calendar.sql"),
    ),
    (
        "V24__residency_attestation",
        include_str!("../../sql/cockroach/V24__residency_attestation.sql"),
    ),
    (
        "V25__access_log",
        include_str!("../../sql/cockroach/V25__access_log.sql"),
    ),
    (
        "V26__tenant_erasure",
        include_str!("../../sql/cockroach/V26__tenant_erasure.sql"),
    ),
    (
        "V27__retention",
        include_str!("../../sql/cockroach/V27__retention.sql"),
    ),
    (
        "V28__access_log_tenant_retention",
        include_str!("../../sql/cockroach/V28__access_log_tenant_retention.sql"),
    ),
    (
        "V29__usage_history",
        include_str!("../../sql/cockroach/V29__usage_history.sql"),
    ),
    (
        "V30__audit_sealer",
        include_str!("../../sql/cockroach/V30__audit_sealer.sql"),
    ),
    (
        "V31__exports_page",
        include_str!("../../sql/cockroach/V31__exports_page.sql"),
    ),
    (
        "V32__top_tenants",
        include_str!("../../sql/cockroach/V32__top_tenants.sql"),
    ),
    (
        "V33__subject_keys",
        include_str!("../../sql/cockroach/V33__subject_keys.sql"),
    ),
    (
        "V34__calendar_grants",
        include_str!("../../sql/cockroach/V34__calendar_grants.sql"),
    ),
    (
        "V35__definer_floors",
        include_str!("../../sql/cockroach/V35__definer_floors.sql"),
    ),
];

/// CockroachDB only, before the versioned migrations: the multi-region database.
/// `{database}` is replaced by the connected database's quoted name.
const COCKROACH_DATABASE: &str = include_str!("../../sql/cockroach/database.sql");

fn files(dialect: Dialect) -> Vec<(&'static str, &'static str)> {
    let own = match dialect {
        Dialect::Postgres => POSTGRES,
        Dialect::Cockroach => COCKROACH,
    };
    PORTABLE.iter().chain(own).copied().collect()
}

/// The dialect's migrations, in version order.
pub fn migrations(dialect: Dialect) -> anyhow::Result<Vec<Migration>> {
    let mut list = files(dialect)
        .into_iter()
        .map(|(name, sql)| Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()?;
    list.sort();
    Ok(list)
}

/// What `run` did.
#[derive(Debug)]
pub struct Outcome {
    pub dialect: Dialect,
    pub applied: Vec<String>,
}

/// Applies pending migrations over `admin_url` (the schema owner; on CockroachDB an
/// admin, who may change the database's regions). `dialect` None: detected from
/// `version()`. When `app_password` is given, (re)sets the service role's password.
pub async fn run(
    admin_url: &str,
    app_password: Option<&str>,
    dialect: Option<Dialect>,
) -> anyhow::Result<Outcome> {
    run_with_tls(admin_url, &DbTlsSettings::default(), app_password, dialect).await
}

/// `run` over the connection `tls` describes (`database.tls` of the node).
pub async fn run_with_tls(
    admin_url: &str,
    tls: &DbTlsSettings,
    app_password: Option<&str>,
    dialect: Option<Dialect>,
) -> anyhow::Result<Outcome> {
    let (mut client, driver) = super::tls::connect_one(admin_url, tls).await?;
    let detected = Dialect::from_version(
        client
            .query_one("SELECT version()", &[])
            .await?
            .get::<_, &str>(0),
    );
    let dialect = match dialect {
        Some(configured) if configured != detected => anyhow::bail!(
            "--dialect {configured} given, but the server at the database URL is {detected}"
        ),
        Some(configured) => configured,
        None => detected,
    };
    if dialect == Dialect::Cockroach {
        prepare_cockroach(&client).await?;
    }
    let report = refinery::Runner::new(&migrations(dialect)?)
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await?;
    // Events written before the chain (V21) are chained once, in order.
    crate::audit::backfill::run(&mut client)
        .await
        .map_err(|e| anyhow::anyhow!("chaining the audit events written before V21: {e}"))?;
    if let Some(password) = app_password {
        let literal = password.replace('\'', "''");
        client
            .batch_execute(&format!(
                "ALTER ROLE meridian_app WITH LOGIN PASSWORD '{literal}'"
            ))
            .await?;
    }
    drop(client);
    let _ = driver.await;
    Ok(Outcome {
        dialect,
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect(),
    })
}

/// Session settings for the migration connection, then the multi-region database.
///
/// `autocommit_before_ddl` is on by default since CockroachDB 25.1: each schema
/// change commits on its own, so refinery's per-migration transaction does not make
/// a migration atomic there. It is set on explicitly (rather than relying on a role
/// default someone may have changed) and every CockroachDB migration is written to
/// be re-run after a partial failure (`IF NOT EXISTS`, drop-then-create for
/// policies); refinery records a version only after all of its statements ran.
/// Auto-rehoming is off for this session before any `SET LOCALITY`/`LOCALITY`, so
/// no table is created with `ON UPDATE rehome_row()`.
async fn prepare_cockroach(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .batch_execute(
            "SET autocommit_before_ddl = on;
             SET experimental_enable_auto_rehoming = off;
             SET enable_super_regions = on;",
        )
        .await?;
    let database: String = client
        .query_one("SELECT current_database()", &[])
        .await?
        .get(0);
    let quoted = format!("\"{}\"", database.replace('"', "\"\""));
    for statement in statements(COCKROACH_DATABASE) {
        // ADD SUPER REGION has no IF NOT EXISTS: skip it once the super region is
        // there (asked here, after the regions exist, not before).
        if let Some(name) = added_super_region(&statement) {
            let present = client
                .query(
                    &format!(
                        "SELECT 1 FROM [SHOW SUPER REGIONS FROM DATABASE {quoted}] WHERE \
                            super_region_name = $1"
                    ),
                    &[&name],
                )
                .await?;
            if !present.is_empty() {
                continue;
            }
        }
        client
            .batch_execute(&statement.replace("{database}", &quoted))
            .await
            .map_err(|e| anyhow::anyhow!("sql/cockroach/database.sql: {statement}: {e}"))?;
    }
    Ok(())
}

/// The statements of a file: `--` comment lines dropped, split after each `;` that
/// ends a line (the files hold no `;` inside literals or bodies).
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let line = line.trim_end();
        if line.trim_start().starts_with("--") || line.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.ends_with(';') {
            out.push(current.trim().trim_end_matches(';').to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// `Some("eu")` for `ALTER DATABASE … ADD SUPER REGION "eu" VALUES …`.
fn added_super_region(statement: &str) -> Option<String> {
    let rest = statement.split("ADD SUPER REGION").nth(1)?.trim_start();
    let name = rest.strip_prefix('"')?.split('"').next()?;
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    fn listed(list: &[(&str, &str)]) -> BTreeSet<String> {
        list.iter().map(|(name, _)| format!("{name}.sql")).collect()
    }

    fn on_disk(dir: &str) -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('V') && n.ends_with(".sql"))
            .collect()
    }

    #[test]
    fn listed_files_are_the_files_on_disk() {
        assert_eq!(listed(PORTABLE), on_disk("sql"));
        assert_eq!(listed(POSTGRES), on_disk("sql/postgres"));
        assert_eq!(listed(COCKROACH), on_disk("sql/cockroach"));
    }

    #[test]
    fn sets_are_well_formed() {
        for dialect in [Dialect::Postgres, Dialect::Cockroach] {
            let list = migrations(dialect).unwrap();
            let mut versions = BTreeMap::new();
            for m in &list {
                assert!(
                    versions.insert(m.version(), m.name().to_owned()).is_none(),
                    "{dialect}: version {} twice",
                    m.version()
                );
            }
            // Both dialects have the same versions with the same names, so one
            // history (and one numbering) describes both.
            assert_eq!(
                versions.keys().copied().collect::<Vec<_>>(),
                [
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23,
                    24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35
                ]
            );
        }
        let names = |d| {
            migrations(d)
                .unwrap()
                .iter()
                .map(|m| (m.version(), m.name().to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Dialect::Postgres), names(Dialect::Cockroach));
    }

    #[test]
    fn splits_statements_and_finds_super_regions() {
        let parsed = statements(
            "-- a comment\nALTER DATABASE {database} ADD REGION IF NOT EXISTS \"x\";\n\n\
             ALTER DATABASE {database} ADD SUPER REGION \"eu\"\n  VALUES \"a\", \"b\", \"c\";\n",
        );
        assert_eq!(parsed.len(), 2);
        assert_eq!(added_super_region(&parsed[0]), None);
        assert_eq!(added_super_region(&parsed[1]).as_deref(), Some("eu"));
    }

    /// The regions in `sql/cockroach/database.sql` and in the `crdb_region`
    /// expressions are the regions of `regions/*.toml`, and the EU super region
    /// holds exactly the `eu` jurisdiction's regions (at least three, so it can
    /// meet SURVIVE REGION FAILURE).
    #[test]
    fn cockroach_regions_match_the_topology() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut ids = BTreeSet::new();
        let mut eu = BTreeSet::new();
        for entry in std::fs::read_dir(root.join("regions")).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() == "latency.toml" {
                continue;
            }
            let table: toml::Table =
                toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let id = table["id"].as_str().unwrap().to_owned();
            if table["jurisdiction"].as_str() == Some("eu") {
                eu.insert(id.clone());
            }
            ids.insert(id);
        }
        assert!(eu.len() >= 3, "the EU super region needs three regions");
        let quoted = |s: &str| {
            s.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
        };
        let db = statements(COCKROACH_DATABASE);
        let regions: BTreeSet<String> = db
            .iter()
            .filter(|s| s.contains("PRIMARY REGION") || s.contains("ADD REGION"))
            .flat_map(|s| quoted(s))
            .filter(|s| s != "{database}")
            .collect();
        assert_eq!(regions, ids);
        let super_eu = db
            .iter()
            .find(|s| added_super_region(s).as_deref() == Some("eu"))
            .map(|s| quoted(s.split("VALUES").nth(1).unwrap()))
            .unwrap();
        assert_eq!(super_eu, eu);
        // Every crdb_region expression maps every region, and only regions.
        for (name, sql) in COCKROACH {
            for case in sql.split("CASE home_region").skip(1) {
                let body = case.split("END").next().unwrap();
                let whens: BTreeSet<String> = body
                    .split('\'')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect();
                assert_eq!(whens, ids, "{name}: crdb_region must map every region");
            }
        }
    }
}
