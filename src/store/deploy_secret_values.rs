//! `deploy_secret_values`: the sealed secret values of deploys that have not ended. Sealing and
//! opening belong to the caller; the statement that queues a deploy stores them
//! (`deploys::create`), this module reads and deletes them.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::StoreError;

pub async fn get(db: impl PgExecutor<'_>, deploy_id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        "select sealed from deploy_secret_values where deploy_id = $1",
        deploy_id,
    )
    .fetch_optional(db)
    .await?)
}

/// Called by the transitions that end a deploy, in their transaction.
pub(super) async fn delete(conn: &mut PgConnection, deploy_id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "delete from deploy_secret_values where deploy_id = $1",
        deploy_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}
