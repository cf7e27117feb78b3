//! `notifications`, `notification_attempts` and `notification_subscriptions`: the outbox of
//! outgoing notifications (its rows are written with the events that trigger them, in
//! `deploy_events`), the record of every delivery attempt, and the global subscriptions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::StoreError;
use crate::domain::auth::TargetPattern;
use crate::domain::glob::glob_to_like;
use crate::domain::notify::{
    ConfiguredSubscription, ManagedBy, NotificationState, NotifyFormat, Subscription,
};
use crate::telemetry::OutboxDepth;

/// The PostgreSQL channel that wakes the delivery workers when notifications are written.
pub const OUTBOX_CHANNEL: &str = "rollcall_notifications";

/// A notification claimed for one delivery attempt, with what the attempt needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub deploy_id: Uuid,
    pub event_seq: i64,
    /// The number of this attempt (1 for the first).
    pub attempt: i32,
    pub created_at: DateTime<Utc>,
    /// The body of the first attempt, sent again by every retry.
    pub payload: Option<String>,
    pub url: String,
    pub format: NotifyFormat,
    pub subscription: Option<ClaimedSubscription>,
    /// A deploy's notify entry: the configured secret it names (`None`: the default one).
    pub secret_name: Option<String>,
}

/// The subscription a claimed notification belongs to, as it is now.
#[derive(Debug, Clone)]
pub struct ClaimedSubscription {
    pub id: Uuid,
    /// `None`: deleted since the notification was written.
    pub enabled: Option<bool>,
    pub secret_sealed: Option<String>,
    pub secret_name: Option<String>,
}

/// Claims up to `limit` due notifications for this process: each is due again after `lease`
/// unless its attempt is recorded first, so one that a dead process held is retried. Concurrent
/// workers skip each other's rows.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = sqlx::query!(
        r#"with due as (
             select id from notifications
             where state = 'pending' and due_at <= now()
             order by due_at
             limit $1
             for update skip locked
         ), claimed as (
             update notifications n set due_at = now() + make_interval(secs => $2),
                                    claimed_until = now() + make_interval(secs => $2)
             from due where n.id = due.id
             returning n.id, n.deploy_id, n.event_seq, n.attempts, n.created_at, n.payload, n.url,
                       n.format, n.subscription_id, n.secret_name
         )
         select c.id as "id!", c.deploy_id as "deploy_id!", c.event_seq as "event_seq!",
                c.attempts + 1 as "attempt!", c.created_at as "created_at!", c.payload,
                coalesce(s.url, c.url) as "url!", coalesce(s.format, c.format) as "format!: NotifyFormat",
                c.subscription_id, s.enabled as "subscription_enabled?",
                s.secret_sealed as "subscription_secret_sealed?",
                s.secret_name as "subscription_secret_name?", c.secret_name
         from claimed c left join notification_subscriptions s on s.id = c.subscription_id
         order by c.created_at"#,
        limit,
        lease.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Claimed {
            id: row.id,
            deploy_id: row.deploy_id,
            event_seq: row.event_seq,
            attempt: row.attempt,
            created_at: row.created_at,
            payload: row.payload,
            url: row.url,
            format: row.format,
            subscription: row.subscription_id.map(|id| ClaimedSubscription {
                id,
                enabled: row.subscription_enabled,
                secret_sealed: row.subscription_secret_sealed,
                secret_name: row.subscription_secret_name,
            }),
            secret_name: row.secret_name,
        })
        .collect())
}

/// When the next pending notification is due (or its claim runs out).
pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(
        sqlx::query_scalar!("select min(due_at) from notifications where state = 'pending'")
            .fetch_one(pool)
            .await?,
    )
}

/// One delivery attempt as it happened.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// What an attempt leaves the notification as.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed(String),
    Cancelled(String),
}

/// Records an attempt (`None`: the notification ends without one, e.g. its subscription is gone)
/// and the state it leaves the notification in; `payload` is kept for the retries.
/// `disables` is the subscription whose receiver answered 410 Gone: it is disabled, and its other
/// pending notifications cancelled, in the same transaction, so nobody ever sees this
/// notification cancelled by its own answer.
pub async fn record_attempt(
    pool: &PgPool,
    id: Uuid,
    attempt: Option<&AttemptRecord>,
    payload: Option<&str>,
    next: &Next,
    disables: Option<Uuid>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(subscription) = disables {
        // The subscription first, then the notifications: two 410s of one subscription recorded
        // at once queue here instead of each holding the notification the other cancels.
        lock_subscription(&mut tx, subscription).await?;
    }
    if let Some(attempt) = attempt {
        sqlx::query!(
            "insert into notification_attempts (notification_id, attempt, at, status_code,
                                                latency_ms, error)
             values ($1, $2, $3, $4, $5, $6)",
            id,
            attempt.attempt,
            attempt.at,
            attempt.status_code.map(i32::from),
            attempt.latency.as_secs_f64() * 1000.0,
            attempt.error,
        )
        .execute(&mut *tx)
        .await?;
    }
    let (state, due_at, outcome) = match next {
        Next::Delivered => (NotificationState::Delivered, None, None),
        Next::RetryAt(at) => (NotificationState::Pending, Some(*at), None),
        Next::Failed(why) => (NotificationState::Failed, None, Some(why.as_str())),
        Next::Cancelled(why) => (NotificationState::Cancelled, None, Some(why.as_str())),
    };
    sqlx::query!(
        "update notifications
         set state = $2, due_at = coalesce($3, due_at), outcome = $4, claimed_until = null,
             attempts = attempts + $5, payload = coalesce(payload, $6),
             finished_at = case when $2 = 'pending' then null else now() end
         where id = $1",
        id,
        state as NotificationState,
        due_at,
        outcome,
        i32::from(attempt.is_some()),
        payload,
    )
    .execute(&mut *tx)
    .await?;
    if let Some(subscription) = disables {
        disable_subscription(&mut tx, subscription, outcome.unwrap_or_default()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A notification with its attempts, as `GET /v1/deploys/{id}/notifications` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationRecord {
    /// Also the `webhook-id` of every attempt: receivers deduplicate by it.
    pub id: Uuid,
    pub event_seq: i64,
    pub event_type: String,
    /// Scheme, host and port of the destination; the rest of the URL is kept secret.
    pub destination: String,
    pub format: NotifyFormat,
    /// The global subscription it was sent for; absent for the deploy's own notify entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<Uuid>,
    pub state: NotificationState,
    /// While pending: when the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when no answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A deploy's notifications with their attempts, in event order. `origin` reduces a stored URL to
/// what may be shown of it.
pub async fn list_for_deploy(
    pool: &PgPool,
    deploy_id: Uuid,
    origin: impl Fn(&str) -> String,
) -> Result<Vec<NotificationRecord>, StoreError> {
    let rows = sqlx::query!(
        r#"select id, event_seq, event_type, url, format as "format: NotifyFormat",
                  subscription_id, state as "state: NotificationState", due_at, outcome,
                  created_at, finished_at
           from notifications where deploy_id = $1
           order by event_seq, created_at, id"#,
        deploy_id,
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let attempts = sqlx::query!(
        "select notification_id, attempt, at, status_code, latency_ms, error
         from notification_attempts where notification_id = any($1)
         order by notification_id, attempt",
        &ids,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| NotificationRecord {
            id: row.id,
            event_seq: row.event_seq,
            event_type: row.event_type,
            destination: origin(&row.url),
            format: row.format,
            subscription_id: row.subscription_id,
            state: row.state,
            next_attempt_at: (row.state == NotificationState::Pending).then_some(row.due_at),
            outcome: row.outcome,
            created_at: row.created_at,
            finished_at: row.finished_at,
            attempts: attempts
                .iter()
                .filter(|attempt| attempt.notification_id == row.id)
                .map(|attempt| Attempt {
                    attempt: attempt.attempt,
                    at: attempt.at,
                    status_code: attempt.status_code,
                    latency_ms: attempt.latency_ms,
                    error: attempt.error.clone(),
                })
                .collect(),
        })
        .collect())
}

/// The outbox as metrics show it.
pub async fn depth(pool: &PgPool) -> Result<OutboxDepth, StoreError> {
    let row = sqlx::query!(
        r#"select count(*) as "pending!", count(*) filter (where due_at <= now()) as "due!"
           from notifications where state = 'pending'"#
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxDepth {
        pending: row.pending,
        due: row.due,
    })
}

/// A global subscription as stored. `url` is secret: show [`crate::domain::notify::NotifyUrl::origin`].
#[derive(Debug, Clone)]
pub struct StoredSubscription {
    pub id: Uuid,
    pub name: String,
    pub managed_by: ManagedBy,
    pub url: String,
    pub format: NotifyFormat,
    pub events: Vec<String>,
    pub targets: Vec<String>,
    pub secret_sealed: Option<String>,
    pub secret_name: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `sqlx::query_as!` of [`StoredSubscription`]s: `query_subscriptions!("where id = $1", id)`.
macro_rules! query_subscriptions {
    ($tail:literal $($args:tt)*) => {
        sqlx::query_as!(
            StoredSubscription,
            r#"select id, name, managed_by as "managed_by: ManagedBy", url,
                      format as "format: NotifyFormat", events, targets, secret_sealed,
                      secret_name, enabled, disabled_reason, created_by, created_at, updated_at
               from notification_subscriptions "# + $tail
            $($args)*
        )
    };
}

/// An API subscription's fields as written: the checked subscription and its sealed secret.
pub struct SubscriptionRow<'a> {
    pub id: Uuid,
    pub subscription: &'a Subscription,
    pub secret_sealed: &'a str,
    pub enabled: bool,
}

/// A subscription's targets as stored: the globs as given, and each part as a `like` pattern.
struct TargetColumns {
    given: Vec<String>,
    clusters: Vec<String>,
    namespaces: Vec<String>,
    releases: Vec<String>,
}

impl TargetColumns {
    fn of(subscription: &Subscription) -> Self {
        let targets = &subscription.targets;
        let likes = |part: fn(&TargetPattern) -> &str| {
            targets.iter().map(|t| glob_to_like(part(t))).collect()
        };
        TargetColumns {
            given: targets.iter().map(ToString::to_string).collect(),
            clusters: likes(|t| &t.cluster),
            namespaces: likes(|t| &t.namespace),
            releases: likes(|t| &t.release),
        }
    }
}

/// Writes an API subscription: a new one (`POST`), or all its fields (`PATCH`), where enabling it
/// again clears the reason it was disabled.
pub async fn save_subscription(
    db: impl PgExecutor<'_>,
    row: &SubscriptionRow<'_>,
    created_by: &str,
) -> Result<(), StoreError> {
    let subscription = row.subscription;
    let targets = TargetColumns::of(subscription);
    sqlx::query!(
        "insert into notification_subscriptions
             (id, name, managed_by, url, format, events, targets, cluster_likes, namespace_likes,
              release_likes, secret_sealed, enabled, created_by)
         values ($1, $2, 'api', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         on conflict (id) do update
         set name = excluded.name, url = excluded.url, format = excluded.format,
             events = excluded.events, targets = excluded.targets,
             cluster_likes = excluded.cluster_likes, namespace_likes = excluded.namespace_likes,
             release_likes = excluded.release_likes, secret_sealed = excluded.secret_sealed,
             enabled = excluded.enabled,
             disabled_reason = case when excluded.enabled then null
                                    else notification_subscriptions.disabled_reason end,
             updated_at = now()",
        row.id,
        subscription.name,
        String::from(subscription.url.clone()),
        subscription.format as NotifyFormat,
        &subscription.events,
        &targets.given,
        &targets.clusters,
        &targets.namespaces,
        &targets.releases,
        row.secret_sealed,
        row.enabled,
        created_by,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get_subscription(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<StoredSubscription>, StoreError> {
    Ok(query_subscriptions!("where id = $1", id)
        .fetch_optional(db)
        .await?)
}

/// Locks a subscription for a read-modify-write.
pub async fn lock_subscription(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<StoredSubscription>, StoreError> {
    Ok(query_subscriptions!("where id = $1 for update", id)
        .fetch_optional(conn)
        .await?)
}

pub async fn list_subscriptions(pool: &PgPool) -> Result<Vec<StoredSubscription>, StoreError> {
    Ok(query_subscriptions!("order by created_at, id")
        .fetch_all(pool)
        .await?)
}

/// Deletes a subscription; its pending notifications are cancelled. `false` if there was none.
pub async fn delete_subscription(conn: &mut PgConnection, id: Uuid) -> Result<bool, StoreError> {
    cancel_pending(&mut *conn, &[id], "the subscription was deleted").await?;
    let deleted = sqlx::query!("delete from notification_subscriptions where id = $1", id)
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

async fn cancel_pending(
    db: impl PgExecutor<'_>,
    subscriptions: &[Uuid],
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "update notifications set state = 'cancelled', outcome = $2, finished_at = now()
         where subscription_id = any($1) and state = 'pending'
               and (claimed_until is null or claimed_until <= now())",
        subscriptions,
        why,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Disables a subscription (its receiver answered 410 Gone); it gets no further notifications.
async fn disable_subscription(
    conn: &mut PgConnection,
    id: Uuid,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "update notification_subscriptions
         set enabled = false, disabled_reason = $2, updated_at = now()
         where id = $1",
        id,
        why,
    )
    .execute(&mut *conn)
    .await?;
    cancel_pending(&mut *conn, &[id], why).await?;
    Ok(())
}

/// Makes the stored configured subscriptions those of the configuration file (by name): new ones
/// are added, changed ones rewritten (a changed URL is enabled again), removed ones deleted with
/// their pending notifications cancelled.
pub async fn sync_configured(
    pool: &PgPool,
    configured: &[ConfiguredSubscription],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let names: Vec<&str> = configured
        .iter()
        .map(|entry| entry.subscription.name.as_str())
        .collect();
    let removed = sqlx::query_scalar!(
        "select id from notification_subscriptions
         where managed_by = 'config' and not (name = any($1))",
        &names as &[&str],
    )
    .fetch_all(&mut *tx)
    .await?;
    cancel_pending(
        &mut *tx,
        &removed,
        "the subscription was removed from the configuration",
    )
    .await?;
    sqlx::query!(
        "delete from notification_subscriptions where id = any($1)",
        &removed
    )
    .execute(&mut *tx)
    .await?;
    for entry in configured {
        let subscription = &entry.subscription;
        let targets = TargetColumns::of(subscription);
        sqlx::query!(
            "insert into notification_subscriptions
                 (id, name, managed_by, url, format, events, targets, cluster_likes,
                  namespace_likes, release_likes, secret_name, created_by)
             values ($1, $2, 'config', $3, $4, $5, $6, $7, $8, $9, $10, 'config')
             on conflict (name) where managed_by = 'config' do update
             set url = excluded.url, format = excluded.format, events = excluded.events,
                 targets = excluded.targets, cluster_likes = excluded.cluster_likes,
                 namespace_likes = excluded.namespace_likes,
                 release_likes = excluded.release_likes, secret_name = excluded.secret_name,
                 enabled = notification_subscriptions.enabled
                           or notification_subscriptions.url <> excluded.url,
                 updated_at = now()",
            Uuid::now_v7(),
            subscription.name,
            String::from(subscription.url.clone()),
            subscription.format as NotifyFormat,
            &subscription.events,
            &targets.given,
            &targets.clusters,
            &targets.namespaces,
            &targets.releases,
            entry.secret_name,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
