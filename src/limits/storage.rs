//! Exact storage accounting without a hot row: escrow over shards.
//!
//! A tenant's usage is spread over rows of `tenant_usage_shards` (shard 0..
//! `USAGE_SHARDS`), each holding a *grant* (`granted_bytes`, taken from the tenant's
//! cap) and what was spent from it (`used_bytes`). The central row
//! (`tenant_usage.granted_bytes`) is the sum of the grants. A post charges the
//! shard its transaction holds (`TenantTx::usage_shard`) with one guarded UPDATE of
//! that row only; only when the shard's grant cannot hold the post does it touch
//! the central row, to take a new grant (sized so that this is rare).
//!
//! Why it is exact (every step runs inside the post's SERIALIZABLE transaction, so
//! the steps of concurrent posts are as if one after the other):
//! - per shard `used_bytes <= granted_bytes` (the UPDATE's predicate, and a CHECK);
//! - every change of a shard's grant changes the central row by the same amount in
//!   the same transaction, so central = sum of grants;
//! - the central row only grows when the result stays `<= cap`;
//! - so sum(used) <= sum(granted) = central <= cap: the cap is never passed, and
//!   sum(used) — what `GET /v1/usage` reports — counts every stored byte once.
//!
//! No false refusals: before a post is refused, every other shard's unspent grant
//! is taken back to the central row; the refusal is then decided on
//! sum(used of all shards) + post > cap and *committed*, so it is consistent with a
//! serial order of all posts: a post is refused only when, at its place in that
//! order, the tenant's stored bytes plus the post really exceed the cap.

use crate::db::TenantTx;
use crate::db::shards::USAGE_SHARDS;
use crate::store::error::StoreError;

/// Largest grant a shard takes at once. With 32 shards a tenant far from its cap
/// holds at most 32 MiB in grants; a shard goes back to the central row once per
/// MiB written through it.
const MAX_GRANT: i64 = 1 << 20;

/// Creates the tenant's central usage row (at provisioning); shard rows are
/// created by the first post that charges them.
pub async fn open(tx: &TenantTx<'_>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tenant_usage (tenant_id, home_region) VALUES ($1, $2) ON CONFLICT (tenant_id) \
            DO NOTHING",
        &[tx.tenant_id().as_uuid(), &tx.home_region().as_str()],
    )
    .await?;
    Ok(())
}

/// The fast path, as a CTE in front of the INSERT that stores what it charges (one
/// round trip): `$n` bytes from shard `$shard` when the shard's grant holds them and
/// was taken under the cap `$cap` in force now. Parameters are appended after the
/// INSERT's own: `$7` bytes, `$8` shard, `$9` cap. A macro so that the post's
/// statement (`messages::POST_SQL`) is one constant, checked by `tests/api/plans.rs`.
macro_rules! fast_charge_cte {
    () => {
        "WITH charged AS (
       UPDATE tenant_usage_shards SET used_bytes = used_bytes + $7
        WHERE tenant_id = $1 AND shard = $8 AND cap_bytes = $9 AND used_bytes + $7 <= granted_bytes
        RETURNING shard)"
    };
}
pub(crate) use fast_charge_cte;

pub const FAST_CHARGE_CTE: &str = fast_charge_cte!();

/// The central row, locked: slow paths of a tenant's posts queue here.
pub const CENTRAL_GRANTS_SQL: &str =
    "SELECT granted_bytes FROM tenant_usage WHERE tenant_id = $1 FOR UPDATE";

/// The slow path: takes a grant from the central row for the transaction's shard
/// and charges `bytes`; or returns the refusal (`Ok(Err(quota_exceeded))`), which
/// the caller must commit, not roll back (see the module comment).
///
/// While it holds the central row it also tops up every other shard whose unspent
/// grant has run low, so the tenant's other writers find their grants on the fast
/// path instead of all queueing on the central row at once (a new tenant's first
/// burst, or shards running dry together): the central row is touched about once
/// per refill of all shards, not once per shard.
pub async fn charge_storage(
    tx: &TenantTx<'_>,
    bytes: u64,
    cap: u64,
) -> Result<Result<(), StoreError>, StoreError> {
    grant_and_charge(tx, bytes, cap, true).await
}

/// The slow path's grant without its charge: afterwards the transaction's shard
/// holds `bytes` more than it has spent, for a statement of the same
/// transaction that charges them itself (a lane's batch, `store::post_batch`,
/// which may write fewer). Refuses as `charge_storage` does.
pub async fn reserve_storage(
    tx: &TenantTx<'_>,
    bytes: u64,
    cap: u64,
) -> Result<Result<(), StoreError>, StoreError> {
    grant_and_charge(tx, bytes, cap, false).await
}

async fn grant_and_charge(
    tx: &TenantTx<'_>,
    bytes: u64,
    cap: u64,
    charge: bool,
) -> Result<Result<(), StoreError>, StoreError> {
    let (n, cap) = (to_i64(bytes), to_i64(cap));
    let shard = shard_param(tx);
    let tenant = tx.tenant_id();
    // The central row first, locked: slow paths of the tenant queue here instead of
    // locking shard rows in different orders (deadlocks, each costing a second of
    // detection before a retry).
    let mut central = central_grants(tx).await?;
    if shard_row(tx, shard).await?.is_none() {
        // New tenant or shard: create every shard row once, so the top-up below
        // and later writers find them.
        tx.execute(
            "INSERT INTO tenant_usage_shards (tenant_id, shard, home_region)
             SELECT $1::uuid, s::smallint, $2::text FROM generate_series(0, $3::int - 1) AS s
             ON CONFLICT (tenant_id, shard) DO NOTHING",
            &[
                tenant.as_uuid(),
                &tx.home_region().as_str(),
                &i32::from(USAGE_SHARDS),
            ],
        )
        .await?;
        // The transaction's own shard may be beyond USAGE_SHARDS only if the
        // constant shrank; create it too.
        tx.execute(
            "INSERT INTO tenant_usage_shards (tenant_id, shard, home_region) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, shard) DO NOTHING",
            &[tenant.as_uuid(), &shard, &tx.home_region().as_str()],
        )
        .await?;
    }
    if central > cap {
        // The cap was lowered below what is granted: take every unspent grant back
        // (this shard's too) before granting anything under the new cap.
        central = reclaim(tx, None).await?;
    }
    let (used, granted) = shard_row(tx, shard).await?.unwrap_or((0, 0));
    let deficit = (used + n - granted).max(0);
    if deficit > cap - central {
        // Not enough unreserved quota: take the other shards' unspent grants back
        // before answering, so nothing is refused while quota sits idle elsewhere.
        central = reclaim(tx, Some(shard)).await?;
        if deficit > cap - central {
            return Ok(Err(StoreError::QuotaExceeded {
                detail: format!(
                    "storing {n} more bytes would exceed the storage quota of {cap} bytes ({} \
                        bytes stored)",
                    stored_bytes(tx).await?
                ),
            }));
        }
    }
    let free = cap - central;
    // Grants are a share of what is left, so near the cap they shrink and no shard
    // sits on what another needs; never less than this post needs.
    let own = if deficit > 0 {
        deficit
            .max((free / i64::from(USAGE_SHARDS)).min(MAX_GRANT))
            .min(free)
    } else {
        0
    };
    // Each other shard is topped up by at most `top` (only those with less than
    // half of it unspent): at most (USAGE_SHARDS - 1) * top <= free - own in all.
    let top = ((free - own) / i64::from(USAGE_SHARDS)).min(MAX_GRANT);
    if top > 0 {
        tx.execute(
            "UPDATE tenant_usage_shards SET granted_bytes = used_bytes + $3::bigint, cap_bytes = $4
             WHERE tenant_id = $1 AND shard <> $2 AND granted_bytes - used_bytes < $3::bigint / 2",
            &[tenant.as_uuid(), &shard, &top, &cap],
        )
        .await?;
    }
    let spent = if charge { n } else { 0 };
    tx.execute(
        "UPDATE tenant_usage_shards SET used_bytes = used_bytes + $3, granted_bytes = \
            granted_bytes + $4, cap_bytes = $5
         WHERE tenant_id = $1 AND shard = $2",
        &[tenant.as_uuid(), &shard, &spent, &own, &cap],
    )
    .await?;
    // The central row is the sum of the grants, recomputed rather than adjusted so
    // it cannot drift; by the sizes above the sum is <= cap.
    sum_grants_into_central(tx).await?;
    Ok(Ok(()))
}

/// Gives back `bytes` after a delete. Which shard paid for a message is not
/// recorded and does not matter: the bytes come off shards' `used_bytes` (lowest
/// shard first) and their grants shrink with them, back to the central row, so
/// sum(used) stays the stored total and central = sum(granted).
pub async fn refund_storage(tx: &TenantTx<'_>, bytes: u64) -> Result<(), StoreError> {
    let tenant = tx.tenant_id();
    // Same lock order as the slow path of a post: central row, then shards.
    central_grants(tx).await?;
    let rows = tx
        .query(
            "SELECT shard, used_bytes FROM tenant_usage_shards WHERE tenant_id = $1 AND used_bytes \
                > 0 ORDER BY shard",
            &[tenant.as_uuid()],
        )
        .await?;
    let mut left = to_i64(bytes);
    let mut refunded = 0i64;
    for row in rows {
        if left == 0 {
            break;
        }
        let (shard, used): (i16, i64) = (row.get(0), row.get(1));
        let take = used.min(left);
        tx.execute(
            "UPDATE tenant_usage_shards SET used_bytes = used_bytes - $3, granted_bytes = \
                granted_bytes - $3
             WHERE tenant_id = $1 AND shard = $2",
            &[tenant.as_uuid(), &shard, &take],
        )
        .await?;
        left -= take;
        refunded += take;
    }
    if refunded > 0 {
        tx.execute(
            "UPDATE tenant_usage SET granted_bytes = granted_bytes - $2 WHERE tenant_id = $1",
            &[tenant.as_uuid(), &refunded],
        )
        .await?;
    }
    Ok(())
}

/// Bytes stored: the sum over the tenant's shards.
pub const STORAGE_BYTES_SQL: &str =
    "SELECT COALESCE(sum(used_bytes), 0)::bigint FROM tenant_usage_shards WHERE tenant_id = $1";

pub async fn storage_bytes(tx: &TenantTx<'_>) -> Result<u64, StoreError> {
    Ok(stored_bytes(tx).await?.max(0) as u64)
}

async fn stored_bytes(tx: &TenantTx<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(STORAGE_BYTES_SQL, &[tx.tenant_id().as_uuid()])
        .await?
        .get(0))
}

pub(crate) fn shard_param(tx: &TenantTx<'_>) -> i16 {
    // USAGE_SHARDS <= 64: always fits.
    i16::try_from(tx.usage_shard()).unwrap_or(0)
}

async fn central_grants(tx: &TenantTx<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_opt(CENTRAL_GRANTS_SQL, &[tx.tenant_id().as_uuid()])
        .await?;
    row.map(|r| r.get(0))
        .ok_or_else(|| StoreError::internal(anyhow::anyhow!("tenant has no tenant_usage row")))
}

async fn shard_row(tx: &TenantTx<'_>, shard: i16) -> Result<Option<(i64, i64)>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT used_bytes, granted_bytes FROM tenant_usage_shards WHERE tenant_id = $1 AND \
                shard = $2",
            &[tx.tenant_id().as_uuid(), &shard],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Takes the unspent grants of every shard (but `keep`) back to the central row,
/// and sets the central row to the sum of the grants left. Returns that sum.
async fn reclaim(tx: &TenantTx<'_>, keep: Option<i16>) -> Result<i64, StoreError> {
    let tenant = tx.tenant_id();
    tx.execute(
        "UPDATE tenant_usage_shards SET granted_bytes = used_bytes
         WHERE tenant_id = $1 AND granted_bytes > used_bytes AND ($2::smallint IS NULL OR shard <> \
             $2)",
        &[tenant.as_uuid(), &keep],
    )
    .await?;
    sum_grants_into_central(tx).await
}

/// Sets the central row to the sum of the shards' grants; returns it.
async fn sum_grants_into_central(tx: &TenantTx<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            "UPDATE tenant_usage SET granted_bytes =
                (SELECT COALESCE(sum(granted_bytes), 0)::bigint FROM tenant_usage_shards WHERE \
                    tenant_id = $1)
             WHERE tenant_id = $1 RETURNING granted_bytes",
            &[tx.tenant_id().as_uuid()],
        )
        .await?
        .get(0))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
