//! `webhooks` (hooks created through the admin API, their secret sealed) and `webhook_deliveries`
//! (each verified delivery and how it was answered, unique per hook and delivery id).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{StoreError, on_constraint};
use crate::domain::webhooks::{DeliveryOutcome, HookSpec};

/// A hook as stored.
#[derive(Debug, Clone)]
pub struct StoredHook {
    pub name: String,
    /// Without the secret.
    pub definition: HookSpec,
    /// [`crate::domain::sealing::ServerKey::seal`]ed for `hook:<name>`.
    pub sealed_secret: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

struct HookRow {
    name: String,
    definition: Json<HookSpec>,
    sealed_secret: String,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<HookRow> for StoredHook {
    fn from(row: HookRow) -> Self {
        StoredHook {
            name: row.name,
            definition: row.definition.0,
            sealed_secret: row.sealed_secret,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Stores a new hook; [`StoreError::HookExists`] when the name is taken.
pub async fn insert(
    pool: &PgPool,
    definition: &HookSpec,
    sealed_secret: &str,
    created_by: &str,
) -> Result<StoredHook, StoreError> {
    let row = sqlx::query_as!(
        HookRow,
        r#"insert into webhooks (name, definition, sealed_secret, created_by)
           values ($1, $2, $3, $4)
           returning name, definition as "definition: _", sealed_secret, created_by, created_at,
                     updated_at"#,
        definition.name,
        Json(definition) as _,
        sealed_secret,
        created_by,
    )
    .fetch_one(pool)
    .await
    .map_err(|error| {
        on_constraint(error, "webhooks_pkey", || {
            StoreError::HookExists(definition.name.clone())
        })
    })?;
    Ok(row.into())
}

pub async fn get(pool: &PgPool, name: &str) -> Result<Option<StoredHook>, StoreError> {
    let row = sqlx::query_as!(
        HookRow,
        r#"select name, definition as "definition: _", sealed_secret, created_by, created_at,
                  updated_at
           from webhooks where name = $1"#,
        name,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(StoredHook::from))
}

/// Every stored hook, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<StoredHook>, StoreError> {
    let rows = sqlx::query_as!(
        HookRow,
        r#"select name, definition as "definition: _", sealed_secret, created_by, created_at,
                  updated_at
           from webhooks order by name"#,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StoredHook::from).collect())
}

/// Replaces a hook's definition and sealed secret; `None` when there is no such hook.
pub async fn update(
    pool: &PgPool,
    definition: &HookSpec,
    sealed_secret: &str,
) -> Result<Option<StoredHook>, StoreError> {
    let row = sqlx::query_as!(
        HookRow,
        r#"update webhooks set definition = $2, sealed_secret = $3, updated_at = now()
           where name = $1
           returning name, definition as "definition: _", sealed_secret, created_by, created_at,
                     updated_at"#,
        definition.name,
        Json(definition) as _,
        sealed_secret,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(StoredHook::from))
}

/// Deletes a hook and its deliveries; false when there is no such hook.
pub async fn delete(pool: &PgPool, name: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query!("delete from webhooks where name = $1", name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query!("delete from webhook_deliveries where hook = $1", name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted == 1)
}

/// A verified delivery, as recorded.
pub struct NewDelivery<'a> {
    pub hook: &'a str,
    pub delivery_id: &'a str,
    pub event: &'a str,
    pub git_ref: Option<&'a str>,
    pub commit: Option<&'a str>,
}

/// A recorded delivery (`GET /v1/hooks/{name}/deliveries`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// The id the sender gave it (`X-GitHub-Delivery`, `Idempotency-Key`/`X-Gitlab-Event-UUID`,
    /// `webhook-id`).
    pub delivery_id: String,
    pub event: String,
    /// The event's own ref (a push's `refs/heads/main`, a release's tag).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    pub outcome: DeliveryOutcome,
    /// Why nothing was deployed, for `ignored` and `rejected`.
    pub detail: String,
    pub deploy_id: Option<Uuid>,
    /// How many times it was received (redeliveries included).
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
}

/// The deploy that an earlier delivery with this id queued, counting this redelivery.
pub async fn redelivered(
    pool: &PgPool,
    hook: &str,
    delivery_id: &str,
) -> Result<Option<Uuid>, StoreError> {
    let deploy_id = sqlx::query_scalar!(
        r#"update webhook_deliveries set attempts = attempts + 1, last_received_at = now()
           where hook = $1 and delivery_id = $2 and deploy_id is not null
           returning deploy_id as "deploy_id!""#,
        hook,
        delivery_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(deploy_id)
}

/// Claims the delivery for `deploy_id`, in the transaction that writes that deploy: false when
/// an earlier delivery with the same id already queued a deploy (a concurrent one on another
/// replica waits here until this transaction ends).
pub async fn claim(
    conn: &mut PgConnection,
    delivery: &NewDelivery<'_>,
    deploy_id: Uuid,
) -> Result<bool, StoreError> {
    let claimed = sqlx::query_scalar!(
        "insert into webhook_deliveries
             (id, hook, delivery_id, event, git_ref, commit_sha, outcome, deploy_id)
         values ($1, $2, $3, $4, $5, $6, 'deployed', $7)
         on conflict (hook, delivery_id) do update
             set event = excluded.event, git_ref = excluded.git_ref,
                 commit_sha = excluded.commit_sha, outcome = excluded.outcome, detail = '',
                 deploy_id = excluded.deploy_id, attempts = webhook_deliveries.attempts + 1,
                 last_received_at = now()
             where webhook_deliveries.deploy_id is null
         returning id",
        Uuid::now_v7(),
        delivery.hook,
        delivery.delivery_id,
        delivery.event,
        delivery.git_ref,
        delivery.commit,
        deploy_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Records a delivery that deployed nothing (`ping`, `ignored`, `rejected`); a redelivery replaces
/// the outcome of an earlier one that deployed nothing either.
pub async fn record(
    pool: &PgPool,
    delivery: &NewDelivery<'_>,
    outcome: DeliveryOutcome,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into webhook_deliveries
             (id, hook, delivery_id, event, git_ref, commit_sha, outcome, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (hook, delivery_id) do update
             set event = excluded.event, git_ref = excluded.git_ref,
                 commit_sha = excluded.commit_sha, outcome = excluded.outcome,
                 detail = excluded.detail, attempts = webhook_deliveries.attempts + 1,
                 last_received_at = now()
             where webhook_deliveries.deploy_id is null",
        Uuid::now_v7(),
        delivery.hook,
        delivery.delivery_id,
        delivery.event,
        delivery.git_ref,
        delivery.commit,
        outcome as DeliveryOutcome,
        detail,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A hook's deliveries, newest first, older than the delivery `before` (a row id) when given.
pub async fn deliveries(
    pool: &PgPool,
    hook: &str,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(Uuid, Delivery)>, StoreError> {
    let rows = sqlx::query!(
        r#"select id, delivery_id, event, git_ref, commit_sha, outcome as "outcome: DeliveryOutcome",
                  detail, deploy_id, attempts, received_at, last_received_at
           from webhook_deliveries
           where hook = $1 and ($2::uuid is null or id < $2)
           order by id desc
           limit $3"#,
        hook,
        before,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                row.id,
                Delivery {
                    delivery_id: row.delivery_id,
                    event: row.event,
                    git_ref: row.git_ref,
                    commit: row.commit_sha,
                    outcome: row.outcome,
                    detail: row.detail,
                    deploy_id: row.deploy_id,
                    attempts: row.attempts,
                    received_at: row.received_at,
                    last_received_at: row.last_received_at,
                },
            )
        })
        .collect())
}
