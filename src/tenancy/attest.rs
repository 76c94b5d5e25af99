//! The residency report (`GET /v1/tenants/{id}/residency-report`, `meridian
//! tenant attest`): evidence, signed, that a tenant's data lives and is served
//! where its policy allows.
//!
//! It holds the policy and its history (from the tenant's audit trail: who
//! changed it and when), the home region's history (relocations), for every
//! tenant table the row count by `home_region` (each checked against the
//! policy), the regions that served the tenant's requests in the last
//! `SERVED_DAYS` days (`tenancy::served`), and on CockroachDB the query that
//! lists where the replicas of those rows are (documented, not run: placement is
//! the database's, and `SHOW RANGES` needs an admin). Anything outside the
//! allowed regions is listed in `findings` and makes `compliant` false.
//!
//! Everything is read in one tenant transaction, so the counts are one
//! snapshot. Its cost grows with the tenant's rows (one grouped count per
//! table, on the tenant's key prefix); tenant callers run it in the expensive
//! `Search` class, so it is bounded like a search.
//!
//! The signature (`crypto::signing`, purpose `residency-report`) covers the
//! canonical JSON of `report` (`signing::canonical_json`): an auditor checks it
//! with the public key from `GET /signing-keys`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crypto::signing::{Purpose, Signature, Signer, canonical_json};
use crate::db::TenantTx;
use crate::error::ApiError;
use crate::store::error::StoreError;
use crate::tenancy::Residency;
use crate::topology::Topology;

/// How far back the served-regions evidence reaches.
pub const SERVED_DAYS: i64 = 30;

/// The documented CockroachDB queries for where a table's rows are replicated
/// (run by an operator with an admin role, `$table` filled in per table of
/// `rows`): the partitions of a `REGIONAL BY ROW` table (one per region, with
/// the zone constraints that place it), then every range with its replicas'
/// localities. Written from the CockroachDB docs; not run here.
pub const COCKROACH_REPLICAS_SQL: &str = "SHOW PARTITIONS FROM TABLE $table; \
    SELECT range_id, lease_holder_locality, replica_localities \
    FROM [SHOW RANGES FROM TABLE $table WITH DETAILS]";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResidencyReport {
    pub tenant_id: Uuid,
    pub slug: String,
    pub generated_at: DateTime<Utc>,
    /// Who asked: a user id or a platform admin's name.
    pub generated_by: String,
    /// The region whose node made the report.
    pub generated_in: String,
    pub home_region: String,
    /// The policy in force; none: any region.
    pub policy: Option<Residency>,
    /// The regions of the topology the policy allows.
    pub allowed_regions: Vec<String>,
    /// No finding: every row and every serving region is allowed.
    pub compliant: bool,
    pub findings: Vec<String>,
    pub policy_history: Vec<PolicyChange>,
    pub home_history: Vec<HomeChange>,
    pub rows: Vec<TableRows>,
    /// Since `served_since` (UTC day), per region.
    pub served: Vec<ServedRegion>,
    pub served_since: NaiveDate,
    pub database: DatabaseEvidence,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyChange {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `tenant_provisioned` or `tenant_updated`.
    pub action: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HomeChange {
    pub relocation_id: Uuid,
    pub from_region: String,
    pub to_region: String,
    pub status: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TableRows {
    pub table: String,
    pub home_region: String,
    pub rows: i64,
    pub allowed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServedRegion {
    pub region: String,
    pub requests: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub allowed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseEvidence {
    /// `postgres` or `cockroach`.
    pub dialect: String,
    /// On CockroachDB: where the replicas of each (table, home region) are.
    pub replica_query: Option<String>,
}

/// A report and its signature.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedReport {
    pub report: ResidencyReport,
    pub signature: Signature,
}

impl SignedReport {
    pub fn sign(report: ResidencyReport, signer: &Signer) -> Result<Self, ApiError> {
        let value = serde_json::to_value(&report).map_err(ApiError::internal)?;
        let signature = signer.sign(Purpose::ResidencyReport, &canonical_json(&value));
        Ok(Self { report, signature })
    }
}

/// Who asks and where, for the report's header.
pub struct Request<'a> {
    pub topology: &'a Topology,
    pub actor: &'a str,
    pub region: &'a str,
    pub cockroach: bool,
}

/// Gathers the report in the tenant's transaction.
pub async fn report(tx: &TenantTx<'_>, req: &Request<'_>) -> Result<ResidencyReport, StoreError> {
    let id = tx.tenant_id();
    let tenant = crate::store::tenants::get(tx, id).await?;
    let allowed = |region: &str| match (
        &tenant.residency,
        req.topology.regions().find(|r| r.id.as_str() == region),
    ) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(policy), Some(r)) => policy.allows(r),
    };
    let allowed_regions: Vec<String> = req
        .topology
        .regions()
        .filter(|r| allowed(r.id.as_str()))
        .map(|r| r.id.to_string())
        .collect();
    let rows = table_rows(tx, &allowed).await?;
    let served_since = (Utc::now() - chrono::Duration::days(SERVED_DAYS)).date_naive();
    let served = served_regions(tx, served_since, &allowed).await?;
    let mut findings = Vec::new();
    if !allowed(tenant.home_region.as_str()) {
        findings.push(format!(
            "the home region `{}` is not allowed by the policy",
            tenant.home_region
        ));
    }
    findings.extend(rows.iter().filter(|r| !r.allowed).map(|r| {
        format!(
            "{} rows of `{}` live in `{}`, which the policy does not allow",
            r.rows, r.table, r.home_region
        )
    }));
    findings.extend(served.iter().filter(|s| !s.allowed).map(|s| {
        format!(
            "`{}` served {} requests, and the policy does not allow it",
            s.region, s.requests
        )
    }));
    Ok(ResidencyReport {
        tenant_id: *id.as_uuid(),
        slug: tenant.slug.clone(),
        generated_at: Utc::now(),
        generated_by: req.actor.to_owned(),
        generated_in: req.region.to_owned(),
        home_region: tenant.home_region.to_string(),
        policy: tenant.residency.clone(),
        allowed_regions,
        compliant: findings.is_empty(),
        findings,
        policy_history: policy_history(tx).await?,
        home_history: home_history(tx).await?,
        rows,
        served,
        served_since,
        database: DatabaseEvidence {
            dialect: if req.cockroach {
                "cockroach"
            } else {
                "postgres"
            }
            .into(),
            replica_query: req.cockroach.then(|| COCKROACH_REPLICAS_SQL.to_owned()),
        },
    })
}

async fn table_rows(
    tx: &TenantTx<'_>,
    allowed: &impl Fn(&str) -> bool,
) -> Result<Vec<TableRows>, StoreError> {
    let mut out = Vec::new();
    for table in crate::relocation::relocated_tables() {
        // `table` is one of the relocation's constant names, never input.
        let sql = format!(
            "SELECT home_region, count(*) FROM {table} WHERE tenant_id = $1 \
             GROUP BY home_region ORDER BY home_region"
        );
        for row in tx.query(&sql, &[tx.tenant_id().as_uuid()]).await? {
            let home_region: String = row.try_get(0).map_err(StoreError::internal)?;
            out.push(TableRows {
                table: table.to_owned(),
                allowed: allowed(&home_region),
                home_region,
                rows: row.try_get(1).map_err(StoreError::internal)?,
            });
        }
    }
    Ok(out)
}

async fn served_regions(
    tx: &TenantTx<'_>,
    since: NaiveDate,
    allowed: &impl Fn(&str) -> bool,
) -> Result<Vec<ServedRegion>, StoreError> {
    let rows = tx
        .query(
            "SELECT region, sum(requests)::bigint, min(first_seen), max(last_seen)
               FROM tenant_served_regions WHERE tenant_id = $1 AND day >= $2
              GROUP BY region ORDER BY region",
            &[tx.tenant_id().as_uuid(), &since],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let region: String = row.try_get(0).map_err(StoreError::internal)?;
            Ok(ServedRegion {
                allowed: allowed(&region),
                region,
                requests: row.try_get(1).map_err(StoreError::internal)?,
                first_seen: row.try_get(2).map_err(StoreError::internal)?,
                last_seen: row.try_get(3).map_err(StoreError::internal)?,
            })
        })
        .collect()
}

/// Provisioning and every update that changed `residency`, oldest first.
async fn policy_history(tx: &TenantTx<'_>) -> Result<Vec<PolicyChange>, StoreError> {
    let rows = tx
        .query(
            "SELECT created_at, actor, action, details->'before'->'residency',
                    COALESCE(details->'after'->'residency', details->'residency')
               FROM audit_events
              WHERE tenant_id = $1
                AND (action = 'tenant_provisioned'
                     OR (action = 'tenant_updated' AND details->'before'->'residency'
                         IS DISTINCT FROM details->'after'->'residency'))
              ORDER BY created_at, id",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(PolicyChange {
                at: row.try_get(0).map_err(StoreError::internal)?,
                actor: row.try_get(1).map_err(StoreError::internal)?,
                action: row.try_get(2).map_err(StoreError::internal)?,
                before: row.try_get(3).map_err(StoreError::internal)?,
                after: row.try_get(4).map_err(StoreError::internal)?,
            })
        })
        .collect()
}

async fn home_history(tx: &TenantTx<'_>) -> Result<Vec<HomeChange>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, from_region, to_region, status, requested_by, created_at, finished_at
               FROM relocations WHERE tenant_id = $1 ORDER BY created_at, id",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(HomeChange {
                relocation_id: row.try_get(0).map_err(StoreError::internal)?,
                from_region: row.try_get(1).map_err(StoreError::internal)?,
                to_region: row.try_get(2).map_err(StoreError::internal)?,
                status: row.try_get(3).map_err(StoreError::internal)?,
                requested_by: row.try_get(4).map_err(StoreError::internal)?,
                requested_at: row.try_get(5).map_err(StoreError::internal)?,
                finished_at: row.try_get(6).map_err(StoreError::internal)?,
            })
        })
        .collect()
}
