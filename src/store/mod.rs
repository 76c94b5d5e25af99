//! SQL for tenant data. Every function takes a `TenantTx` — so it runs inside the
//! caller's tenant transaction — and puts `tx.tenant_id()` in its predicate itself;
//! row-level security is the second wall behind that predicate.

pub mod channels;
pub mod error;
pub mod messages;
pub mod owners;
pub mod page;
pub mod post_batch;
pub mod regions;
pub mod tenants;
pub mod users;

pub use error::{StoreError, Unique};

use crate::db::Dialect;
use crate::limits::{ledger, storage};

/// A statement the service runs on (nearly) every request of its kind, or on every
/// node every few seconds. `tests/api/plans.rs` runs each one as the service role,
/// under RLS, on a database with enough rows that a sequential scan would be
/// chosen were no index usable, and fails on a sequential scan of a tenant-owned
/// table: so a statement that cannot use its index under RLS is caught, not
/// discovered in production. The list is the code's own constants, so the test
/// cannot drift from what runs; a new hot statement belongs here.
#[derive(Clone, Copy, Debug)]
pub struct HotStatement {
    pub name: &'static str,
    pub sql: &'static str,
    /// Writes (or locks) rows: planned in a read-write transaction.
    pub writes: bool,
}

pub fn hot_statements(dialect: Dialect) -> Vec<HotStatement> {
    let list = [
        ("tx.user_status", crate::db::tx::USER_STATUS_SQL),
        (
            "tx.impersonation_status",
            crate::db::tx::IMPERSONATION_STATUS_SQL,
        ),
        ("directory.by_id", tenants::BY_ID_SQL),
        ("directory.changed_since", tenants::CHANGED_SINCE_SQL),
        ("channels.list", channels::LIST_SQL),
        ("channels.get", channels::GET_SQL),
        ("channels.exists", channels::EXISTS_SQL),
        ("users.list", users::LIST_SQL),
        ("users.get", users::GET_SQL),
        (
            "messages.page",
            messages::page_sql(false, 51).unwrap_or(messages::PAGE_SQL),
        ),
        (
            "messages.page_after",
            messages::page_sql(true, 51).unwrap_or(messages::PAGE_AFTER_SQL),
        ),
        ("messages.get", messages::GET_SQL),
        ("messages.search", dialect.statements().search),
        ("audit.tenant_list", crate::audit::TENANT_LIST_SQL),
        // The listing's one read of its page's subject keys (`audit::personal`).
        ("audit.subject_keys", crate::audit::personal::PAGE_KEYS_SQL),
        ("usage.storage_bytes", storage::STORAGE_BYTES_SQL),
        ("usage.ai_month", ledger::MONTH_USAGE_SQL),
        ("jobs.list", crate::jobs::store::LIST_SQL),
        ("exports.list", crate::compliance::exports::LIST_SQL),
        (
            "exports.list_mine",
            crate::compliance::exports::LIST_MINE_SQL,
        ),
        ("usage.top_tenants", crate::limits::top::TOP_TENANTS_SQL),
    ];
    // Every post: the shard charge and the INSERT in one statement; every event:
    // its dispatch job, inserted when the tenant has a webhook; and the central
    // row, locked when a shard takes a new grant.
    let writes = [
        ("messages.post", messages::POST_SQL),
        // A post lane's batch: guards, charge, messages, events, jobs.
        ("messages.post_batch", post_batch::BATCH_POST_SQL),
        (
            "outbox.dispatch_if_hooked",
            crate::outbox::DISPATCH_IF_HOOKED_SQL,
        ),
        ("usage.central_grants", storage::CENTRAL_GRANTS_SQL),
        // A calendar link: the grant check is the INSERT's own SELECT.
        ("calendar.link", crate::calendar::store::LINK_SQL),
    ];
    let reads = list.into_iter().map(|(name, sql)| HotStatement {
        name,
        sql,
        writes: false,
    });
    reads
        .chain(writes.into_iter().map(|(name, sql)| HotStatement {
            name,
            sql,
            writes: true,
        }))
        .collect()
}
