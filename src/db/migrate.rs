//! The migration runner: the versioned files in `sql/` (`V<n>__<name>.sql`), embedded
//! in the binary and applied with refinery as the schema owner. The service role
//! (`meridian_app`) is created by the first migration; its password is set here.

use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("sql");
}

/// Applies pending migrations over `admin_url`; returns the versions applied.
/// When `app_password` is given, (re)sets the service role's password.
pub async fn run(admin_url: &str, app_password: Option<&str>) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) = tokio_postgres::connect(admin_url, NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "migration connection ended");
        }
    });
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await?;
    if let Some(password) = app_password {
        let literal = password.replace('\'', "''");
        client
            .batch_execute(&format!(
                "ALTER ROLE meridian_app WITH LOGIN PASSWORD '{literal}'"
            ))
            .await?;
    }
    drop(client);
    let _ = driver.await;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}
