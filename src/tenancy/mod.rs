//! Tenancy: the tenant directory record, plans and limits, residency policies, and
//! the in-process directory cache every request resolves its tenant through.

pub mod changes;
pub mod directory;
pub mod record;
pub mod residency;

pub use directory::Directory;
pub use record::{Limits, Plan, TenantRecord, TenantStatus};
pub use residency::Residency;
