//! SQL for tenant data. Every function takes a `TenantTx` — so it runs inside the
//! caller's tenant transaction — and puts `tx.tenant_id()` in its predicate itself;
//! row-level security is the second wall behind that predicate.

pub mod channels;
pub mod messages;
pub mod regions;
pub mod tenants;
pub mod usage;
pub mod users;
