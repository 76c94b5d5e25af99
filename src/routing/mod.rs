//! Home-region routing: for each tenant request, serve it here, forward it (one
//! signed hop) to the region that serves the tenant, or redirect the client when
//! the tenant's residency forbids processing its data here.
//!
//! `decide` is the rule (pure), `hop` the signed hop marker that bounds forwarding
//! to one hop, `middleware` applies both to every `/v1` request.

pub mod decide;
pub mod health;
pub mod hop;
pub mod middleware;

pub use decide::{Decision, decide};
