//! The runner's side of `deploys`: leases (renewal, take-over of expired ones) and the progress a
//! successor needs to resume a deploy (its revision, its rollback target).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use super::deploys::{self, Deploy};
use super::events::EventTx;
use crate::domain::deploy::DeployStatus;
use crate::domain::event::{EventType, Level, NewEvent};
use crate::domain::verdict::Verdict;

/// Extends `owner`'s lease and returns the deploy's status (`cancelling` once a cancel was asked
/// for); `None` when `owner` no longer holds the lease.
pub async fn renew(
    pool: &PgPool,
    id: Uuid,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<DeployStatus>, StoreError> {
    let status: Option<String> = sqlx::query_scalar(
        "update deploys set lease_until = $3
         where id = $1 and lease_owner = $2 and status in ('running', 'cancelling')
         returning status",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_until)
    .fetch_optional(pool)
    .await?;
    status
        .map(|text| {
            DeployStatus::parse(&text)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown deploy status {text:?}")))
        })
        .transpose()
}

/// Gives the lease back at once (graceful shutdown), so that another process resumes the deploy
/// without waiting for the lease to run out.
pub async fn release(pool: &PgPool, id: Uuid, owner: &str) -> Result<(), StoreError> {
    sqlx::query(
        "update deploys set lease_until = now()
         where id = $1 and lease_owner = $2 and status in ('running', 'cancelling')",
    )
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes over the active deploy whose lease ran out longest ago, recording `deploy.recovered`;
/// concurrent processes skip each other's candidates.
pub async fn take_over_expired(
    tx: &mut EventTx,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<Deploy>, StoreError> {
    let expired: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "select id, lease_owner from deploys
         where status in ('running', 'cancelling') and (lease_until is null or lease_until < now())
         order by lease_until nulls first
         limit 1
         for update skip locked",
    )
    .fetch_optional(tx.conn())
    .await?;
    let Some((id, previous)) = expired else {
        return Ok(None);
    };
    sqlx::query("update deploys set lease_owner = $2, lease_until = $3 where id = $1")
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .execute(tx.conn())
        .await?;
    let previous = previous.unwrap_or_else(|| "nobody".to_owned());
    tx.append(
        id,
        vec![
            NewEvent::new(
                EventType::DeployRecovered,
                format!("taken over by {owner}: the lease of {previous} expired"),
            )
            .level(Level::Warning)
            .data(serde_json::json!({ "previous_owner": previous, "owner": owner })),
        ],
    )
    .await?;
    deploys::get(tx.conn(), id)
        .await?
        .map(Some)
        .ok_or(StoreError::DeployNotFound(id))
}

/// The revision helm created for this deploy, as soon as it is known.
pub async fn set_revision(pool: &PgPool, id: Uuid, revision: i32) -> Result<(), StoreError> {
    sqlx::query("update deploys set revision = $2 where id = $1")
        .bind(id)
        .bind(revision)
        .execute(pool)
        .await?;
    Ok(())
}

/// The failure a deploy is about to roll back from, recorded with its `rolling_back` phase so that
/// a successor ends the deploy with it.
pub async fn set_failure(tx: &mut EventTx, id: Uuid, verdict: &Verdict) -> Result<(), StoreError> {
    sqlx::query("update deploys set verdict = $2 where id = $1")
        .bind(id)
        .bind(sqlx::types::Json(verdict))
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The revision a rollback returns to, recorded before helm rollback runs.
pub async fn set_rollback_target(pool: &PgPool, id: Uuid, target: i32) -> Result<(), StoreError> {
    sqlx::query("update deploys set rollback_target = $2 where id = $1")
        .bind(id)
        .bind(target)
        .execute(pool)
        .await?;
    Ok(())
}
