//! Deploys submitted at the same moment are queued by one statement. Under load a submission waits
//! for a statement in flight and is written with the others that arrived meanwhile, so PostgreSQL
//! runs one statement (one round trip, one commit, one wake-up of its listeners) per group instead
//! of one per request; alone, a submission is written at once.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::StoreError;
use super::deploy_events::Committed;
use super::deploys::{
    CreateDeploy, Inserted, Queued, QueuedRow, insert_queued_row, insert_queued_rows,
};
use crate::domain::deploy::QueueMode;

/// Statements in flight at once.
const WRITERS: usize = 4;
/// The most deploys one statement queues.
const MAX_GROUP: usize = 64;
/// Submissions waiting for a writer before senders wait too.
const BACKLOG: usize = 1024;

struct Submission {
    row: QueuedRow,
    answer: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// The door of `fifo` deploys queued on their own.
#[derive(Clone)]
pub struct Submissions {
    sender: mpsc::Sender<Submission>,
}

impl Submissions {
    /// Starts the writers, owned by `tasks`. At `shutdown` they write what was submitted and end;
    /// later submissions are refused.
    pub fn spawn(pool: PgPool, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let (sender, receiver) = mpsc::channel(BACKLOG);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WRITERS {
            tasks.spawn(write_groups(
                pool.clone(),
                receiver.clone(),
                shutdown.clone(),
            ));
        }
        Self { sender }
    }

    /// Queues a `fifo` deploy on its own: committed by a statement of its own, shared with the
    /// deploys submitted at the same moment, and returns its committed `deploy.queued` event for
    /// local publishing. A concurrent request with the same key that commits first makes this
    /// fail with [`StoreError::IdempotencyKeyUsed`].
    pub async fn create(
        &self,
        origin: Uuid,
        new: &CreateDeploy<'_>,
    ) -> Result<(Queued, Committed), StoreError> {
        debug_assert_eq!(new.deploy.queue, QueueMode::Fifo);
        Ok(match self.queue(QueuedRow::new(origin, new)?).await? {
            Inserted::Queued(event) => (
                Queued::Created {
                    superseded: Vec::new(),
                },
                Committed(vec![*event]),
            ),
            Inserted::KeyUsed(earlier) => (Queued::KeyUsed(earlier), Committed::default()),
        })
    }

    /// Queues `row` with whatever else is submitted meanwhile; answers for it alone.
    pub async fn queue(&self, row: QueuedRow) -> Result<Inserted, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.sender
            .send(Submission { row, answer })
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        answered
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }
}

/// One writer: takes a submission, and with it every one already waiting (up to [`MAX_GROUP`]).
async fn write_groups(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    shutdown: CancellationToken,
) {
    loop {
        let mut group = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let first = tokio::select! {
                first = receiver.recv() => first,
                () = shutdown.cancelled() => {
                    receiver.close();
                    receiver.recv().await
                }
            };
            let Some(first) = first else {
                return;
            };
            group.push(first);
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
        }
        write(&pool, group).await;
    }
}

async fn write(pool: &PgPool, group: Vec<Submission>) {
    let (rows, answers): (Vec<_>, Vec<_>) = group
        .into_iter()
        .map(|submission| (submission.row, submission.answer))
        .unzip();
    match insert(pool, &rows).await {
        Ok(inserted) => {
            for (answer, inserted) in answers.into_iter().zip(inserted) {
                let _ = answer.send(inserted);
            }
        }
        // One statement fails as a whole: each submission is written on its own, so that one
        // refused row fails only its own request.
        Err(_) if rows.len() > 1 => {
            for (row, answer) in rows.iter().zip(answers) {
                let _ = answer.send(insert_alone(pool, row).await);
            }
        }
        Err(error) => {
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(error));
            }
        }
    }
}

async fn insert(
    pool: &PgPool,
    rows: &[QueuedRow],
) -> Result<Vec<Result<Inserted, StoreError>>, StoreError> {
    let mut conn = pool.acquire().await?;
    insert_queued_rows(&mut conn, rows).await
}

async fn insert_alone(pool: &PgPool, row: &QueuedRow) -> Result<Inserted, StoreError> {
    let mut conn = pool.acquire().await?;
    insert_queued_row(&mut conn, row).await
}
