//! `api_tokens`: only the sha256 of a token's secret is stored.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub secret_sha256: Vec<u8>,
    pub scopes: Vec<String>,
    pub targets: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

pub struct NewToken<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub secret_sha256: &'a [u8],
    pub scopes: &'a [String],
    pub targets: &'a [String],
    pub created_by: &'a str,
}

pub async fn insert(pool: &PgPool, token: NewToken<'_>) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into api_tokens (id, name, secret_sha256, scopes, targets, created_by)
         values ($1, $2, $3, $4, $5, $6)",
        token.id,
        token.name,
        token.secret_sha256,
        token.scopes,
        token.targets,
        token.created_by,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A token that has not been revoked.
pub async fn find_active(pool: &PgPool, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
    Ok(sqlx::query_as!(
        TokenRecord,
        "select id, name, secret_sha256, scopes, targets, created_by, created_at
         from api_tokens where id = $1 and revoked_at is null",
        id,
    )
    .fetch_optional(pool)
    .await?)
}

/// Revokes a token; false when there is no active token with this id.
pub async fn revoke(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    let result = sqlx::query!(
        "update api_tokens set revoked_at = now() where id = $1 and revoked_at is null",
        id,
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}
