//! Home-region routing: for each tenant request, serve it here, forward it (one
//! signed hop) to the region that serves the tenant, or redirect the client when
//! the tenant's residency forbids processing its data here.
//!
//! `decide` is the rule (pure), `hop` the signed hop marker that bounds forwarding
//! to one hop, `path` the path the decision is made on (the router's), `middleware`
//! applies them to every `/v1` request and marks it `Routed`; `host` names the
//! tenant of a tenant subdomain, which the request's token must match.

pub mod decide;
pub mod health;
pub mod hop;
pub mod host;
pub mod middleware;
pub mod path;

pub use decide::{Decision, decide};
pub use middleware::Routed;
