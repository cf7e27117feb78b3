//! `idempotency_keys`: unique per token, remembering the request's hash and the deploy it created.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{StoreError, on_constraint};

/// A key as presented by a caller, with the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub token_id: String,
    pub key: String,
    pub request_sha256: String,
}

/// What an earlier request with the same key did.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub request_sha256: String,
    pub deploy_id: Uuid,
}

pub async fn find(
    pool: &PgPool,
    token_id: &str,
    key: &str,
) -> Result<Option<StoredKey>, StoreError> {
    Ok(sqlx::query_as!(
        StoredKey,
        "select request_sha256, deploy_id from idempotency_keys where token_id = $1 and key = $2",
        token_id,
        key,
    )
    .fetch_optional(pool)
    .await?)
}

/// Records the key; a concurrent request that recorded it first makes this fail with
/// [`StoreError::IdempotencyKeyUsed`] and its whole transaction roll back.
pub async fn insert(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    deploy_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into idempotency_keys (token_id, key, request_sha256, deploy_id) values ($1, $2, $3, $4)",
        key.token_id,
        key.key,
        key.request_sha256,
        deploy_id,
    )
    .execute(conn)
    .await
    .map_err(|error| on_constraint(error, "idempotency_keys_pkey", || StoreError::IdempotencyKeyUsed))?;
    Ok(())
}
