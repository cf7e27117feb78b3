//! Retention: the history of finished deploys, notifications and webhook deliveries is pruned by a
//! configurable policy, so that the database stops growing with every deploy (DESIGN §9).
//!
//! What goes, oldest first, once a deploy has been finished for the rule's age: its log events
//! (`container.log`, `helm.output`), then its notifications with their attempts, then every event
//! but its terminal one and its `report`s. What stays: the deploy itself with its verdict, its
//! resources' final states, its terminal and report events, and everything of each release's
//! newest [`RetentionPolicy::keep_last`] deploys. Webhook deliveries and idempotency keys go by
//! their own age. A deploy's event `seq`s keep their numbers: pruning leaves gaps, which readers
//! step over (a resume point inside a gap continues with the next kept event).
//!
//! One replica at a time prunes: the one whose dedicated connection holds a session advisory lock
//! for the pass (released when the pass ends, or with the connection if the process dies). Every
//! delete is one short statement of at most [`RetentionPolicy::batch`] rows, found through a key
//! or index: no long transaction, no lock a writer waits on (finished deploys get no new events).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{Connection as _, PgPool};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::StoreError;
use crate::domain::event::EventType;
use crate::telemetry::{Deleted, RetentionMetrics};

/// The advisory lock's key: "prune" in ASCII.
pub const LOCK_KEY: i64 = 0x70_7275_6e65;

/// What is kept, and for how long. An age of 0 days turns its rule off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Whether this process prunes at all (every replica may; one at a time does).
    pub enabled: bool,
    /// Days after a deploy finished that its log events go.
    pub log_days: u32,
    /// Days after a deploy finished that its notifications and their attempts go.
    pub notification_days: u32,
    /// Days after a deploy finished that every event but its terminal one and reports goes.
    pub event_days: u32,
    /// Days after its last attempt that a webhook delivery's record goes (a redelivery after
    /// that is a new delivery).
    pub delivery_days: u32,
    /// Days after its request that an idempotency key goes (reusing it after that queues a new
    /// deploy).
    pub idempotency_key_days: u32,
    /// The newest deploys of each release keep everything, however old.
    pub keep_last: u32,
    /// Between passes.
    pub interval: Duration,
    /// Rows per delete statement.
    pub batch: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            enabled: true,
            log_days: 14,
            notification_days: 30,
            event_days: 90,
            delivery_days: 30,
            idempotency_key_days: 30,
            keep_last: 10,
            interval: Duration::from_secs(600),
            batch: 1000,
        }
    }
}

/// One part of a deploy's history that a rule prunes, with its bit in `deploys.pruned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    LogEvents,
    Notifications,
    Events,
}

impl Pruned {
    fn bit(self) -> i16 {
        match self {
            Pruned::LogEvents => 1,
            Pruned::Notifications => 2,
            Pruned::Events => 4,
        }
    }

    fn days(self, policy: &RetentionPolicy) -> u32 {
        match self {
            Pruned::LogEvents => policy.log_days,
            Pruned::Notifications => policy.notification_days,
            Pruned::Events => policy.event_days,
        }
    }
}

/// Log lines: the bulk of a deploy's history and the first to go.
const LOG_EVENTS: [EventType; 2] = [EventType::ContainerLog, EventType::HelmOutput];

/// What stays of a deploy's events for good: how it ended and why.
fn kept_events() -> Vec<&'static str> {
    EventType::ALL
        .iter()
        .filter(|kind| kind.is_terminal() || **kind == EventType::Report)
        .map(|kind| kind.as_str())
        .collect()
}

/// Starts the background pruning on `tasks` (a pass right away, then every interval) unless the
/// policy is off; stops at `shutdown`, between two statements.
pub fn spawn(
    pool: PgPool,
    policy: RetentionPolicy,
    metrics: Arc<RetentionMetrics>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    if !policy.enabled {
        return;
    }
    tasks.spawn(async move {
        loop {
            match run_pass(&pool, &policy, &metrics, &shutdown).await {
                Ok(true) => metrics.pass_done(),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "retention pass failed; trying again later"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(policy.interval) => {}
            }
        }
    });
}

/// One pass, if no other replica is pruning: every rule until nothing is left to prune (or
/// shutdown). Returns whether it ran.
pub async fn run_pass(
    pool: &PgPool,
    policy: &RetentionPolicy,
    metrics: &RetentionMetrics,
    shutdown: &CancellationToken,
) -> Result<bool, StoreError> {
    // A connection of its own: the session lock goes with it, whatever happens to the pass.
    let mut conn = PgConnection::connect_with(pool.connect_options().as_ref()).await?;
    let locked = sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "locked!""#, LOCK_KEY)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        conn.close().await?;
        return Ok(false);
    }
    let pruned = prune(&mut conn, policy, metrics, shutdown).await;
    let closed = conn.close().await;
    pruned?;
    closed?;
    Ok(true)
}

async fn prune(
    conn: &mut PgConnection,
    policy: &RetentionPolicy,
    metrics: &RetentionMetrics,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    for rule in [Pruned::Events, Pruned::Notifications, Pruned::LogEvents] {
        if rule.days(policy) == 0 {
            continue;
        }
        while !shutdown.is_cancelled() {
            let deploys = prunable_deploys(conn, policy, rule).await?;
            if deploys.is_empty() {
                break;
            }
            for deploy in deploys {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                prune_deploy(conn, policy, metrics, rule, deploy).await?;
            }
        }
    }
    for records in [Aged::HookDeliveries, Aged::IdempotencyKeys] {
        let days = records.days(policy);
        while days > 0 && !shutdown.is_cancelled() {
            let deleted = records.delete(conn, days, policy.batch).await?;
            metrics.deleted(records.counted_as(), deleted);
            if deleted < u64::from(policy.batch) {
                break;
            }
        }
    }
    Ok(())
}

/// Records that go by their own age, whatever became of their deploy.
#[derive(Debug, Clone, Copy)]
enum Aged {
    HookDeliveries,
    IdempotencyKeys,
}

impl Aged {
    fn days(self, policy: &RetentionPolicy) -> u32 {
        match self {
            Aged::HookDeliveries => policy.delivery_days,
            Aged::IdempotencyKeys => policy.idempotency_key_days,
        }
    }

    fn counted_as(self) -> Deleted {
        match self {
            Aged::HookDeliveries => Deleted::HookDeliveries,
            Aged::IdempotencyKeys => Deleted::IdempotencyKeys,
        }
    }

    async fn delete(
        self,
        conn: &mut PgConnection,
        days: u32,
        batch: u32,
    ) -> Result<u64, StoreError> {
        match self {
            Aged::HookDeliveries => delete_deliveries(conn, days, batch).await,
            Aged::IdempotencyKeys => delete_idempotency_keys(conn, days, batch).await,
        }
    }
}

/// Finished deploys that `rule` has not pruned yet, finished more than its days ago, that are
/// not among the newest `keep_last` of their release; oldest first.
async fn prunable_deploys(
    conn: &mut PgConnection,
    policy: &RetentionPolicy,
    rule: Pruned,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        "select d.id from deploys d
         where d.finished_at is not null and d.pruned <> 7 and d.pruned & $1 = 0
           and d.finished_at < now() - make_interval(days => $2)
           and (select count(*) from (
                   select 1 from deploys newer
                   where newer.cluster = d.cluster and newer.namespace = d.namespace
                     and newer.release = d.release and newer.id > d.id
                   limit $3) as newer) = $3
         order by d.finished_at
         limit 100",
        rule.bit(),
        i32::try_from(rule.days(policy)).unwrap_or(i32::MAX),
        i64::from(policy.keep_last),
    )
    .fetch_all(conn)
    .await?)
}

/// Deletes what `rule` prunes of one deploy, a batch per statement, then marks it pruned.
async fn prune_deploy(
    conn: &mut PgConnection,
    policy: &RetentionPolicy,
    metrics: &RetentionMetrics,
    rule: Pruned,
    deploy: Uuid,
) -> Result<(), StoreError> {
    loop {
        let (what, deleted) = match rule {
            Pruned::LogEvents => {
                let types = LOG_EVENTS.map(EventType::as_str);
                let deleted = delete_events(conn, deploy, &types, true, policy.batch).await?;
                (Deleted::LogEvents, deleted)
            }
            Pruned::Events => {
                let deleted =
                    delete_events(conn, deploy, &kept_events(), false, policy.batch).await?;
                (Deleted::Events, deleted)
            }
            Pruned::Notifications => {
                let deleted = delete_notifications(conn, deploy, policy.batch).await?;
                (Deleted::Notifications, deleted)
            }
        };
        metrics.deleted(what, deleted);
        if deleted < u64::from(policy.batch) {
            break;
        }
    }
    // The events rule removes the log events too; the notifications of the events it keeps (the
    // terminal one's) stay for their own rule.
    let bits = match rule {
        Pruned::Events => Pruned::Events.bit() | Pruned::LogEvents.bit(),
        other => other.bit(),
    };
    sqlx::query!(
        "update deploys set pruned = pruned | $2 where id = $1",
        deploy,
        bits,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `batch` events of a deploy whose type is among `types` (`matching`) or not
/// (`!matching`); their notifications go with them.
async fn delete_events(
    conn: &mut PgConnection,
    deploy: Uuid,
    types: &[&str],
    matching: bool,
    batch: u32,
) -> Result<u64, StoreError> {
    Ok(sqlx::query!(
        "delete from deploy_events e
         using (select seq from deploy_events
                where deploy_id = $1 and (type = any($2)) = $3
                order by seq limit $4) as doomed
         where e.deploy_id = $1 and e.seq = doomed.seq",
        deploy,
        types as &[&str],
        matching,
        i64::from(batch),
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes up to `batch` notifications of a deploy that are no longer pending (with their
/// attempts).
async fn delete_notifications(
    conn: &mut PgConnection,
    deploy: Uuid,
    batch: u32,
) -> Result<u64, StoreError> {
    Ok(sqlx::query!(
        "delete from notifications n
         using (select id from notifications
                where deploy_id = $1 and state <> 'pending' limit $2) as doomed
         where n.id = doomed.id",
        deploy,
        i64::from(batch),
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes up to `batch` webhook deliveries last received more than `days` ago, oldest first
/// (ids are time-ordered).
async fn delete_deliveries(
    conn: &mut PgConnection,
    days: u32,
    batch: u32,
) -> Result<u64, StoreError> {
    Ok(sqlx::query!(
        "delete from webhook_deliveries w
         using (select id from webhook_deliveries
                where last_received_at < now() - make_interval(days => $1)
                order by id limit $2) as doomed
         where w.id = doomed.id",
        i32::try_from(days).unwrap_or(i32::MAX),
        i64::from(batch),
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes up to `batch` idempotency keys recorded more than `days` ago. No index serves the
/// age (one would cost every submission): the scan stops at the first `batch` old rows, which the
/// table holds first as it only grows at the end.
async fn delete_idempotency_keys(
    conn: &mut PgConnection,
    days: u32,
    batch: u32,
) -> Result<u64, StoreError> {
    Ok(sqlx::query!(
        "delete from idempotency_keys k
         using (select token_id, key from idempotency_keys
                where created_at < now() - make_interval(days => $1) limit $2) as doomed
         where k.token_id = doomed.token_id and k.key = doomed.key",
        i32::try_from(days).unwrap_or(i32::MAX),
        i64::from(batch),
    )
    .execute(conn)
    .await?
    .rows_affected())
}
