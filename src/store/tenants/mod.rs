//! The `tenants` table (the tenant directory): every statement on it is here
//! (the summary-engine columns in `ai_engine`), the directory cache's loads
//! (`BY_ID_SQL`, `CHANGED_SINCE_SQL`, `all`), the platform's reads (`list`,
//! `homed_in`) and every write (`provision`, `update_*`, `switch_home`).
//! Provisioning creates the tenant and its owner in one transaction; every
//! change bumps `config_version` so caches can tell newer from older.
//!
//! The residency rule (the home region is one the policy allows) is checked by
//! every transaction that writes `home_region` or `residency`, against the row it
//! has locked (`lock`), never against the directory cache: a cached copy can be
//! stale, and a check on it would race the change it missed. Two such
//! transactions on one tenant serialise on the row lock (and SERIALIZABLE aborts
//! one if they do not), so the checked values are the ones written over, on
//! PostgreSQL and CockroachDB alike. The writers: `provision`, `update` (PATCH by
//! a platform admin or a compliance officer), and `relocation::start` and
//! `Relocator::switch_home` (relocation and evacuation).

pub mod ai_engine;
pub mod counts;
pub mod encryption;
pub mod erasure_policy;
pub mod retention;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::error::{StoreError, Unique, taken};
use super::users::{self, User};
use crate::audit;
use crate::auth::Role;
use crate::crypto::keyring::Keyring;
use crate::db::{PlatformTx, TenantTx, Tx};
use crate::error::ErrorCode;
use crate::ids::{RegionId, TenantId};
use crate::limits::storage;
use crate::outbox::{self, Event};
use crate::pagination::{Keyset, Page, keyset_page};
use crate::relocation;
use crate::tenancy::record::{LimitOverrides, LimitPatch, TENANT_COLUMNS, tenant_columns};
use crate::tenancy::{Plan, Residency, TenantRecord, TenantStatus, residency};
use crate::topology::Topology;

/// A tenant by id: the directory cache's miss (`tenancy::Directory::get`).
pub const BY_ID_SQL: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1");
/// Tenants changed since a time: every refresh interval, on every node.
pub const CHANGED_SINCE_SQL: &str = concat!(
    "SELECT ",
    tenant_columns!(),
    " FROM tenants WHERE updated_at >= $1"
);

/// The tenant `id`, if it exists (no probe: the directory's lookup by token).
pub async fn find<S>(tx: &Tx<'_, S>, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
    let row = tx.query_opt(BY_ID_SQL, &[id.as_uuid()]).await?;
    row.as_ref().map(TenantRecord::from_row).transpose()
}

/// The id of the tenant with `slug` (a sign-in names its tenant by slug).
pub async fn id_by_slug<S>(tx: &Tx<'_, S>, slug: &str) -> Result<Option<TenantId>, StoreError> {
    let row = tx
        .query_opt("SELECT id FROM tenants WHERE slug = $1", &[&slug])
        .await?;
    Ok(row.map(|r| TenantId::from_uuid(r.get(0))))
}

/// Every tenant changed at or after `since`, or every tenant (`None`): the
/// directory's start and its refreshes.
pub async fn changed_since(
    tx: &PlatformTx<'_>,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<TenantRecord>, StoreError> {
    let rows = match since {
        Some(since) => tx.query(CHANGED_SINCE_SQL, &[&since]).await?,
        None => {
            tx.query(&format!("SELECT {TENANT_COLUMNS} FROM tenants"), &[])
                .await?
        }
    };
    records(&rows)
}

/// The tenants homed in any of `regions` (a drain's or an evacuation's), by slug.
pub async fn homed_in(
    tx: &PlatformTx<'_>,
    regions: &[RegionId],
) -> Result<Vec<TenantRecord>, StoreError> {
    let sql =
        format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE home_region = ANY($1) ORDER BY slug");
    let regions: Vec<&str> = regions.iter().map(RegionId::as_str).collect();
    records(&tx.query(&sql, &[&regions]).await?)
}

/// The ids of the active tenants homed in `region` (the region's schedules).
pub async fn active_homed_in(
    tx: &PlatformTx<'_>,
    region: &RegionId,
) -> Result<Vec<TenantId>, StoreError> {
    let rows = tx
        .query(
            "SELECT id FROM tenants WHERE home_region = $1 AND status = 'active'",
            &[&region.as_str()],
        )
        .await?;
    Ok(rows.iter().map(|r| TenantId::from_uuid(r.get(0))).collect())
}

fn records(rows: &[tokio_postgres::Row]) -> Result<Vec<TenantRecord>, StoreError> {
    rows.iter()
        .map(TenantRecord::from_row)
        .collect::<Result<Vec<_>, _>>()
}

/// Switches the tenant's home region (the relocation's switch); the caller has
/// checked the residency rule on the row it locked in this transaction.
pub async fn switch_home(
    tx: &PlatformTx<'_>,
    id: TenantId,
    to: &RegionId,
) -> Result<TenantRecord, StoreError> {
    let sql = format!(
        "UPDATE tenants SET home_region = $2, config_version = config_version + 1, updated_at = \
            now()
         WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    );
    let row = tx.query_one(&sql, &[id.as_uuid(), &to.as_str()]).await?;
    TenantRecord::from_row(&row)
}

pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub home_region: RegionId,
    pub residency: Option<Residency>,
    pub plan: Plan,
    pub limits: LimitOverrides,
    pub owner_email: String,
    pub owner_display_name: String,
}

pub async fn provision(
    tx: &PlatformTx<'_>,
    topology: &Topology,
    admin: &str,
    new: &NewTenant,
) -> Result<(TenantRecord, User), StoreError> {
    residency::check_placement(topology, &new.home_region, new.residency.as_ref())?;
    // A random (v4) id, not a time-ordered one: concurrent provisionings then touch
    // different index pages. With v7 ids they all insert into, and check foreign
    // keys against, the same right-edge page of the tenant indexes, which
    // PostgreSQL's page-granular serializable checks take for conflicts (several
    // percent of provisionings retried at 8 concurrent). CockroachDB, too, prefers
    // random keys for a table written this often (no single hot range).
    let id = TenantId::from_uuid(uuid::Uuid::new_v4());
    let residency = new
        .residency
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(StoreError::internal)?;
    let limits = serde_json::to_value(new.limits).map_err(StoreError::internal)?;
    let sql = format!(
        "INSERT INTO tenants (id, slug, name, home_region, residency, plan, limits)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TENANT_COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[
                id.as_uuid(),
                &new.slug,
                &new.name,
                &new.home_region.as_str(),
                &residency,
                &new.plan.as_str(),
                &limits,
            ],
        )
        .await
        .map_err(taken(Unique::TenantSlug, || {
            format!("a tenant with slug `{}` already exists", new.slug)
        }))?;
    let tenant = TenantRecord::from_row(&row)?;
    let scoped = tx.enter_tenant(id, new.home_region.clone()).await?;
    let created = json!({ "slug": new.slug, "home_region": new.home_region, "plan": new.plan });
    outbox::record(
        &scoped,
        Event::new("tenant.created", ("tenant", id.to_string()), created),
    )
    .await?;
    let owner = users::create(
        &scoped,
        &new.owner_email,
        &new.owner_display_name,
        Role::Owner,
    )
    .await?;
    storage::open(&scoped).await?;
    let details = json!({
        "slug": new.slug,
        "home_region": new.home_region,
        "plan": new.plan,
        "residency": new.residency,
        "owner_id": owner.id,
    });
    audit::record(
        &scoped,
        admin,
        "tenant_provisioned",
        Some(("tenant", id.to_string())),
        details.clone(),
    )
    .await?;
    audit::record_platform(tx, admin, "tenant_provisioned", Some(id), details).await?;
    Ok((tenant, owner))
}

/// The directory, newest first; with `slug`, only the tenant with exactly that slug.
pub async fn list(
    tx: &PlatformTx<'_>,
    limit: u32,
    after: Option<Keyset>,
    slug: Option<&str>,
) -> Result<Page<TenantRecord>, StoreError> {
    let filter = Filter {
        slug,
        ..Filter::default()
    };
    search(tx, limit, after, &filter).await
}

/// What a directory listing keeps (each `None` keeps everything).
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Exactly this slug.
    pub slug: Option<&'a str>,
    /// Homed in this region.
    pub region: Option<&'a str>,
    /// On this plan.
    pub plan: Option<Plan>,
    pub status: Option<TenantStatus>,
    /// Slug or name contains this text (case-insensitive).
    pub text: Option<&'a str>,
}

/// The directory, newest first, as `filter` keeps it (the console's tenant
/// search). The filters are parameters of one statement; a text search reads
/// the whole directory (no index serves a substring), which a platform
/// admin's console page can afford and the request path never does.
pub async fn search(
    tx: &PlatformTx<'_>,
    limit: u32,
    after: Option<Keyset>,
    filter: &Filter<'_>,
) -> Result<Page<TenantRecord>, StoreError> {
    let sql = format!(
        "SELECT {TENANT_COLUMNS} FROM tenants
         WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
           AND ($4::text IS NULL OR slug = $4)
           AND ($5::text IS NULL OR home_region = $5)
           AND ($6::text IS NULL OR plan = $6)
           AND ($7::text IS NULL OR status = $7)
           AND ($8::text IS NULL OR strpos(lower(slug), $8) > 0 OR strpos(lower(name), $8) > 0)
         ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    let plan = filter.plan.map(Plan::as_str);
    let status = filter.status.map(TenantStatus::as_str);
    let text = filter.text.map(str::to_lowercase);
    let rows = tx
        .query(
            &sql,
            &[
                &after.map(|k| k.at),
                &after.map(|k| k.id),
                &(i64::from(limit) + 1),
                &filter.slug,
                &filter.region,
                &plan,
                &status,
                &text,
            ],
        )
        .await?;
    let tenants = rows
        .iter()
        .map(TenantRecord::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(keyset_page(tenants, limit, |t| Keyset {
        at: t.created_at,
        id: *t.id.as_uuid(),
    }))
}

pub async fn get<S>(tx: &Tx<'_, S>, id: TenantId) -> Result<TenantRecord, StoreError> {
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
    one(tx, &sql, id).await
}

/// The tenant's row, locked until the transaction ends: what a check of the
/// residency rule reads before it writes `home_region` or `residency`. A
/// concurrent writer of the row waits (or, under SERIALIZABLE, one of the two is
/// aborted and retried), so the check cannot act on a value changed meanwhile.
pub async fn lock<S>(tx: &Tx<'_, S>, id: TenantId) -> Result<TenantRecord, StoreError> {
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE");
    one(tx, &sql, id).await
}

async fn one<S>(tx: &Tx<'_, S>, sql: &str, id: TenantId) -> Result<TenantRecord, StoreError> {
    match tx.query_opt(sql, &[id.as_uuid()]).await? {
        Some(row) => Ok(TenantRecord::from_row(&row)?),
        None => Err(StoreError::not_found("tenant", *id.as_uuid())),
    }
}

/// Checks a new residency policy against the locked row: it must allow the target
/// of a pending or running relocation (else the relocation would home the tenant
/// outside it), and the home region. The relocation is checked first: while one
/// runs, the home region is either end of the move, and the conflict is the
/// clearer answer.
async fn check_new_policy<S>(
    tx: &Tx<'_, S>,
    topology: &Topology,
    current: &TenantRecord,
    policy: Option<&Residency>,
) -> Result<(), StoreError> {
    if let Some(policy) = policy {
        policy.validate(topology)?;
    }
    if let Some(job) = relocation::active(tx, current.id).await? {
        let allowed = topology
            .find(&job.to_region)
            .is_some_and(|target| residency::allows(policy, target));
        if !allowed {
            return Err(StoreError::ResidencyConflict(format!(
                "the tenant is being relocated to `{}`, which this residency policy does not \
                 allow; wait for the relocation to end",
                job.to_region
            )));
        }
    }
    Ok(residency::check_placement(
        topology,
        &current.home_region,
        policy,
    )?)
}

#[derive(Debug, Default)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub status: Option<TenantStatus>,
    pub limits: Option<LimitPatch>,
    /// `Some(None)` clears the policy.
    pub residency: Option<Option<Residency>>,
}

impl TenantChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.plan.is_none()
            && self.status.is_none()
            && self.limits.is_none()
            && self.residency.is_none()
    }
}

/// Applies `changes` to tenant `id` and audits before/after; returns the new record.
async fn update<S>(
    tx: &Tx<'_, S>,
    topology: &Topology,
    id: TenantId,
    changes: &TenantChanges,
) -> Result<(TenantRecord, TenantRecord), StoreError> {
    let before = lock(tx, id).await?;
    if let Some(policy) = &changes.residency {
        check_new_policy(tx, topology, &before, policy.as_ref()).await?;
    }
    let limits = changes
        .limits
        .as_ref()
        .map(|patch| serde_json::to_value(patch.set))
        .transpose()
        .map_err(StoreError::internal)?;
    let cleared: Vec<&str> = changes
        .limits
        .as_ref()
        .map(|patch| patch.clear.clone())
        .unwrap_or_default();
    let residency = match &changes.residency {
        Some(policy) => Some(
            policy
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(StoreError::internal)?,
        ),
        None => None,
    };
    // An erasure owns the status from its request on: restore or erase, never PATCH.
    if changes.status.is_some()
        && (before.erase_after.is_some() || before.status == TenantStatus::Erased)
    {
        return Err(StoreError::Conflict {
            code: ErrorCode::ErasurePending,
            detail: "the tenant's erasure decides its status: restore it with POST \
                     /v1/tenants/{id}/restore during the grace period"
                .into(),
        });
    }
    let status = changes.status.map(TenantStatus::as_str);
    let sql = format!(
        "UPDATE tenants SET name = COALESCE($2, name), plan = COALESCE($3, plan), status = \
            COALESCE($4, status),
                limits = (limits || COALESCE($5::jsonb, '{{}}'::jsonb)) - $8::text[], residency = \
                    CASE WHEN $6 THEN $7 ELSE residency END,
                config_version = config_version + 1, updated_at = now()
         WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    );
    let set_residency = residency.is_some();
    let residency = residency.flatten();
    let row = tx
        .query_one(
            &sql,
            &[
                id.as_uuid(),
                &changes.name,
                &changes.plan.map(Plan::as_str),
                &status,
                &limits,
                &set_residency,
                &residency,
                &cleared,
            ],
        )
        .await?;
    Ok((before, TenantRecord::from_row(&row)?))
}

fn change_details(before: &TenantRecord, after: &TenantRecord) -> serde_json::Value {
    json!({ "before": before, "after": after })
}

/// The platform trail's copy of a change: the tenant's name (before and after)
/// moves out of the clear details into the sealed ones (`personal`), so that
/// tenant erasure, which destroys the keys that open them, leaves no name in
/// the platform trail. The slug stays: the erased tenant's tombstone keeps it.
fn platform_change_details(details: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let mut clear = details.clone();
    let mut personal = serde_json::Map::new();
    for side in ["before", "after"] {
        if let Some(record) = clear.get_mut(side).and_then(|v| v.as_object_mut())
            && let Some(name) = record.remove("name")
        {
            personal.insert(side.to_owned(), json!({ "name": name }));
        }
    }
    (clear, serde_json::Value::Object(personal))
}

/// A platform admin's change: audited in the tenant's trail and the platform's
/// (there with the tenant's name sealed: `platform_change_details`).
pub async fn update_as_platform(
    tx: &PlatformTx<'_>,
    topology: &Topology,
    keyring: &Keyring,
    admin: &str,
    id: TenantId,
    changes: &TenantChanges,
) -> Result<TenantRecord, StoreError> {
    let (before, after) = update(tx, topology, id, changes).await?;
    let details = change_details(&before, &after);
    let scoped = tx.enter_tenant(id, after.home_region.clone()).await?;
    outbox::record(
        &scoped,
        Event::new(
            "tenant.updated",
            ("tenant", id.to_string()),
            details.clone(),
        ),
    )
    .await?;
    audit::record(
        &scoped,
        admin,
        "tenant_updated",
        Some(("tenant", id.to_string())),
        details.clone(),
    )
    .await?;
    let (clear, personal) = platform_change_details(&details);
    audit::record_platform_personal(
        tx,
        &scoped,
        keyring,
        admin,
        "tenant_updated",
        clear,
        &personal,
    )
    .await?;
    Ok(after)
}

/// A tenant user's change to its own tenant.
pub async fn update_own(
    tx: &TenantTx<'_>,
    topology: &Topology,
    actor: &str,
    changes: &TenantChanges,
) -> Result<TenantRecord, StoreError> {
    let id = tx.tenant_id();
    let (before, after) = update(tx, topology, id, changes).await?;
    outbox::record(
        tx,
        Event::new(
            "tenant.updated",
            ("tenant", id.to_string()),
            change_details(&before, &after),
        ),
    )
    .await?;
    audit::record(
        tx,
        actor,
        "tenant_updated",
        Some(("tenant", id.to_string())),
        change_details(&before, &after),
    )
    .await?;
    Ok(after)
}
