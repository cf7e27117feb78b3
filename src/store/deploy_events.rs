//! `deploy_events`: gapless `seq` per deploy, assigned under the deploy row's lock.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use super::notifications::OUTBOX_CHANNEL;
use crate::domain::event::{Event, EventType, Level, NewEvent, ResourceRef};
use crate::domain::firehose::FirehosePosition;
use crate::domain::release::ReleaseId;

/// The PostgreSQL channel on which committed event batches are announced to other instances.
pub const NOTIFY_CHANNEL: &str = "rollcall_events";

/// A persisted event together with the release it belongs to, as live subscribers receive it.
#[derive(Debug, Clone)]
pub struct PublishedEvent {
    pub release: ReleaseId,
    pub event: Event,
    /// Orders the event in the firehose (see [`FirehosePosition`]).
    pub order_xid: i64,
    /// The event as JSON: serialized by its first reader, once for every subscriber, and never
    /// on the writer's path when nobody is watching.
    json: OnceLock<String>,
}

impl PartialEq for PublishedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.release == other.release
            && self.event == other.event
            && self.order_xid == other.order_xid
    }
}

impl PublishedEvent {
    pub fn new(release: ReleaseId, event: Event, order_xid: i64) -> Self {
        Self {
            release,
            event,
            order_xid,
            json: OnceLock::new(),
        }
    }

    /// The event as JSON.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.event).unwrap_or_default())
    }

    /// Where the event stands in the firehose.
    pub fn position(&self) -> FirehosePosition {
        FirehosePosition {
            order_xid: self.order_xid,
            deploy_id: self.event.deploy_id,
            seq: self.event.seq,
        }
    }
}

/// A notification payload: `<origin instance>:<deploy>:<first seq>:<last seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNotice {
    pub origin: Uuid,
    pub deploy_id: Uuid,
    pub first_seq: i64,
    pub last_seq: i64,
}

impl BatchNotice {
    /// The NOTIFY payload.
    pub fn payload(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.origin, self.deploy_id, self.first_seq, self.last_seq
        )
    }

    pub fn decode(payload: &str) -> Option<Self> {
        let mut parts = payload.split(':');
        let notice = Self {
            origin: parts.next()?.parse().ok()?,
            deploy_id: parts.next()?.parse().ok()?,
            first_seq: parts.next()?.parse().ok()?,
            last_seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(notice)
    }
}

/// A transaction that may append events. Its events are announced with NOTIFY, which PostgreSQL
/// delivers only if the transaction commits; the caller publishes the [`Committed`] events locally.
pub struct EventTx {
    tx: Transaction<'static, Postgres>,
    origin: Uuid,
    appended: Vec<PublishedEvent>,
}

/// Events durably committed and not yet published to local subscribers.
#[must_use = "committed events must be published to live subscribers"]
#[derive(Debug, Default)]
pub struct Committed(pub Vec<PublishedEvent>);

impl EventTx {
    pub async fn begin(pool: &PgPool, origin: Uuid) -> Result<Self, StoreError> {
        Ok(Self {
            tx: pool.begin().await?,
            origin,
            appended: Vec::new(),
        })
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// The instance named in the NOTIFY of events written in this transaction.
    pub fn origin(&self) -> Uuid {
        self.origin
    }

    /// Events a statement of the caller's wrote in this transaction (announced by that statement
    /// with [`BatchNotice::payload`]), to be published once it commits.
    pub fn record(&mut self, event: PublishedEvent) {
        self.appended.push(event);
    }

    /// Appends events to a deploy with the next seqs. Concurrent appenders to one deploy serialize
    /// on its row lock, so seqs stay gapless and a rolled back transaction leaves no hole.
    pub async fn append(
        &mut self,
        deploy_id: Uuid,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        events.iter_mut().for_each(NewEvent::make_storable);
        let landing = insert(&mut self.tx, self.origin, deploy_id, None, &events).await?;
        let appended = landing.publishable(deploy_id, events);
        let persisted = appended.iter().map(|event| event.event.clone()).collect();
        self.appended.extend(appended);
        Ok(persisted)
    }

    pub async fn commit(self) -> Result<Committed, StoreError> {
        self.tx.commit().await?;
        Ok(Committed(self.appended))
    }
}

/// Appends a batch of a deploy's events in a statement of its own, which commits it: as atomic as
/// in a transaction (a failed statement leaves nothing, seqs stay gapless) in one round trip instead
/// of three. Its NOTIFY is sent on that commit; the caller publishes the [`Committed`] events locally.
///
/// `events` are taken when the batch is committed and left in place when it fails, for the next
/// attempt. `batch` names the batch for retries: when its statement committed but the reply was
/// lost, the same call again appends nothing and returns the events as they were committed then.
pub async fn append_committed(
    pool: &PgPool,
    origin: Uuid,
    deploy_id: Uuid,
    batch: Uuid,
    events: &mut Vec<NewEvent>,
) -> Result<Committed, StoreError> {
    if events.is_empty() {
        return Ok(Committed::default());
    }
    events.iter_mut().for_each(NewEvent::make_storable);
    let mut conn = pool.acquire().await?;
    match insert(&mut conn, origin, deploy_id, Some(batch), events).await {
        Ok(landing) => Ok(Committed(
            landing.publishable(deploy_id, std::mem::take(events)),
        )),
        Err(StoreError::DeployNotFound(_)) => {
            let committed = committed_before(&mut conn, deploy_id, batch, events.len() as i64)
                .await?
                .ok_or(StoreError::DeployNotFound(deploy_id))?;
            events.clear();
            Ok(Committed(committed))
        }
        Err(error) => Err(error),
    }
}

/// The events of `batch` when it is the deploy's last batch, already committed.
async fn committed_before(
    conn: &mut PgConnection,
    deploy_id: Uuid,
    batch: Uuid,
    count: i64,
) -> Result<Option<Vec<PublishedEvent>>, StoreError> {
    let Some(deploy) = sqlx::query!(
        r#"select last_event_batch_seq as "last_seq!", events_order_xid, cluster, namespace,
                  release
           from deploys where id = $1 and last_event_batch = $2"#,
        deploy_id,
        batch,
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let release = ReleaseId::new(deploy.cluster, deploy.namespace, deploy.release);
    let events = list_after(&mut *conn, deploy_id, deploy.last_seq - count, count).await?;
    Ok(Some(
        events
            .into_iter()
            .map(|event| PublishedEvent::new(release.clone(), event, deploy.events_order_xid))
            .collect(),
    ))
}

/// The one statement that appends events: claims the seqs under the deploy row's lock together
/// with the batch's firehose order (the transaction's id, never below the deploy's previous one:
/// see the migration `20261208300000_firehose_order.sql`), inserts the batch, queues the NOTIFY
/// (`<origin>:<deploy>:<first>:<last>`, see `BatchNotice`) for commit, and
/// writes the outbox rows of the notifications the events trigger (the deploy's notify entries and
/// the enabled subscriptions that match: `rollcall_enqueue_notifications` in the migrations), so
/// that an event and its notifications commit together or not at all; their workers are woken on
/// [`OUTBOX_CHANNEL`]. A `batch` that is already the deploy's last one claims no row: nothing is
/// appended, and the deploy reads as not found.
async fn insert(
    conn: &mut PgConnection,
    origin: Uuid,
    deploy_id: Uuid,
    batch: Option<Uuid>,
    events: &[NewEvent],
) -> Result<Landing, StoreError> {
    let count = events.len() as i64;
    let claimed = sqlx::query!(
        r#"with claimed as (
             update deploys set last_event_seq = last_event_seq + $2, updated_at = now(),
                    events_order_xid = greatest(events_order_xid,
                                                pg_current_xact_id()::text::bigint),
                    last_event_batch = coalesce($12, last_event_batch),
                    last_event_batch_seq = case when $12::uuid is null then last_event_batch_seq
                                                else last_event_seq + $2 end
             where id = $1 and ($12::uuid is null or last_event_batch is distinct from $12)
             returning last_event_seq, events_order_xid, cluster, namespace, release, notify
         ), inserted as (
             insert into deploy_events (deploy_id, seq, type, at, level, resource, message, data,
                                        order_xid)
             select $1, claimed.last_event_seq - $2 + batch.position, batch.type, batch.at,
                    batch.level, batch.resource, batch.message, batch.data,
                    claimed.events_order_xid
             from claimed,
                  unnest($3::text[], $4::timestamptz[], $5::text[], $6::jsonb[], $7::text[], $8::jsonb[])
                      with ordinality as batch(type, at, level, resource, message, data, position)
         ), notified as (
             select pg_notify($9, $10 || ':' || $1::text || ':' || (last_event_seq - $2 + 1)::text
                                  || ':' || last_event_seq::text)
             from claimed
         ), outboxed as (
             select rollcall_enqueue_notifications($1, last_event_seq - $2 + 1, $3::text[],
                                                   cluster, namespace, release, notify, $11)
             from claimed
         )
         select last_event_seq as "last_event_seq!", events_order_xid as "order_xid!",
                cluster as "cluster!",
                namespace as "namespace!", release as "release!",
                (select count(*) from notified) + (select count(*) from outboxed) as notices
         from claimed"#,
        deploy_id,
        count,
        &events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| e.at).collect::<Vec<_>>(),
        &events.iter().map(|e| e.level.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| e.resource.as_ref().map(Json)).collect::<Vec<_>>()
            as &[Option<Json<&ResourceRef>>],
        &events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| &e.data).collect::<Vec<_>>() as &[&serde_json::Value],
        NOTIFY_CHANNEL,
        origin.to_string(),
        OUTBOX_CHANNEL,
        batch,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::DeployNotFound(deploy_id))?;
    Ok(Landing {
        release: ReleaseId::new(claimed.cluster, claimed.namespace, claimed.release),
        last_seq: claimed.last_event_seq,
        order_xid: claimed.order_xid,
    })
}

/// Where an appended batch landed: its release, its last seq and its firehose order.
struct Landing {
    release: ReleaseId,
    last_seq: i64,
    order_xid: i64,
}

impl Landing {
    /// The batch's events as persisted, ready to publish.
    fn publishable(self, deploy_id: Uuid, events: Vec<NewEvent>) -> Vec<PublishedEvent> {
        let first_seq = self.last_seq - events.len() as i64 + 1;
        events
            .into_iter()
            .zip(first_seq..)
            .map(|(new, seq)| {
                PublishedEvent::new(
                    self.release.clone(),
                    new.persisted(deploy_id, seq),
                    self.order_xid,
                )
            })
            .collect()
    }
}

/// Events of a deploy after `after_seq`, oldest first.
pub async fn list_after(
    db: impl PgExecutor<'_>,
    deploy_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query_as!(
        EventRow,
        r#"select deploy_id, seq, type as kind, at, level, resource as "resource: _", message, data
           from deploy_events
           where deploy_id = $1 and seq > $2
           order by seq
           limit $3"#,
        deploy_id,
        after_seq,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| Ok(Event::try_from(row)?))
        .collect()
}

/// The latest event of type `kind` at `level` of a deploy up to `seq` (e.g. the failure's `report`
/// before a verdict, which a rollback's own report may follow).
pub async fn latest_of_type(
    db: impl PgExecutor<'_>,
    deploy_id: Uuid,
    kind: EventType,
    level: Level,
    up_to_seq: i64,
) -> Result<Option<Event>, StoreError> {
    let row = sqlx::query_as!(
        EventRow,
        r#"select deploy_id, seq, type as kind, at, level, resource as "resource: _", message, data
           from deploy_events where deploy_id = $1 and type = $2 and level = $3 and seq <= $4
           order by seq desc limit 1"#,
        deploy_id,
        kind.as_str(),
        level.as_str(),
        up_to_seq,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Event::try_from).transpose()?)
}

/// A committed batch announced by another instance, with its release, for local publishing.
pub async fn read_batch(
    pool: &PgPool,
    notice: &BatchNotice,
) -> Result<Vec<PublishedEvent>, StoreError> {
    let rows = sqlx::query_as!(
        PublishedRow,
        r#"select e.deploy_id, e.seq, e.type as kind, e.at, e.level,
                  e.resource as "resource: Json<ResourceRef>", e.message, e.data, e.order_xid,
                  d.cluster, d.namespace, d.release
           from deploy_events e join deploys d on d.id = e.deploy_id
           where e.deploy_id = $1 and e.seq between $2 and $3
           order by e.seq"#,
        notice.deploy_id,
        notice.first_seq,
        notice.last_seq,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(PublishedEvent::try_from).collect()
}

/// The firehose's visibility fence: every transaction with a smaller id has ended, so every event
/// ordered below it is committed and visible (or never will be), and nothing can still appear
/// there. It only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// Events with `order_xid` below this are final.
    pub below: i64,
    /// Committed events wait above the fence for a transaction still in flight to end.
    pub held_back: bool,
}

impl Fence {
    /// After every final event, before every event that is not.
    pub fn position(self) -> FirehosePosition {
        FirehosePosition::before(self.below)
    }
}

/// The fence now: the oldest transaction id still in flight on the server.
pub async fn firehose_fence(pool: &PgPool) -> Result<Fence, StoreError> {
    let fence = sqlx::query!(
        r#"with fence as (
             select pg_snapshot_xmin(pg_current_snapshot())::text::bigint as below
           )
           select below as "below!",
                  exists (select 1 from deploy_events where order_xid >= below) as "held_back!"
           from fence"#
    )
    .fetch_one(pool)
    .await?;
    Ok(Fence {
        below: fence.below,
        held_back: fence.held_back,
    })
}

/// Up to `limit` events after `after` and below the fence `below` (one read earlier: the fence
/// only moves forward), in firehose order, with their releases.
pub async fn firehose_page(
    pool: &PgPool,
    after: FirehosePosition,
    below: i64,
    limit: i64,
) -> Result<Vec<PublishedEvent>, StoreError> {
    let rows = sqlx::query_as!(
        PublishedRow,
        r#"select e.deploy_id, e.seq, e.type as kind, e.at, e.level,
                  e.resource as "resource: Json<ResourceRef>", e.message, e.data, e.order_xid,
                  d.cluster, d.namespace, d.release
           from deploy_events e join deploys d on d.id = e.deploy_id
           where (e.order_xid, e.deploy_id, e.seq) > ($1, $2, $3) and e.order_xid < $4
           order by e.order_xid, e.deploy_id, e.seq
           limit $5"#,
        after.order_xid,
        after.deploy_id,
        after.seq,
        below,
        limit,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(PublishedEvent::try_from).collect()
}

/// A `deploy_events` row joined with its deploy's release.
struct PublishedRow {
    deploy_id: Uuid,
    seq: i64,
    kind: String,
    at: DateTime<Utc>,
    level: String,
    resource: Option<Json<ResourceRef>>,
    message: String,
    data: serde_json::Value,
    order_xid: i64,
    cluster: String,
    namespace: String,
    release: String,
}

impl TryFrom<PublishedRow> for PublishedEvent {
    type Error = StoreError;

    fn try_from(row: PublishedRow) -> Result<Self, StoreError> {
        let event = EventRow {
            deploy_id: row.deploy_id,
            seq: row.seq,
            kind: row.kind,
            at: row.at,
            level: row.level,
            resource: row.resource,
            message: row.message,
            data: row.data,
        };
        Ok(PublishedEvent::new(
            ReleaseId::new(row.cluster, row.namespace, row.release),
            Event::try_from(event)?,
            row.order_xid,
        ))
    }
}

/// Total events persisted, for metrics.
pub async fn count(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar!(r#"select count(*) as "count!" from deploy_events"#)
            .fetch_one(pool)
            .await?,
    )
}

/// A `deploy_events` row. Its type and level are text checked against the closed vocabularies of
/// [`EventType`] and [`Level`] here: those enums belong to the event vocabulary shared with the
/// tracker and the wire, whose names they parse.
struct EventRow {
    deploy_id: Uuid,
    seq: i64,
    kind: String,
    at: DateTime<Utc>,
    level: String,
    resource: Option<Json<ResourceRef>>,
    message: String,
    data: serde_json::Value,
}

impl TryFrom<EventRow> for Event {
    type Error = sqlx::Error;

    fn try_from(row: EventRow) -> Result<Self, sqlx::Error> {
        Ok(Event {
            deploy_id: row.deploy_id,
            seq: row.seq,
            kind: parse_column("type", &row.kind, EventType::parse)?,
            at: row.at,
            level: parse_column("level", &row.level, Level::parse)?,
            resource: row.resource.map(|json| json.0),
            message: row.message,
            data: row.data,
        })
    }
}

/// A text column's value as a domain enum; an unknown value fails like a failed column decode.
fn parse_column<T>(
    column: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    parse(text).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unknown value {text:?}").into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_decode_and_reject_garbage() {
        let notice = BatchNotice {
            origin: Uuid::new_v4(),
            deploy_id: Uuid::new_v4(),
            first_seq: 3,
            last_seq: 9,
        };
        let encoded = format!("{}:{}:3:9", notice.origin, notice.deploy_id);
        assert_eq!(notice.payload(), encoded);
        assert_eq!(BatchNotice::decode(&encoded), Some(notice));
        assert_eq!(BatchNotice::decode("x:y"), None);
        assert_eq!(BatchNotice::decode(&format!("{encoded}:extra")), None);
    }
}
