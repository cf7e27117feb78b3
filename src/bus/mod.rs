//! Event delivery: a transaction commits events, *then* they are published to live subscribers of
//! this instance (a broadcast) while PostgreSQL NOTIFY (sent inside the transaction, so delivered
//! only on commit) tells the other instances to read and publish them too.

pub mod listener;
pub mod writer;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use writer::{EventWriter, WriterError};

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
    bus: broadcast::Sender<BusMessage>,
    /// Identifies this instance in NOTIFY payloads, so it skips its own batches.
    origin: Uuid,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
}

impl EventHub {
    /// `bus_capacity` bounds the in-process broadcast; a slower subscriber lags and catches up
    /// from the database.
    pub fn new(
        pool: PgPool,
        bus_capacity: usize,
        tasks: TaskTracker,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pool,
            bus: broadcast::channel(bus_capacity.max(1)).0,
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

    /// Appends a batch of a deploy's events on its own (one statement, one round trip), then
    /// publishes it to local subscribers. Appending the same `batch` again after an error whose
    /// commit may have happened (a lost reply) appends nothing twice.
    pub async fn append(
        &self,
        deploy_id: Uuid,
        batch: Uuid,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError> {
        let committed = append_committed(&self.pool, self.origin, deploy_id, batch, events).await?;
        self.publish(committed);
        Ok(())
    }

    fn publish(&self, committed: Committed) {
        self.metrics.events_written(committed.0.len() as u64);
        for event in committed.0 {
            // No receivers is not an error: nobody is watching right now.
            let _ = self.bus.send(BusMessage::Event(Arc::new(event)));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.bus.subscribe()
    }
}
