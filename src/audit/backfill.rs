//! Chains the events written before V21 (`meridian migrate`, after the
//! migrations, as the migrating role): each listed tenant's unchained events are
//! appended to its chain in (created_at, id) order, and the platform events of
//! each region likewise. A batch, its head and its removal from the pending list
//! commit together, so an interrupted run resumes where it stopped. Events a node
//! of the previous version writes after the migration (a rolling upgrade) stay
//! unchained until the next `meridian migrate`, which chains them at the head.

use tokio_postgres::{Client, GenericClient, Row};
use uuid::Uuid;

use super::chain;

const BATCH: i64 = 500;

/// How many events were chained (tenant, platform).
pub async fn run(client: &mut Client) -> anyhow::Result<(u64, u64)> {
    let pending: Vec<Uuid> = client
        .query(
            "SELECT tenant_id FROM audit_chain_pending ORDER BY tenant_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut tenant_events = 0;
    for tenant in pending {
        loop {
            let tx = client.transaction().await?;
            tx.query_one(
                "SELECT set_config('app.tenant_id', $1, true)",
                &[&tenant.to_string()],
            )
            .await?;
            let rows = tx
                .query(
                    "SELECT id, actor, action, tenant_id, target_kind, target_id, details, \
                        created_at, sealed, home_region FROM audit_events
                     WHERE tenant_id = $1 AND seq IS NULL ORDER BY created_at, id LIMIT $2",
                    &[&tenant, &BATCH],
                )
                .await?;
            if rows.is_empty() {
                tx.execute(
                    "DELETE FROM audit_chain_pending WHERE tenant_id = $1",
                    &[&tenant],
                )
                .await?;
                tx.commit().await?;
                break;
            }
            // A head at seq 0 with the genesis hash is what appending finds
            // without one; created first so a node appending now waits on its lock.
            let home: String = rows[0].get("home_region");
            tx.execute(
                "INSERT INTO audit_heads (tenant_id, home_region, seq, hash) VALUES ($1, $2, 0, $3)
                 ON CONFLICT (tenant_id) DO NOTHING",
                &[&tenant, &home, &chain::GENESIS.as_slice()],
            )
            .await?;
            let head = tx
                .query_one(
                    "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE",
                    &[&tenant],
                )
                .await?;
            let head = (head.get::<_, i64>(0), head.get::<_, Vec<u8>>(1));
            let (seq, hash) =
                chain_rows(&tx, "audit_events", "tenant_id", &tenant, head, &rows).await?;
            tx.execute(
                "UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1",
                &[&tenant, &seq, &hash],
            )
            .await?;
            tenant_events += rows.len() as u64;
            tx.commit().await?;
        }
    }
    let mut platform_events = 0;
    loop {
        let tx = client.transaction().await?;
        let Some(region) = tx
            .query_opt(
                "SELECT region FROM platform_audit_events WHERE seq IS NULL LIMIT 1",
                &[],
            )
            .await?
            .map(|r| r.get::<_, String>(0))
        else {
            break;
        };
        let rows = tx
            .query(
                "SELECT id, actor, action, tenant_id, NULL::text AS target_kind, \
                    NULL::text AS target_id, details, created_at, sealed
                 FROM platform_audit_events WHERE region = $1 AND seq IS NULL
                 ORDER BY created_at, id LIMIT $2",
                &[&region, &BATCH],
            )
            .await?;
        tx.execute(
            "INSERT INTO platform_audit_heads (region, seq, hash) VALUES ($1, 0, $2)
             ON CONFLICT (region) DO NOTHING",
            &[&region, &chain::GENESIS.as_slice()],
        )
        .await?;
        let head = tx
            .query_one(
                "SELECT seq, hash FROM platform_audit_heads WHERE region = $1 FOR UPDATE",
                &[&region],
            )
            .await?;
        let head = (head.get::<_, i64>(0), head.get::<_, Vec<u8>>(1));
        let (seq, hash) =
            chain_rows(&tx, "platform_audit_events", "region", &region, head, &rows).await?;
        tx.execute(
            "UPDATE platform_audit_heads SET seq = $2, hash = $3 WHERE region = $1",
            &[&region, &seq, &hash],
        )
        .await?;
        platform_events += rows.len() as u64;
        tx.commit().await?;
    }
    Ok((tenant_events, platform_events))
}

/// Links `rows` after `head` and writes each one's seq and hash; the new head.
async fn chain_rows<K: tokio_postgres::types::ToSql + Sync>(
    client: &impl GenericClient,
    table: &str,
    trail_column: &str,
    trail: &K,
    head: (i64, Vec<u8>),
    rows: &[Row],
) -> anyhow::Result<(i64, Vec<u8>)> {
    let (mut seq, mut hash) = head;
    let update =
        format!("UPDATE {table} SET seq = $3, hash = $4 WHERE {trail_column} = $1 AND id = $2");
    for row in rows {
        seq += 1;
        hash = chain::link(&hash, &super::verify::canonical_of(row)).to_vec();
        let id: Uuid = row.get("id");
        client.execute(&update, &[trail, &id, &seq, &hash]).await?;
    }
    Ok((seq, hash))
}
