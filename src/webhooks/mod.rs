//! Webhooks: tenant-configured endpoints that receive the tenant's outbox events,
//! signed the Standard Webhooks way (`sign`), through the SSRF-safe client
//! (`crate::outbound`), in order per endpoint, with retries, a delivery log and
//! automatic disabling (`dispatch`). `store` holds the endpoints and the log.

pub mod dispatch;
pub mod jobs;
pub mod sign;
pub mod store;

pub use dispatch::WebhookSettings;
