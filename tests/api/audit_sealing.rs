//! Regression of the security review of 2026-11-30: the service role could
//! insert an audit event already linked (`seq`, `hash` of its choosing). Since
//! V35 it inserts events unchained; only the sealing functions (V30) link them.
//! (Those still record the links the node computed: `GET /v1/audit/verify`
//! recomputes every link; README "Not yet".)

use uuid::Uuid;

use crate::helpers::{fresh_database, spawn_app_with, test_settings};

#[actix_web::test]
async fn the_service_role_inserts_audit_events_unchained_only() {
    let settings = test_settings(&fresh_database().await);
    let app = spawn_app_with(settings).await;
    let a = app.provision("seal-a").await;
    let service = app.app_role_client().await;
    service
        .batch_execute(&format!("SET app.tenant_id = '{}'", a.id))
        .await
        .unwrap();
    let insert = |linked: bool| {
        let sql = if linked {
            "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, details, seq, \
             hash) VALUES ($1, $2, 'us-east1', 'x', 'forged', '{}', 1000000, $3)"
        } else {
            "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, details) \
             VALUES ($1, $2, 'us-east1', 'x', 'unchained', '{}') RETURNING $3::bytea"
        };
        let service = &service;
        async move {
            service
                .execute(sql, &[&a.id, &Uuid::now_v7(), &vec![7u8; 32]])
                .await
        }
    };
    let linked = insert(true)
        .await
        .expect_err("a linked insert was accepted");
    assert_eq!(
        linked.as_db_error().map(|e| e.code().code()),
        Some("42501"),
        "{linked}"
    );
    // What the node does (an unchained event) still works.
    assert_eq!(insert(false).await.unwrap(), 1);
}
