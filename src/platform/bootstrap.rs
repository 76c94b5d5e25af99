//! `meridian platform add-admin`: the first platform admin, written through the
//! settings' database URL (the service role), before anyone can sign in to
//! create one through the API. Idempotent: the same (issuer, subject) again is
//! made an active platform admin if it is not one, and left alone if it is.
//! Each change is recorded in the platform trail (`platform_audit_events`).

use serde_json::json;
use uuid::Uuid;

use super::{PlatformUserStatus, store};
use crate::audit;
use crate::auth::Role;
use crate::config::DatabaseSettings;
use crate::db::{Database, TxMode};

/// What `add_admin` did, with the user's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    Created(Uuid),
    /// It existed as an operator or disabled: now an active platform admin.
    Promoted(Uuid),
    Unchanged(Uuid),
}

const ACTOR: &str = "cli:platform add-admin";

/// `region`: the node region whose platform trail records it (`settings.region`).
pub async fn add_admin(
    settings: &DatabaseSettings,
    region: &str,
    issuer: &str,
    subject: &str,
    email: &str,
) -> anyhow::Result<Added> {
    crate::outbound::url::parse(issuer).map_err(|why| anyhow::anyhow!("--issuer: {why}"))?;
    let issuer = issuer.trim_end_matches('/').to_owned();
    let subject = crate::validate::text("subject", subject, 256)?;
    let email = crate::validate::email(email)?;
    let region = crate::ids::RegionId::parse(region).map_err(anyhow::Error::msg)?;
    let db = Database::connect(settings)?.in_region(region);
    let added = db
        .platform_tx(TxMode::ReadWrite, async |tx| {
            let added = match store::find(tx, &issuer, &subject).await? {
                Some(u)
                    if u.role == Role::PlatformAdmin && u.status == PlatformUserStatus::Active =>
                {
                    return Ok(Added::Unchanged(u.id));
                }
                Some(u) => {
                    let active = Some(PlatformUserStatus::Active);
                    store::update(tx, u.id, active, Some(Role::PlatformAdmin)).await?;
                    Added::Promoted(u.id)
                }
                None => {
                    let u =
                        store::create(tx, &issuer, &subject, &email, Role::PlatformAdmin).await?;
                    Added::Created(u.id)
                }
            };
            let (action, id) = match added {
                Added::Created(id) => ("platform_user_created", id),
                Added::Promoted(id) | Added::Unchanged(id) => ("platform_user_updated", id),
            };
            let details = json!({ "user_id": id, "issuer": issuer, "subject": subject,
                                  "role": Role::PlatformAdmin });
            audit::record_platform(tx, ACTOR, action, None, details).await?;
            Ok(added)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(added)
}
