//! `idempotency_keys`: unique per token, remembering the request's hash and the deploy it created.
//! A key is written by the statement that queues its deploy (`deploys::create`).

use sqlx::PgExecutor;
use uuid::Uuid;

use super::StoreError;
use crate::domain::deploy::DeployStatus;

/// A key as presented by a caller, with the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub token_id: String,
    pub key: String,
    pub request_sha256: String,
}

/// What an earlier request with the same key did: the deploy it queued, as it is now.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub request_sha256: String,
    pub deploy_id: Uuid,
    pub status: DeployStatus,
}

pub async fn find(
    db: impl PgExecutor<'_>,
    token_id: &str,
    key: &str,
) -> Result<Option<StoredKey>, StoreError> {
    Ok(sqlx::query_as!(
        StoredKey,
        r#"select k.request_sha256, k.deploy_id, d.status as "status: DeployStatus"
           from idempotency_keys k join deploys d on d.id = k.deploy_id
           where k.token_id = $1 and k.key = $2"#,
        token_id,
        key,
    )
    .fetch_optional(db)
    .await?)
}
