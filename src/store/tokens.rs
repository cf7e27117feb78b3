//! `api_tokens`: only the sha256 of a token's secret is stored. A token works until it is revoked
//! or expires.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::StoreError;

/// Where the database announces, with the token's id, each change that can end a token
/// (`rollcall_token_changed` in the migrations): every replica drops its cached copy.
pub const TOKEN_CHANGES_CHANNEL: &str = "rollcall_token_changes";

/// A token as stored; as admins see it, without the digest of its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    #[serde(skip)]
    pub secret_sha256: Vec<u8>,
    pub scopes: Vec<String>,
    pub targets: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Recorded at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewToken<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub secret_sha256: &'a [u8],
    pub scopes: &'a [String],
    pub targets: &'a [String],
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(pool: &PgPool, token: NewToken<'_>) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into api_tokens (id, name, secret_sha256, scopes, targets, created_by, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
        token.id,
        token.name,
        token.secret_sha256,
        token.scopes,
        token.targets,
        token.created_by,
        token.expires_at,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A token that is neither revoked nor expired.
pub async fn find_active(pool: &PgPool, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
    Ok(sqlx::query_as!(
        TokenRecord,
        "select id, name, secret_sha256, scopes, targets, created_by, created_at, expires_at,
                last_used_at, revoked_at
         from api_tokens
         where id = $1 and revoked_at is null and (expires_at is null or expires_at > now())",
        id,
    )
    .fetch_optional(pool)
    .await?)
}

/// Every token, newest first, revoked and expired ones included.
pub async fn list(pool: &PgPool) -> Result<Vec<TokenRecord>, StoreError> {
    Ok(sqlx::query_as!(
        TokenRecord,
        "select id, name, secret_sha256, scopes, targets, created_by, created_at, expires_at,
                last_used_at, revoked_at
         from api_tokens order by created_at desc, id",
    )
    .fetch_all(pool)
    .await?)
}

/// Records a use of the token, at most once a minute (a write per request would be the cost).
pub async fn record_use(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "update api_tokens set last_used_at = now()
         where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')",
        id,
    )
    .execute(pool)
    .await?;
    Ok(())
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
