//! Retention policy (issue 16 item 4): how long a tenant's messages and audit
//! trail are kept. Plans give the bounds and defaults (`Plan::retention`);
//! owners and compliance officers may set message retention up to the plan's
//! maximum (shortening it, or back up to that maximum); audit retention has a
//! floor (`AUDIT_DAYS_FLOOR`) below which only a platform admin may lower it,
//! so nobody erases the record of their own recent actions.
//!
//! `change` reads the plan and the stored policy, decides and writes, all in
//! the caller's transaction (never from the directory cache: a plan change
//! committed meanwhile is seen or the transaction retries), and audits the
//! change (who, old → new) in the tenant's trail. The job that enforces the
//! policy is `retention_job`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::db::TenantTx;
use crate::error::{ApiError, ErrorCode};
use crate::limits::plans::{Plan, RetentionBounds};
use crate::store::tenants::retention as stored;

/// Longest retention anyone may set, in days (100 years): a bound on input,
/// not a policy.
pub const MAX_DAYS: u32 = 36_500;

/// A retention policy as set by `PUT /v1/tenants/{id}/retention`. Both fields
/// are required (`messages_days` may be `null`: kept forever, where the plan
/// has no maximum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Messages older than this many days are deleted; `null`: kept forever.
    // `deserialize_with` makes the field required although it is an Option.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true, minimum = 1, maximum = 36_500)]
    pub messages_days: Option<u32>,
    /// Audit events older than this many days are deleted behind a signed
    /// anchor.
    #[schema(minimum = 1, maximum = 36_500)]
    pub audit_days: u32,
}

/// The policy in force and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Retention {
    /// Messages older than this many days are deleted; `null`: kept forever.
    #[schema(required = true)]
    pub messages_days: Option<u32>,
    pub audit_days: u32,
    /// `false`: the plan's defaults (never set for this tenant).
    pub customized: bool,
    pub plan: Plan,
    /// What the plan allows and defaults to.
    pub bounds: RetentionBounds,
}

/// Who asks for a change: the floor binds tenant users only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changer {
    TenantUser,
    PlatformAdmin,
}

impl Retention {
    /// The policy in force for `plan` and the stored setting. A stored message
    /// retention beyond the plan's maximum (the plan was downgraded since) is
    /// cut to the maximum: the plan is what the tenant pays for.
    pub fn effective(plan: Plan, set: Option<RetentionPolicy>) -> Self {
        let bounds = plan.retention();
        let (messages, audit) = match set {
            Some(p) => (p.messages_days, p.audit_days),
            None => (bounds.messages_days_default, bounds.audit_days_default),
        };
        let messages_days = match (messages, bounds.messages_days_max) {
            (Some(days), Some(max)) => Some(days.min(max)),
            (None, Some(max)) => Some(max),
            (days, None) => days,
        };
        Self {
            messages_days,
            audit_days: audit,
            customized: set.is_some(),
            plan,
            bounds,
        }
    }

    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            messages_days: self.messages_days,
            audit_days: self.audit_days,
        }
    }
}

/// Refuses days outside 1..=`MAX_DAYS` (bad input, 400).
pub fn validate(policy: &RetentionPolicy) -> Result<(), ApiError> {
    let bad = |d: u32| !(1..=MAX_DAYS).contains(&d);
    if policy.messages_days.is_some_and(bad) || bad(policy.audit_days) {
        return Err(ApiError::validation(format!(
            "retention days must be between 1 and {MAX_DAYS}"
        )));
    }
    Ok(())
}

/// Whether `changer` may move from `current` to `to`.
pub fn decide(current: &Retention, to: &RetentionPolicy, changer: Changer) -> Result<(), ApiError> {
    if let Some(max) = current.bounds.messages_days_max
        && to.messages_days.is_none_or(|d| d > max)
    {
        return Err(ApiError::PolicyRefused {
            code: ErrorCode::RetentionExceedsPlan,
            detail: format!(
                "the {} plan keeps messages at most {max} days",
                current.plan.as_str()
            ),
        });
    }
    let floor = current.bounds.audit_days_floor;
    // Keeping a value a platform admin set below the floor is no lowering.
    if changer == Changer::TenantUser && to.audit_days < floor && to.audit_days < current.audit_days
    {
        return Err(ApiError::PolicyRefused {
            code: ErrorCode::AuditRetentionFloor,
            detail: format!(
                "audit retention below {floor} days can only be set by a platform admin"
            ),
        });
    }
    Ok(())
}

/// The policy in force, read in `tx`.
pub async fn get(tx: &TenantTx<'_>) -> Result<Retention, ApiError> {
    let (plan, set) = stored::get(tx).await?;
    let set = set
        .map(serde_json::from_value::<RetentionPolicy>)
        .transpose()
        .map_err(ApiError::internal)?;
    Ok(Retention::effective(plan, set))
}

/// Decides and stores `to` in `tx`, auditing who changed what.
pub async fn change(
    tx: &TenantTx<'_>,
    actor: &str,
    changer: Changer,
    to: &RetentionPolicy,
) -> Result<Retention, ApiError> {
    validate(to)?;
    let current = get(tx).await?;
    decide(&current, to, changer)?;
    let value = serde_json::to_value(to).map_err(ApiError::internal)?;
    stored::set(tx, &value).await?;
    audit::record(
        tx,
        actor,
        "tenant_retention_changed",
        Some(("tenant", tx.tenant_id().to_string())),
        serde_json::json!({
            "from": current.policy(),
            "from_plan_defaults": !current.customized,
            "to": to,
            "by": match changer {
                Changer::TenantUser => "tenant_user",
                Changer::PlatformAdmin => "platform_admin",
            },
        }),
    )
    .await?;
    Ok(Retention::effective(current.plan, Some(*to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(messages_days: Option<u32>, audit_days: u32) -> RetentionPolicy {
        RetentionPolicy {
            messages_days,
            audit_days,
        }
    }

    #[test]
    fn a_downgraded_plan_cuts_message_retention_to_its_maximum() {
        let kept = Retention::effective(Plan::Free, Some(policy(None, 400)));
        assert_eq!(kept.messages_days, Some(365));
        let pro = Retention::effective(Plan::Pro, None);
        assert_eq!((pro.messages_days, pro.audit_days), (None, 730));
    }

    #[test]
    fn the_floor_binds_tenant_users_only_and_only_when_lowering() {
        let free = Retention::effective(Plan::Free, None);
        let lower = policy(Some(30), 100);
        let refused = decide(&free, &lower, Changer::TenantUser).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::AuditRetentionFloor);
        decide(&free, &lower, Changer::PlatformAdmin).unwrap();
        let set_by_admin = Retention::effective(Plan::Free, Some(lower));
        decide(&set_by_admin, &policy(Some(10), 100), Changer::TenantUser).unwrap();
        let further = decide(&set_by_admin, &policy(Some(10), 99), Changer::TenantUser);
        assert_eq!(further.unwrap_err().code(), ErrorCode::AuditRetentionFloor);
    }

    #[test]
    fn message_retention_never_passes_the_plan() {
        let free = Retention::effective(Plan::Free, None);
        for (to, changer) in [
            (policy(Some(366), 365), Changer::TenantUser),
            (policy(None, 365), Changer::PlatformAdmin),
        ] {
            let refused = decide(&free, &to, changer).unwrap_err();
            assert_eq!(refused.code(), ErrorCode::RetentionExceedsPlan);
        }
        let pro = Retention::effective(Plan::Pro, None);
        decide(&pro, &policy(None, 365), Changer::TenantUser).unwrap();
    }
}
