//! The calendar tables (V23, V34) in the tenant's transaction: accounts (their
//! credentials sealed with the tenant's DEK, `crypto::secrets`), the calendars
//! users link, and the synced events. The credentials are write-only: no
//! `Account` carries them; only `credentials` opens them, for the bridge.
//!
//! - `accounts`: the accounts, their sealed credentials, sync and check state.
//! - `calendars`: the calendars users link and their sync positions.
//! - `events`: the synced objects and the window query.
//! - `grants`: which collections an admin granted to whom (V34); a link needs one.

mod accounts;
mod calendars;
mod events;
mod grants;

pub use accounts::*;
pub use calendars::*;
pub use events::*;
pub use grants::*;
