//! The AI usage ledger: tokens per tenant per calendar month (UTC), with
//! reserve → commit | release, so background jobs reserve before they call a model
//! and can never overspend, however many run at once.
//!
//! A reservation holds its tokens against the month's cap until it is committed
//! (with the tokens actually used, at most the reserved amount) or released.
//! The guard lives in the `UPDATE` itself, inside a SERIALIZABLE transaction.
//! A job's reservation carries its job id (one open per job, V12): a new attempt
//! releases what a dead attempt held, and so does the lease expiry
//! (`expire_job_leases`), so a node dying mid-job never leaves tokens held.

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Database, TenantTx, TxMode};
use crate::error::{ApiError, ErrorCode};
use crate::ids::JobId;
use crate::tenancy::TenantRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub id: Uuid,
    pub tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AiUsage {
    pub used: u64,
    pub reserved: u64,
}

/// For in-process workers; each call runs in the tenant's own transaction.
#[derive(Clone)]
pub struct AiLedger {
    db: Database,
}

fn tokens(value: u64) -> Result<i64, ApiError> {
    i64::try_from(value).map_err(|_| ApiError::validation("token count out of range"))
}

impl AiLedger {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    async fn in_tenant<T>(
        &self,
        tenant: &TenantRecord,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.db
            .tenant_tx(
                tenant.id,
                &tenant.home_region,
                None,
                TxMode::ReadWrite,
                body,
            )
            .await
    }

    /// Holds `amount` tokens of this month's cap, or fails with `quota_exceeded`.
    pub async fn reserve(
        &self,
        tenant: &TenantRecord,
        amount: u64,
    ) -> Result<Reservation, ApiError> {
        let cap = tenant.limits().ai_tokens_per_month;
        self.in_tenant(tenant, async |tx| reserve_in(tx, cap, amount, None).await)
            .await
    }

    /// `reserve` for a job: at most one open reservation per job. An open one
    /// left by an earlier attempt of the job (its worker died before settling)
    /// is released first, in the same transaction, so a retry never holds twice.
    pub async fn reserve_for_job(
        &self,
        tenant: &TenantRecord,
        job: JobId,
        amount: u64,
    ) -> Result<Reservation, ApiError> {
        let cap = tenant.limits().ai_tokens_per_month;
        self.in_tenant(tenant, async |tx| {
            let open = tx
                .query_opt(
                    "SELECT id FROM ai_reservations
                      WHERE tenant_id = $1 AND job_id = $2 AND status = 'reserved'",
                    &[tx.tenant_id().as_uuid(), job.as_uuid()],
                )
                .await?;
            if let Some(row) = open {
                settle_in(tx, row.get(0), "released", None).await?;
            }
            reserve_in(tx, cap, amount, Some(job)).await
        })
        .await
    }

    /// Settles a reservation with the tokens actually used (at most those reserved).
    pub async fn commit(
        &self,
        tenant: &TenantRecord,
        reservation: Reservation,
        used: u64,
    ) -> Result<(), ApiError> {
        if used > reservation.tokens {
            return Err(ApiError::validation(
                "cannot commit more tokens than were reserved",
            ));
        }
        self.settle(tenant, reservation.id, "committed", Some(tokens(used)?))
            .await
    }

    /// Gives a reservation's tokens back unused.
    pub async fn release(
        &self,
        tenant: &TenantRecord,
        reservation: Reservation,
    ) -> Result<(), ApiError> {
        self.settle(tenant, reservation.id, "released", None).await
    }

    async fn settle(
        &self,
        tenant: &TenantRecord,
        id: Uuid,
        status: &str,
        used: Option<i64>,
    ) -> Result<(), ApiError> {
        self.in_tenant(tenant, async |tx| settle_in(tx, id, status, used).await)
            .await
    }

    pub async fn usage(&self, tenant: &TenantRecord) -> Result<AiUsage, ApiError> {
        self.db
            .tenant_tx(
                tenant.id,
                &tenant.home_region,
                None,
                TxMode::ReadOnly,
                async |tx| Ok(month_usage(tx).await?),
            )
            .await
    }
}

async fn reserve_in(
    tx: &TenantTx<'_>,
    cap: u64,
    amount: u64,
    job: Option<JobId>,
) -> Result<Reservation, ApiError> {
    if amount == 0 {
        return Err(ApiError::validation(
            "a reservation needs at least one token",
        ));
    }
    let (amount_db, cap) = (tokens(amount)?, tokens(cap)?);
    let id = Uuid::now_v7();
    let tenant_id = tx.tenant_id();
    let region = tx.home_region().as_str();
    tx.execute(
        "INSERT INTO ai_usage (tenant_id, month, home_region)
         VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2)
         ON CONFLICT (tenant_id, month) DO NOTHING",
        &[tenant_id.as_uuid(), &region],
    )
    .await?;
    let held = tx
        .query_opt(
            "UPDATE ai_usage SET reserved = reserved + $2
             WHERE tenant_id = $1 AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
               AND used + reserved + $2 <= $3
             RETURNING month",
            &[tenant_id.as_uuid(), &amount_db, &cap],
        )
        .await?;
    let Some(row) = held else {
        return Err(ApiError::QuotaExceeded {
            detail: format!("reserving {amount} AI tokens would exceed this month's cap of {cap}"),
        });
    };
    let month: NaiveDate = row.get(0);
    tx.execute(
        "INSERT INTO ai_reservations (tenant_id, id, home_region, month, tokens, job_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            tenant_id.as_uuid(),
            &id,
            &region,
            &month,
            &amount_db,
            &job.map(|j| *j.as_uuid()),
        ],
    )
    .await?;
    Ok(Reservation { id, tokens: amount })
}

/// Commits `reservation` with `used` tokens inside an open tenant transaction:
/// the write the tokens paid for (a stored summary) and the charge commit or
/// roll back together. `reservation_settled` if it is no longer open (an
/// expired lease released it: the work is then redone by the job's next owner).
pub async fn commit_in(
    tx: &TenantTx<'_>,
    reservation: Reservation,
    used: u64,
) -> Result<(), ApiError> {
    if used > reservation.tokens {
        return Err(ApiError::validation(
            "cannot commit more tokens than were reserved",
        ));
    }
    settle_in(tx, reservation.id, "committed", Some(tokens(used)?)).await
}

async fn settle_in(
    tx: &TenantTx<'_>,
    id: Uuid,
    status: &str,
    used: Option<i64>,
) -> Result<(), ApiError> {
    let tenant_id = tx.tenant_id();
    let settled = tx
        .query_opt(
            "UPDATE ai_reservations SET status = $3, used_tokens = $4, settled_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = 'reserved' RETURNING tokens, month",
            &[tenant_id.as_uuid(), &id, &status, &used],
        )
        .await?;
    let Some(row) = settled else {
        return Err(ApiError::Conflict {
            code: ErrorCode::ReservationSettled,
            detail: "no open reservation with this id".into(),
        });
    };
    let (held, month): (i64, NaiveDate) = (row.get(0), row.get(1));
    tx.execute(
        "UPDATE ai_usage SET reserved = reserved - $3, used = used + $4
          WHERE tenant_id = $1 AND month = $2",
        &[tenant_id.as_uuid(), &month, &held, &used.unwrap_or(0)],
    )
    .await?;
    Ok(())
}

/// This month's AI usage of the tenant (`month_usage`).
pub const MONTH_USAGE_SQL: &str = "SELECT used, reserved FROM ai_usage WHERE tenant_id = $1 AND \
    month = date_trunc('month', now() AT TIME ZONE 'UTC')::date";

/// This month's AI usage, inside an open tenant transaction.
pub async fn month_usage(tx: &TenantTx<'_>) -> Result<AiUsage, crate::db::DbError> {
    let row = tx
        .query_opt(MONTH_USAGE_SQL, &[tx.tenant_id().as_uuid()])
        .await?;
    Ok(row.map_or_else(AiUsage::default, |r| AiUsage {
        used: r.get::<_, i64>(0) as u64,
        reserved: r.get::<_, i64>(1) as u64,
    }))
}
