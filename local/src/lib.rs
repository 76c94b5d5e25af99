//! The local environment around the Meridian server: what `meridian dev`, the
//! tests and `loadtest/` use to run regions on one machine — the embedded
//! PostgreSQL, the process supervisor, the Debian package installer, GeoDNS, WAN
//! emulation and the operator's admin client. The server library (`meridian`)
//! never depends on this crate (tests/layering.rs at the repository root checks).
#![forbid(unsafe_code)]

pub mod admin_client;
pub mod cli;
pub mod demo_idp;
pub mod dev;
pub mod dev_tls;
pub mod embedded_pg;
pub mod geodns;
pub mod packages;
pub mod supervisor;
pub mod wan;
