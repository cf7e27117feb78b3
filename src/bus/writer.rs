//! One writer per deploy: it batches emitted events (every few milliseconds or N events), commits
//! them with gapless seqs, then publishes them.

use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::EventHub;
use crate::domain::event::NewEvent;
use crate::domain::redaction::Redactor;
use crate::store::deploy_events::Committed;

/// How long the writer waits for more events before it writes a batch that is not full (events
/// queued while the previous batch was written are taken at once).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Largest batch written in one transaction.
pub const MAX_BATCH: usize = 1000;
/// Emitters wait when this many events are queued (backpressure instead of unbounded memory).
pub const CHANNEL_CAPACITY: usize = 4096;
/// How often a batch is tried again while the database is unreachable.
const OUTAGE_RETRY: Duration = Duration::from_millis(500);
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriterError {
    #[error("the event writer of deploy {0} is closed")]
    Closed(Uuid),
    #[error("events of deploy {deploy_id} could not be persisted: {message}")]
    Persist { deploy_id: Uuid, message: String },
}

enum Command {
    Emit(NewEvent),
    Flush(oneshot::Sender<Result<(), WriterError>>),
    Close(oneshot::Sender<Result<(), WriterError>>),
}

/// The handle the runner emits a deploy's events through. Dropping it flushes what was emitted;
/// at shutdown the writer flushes its pending events before the process exits.
pub struct EventWriter {
    deploy_id: Uuid,
    commands: mpsc::Sender<Command>,
    /// Applied to every event at the door, before it is queued: nothing stored or published
    /// carries a secret value of the deploy.
    redactor: Redactor,
}

impl EventWriter {
    /// Starts the writer task of a deploy, owned by the hub's task tracker. Events of a deploy
    /// that does not exist are refused when written (`WriterError::Persist`).
    pub fn open(hub: &EventHub, deploy_id: Uuid) -> Self {
        let (commands, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let task = WriterTask {
            hub: hub.clone(),
            deploy_id,
            commands: receiver,
        };
        hub.tasks.spawn(task.run());
        Self {
            deploy_id,
            commands,
            redactor: Redactor::default(),
        }
    }

    /// Redacts the secret values `redactor` knows from every event emitted.
    pub fn redacting(self, redactor: Redactor) -> Self {
        Self { redactor, ..self }
    }

    /// The deploy's redactor, for text stored beside its events (verdicts, resource states).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn deploy_id(&self) -> Uuid {
        self.deploy_id
    }

    /// Queues an event (redacted); waits only when the writer is [`CHANNEL_CAPACITY`] events
    /// behind.
    pub async fn emit(&self, event: NewEvent) -> Result<(), WriterError> {
        self.commands
            .send(Command::Emit(self.redactor.redact_event(event)))
            .await
            .map_err(|_| WriterError::Closed(self.deploy_id))
    }

    /// Waits until every event emitted so far is committed and published.
    pub async fn flush(&self) -> Result<(), WriterError> {
        self.request(Command::Flush).await
    }

    /// Flushes and stops the writer.
    pub async fn close(self) -> Result<(), WriterError> {
        self.request(Command::Close).await
    }

    async fn request(
        &self,
        command: fn(oneshot::Sender<Result<(), WriterError>>) -> Command,
    ) -> Result<(), WriterError> {
        let (ack, done) = oneshot::channel();
        self.commands
            .send(command(ack))
            .await
            .map_err(|_| WriterError::Closed(self.deploy_id))?;
        done.await
            .map_err(|_| WriterError::Closed(self.deploy_id))?
    }
}

struct WriterTask {
    hub: EventHub,
    deploy_id: Uuid,
    commands: mpsc::Receiver<Command>,
}

#[derive(Default)]
struct Batch {
    events: Vec<NewEvent>,
    acks: Vec<oneshot::Sender<Result<(), WriterError>>>,
    closing: bool,
}

impl Batch {
    fn take(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Emit(event)) => self.events.push(event),
            Some(Command::Flush(ack)) => self.acks.push(ack),
            Some(Command::Close(ack)) => {
                self.acks.push(ack);
                self.closing = true;
            }
            None => self.closing = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.acks.is_empty() && !self.closing
    }

    /// Written now rather than after more events: full, asked for, or the writer is ending.
    fn is_due(&self) -> bool {
        self.closing || !self.acks.is_empty() || self.events.len() >= MAX_BATCH
    }
}

/// A batch's outcome, to publish and acknowledge.
struct Written {
    result: Result<Committed, WriterError>,
    acks: Vec<oneshot::Sender<Result<(), WriterError>>>,
}

impl Written {
    fn publish(self, hub: &EventHub) {
        let result = self.result.map(|committed| hub.publish(committed));
        for ack in self.acks {
            let _ = ack.send(result.clone());
        }
    }
}

impl WriterTask {
    async fn run(mut self) {
        let shutdown = self.hub.shutdown.clone();
        // The batch committed last, not yet published: a busy writer publishes it while the next
        // batch is on its way to the database, an idle one before it waits for more.
        let mut written: Option<Written> = None;
        loop {
            let mut batch = Batch::default();
            self.take_queued(&mut batch);
            if !batch.is_due() {
                if let Some(earlier) = written.take() {
                    earlier.publish(&self.hub);
                }
                self.wait_for_more(&mut batch, &shutdown).await;
            }
            if batch.closing {
                // Whatever was emitted before the end is still written.
                self.commands.close();
                while let Ok(command) = self.commands.try_recv() {
                    batch.take(Some(command));
                }
            }
            let events = std::mem::take(&mut batch.events);
            let (result, ()) = tokio::join!(self.persist(events), async {
                if let Some(earlier) = written.take() {
                    earlier.publish(&self.hub);
                }
            });
            let done = Written {
                result,
                acks: batch.acks,
            };
            if batch.closing {
                done.publish(&self.hub);
                return;
            }
            written = Some(done);
        }
    }

    /// Adds the commands already queued to `batch`, until it is due, without waiting.
    fn take_queued(&mut self, batch: &mut Batch) {
        while !batch.is_due() {
            match self.commands.try_recv() {
                Ok(command) => batch.take(Some(command)),
                Err(TryRecvError::Disconnected) => batch.take(None),
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// Waits for a first command if `batch` has none, then for more during [`FLUSH_INTERVAL`],
    /// until the batch is due. Queued commands are taken without arming a timer and a waker for
    /// each.
    async fn wait_for_more(&mut self, batch: &mut Batch, shutdown: &CancellationToken) {
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        if batch.is_empty() {
            tokio::select! {
                biased;
                command = self.commands.recv() => batch.take(command),
                () = &mut cancelled => batch.closing = true,
            }
        }
        let deadline = sleep(FLUSH_INTERVAL);
        tokio::pin!(deadline);
        loop {
            self.take_queued(batch);
            if batch.is_due() {
                return;
            }
            tokio::select! {
                biased;
                command = self.commands.recv() => batch.take(command),
                () = &mut deadline => return,
                () = &mut cancelled => batch.closing = true,
            }
        }
    }

    async fn persist(&self, mut events: Vec<NewEvent>) -> Result<Committed, WriterError> {
        if events.is_empty() {
            return Ok(Committed::default());
        }
        let mut attempt = 0;
        let mut outage_since = None;
        // One name for every attempt: a retry after a lost commit reply is recognised, not
        // appended twice.
        let batch = Uuid::new_v4();
        loop {
            match self.hub.append(self.deploy_id, batch, &mut events).await {
                Ok(committed) => {
                    if let Some(since) = outage_since {
                        tracing::info!(deploy_id = %self.deploy_id, waited = ?Instant::now() - since, "event batch written after the database came back");
                    }
                    return Ok(committed);
                }
                // While the database is away (a restart, a failover) the batch waits for it, and
                // emitters wait behind it once the channel is full: events are held, not dropped.
                // At shutdown it gets the few attempts below.
                Err(error) if error.is_transient() && !self.hub.shutdown.is_cancelled() => {
                    if outage_since.is_none() {
                        tracing::warn!(deploy_id = %self.deploy_id, %error, "database unreachable; holding the event batch until it is back");
                        outage_since = Some(Instant::now());
                    }
                    sleep(OUTAGE_RETRY).await;
                }
                Err(error) if attempt < RETRY_DELAYS.len() => {
                    tracing::warn!(deploy_id = %self.deploy_id, %error, attempt, "retrying event batch");
                    sleep(RETRY_DELAYS[attempt]).await;
                    attempt += 1;
                }
                Err(error) => {
                    tracing::error!(deploy_id = %self.deploy_id, %error, dropped = events.len(), "event batch lost");
                    return Err(WriterError::Persist {
                        deploy_id: self.deploy_id,
                        message: error.to_string(),
                    });
                }
            }
        }
    }
}
