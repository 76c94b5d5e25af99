//! Which tables a tenant erasure empties of the tenant's rows, in which order,
//! and which tenant-keyed tables it keeps on purpose. Together the two lists
//! name every table with a `tenant_id` column: `tests/api/tenant_erasure.rs`
//! compares them with `information_schema`, so a new tenant table fails the
//! suite until it is placed in one of them.

/// How a table's rows are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The service role's own `DELETE` under RLS, `key` (with `tenant_id`)
    /// naming a row, at most one batch per statement.
    Delete { key: &'static str },
    /// `erase_tenant_rows` (V26): tables the service role may not delete from
    /// (append-only trails, ledgers, protective state); the function deletes
    /// only while the tenant's erasure is `running`.
    Definer,
}

/// The tables emptied, in order: children before the rows they reference
/// (foreign keys), the users last (calendar accounts, impersonations and
/// identities name them).
pub const ERASED: &[(&str, Via)] = &[
    ("calendar_events", Via::Delete { key: "id" }),
    ("calendar_links", Via::Delete { key: "id" }),
    ("calendar_grants", Via::Delete { key: "id" }),
    ("calendar_accounts", Via::Delete { key: "id" }),
    ("webhook_deliveries", Via::Delete { key: "id" }),
    ("webhook_endpoints", Via::Delete { key: "id" }),
    ("channel_summaries", Via::Delete { key: "id" }),
    // Search entries are the messages' own `body_tsv` (V1, V7): they go with them.
    ("messages", Via::Delete { key: "id" }),
    ("channels", Via::Delete { key: "id" }),
    (
        "external_identities",
        Via::Delete {
            key: "provider_id, subject",
        },
    ),
    ("oidc_sign_ins", Via::Delete { key: "id" }),
    ("refresh_tokens", Via::Delete { key: "id" }),
    ("identity_providers", Via::Delete { key: "id" }),
    (
        "usage_samples",
        Via::Delete {
            key: "bucket_start",
        },
    ),
    ("exports", Via::Delete { key: "id" }),
    ("erasures", Via::Delete { key: "id" }),
    // The subject keys (V33) are sealed with the tenant's keys, destroyed
    // anyway; deleted so no wrapped key outlives the tenant.
    ("subject_keys", Via::Delete { key: "subject_id" }),
    ("impersonations", Via::Definer),
    ("outbox_events", Via::Definer),
    ("outbox_heads", Via::Definer),
    ("audit_events", Via::Definer),
    ("audit_checkpoints", Via::Definer),
    ("audit_heads", Via::Definer),
    ("audit_chain_pending", Via::Definer),
    ("tenant_usage_shards", Via::Definer),
    ("tenant_usage", Via::Definer),
    ("ai_reservations", Via::Definer),
    ("ai_usage", Via::Definer),
    ("jobs", Via::Definer),
    ("tenant_served_regions", Via::Definer),
    ("access_log", Via::Definer),
    ("relocations", Via::Definer),
    ("users", Via::Delete { key: "id" }),
];

/// Tenant-keyed tables whose rows of the tenant stay, and why.
pub const KEPT: &[(&str, &str)] = &[
    (
        "tenant_keys",
        "every version `destroyed` with its wrapped key removed: the evidence of the \
         crypto-shredding, and what makes any leftover ciphertext unreadable",
    ),
    (
        "tenant_erasures",
        "the erasure itself: state, counts per table and the signed receipt (ids only)",
    ),
    (
        "platform_audit_events",
        "the platform trail (hash-chained): events about the tenant name it by id, and \
         it keeps the receipt",
    ),
];

/// The statement deleting one batch (`$2` rows) of the tenant `$1` from `table`.
pub fn delete_sql(table: &str, key: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE tenant_id = $1 AND ({key}) IN (
             SELECT {key} FROM {table} WHERE tenant_id = $1 LIMIT $2)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table relocation moves (every tenant-homed table) is erased or
    /// deliberately kept.
    #[test]
    fn every_relocated_table_is_erased_or_kept() {
        for table in crate::relocation::relocated_tables() {
            assert!(
                ERASED.iter().any(|(t, _)| *t == table) || KEPT.iter().any(|(t, _)| *t == table),
                "{table} is neither erased nor kept"
            );
        }
    }
}
