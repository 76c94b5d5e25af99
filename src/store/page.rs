//! Newest-first keyset pages over `(created_at, id)`, the shape every tenant
//! list shares: `keyset_sql!` writes the statement, `keyset_page` runs it and
//! cuts the page. Parameters: `$1` the tenant, `$2`/`$3` the cursor's instant and
//! id (both NULL on the first page), `$4` the page size plus one (the extra row
//! says whether there is a next page); a list's own filters use `$5` on.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::error::StoreError;
use crate::db::TenantTx;
use crate::pagination::{self, Keyset, Page};

/// `SELECT <columns> FROM <table> WHERE tenant_id = $1 <filter> AND <after the
/// cursor> ORDER BY created_at DESC, id DESC LIMIT $4`, as a literal (so list
/// statements stay constants that `store::hot_statements` can name). `filter`
/// starts with `AND` or is empty.
macro_rules! keyset_sql {
    ($columns:expr, $table:literal, $filter:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM ",
            $table,
            " WHERE tenant_id = $1 ",
            $filter,
            " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))",
            " ORDER BY created_at DESC, id DESC LIMIT $4"
        )
    };
}
pub(crate) use keyset_sql;

/// Runs a `keyset_sql!` statement for the transaction's tenant after `after`
/// (`filters` are `$5`, `$6`, …), reads each row with `read` and pages the items
/// by `key`.
pub async fn keyset_page<T>(
    tx: &TenantTx<'_>,
    sql: &str,
    filters: &[&(dyn ToSql + Sync)],
    limit: u32,
    after: Option<Keyset>,
    read: impl Fn(&Row) -> Result<T, StoreError>,
    key: impl Fn(&T) -> Keyset,
) -> Result<Page<T>, StoreError> {
    let tenant = tx.tenant_id();
    let (at, id) = (after.map(|k| k.at), after.map(|k| k.id));
    let rows_wanted = i64::from(limit) + 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![tenant.as_uuid(), &at, &id, &rows_wanted];
    params.extend_from_slice(filters);
    let rows = tx.query(sql, &params).await?;
    let items = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
    Ok(pagination::keyset_page(items, limit, key))
}
