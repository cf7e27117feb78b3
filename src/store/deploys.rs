//! `deploys` and `deploy_resources`: the deploy state machine as stored, each transition written
//! together with its event in one transaction, and the runner's lease on a running deploy (renewal,
//! take-over of expired ones) with the progress a successor needs to resume it (its revision, its
//! rollback target).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::deploy_events::{BatchNotice, EventTx, NOTIFY_CHANNEL, PublishedEvent};
use super::deploy_secret_values;
use super::idempotency::{self, IdempotencyKey, StoredKey};
use super::notifications::OUTBOX_CHANNEL;
use super::{StoreError, on_constraint};
use crate::domain::auth::LikeTargets;
use crate::domain::chart::ChartSource;
use crate::domain::deploy::{DeployStatus, NewDeploy, Outcome, Phase, QueueMode};
use crate::domain::event::{EventType, Level, NewEvent};
use crate::domain::notify::{self, NotifyTarget, NotifyTargetView};
use crate::domain::policy::TrackingOverrides;
use crate::domain::release::ReleaseId;
use crate::domain::storable::storable_text;
use crate::domain::verdict::{Verdict, VerdictReason};
use crate::telemetry::DeployCounts;

/// A deploy as stored: its summary, and the request's values and tracking overrides, which only
/// `GET /v1/deploys/{id}` shows. Secret values are represented by their keyed digest only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deploy {
    #[serde(flatten)]
    pub summary: DeploySummary,
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Object)]
    pub tracking: TrackingOverrides,
}

/// A deploy reads as its summary (`deploy.id`, `deploy.status`): the summary is the deploy minus
/// the two request parts only the single-deploy view carries.
impl std::ops::Deref for Deploy {
    type Target = DeploySummary;

    fn deref(&self) -> &DeploySummary {
        &self.summary
    }
}

/// A deploy as lists show it: all but the request's `values` and `tracking` (up to the body limit
/// each), so that a page stays small whatever the deploys carried.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeploySummary {
    pub id: Uuid,
    pub cluster: String,
    pub namespace: String,
    /// helm creates the namespace when it does not exist.
    pub create_namespace: bool,
    pub release: String,
    #[schema(value_type = Object)]
    pub chart: ChartSource,
    /// The request carried `secret_values` (never shown; sealed until the deploy ends).
    pub has_secret_values: bool,
    /// A digest of the request's `secret_values` keyed with the server key (HMAC-SHA256, hex):
    /// equal for equal values, useless for checking a guess without the key. Absent when the
    /// server has no key.
    pub secret_values_digest: Option<String>,
    pub timeout_seconds: i64,
    pub rollback_on_failure: bool,
    pub queue: QueueMode,
    /// Where notifications go; each URL shown only as its scheme, host and port.
    #[serde(serialize_with = "notify::serialize_views")]
    #[schema(value_type = Vec<NotifyTargetView>)]
    pub notify: Vec<NotifyTarget>,
    pub labels: BTreeMap<String, String>,
    pub requested_by: String,
    pub status: DeployStatus,
    pub phase: Option<Phase>,
    pub revision: Option<i32>,
    pub rolled_back_to: Option<i32>,
    /// While rolling back (and after): the revision the rollback returns to.
    pub rollback_target: Option<i32>,
    /// Set when the deploy ends; while it rolls back, the failure it rolls back from.
    pub verdict: Option<Verdict>,
    pub cancel_reason: Option<String>,
    pub cancelled_by: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The seq of the deploy's latest event.
    pub last_event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl DeploySummary {
    pub fn release_id(&self) -> ReleaseId {
        ReleaseId::new(&self.cluster, &self.namespace, &self.release)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.max(0) as u64)
    }
}

/// Per-resource state shown by `GET /v1/deploys/{id}`, written by the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResourceState {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// e.g. `progressing`, `ready`, `failed`.
    pub state: String,
    /// e.g. `2/3`.
    pub ready: String,
    /// e.g. `1/3 allowed`.
    pub failures: String,
    pub message: String,
}

impl ResourceState {
    /// Replaces what PostgreSQL cannot store (see [`crate::domain::storable`]).
    pub fn make_storable(&mut self) {
        for text in [
            &mut self.kind,
            &mut self.namespace,
            &mut self.name,
            &mut self.state,
            &mut self.ready,
            &mut self.failures,
            &mut self.message,
        ] {
            storable_text(text);
        }
    }
}

/// A `deploys` row as `query_deploys!` decodes it; `From` unwraps its JSON columns into the plain
/// values of a [`Deploy`].
struct DeployRow {
    id: Uuid,
    cluster: String,
    namespace: String,
    create_namespace: bool,
    release: String,
    chart: Json<ChartSource>,
    /// `None` when not read (summaries).
    values: Option<Json<serde_json::Map<String, serde_json::Value>>>,
    has_secret_values: bool,
    secret_values_digest: Option<String>,
    timeout_seconds: i64,
    rollback_on_failure: bool,
    queue_mode: QueueMode,
    /// `None` when not read (summaries).
    tracking: Option<Json<TrackingOverrides>>,
    notify: Json<Vec<NotifyTarget>>,
    labels: Json<BTreeMap<String, String>>,
    requested_by: String,
    status: DeployStatus,
    phase: Option<Phase>,
    revision: Option<i32>,
    rolled_back_to: Option<i32>,
    rollback_target: Option<i32>,
    verdict: Option<Json<Verdict>>,
    cancel_reason: Option<String>,
    cancelled_by: Option<String>,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    last_event_seq: i64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    cancel_requested_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl From<DeployRow> for Deploy {
    fn from(mut row: DeployRow) -> Self {
        Deploy {
            values: row.values.take().map(|json| json.0).unwrap_or_default(),
            tracking: row.tracking.take().map(|json| json.0).unwrap_or_default(),
            summary: DeploySummary::from(row),
        }
    }
}

impl From<DeployRow> for DeploySummary {
    fn from(row: DeployRow) -> Self {
        DeploySummary {
            id: row.id,
            cluster: row.cluster,
            namespace: row.namespace,
            create_namespace: row.create_namespace,
            release: row.release,
            chart: row.chart.0,
            has_secret_values: row.has_secret_values,
            secret_values_digest: row.secret_values_digest,
            timeout_seconds: row.timeout_seconds,
            rollback_on_failure: row.rollback_on_failure,
            queue: row.queue_mode,
            notify: row.notify.0,
            labels: row.labels.0,
            requested_by: row.requested_by,
            status: row.status,
            phase: row.phase,
            revision: row.revision,
            rolled_back_to: row.rolled_back_to,
            rollback_target: row.rollback_target,
            verdict: row.verdict.map(|json| json.0),
            cancel_reason: row.cancel_reason,
            cancelled_by: row.cancelled_by,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            last_event_seq: row.last_event_seq,
            created_at: row.created_at,
            started_at: row.started_at,
            cancel_requested_at: row.cancel_requested_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
        }
    }
}

/// `sqlx::query_as!` of [`DeployRow`]s with every column of `deploys` between `$head` and `$tail`:
/// `query_deploys!("select", "from deploys where id = $1", id)`. One column list for every query
/// that returns deploys; the macro still checks each whole query against the schema.
macro_rules! query_deploys {
    ($head:literal, $tail:literal $($args:tt)*) => {
        query_deploy_rows!(
            r#""values" as "values?: _", tracking as "tracking?: _","#,
            $head,
            $tail
            $($args)*
        )
    };
}

/// [`query_deploys!`] without the request's `values` and `tracking` (up to the body limit each),
/// which summaries leave out: they are not read at all.
macro_rules! query_summaries {
    ($head:literal, $tail:literal $($args:tt)*) => {
        query_deploy_rows!(
            r#"null::jsonb as "values?: _", null::jsonb as "tracking?: _","#,
            $head,
            $tail
            $($args)*
        )
    };
}

/// The column list of [`query_deploys!`] and [`query_summaries!`], `$request` choosing how the
/// request's values and tracking overrides are read.
macro_rules! query_deploy_rows {
    ($request:literal, $head:literal, $tail:literal $($args:tt)*) => {
        sqlx::query_as!(
            DeployRow,
            $head
                + r#" id, cluster, namespace, create_namespace, release, chart as "chart: _", "#
                + $request
                + r#" has_secret_values, secret_values_digest, timeout_seconds,
                     rollback_on_failure, queue_mode as "queue_mode: _",
                     notify as "notify: _", labels as "labels: _", requested_by,
                     status as "status: _", phase as "phase: _", revision, rolled_back_to,
                     rollback_target, verdict as "verdict: _", cancel_reason, cancelled_by,
                     lease_owner, lease_until, last_event_seq, created_at, started_at,
                     cancel_requested_at, finished_at, updated_at "#
                + $tail
            $($args)*
        )
    };
}

/// A validated request about to become a queued deploy.
pub struct CreateDeploy<'a> {
    pub id: Uuid,
    pub deploy: &'a NewDeploy,
    pub requested_by: &'a str,
    pub idempotency: Option<&'a IdempotencyKey>,
    /// The keyed digest of its secret values, when it has some and the server a key.
    pub secret_values_digest: Option<String>,
    /// Its secret values sealed with the server key, stored until the deploy ends.
    pub sealed_secret_values: Option<String>,
}

/// What queueing a deploy came to.
#[derive(Debug, Clone)]
pub enum Queued {
    /// Written: the new deploy (`queued`) and the queued deploys it superseded (now cancelled).
    Created { superseded: Vec<Uuid> },
    /// Its idempotency key was used before; nothing was written.
    KeyUsed(StoredKey),
}

/// Queues a deploy in `tx`, after whatever the caller wrote there, applying its queue mode:
/// `reject` fails while the release has a queued or running deploy, `supersede` cancels the
/// release's queued ones.
pub async fn create(tx: &mut EventTx, new: &CreateDeploy<'_>) -> Result<Queued, StoreError> {
    let deploy = new.deploy;
    let (cluster, namespace, release) = (
        deploy.cluster.as_str(),
        deploy.namespace.as_str(),
        deploy.release.as_str(),
    );
    let mut superseded = Vec::new();
    if deploy.queue != QueueMode::Fifo {
        // Reject and supersede decide on the release's queue: creations for it take turns. A
        // fifo deploy changes nothing for the others and need not wait.
        sqlx::query!(
            "select pg_advisory_xact_lock(hashtextextended($1, 0))",
            format!("{cluster}/{namespace}/{release}"),
        )
        .execute(tx.conn())
        .await?;
        // A request replayed with its key gets its deploy, whatever its release does now.
        if let Some(key) = new.idempotency
            && let Some(earlier) = idempotency::find(tx.conn(), &key.token_id, &key.key).await?
        {
            return Ok(Queued::KeyUsed(earlier));
        }
    }
    match deploy.queue {
        QueueMode::Fifo => {}
        QueueMode::Reject => {
            let blocking = sqlx::query_scalar!(
                "select id from deploys
                 where cluster = $1 and namespace = $2 and release = $3
                   and status in ('queued', 'running', 'cancelling')
                 order by id limit 1",
                cluster,
                namespace,
                release,
            )
            .fetch_optional(tx.conn())
            .await?;
            if let Some(blocking) = blocking {
                return Err(StoreError::QueueRejected { blocking });
            }
        }
        QueueMode::Supersede => {
            let queued = sqlx::query_scalar!(
                "select id from deploys
                 where cluster = $1 and namespace = $2 and release = $3 and status = 'queued'
                 order by id",
                cluster,
                namespace,
                release,
            )
            .fetch_all(tx.conn())
            .await?;
            for older in queued {
                cancel(
                    tx,
                    older,
                    new.requested_by,
                    &format!("superseded by deploy {}", new.id),
                )
                .await?;
                superseded.push(older);
            }
        }
    }
    let origin = tx.origin();
    match insert_queued(tx.conn(), origin, new).await? {
        Inserted::Queued(event) => {
            tx.record(*event);
            Ok(Queued::Created { superseded })
        }
        Inserted::KeyUsed(earlier) => Ok(Queued::KeyUsed(earlier)),
    }
}

/// What queueing one deploy wrote.
pub enum Inserted {
    Queued(Box<PublishedEvent>),
    KeyUsed(StoredKey),
}

/// One deploy to queue, its statement parameters owned: rows submitted together are queued by one
/// statement ([`insert_queued_rows`]).
pub struct QueuedRow {
    id: Uuid,
    release: ReleaseId,
    chart: serde_json::Value,
    values: serde_json::Value,
    secret_values_digest: Option<String>,
    timeout_seconds: i64,
    rollback_on_failure: bool,
    queue: QueueMode,
    tracking: serde_json::Value,
    notify: serde_json::Value,
    labels: serde_json::Value,
    requested_by: String,
    create_namespace: bool,
    has_secret_values: bool,
    key: Option<IdempotencyKey>,
    event: NewEvent,
    sealed_secret_values: Option<String>,
    notice: String,
}

impl QueuedRow {
    pub fn new(origin: Uuid, new: &CreateDeploy<'_>) -> Result<Self, StoreError> {
        let deploy = new.deploy;
        let json = |value: serde_json::Result<serde_json::Value>| {
            value.map_err(|error| StoreError::Corrupt(error.to_string()))
        };
        Ok(Self {
            id: new.id,
            release: ReleaseId::new(
                deploy.cluster.as_str(),
                deploy.namespace.as_str(),
                deploy.release.as_str(),
            ),
            chart: json(serde_json::to_value(&deploy.chart))?,
            values: json(serde_json::to_value(&deploy.values))?,
            secret_values_digest: new.secret_values_digest.clone(),
            timeout_seconds: deploy.timeout.get().as_secs() as i64,
            rollback_on_failure: deploy.rollback_on_failure,
            queue: deploy.queue,
            tracking: json(serde_json::to_value(&deploy.tracking))?,
            notify: json(serde_json::to_value(&deploy.notify))?,
            labels: json(serde_json::to_value(deploy.labels.as_map()))?,
            requested_by: new.requested_by.to_owned(),
            create_namespace: deploy.create_namespace,
            has_secret_values: deploy.secret_values.is_some(),
            key: new.idempotency.cloned(),
            event: NewEvent::new(
                EventType::DeployQueued,
                format!("deploy of {} queued", deploy.release.as_str()),
            )
            .data(serde_json::json!({
                "requested_by": new.requested_by,
                "labels": deploy.labels.as_map(),
            })),
            sealed_secret_values: new.sealed_secret_values.clone(),
            notice: BatchNotice {
                origin,
                deploy_id: new.id,
                first_seq: 1,
                last_seq: 1,
            }
            .payload(),
        })
    }
}

async fn insert_queued(
    conn: &mut PgConnection,
    origin: Uuid,
    new: &CreateDeploy<'_>,
) -> Result<Inserted, StoreError> {
    insert_queued_row(conn, &QueuedRow::new(origin, new)?).await
}

/// Queues one deploy by the statement of [`insert_queued_rows`].
pub async fn insert_queued_row(
    conn: &mut PgConnection,
    row: &QueuedRow,
) -> Result<Inserted, StoreError> {
    insert_queued_rows(conn, std::slice::from_ref(row))
        .await?
        .pop()
        .unwrap_or_else(|| Err(StoreError::Corrupt("a queued deploy got no answer".into())))
}

/// One statement parameter: `value` of every row, in order.
fn each<'a, T>(rows: &'a [QueuedRow], value: impl Fn(&'a QueuedRow) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// The one statement that queues deploys, in the order given: for each, records its idempotency
/// key unless the key was used before (then writes nothing for it and answers with the earlier
/// deploy), inserts the deploy with its `deploy.queued` event (seq 1, ordered in the firehose by
/// this transaction's id, as `deploy_events` orders events) and its sealed secret values, announces
/// the event as `deploy_events` does (NOTIFY with a [`BatchNotice`], the notifications it triggers
/// in the outbox). One round trip for all of them. A key committed by a concurrent request after
/// this statement began, or used by an earlier row of the same statement, is not visible to it:
/// then nothing is written for that row and its answer is [`StoreError::IdempotencyKeyUsed`], for
/// the caller to read the winner's deploy.
pub async fn insert_queued_rows(
    conn: &mut PgConnection,
    rows: &[QueuedRow],
) -> Result<Vec<Result<Inserted, StoreError>>, StoreError> {
    let answers = sqlx::query!(
        r#"with input as (
             select *
             from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                         $7::text[], $8::bigint[], $9::bool[], $10::text[], $11::jsonb[],
                         $12::jsonb[], $13::jsonb[], $14::text[], $15::bool[], $16::bool[],
                         $17::text[], $18::text[], $19::text[], $20::timestamptz[], $21::text[],
                         $22::jsonb[], $23::text[], $24::text[])
                  with ordinality
                  as i(id, cluster, namespace, release, chart, vals, digest, timeout, rollback,
                       queue_mode, tracking, notify, labels, requested_by, create_namespace,
                       has_secret_values, token_id, key, request_sha256, at, message, data,
                       sealed, notice, position)
         ), new_key as (
             insert into idempotency_keys (token_id, key, request_sha256, deploy_id)
             select token_id, key, request_sha256, id from input where token_id is not null
             on conflict (token_id, key) do nothing
             returning deploy_id
         ), deploy as (
             insert into deploys (id, cluster, namespace, release, chart, "values",
                                  secret_values_digest, timeout_seconds, rollback_on_failure,
                                  queue_mode, tracking, notify, labels, requested_by,
                                  create_namespace, has_secret_values, status, last_event_seq,
                                  events_order_xid)
             select id, cluster, namespace, release, chart, vals, digest, timeout, rollback,
                    queue_mode, tracking, notify, labels, requested_by, create_namespace,
                    has_secret_values, 'queued', 1, pg_current_xact_id()::text::bigint
             from input
             where token_id is null or id in (select deploy_id from new_key)
             returning id, cluster, namespace, release, notify, events_order_xid
         ), event as (
             insert into deploy_events (deploy_id, seq, type, at, level, message, data, order_xid)
             select d.id, 1, $25, i.at, 'info', i.message, i.data, d.events_order_xid
             from deploy d join input i on i.id = d.id
             returning deploy_id
         ), secret as (
             insert into deploy_secret_values (deploy_id, sealed)
             select d.id, i.sealed from deploy d join input i on i.id = d.id
             where i.sealed is not null
             returning deploy_id
         ), notified as (
             select pg_notify($26, i.notice) from deploy d join input i on i.id = d.id
         ), outboxed as (
             select rollcall_enqueue_notifications(id, 1, array[$25], cluster, namespace, release,
                                                   notify, $27)
             from deploy
         ), done as (
             select (select count(*) from secret) + (select count(*) from notified)
                    + (select count(*) from outboxed) as notices
         )
         select i.id as "id!",
                exists (select 1 from event e where e.deploy_id = i.id) as "queued!",
                (select events_order_xid from deploy d where d.id = i.id) as "order_xid?",
                earlier.request_sha256 as "earlier_request_sha256?",
                earlier.deploy_id as "earlier_deploy_id?",
                earlier.status as "earlier_status?: DeployStatus",
                done.notices
         from input i
              cross join done
              left join lateral (
                  select k.request_sha256, k.deploy_id, d.status
                  from idempotency_keys k join deploys d on d.id = k.deploy_id
                  where k.token_id = i.token_id and k.key = i.key
                    and i.id not in (select deploy_id from new_key)
              ) as earlier on true
         order by i.position"#,
        &each(rows, |row| row.id),
        &each(rows, |row| row.release.cluster.as_str()) as &[&str],
        &each(rows, |row| row.release.namespace.as_str()) as &[&str],
        &each(rows, |row| row.release.release.as_str()) as &[&str],
        &each(rows, |row| &row.chart) as &[&serde_json::Value],
        &each(rows, |row| &row.values) as &[&serde_json::Value],
        &each(rows, |row| row.secret_values_digest.as_deref()) as &[Option<&str>],
        &each(rows, |row| row.timeout_seconds),
        &each(rows, |row| row.rollback_on_failure),
        &each(rows, |row| row.queue) as &[QueueMode],
        &each(rows, |row| &row.tracking) as &[&serde_json::Value],
        &each(rows, |row| &row.notify) as &[&serde_json::Value],
        &each(rows, |row| &row.labels) as &[&serde_json::Value],
        &each(rows, |row| row.requested_by.as_str()) as &[&str],
        &each(rows, |row| row.create_namespace),
        &each(rows, |row| row.has_secret_values),
        &each(rows, |row| row
            .key
            .as_ref()
            .map(|key| key.token_id.as_str())) as &[Option<&str>],
        &each(rows, |row| row.key.as_ref().map(|key| key.key.as_str())) as &[Option<&str>],
        &each(rows, |row| row
            .key
            .as_ref()
            .map(|key| key.request_sha256.as_str())) as &[Option<&str>],
        &each(rows, |row| row.event.at),
        &each(rows, |row| row.event.message.as_str()) as &[&str],
        &each(rows, |row| &row.event.data) as &[&serde_json::Value],
        &each(rows, |row| row.sealed_secret_values.as_deref()) as &[Option<&str>],
        &each(rows, |row| row.notice.as_str()) as &[&str],
        EventType::DeployQueued.as_str(),
        NOTIFY_CHANNEL,
        OUTBOX_CHANNEL,
    )
    .fetch_all(conn)
    .await?;
    if answers.len() != rows.len() {
        return Err(StoreError::Corrupt(format!(
            "{} deploys queued, {} answers",
            rows.len(),
            answers.len()
        )));
    }
    Ok(rows
        .iter()
        .zip(answers)
        .map(|(row, answer)| {
            if answer.queued {
                return Ok(Inserted::Queued(Box::new(PublishedEvent::new(
                    row.release.clone(),
                    row.event.clone().persisted(row.id, 1),
                    answer.order_xid.unwrap_or_default(),
                ))));
            }
            match (
                answer.earlier_request_sha256,
                answer.earlier_deploy_id,
                answer.earlier_status,
            ) {
                (Some(request_sha256), Some(deploy_id), Some(status)) => {
                    Ok(Inserted::KeyUsed(StoredKey {
                        request_sha256,
                        deploy_id,
                        status,
                    }))
                }
                _ => Err(StoreError::IdempotencyKeyUsed),
            }
        })
        .collect())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Deploy>, StoreError> {
    Ok(query_deploys!("select", "from deploys where id = $1", id)
        .fetch_optional(db)
        .await?
        .map(Deploy::from))
}

async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Deploy, StoreError> {
    query_deploys!("select", "from deploys where id = $1 for update", id)
        .fetch_optional(conn)
        .await?
        .map(Deploy::from)
        .ok_or(StoreError::DeployNotFound(id))
}

/// Cancels a deploy: a queued one at once (`deploy.cancelled`), a running one is marked
/// `cancelling` (`deploy.cancelling`) for its runner to stop; a finished one is a transition error.
/// A deploy cancelled before it ran loses its sealed secret values with it.
pub async fn cancel(
    tx: &mut EventTx,
    id: Uuid,
    by: &str,
    reason: &str,
) -> Result<Deploy, StoreError> {
    let current = lock(tx.conn(), id).await?;
    let next = current.status.cancel()?;
    sqlx::query!(
        "update deploys set status = $2, cancel_reason = $3, cancelled_by = $4,
                cancel_requested_at = now(),
                finished_at = case when $2 = 'cancelled' then now() else finished_at end
         where id = $1",
        id,
        next as DeployStatus,
        reason,
        by,
    )
    .execute(tx.conn())
    .await?;
    if next.is_terminal() {
        deploy_secret_values::delete(tx.conn(), id).await?;
    }
    let (kind, message) = match next {
        DeployStatus::Cancelled => (
            EventType::DeployCancelled,
            format!("cancelled by {by}: {reason}"),
        ),
        _ => (
            EventType::DeployCancelling,
            format!("cancel requested by {by}: {reason}"),
        ),
    };
    let event = NewEvent::new(kind, message)
        .level(Level::Warning)
        .data(serde_json::json!({ "reason": reason, "by": by }));
    tx.append(id, vec![event]).await?;
    lock(tx.conn(), id).await
}

/// queued → running for the worker `owner`, holding a lease until `lease_until`. Fails with
/// [`StoreError::ReleaseBusy`] while another deploy of the release is active.
pub async fn start(
    tx: &mut EventTx,
    id: Uuid,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Deploy, StoreError> {
    let current = lock(tx.conn(), id).await?;
    let next = current.status.start()?;
    sqlx::query!(
        "update deploys set status = $2, started_at = now(), lease_owner = $3, lease_until = $4
         where id = $1",
        id,
        next as DeployStatus,
        owner,
        lease_until,
    )
    .execute(tx.conn())
    .await
    .map_err(|error| {
        on_constraint(error, "deploys_active_release", || {
            StoreError::ReleaseBusy {
                release: format!(
                    "{}/{}/{}",
                    current.cluster, current.namespace, current.release
                ),
            }
        })
    })?;
    tx.append(
        id,
        vec![
            NewEvent::new(EventType::DeployStarted, format!("started by {owner}"))
                .data(serde_json::json!({ "owner": owner })),
        ],
    )
    .await?;
    lock(tx.conn(), id).await
}

/// Claims the oldest queued deploy that may run now (its release has no active deploy and no older
/// queued one) and starts it for `owner`. Concurrent workers skip each other's rows.
pub async fn claim_next(
    tx: &mut EventTx,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<Deploy>, StoreError> {
    let next = sqlx::query_scalar!(
        "select d.id from deploys d
         where d.status = 'queued'
           and not exists (
               select 1 from deploys other
               where other.cluster = d.cluster and other.namespace = d.namespace
                 and other.release = d.release
                 and (other.status in ('running', 'cancelling')
                      or (other.status = 'queued' and other.id < d.id)))
         order by d.id
         limit 1
         for update skip locked",
    )
    .fetch_optional(tx.conn())
    .await?;
    match next {
        Some(id) => Ok(Some(start(tx, id, owner, lease_until).await?)),
        None => Ok(None),
    }
}

/// Moves a running deploy to another phase, with its `phase` event.
pub async fn set_phase(tx: &mut EventTx, id: Uuid, phase: Phase) -> Result<Deploy, StoreError> {
    let current = lock(tx.conn(), id).await?;
    if !matches!(
        current.status,
        DeployStatus::Running | DeployStatus::Cancelling
    ) {
        return Err(crate::domain::deploy::TransitionError {
            from: current.status,
            action: "change the phase of",
        }
        .into());
    }
    sqlx::query!(
        "update deploys set phase = $2 where id = $1",
        id,
        phase as Phase,
    )
    .execute(tx.conn())
    .await?;
    tx.append(
        id,
        vec![
            NewEvent::new(EventType::Phase, phase.as_str())
                .data(serde_json::json!({ "phase": phase.as_str() })),
        ],
    )
    .await?;
    lock(tx.conn(), id).await
}

/// How a running deploy ended, as the runner reports it.
#[derive(Debug, Clone)]
pub struct Finish {
    pub outcome: Outcome,
    pub verdict: Option<Verdict>,
    pub revision: Option<i32>,
    pub rolled_back_to: Option<i32>,
}

/// running/cancelling → succeeded/failed/cancelled with the terminal event, which must be the
/// deploy's last (streams end after it): emit `report` before calling this. Its sealed secret
/// values are deleted with it.
pub async fn finish(tx: &mut EventTx, id: Uuid, mut finish: Finish) -> Result<Deploy, StoreError> {
    if let Some(verdict) = &mut finish.verdict {
        verdict.make_storable();
    }
    let current = lock(tx.conn(), id).await?;
    let next = current.status.finish(finish.outcome)?;
    sqlx::query!(
        "update deploys set status = $2, verdict = $3, revision = coalesce($4, revision),
                rolled_back_to = coalesce($5, rolled_back_to), finished_at = now(),
                lease_owner = null, lease_until = null
         where id = $1",
        id,
        next as DeployStatus,
        finish.verdict.as_ref().map(Json) as _,
        finish.revision,
        finish.rolled_back_to,
    )
    .execute(tx.conn())
    .await?;
    deploy_secret_values::delete(tx.conn(), id).await?;
    let (kind, level) = match finish.outcome {
        Outcome::Succeeded => (EventType::DeploySucceeded, Level::Info),
        Outcome::Failed => (EventType::DeployFailed, Level::Error),
        Outcome::Cancelled => (EventType::DeployCancelled, Level::Warning),
    };
    let message = finish.verdict.as_ref().map_or_else(
        || next.as_str().to_owned(),
        |verdict| verdict.message.clone(),
    );
    let event = NewEvent::new(kind, message)
        .level(level)
        .data(serde_json::json!({ "verdict": finish.verdict, "revision": finish.revision }));
    tx.append(id, vec![event]).await?;
    lock(tx.conn(), id).await
}

/// Extends `owner`'s lease and returns the deploy's status (`cancelling` once a cancel was asked
/// for); `None` when `owner` no longer holds the lease.
pub async fn renew_lease(
    pool: &PgPool,
    id: Uuid,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<DeployStatus>, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"update deploys set lease_until = $3
           where id = $1 and lease_owner = $2 and status in ('running', 'cancelling')
           returning status as "status: DeployStatus""#,
        id,
        owner,
        lease_until,
    )
    .fetch_optional(pool)
    .await?)
}

/// Gives the lease back at once (graceful shutdown), so that another process resumes the deploy
/// without waiting for the lease to run out.
pub async fn release_lease(pool: &PgPool, id: Uuid, owner: &str) -> Result<(), StoreError> {
    sqlx::query!(
        "update deploys set lease_until = now()
         where id = $1 and lease_owner = $2 and status in ('running', 'cancelling')",
        id,
        owner,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes over the active deploy whose lease ran out longest ago, recording `deploy.recovered`;
/// concurrent processes skip each other's candidates. `executing`: deploys the caller still runs
/// (their lease ran out while the database was away), which are not taken over.
pub async fn take_over_expired(
    tx: &mut EventTx,
    owner: &str,
    lease_until: DateTime<Utc>,
    executing: &[Uuid],
) -> Result<Option<Deploy>, StoreError> {
    let expired = sqlx::query!(
        "select id, lease_owner from deploys
         where status in ('running', 'cancelling') and (lease_until is null or lease_until < now())
               and id <> all($1)
         order by lease_until nulls first
         limit 1
         for update skip locked",
        executing,
    )
    .fetch_optional(tx.conn())
    .await?;
    let Some(expired) = expired else {
        return Ok(None);
    };
    let id = expired.id;
    sqlx::query!(
        "update deploys set lease_owner = $2, lease_until = $3 where id = $1",
        id,
        owner,
        lease_until,
    )
    .execute(tx.conn())
    .await?;
    let previous = expired.lease_owner.unwrap_or_else(|| "nobody".to_owned());
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
    get(tx.conn(), id)
        .await?
        .map(Some)
        .ok_or(StoreError::DeployNotFound(id))
}

/// The revision helm created for this deploy, as soon as it is known.
pub async fn set_revision(pool: &PgPool, id: Uuid, revision: i32) -> Result<(), StoreError> {
    sqlx::query!(
        "update deploys set revision = $2 where id = $1",
        id,
        revision,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The failure a deploy is about to roll back from, recorded with its `rolling_back` phase so that
/// a successor ends the deploy with it.
pub async fn set_failure(tx: &mut EventTx, id: Uuid, verdict: &Verdict) -> Result<(), StoreError> {
    let mut verdict = verdict.clone();
    verdict.make_storable();
    sqlx::query!(
        "update deploys set verdict = $2 where id = $1",
        id,
        Json(&verdict) as _,
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The revision a rollback returns to, recorded before helm rollback runs.
pub async fn set_rollback_target(pool: &PgPool, id: Uuid, target: i32) -> Result<(), StoreError> {
    sqlx::query!(
        "update deploys set rollback_target = $2 where id = $1",
        id,
        target,
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn upsert_resource(
    db: impl PgExecutor<'_>,
    id: Uuid,
    resource: &ResourceState,
) -> Result<(), StoreError> {
    let mut resource = resource.clone();
    resource.make_storable();
    sqlx::query!(
        "insert into deploy_resources (deploy_id, kind, namespace, name, state, ready, failures, message)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (deploy_id, kind, namespace, name) do update
         set state = excluded.state, ready = excluded.ready, failures = excluded.failures,
             message = excluded.message, updated_at = now()",
        id,
        resource.kind,
        resource.namespace,
        resource.name,
        resource.state,
        resource.ready,
        resource.failures,
        resource.message,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn resources(pool: &PgPool, id: Uuid) -> Result<Vec<ResourceState>, StoreError> {
    Ok(sqlx::query_as!(
        ResourceState,
        "select kind, namespace, name, state, ready, failures, message
         from deploy_resources where deploy_id = $1 order by kind, namespace, name",
        id,
    )
    .fetch_all(pool)
    .await?)
}

/// Filters of `GET /v1/deploys`; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct DeployFilter {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub release: Option<String>,
    pub status: Option<DeployStatus>,
    pub labels: BTreeMap<String, String>,
}

/// Deploys matching the filter within `targets`, newest first, strictly older than `before`.
pub async fn list(
    pool: &PgPool,
    filter: &DeployFilter,
    targets: &LikeTargets,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeploySummary>, StoreError> {
    let rows = query_summaries!(
        "select",
        "from deploys d
         where ($1::text is null or d.cluster = $1)
           and ($2::text is null or d.namespace = $2)
           and ($3::text is null or d.release = $3)
           and ($4::text is null or d.status = $4)
           and d.labels @> $5
           and ($6::uuid is null or d.id < $6)
           and exists (select 1 from unnest($7::text[], $8::text[], $9::text[]) as t(c, n, r)
                       where d.cluster like t.c and d.namespace like t.n and d.release like t.r)
         order by d.id desc
         limit $10",
        filter.cluster.as_deref(),
        filter.namespace.as_deref(),
        filter.release.as_deref(),
        filter.status as Option<DeployStatus>,
        Json(&filter.labels) as _,
        before,
        &targets.clusters,
        &targets.namespaces,
        &targets.releases,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DeploySummary::from).collect())
}

/// The latest deploy of every release within `targets`.
pub async fn latest_per_release(
    pool: &PgPool,
    filter: &DeployFilter,
    targets: &LikeTargets,
) -> Result<Vec<DeploySummary>, StoreError> {
    let rows = query_summaries!(
        "select distinct on (d.cluster, d.namespace, d.release)",
        "from deploys d
         where ($1::text is null or d.cluster = $1)
           and ($2::text is null or d.namespace = $2)
           and exists (select 1 from unnest($3::text[], $4::text[], $5::text[]) as t(c, n, r)
                       where d.cluster like t.c and d.namespace like t.n and d.release like t.r)
         order by d.cluster, d.namespace, d.release, d.id desc",
        filter.cluster.as_deref(),
        filter.namespace.as_deref(),
        &targets.clusters,
        &targets.namespaces,
        &targets.releases,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DeploySummary::from).collect())
}

/// Deploys of one release, newest first.
pub async fn release_history(
    pool: &PgPool,
    cluster: &str,
    namespace: &str,
    release: &str,
    limit: i64,
) -> Result<Vec<DeploySummary>, StoreError> {
    let rows = query_summaries!(
        "select",
        "from deploys where cluster = $1 and namespace = $2 and release = $3
         order by id desc limit $4",
        cluster,
        namespace,
        release,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DeploySummary::from).collect())
}

/// Deploys per status, those that did not succeed per verdict reason, the queue and the running
/// deploys per phase, for metrics.
pub async fn counts(pool: &PgPool) -> Result<DeployCounts, StoreError> {
    let by_status =
        sqlx::query!(r#"select status, count(*) as "count!" from deploys group by status"#)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| (row.status, row.count))
            .collect();
    let by_verdict = sqlx::query!(
        r#"select verdict->'reason' as "reason!: Json<VerdictReason>", count(*) as "count!"
           from deploys where verdict is not null group by 1"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| (row.reason.0, row.count))
    .collect();
    let queue = sqlx::query!(
        r#"select count(*) as "queued!",
                  coalesce(extract(epoch from now() - min(created_at))::float8, 0) as "oldest_seconds!"
           from deploys where status = 'queued'"#
    )
    .fetch_one(pool)
    .await?;
    let running_by_phase = sqlx::query!(
        r#"select phase as "phase!: Phase", count(*) as "count!"
           from deploys where status in ('running', 'cancelling') and phase is not null
           group by phase"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| (row.phase, row.count))
    .collect();
    Ok(DeployCounts {
        by_status,
        by_verdict,
        queued: queue.queued,
        oldest_queued_seconds: queue.oldest_seconds,
        running_by_phase,
    })
}
