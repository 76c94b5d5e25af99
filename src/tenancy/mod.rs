//! Tenancy: the tenant directory record, plans and limits, residency policies, and
//! the in-process directory cache every request resolves its tenant through, and
//! the evidence of where tenants were served and live (`served`, `attest`).

pub mod attest;
pub mod changes;
pub mod directory;
pub mod record;
pub mod residency;
pub mod served;

pub use directory::Directory;
pub use record::{Limits, Plan, TenantRecord, TenantStatus};
pub use residency::Residency;
