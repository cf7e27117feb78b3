//! Event delivery: a transaction commits events, *then* they are published to live subscribers of
//! this instance (a broadcast per deploy, and one of every event) while PostgreSQL NOTIFY (sent
//! inside the transaction, so delivered only on commit) tells the other instances to read and
//! publish them too. The firehose reads the table itself, in an order a cursor can resume from
//! (`firehose`); commits and notifications wake it.

pub mod deploy_channels;
pub mod firehose;
pub mod listener;
pub mod writer;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use deploy_channels::DeployFollower;
pub use firehose::{FirehoseFollower, FollowError};
pub use writer::{EventWriter, WriterError};

use deploy_channels::DeployChannels;
use firehose::Firehose;

use crate::domain::event::NewEvent;
use crate::store::StoreError;
use crate::store::deploy_events::{Committed, EventTx, PublishedEvent, append_committed};
use crate::telemetry::Metrics;

/// Live messages; a receiver that lags or sees `Resync` re-reads from the database.
#[derive(Debug, Clone)]
pub enum BusMessage {
    Event(Arc<PublishedEvent>),
    /// Notifications may have been missed (the LISTEN connection was re-established).
    Resync,
}

/// Writes and delivers events. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    pool: PgPool,
    /// Every event, for the runner (which deploys may start).
    bus: broadcast::Sender<BusMessage>,
    /// Each followed deploy's events, for its SSE streams.
    deploys: DeployChannels,
    firehose: Firehose,
    /// Identifies this instance in NOTIFY payloads, so it skips its own batches.
    origin: Uuid,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
}

impl EventHub {
    /// `bus_capacity` bounds the in-process broadcasts (a deploy's at most
    /// [`deploy_channels::DEPLOY_CHANNEL_CAPACITY`]); a slower subscriber lags and catches up from
    /// the database. Starts the firehose's tail on `tasks`.
    pub fn new(
        pool: PgPool,
        bus_capacity: usize,
        tasks: TaskTracker,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Self {
        let firehose = Firehose::new(bus_capacity);
        tasks.spawn(firehose.clone().tail(pool.clone(), shutdown.clone()));
        Self {
            pool,
            bus: broadcast::channel(bus_capacity.max(1)).0,
            deploys: DeployChannels::new(bus_capacity),
            firehose,
            origin: Uuid::new_v4(),
            tasks,
            shutdown,
            metrics,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction whose appended events are announced to other instances on commit.
    pub async fn begin(&self) -> Result<EventTx, StoreError> {
        EventTx::begin(&self.pool, self.origin).await
    }

    /// Commits, then publishes the transaction's events to local subscribers.
    pub async fn commit(&self, tx: EventTx) -> Result<(), StoreError> {
        let committed = tx.commit().await?;
        self.publish(committed);
        Ok(())
    }

    /// Appends a batch of a deploy's events on its own (one statement, one round trip), for the
    /// caller to [`publish`](Self::publish). `events` are taken once committed and left for the
    /// next attempt on an error; appending the same `batch` again after an error whose commit may
    /// have happened (a lost reply) appends nothing twice.
    pub async fn append(
        &self,
        deploy_id: Uuid,
        batch: Uuid,
        events: &mut Vec<NewEvent>,
    ) -> Result<Committed, StoreError> {
        append_committed(&self.pool, self.origin, deploy_id, batch, events).await
    }

    /// This instance in NOTIFY payloads: a statement that writes events itself names it.
    pub fn origin(&self) -> Uuid {
        self.origin
    }

    /// Publishes committed events to local subscribers (other instances hear of them by NOTIFY).
    pub fn publish(&self, committed: Committed) {
        self.metrics.events_written(committed.0.len() as u64);
        self.deliver(committed.0);
    }

    /// Hands committed events (this instance's or another's) to the live subscribers here.
    fn deliver(&self, events: Vec<PublishedEvent>) {
        if events.is_empty() {
            return;
        }
        for event in events {
            let event = Arc::new(event);
            self.deploys
                .send(event.event.deploy_id, BusMessage::Event(event.clone()));
            // No receivers is not an error: nobody is watching right now.
            let _ = self.bus.send(BusMessage::Event(event));
        }
        self.firehose.wake();
    }

    /// Notifications may have been missed: every subscriber re-reads from the database.
    fn resync(&self) {
        let _ = self.bus.send(BusMessage::Resync);
        self.deploys.resync();
        self.firehose.wake();
    }

    /// Every event, live (the runner's wake-ups).
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.bus.subscribe()
    }

    /// One deploy's events, live.
    pub fn follow_deploy(&self, deploy_id: Uuid) -> DeployFollower {
        self.deploys.subscribe(deploy_id)
    }

    /// The firehose, from where [`FirehoseFollower::start`] says.
    pub fn follow_firehose(&self) -> FirehoseFollower {
        self.firehose
            .follow(self.pool.clone(), self.metrics.clone())
    }
}
