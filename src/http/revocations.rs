//! Ends the SSE streams of tokens that were revoked or expired, on every replica: each process
//! asks the database twice a second which tokens ended and tells its streams.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::domain::auth::Principal;
use crate::store::tokens;

/// How often the database is asked; a stream of a revoked token ends within this (and a query).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Revocations buffered for slow streams; a stream that lags rechecks its own token.
const CAPACITY: usize = 1024;

/// Tokens that stopped working, as this process learns of them. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    ended: broadcast::Sender<Uuid>,
    pool: PgPool,
}

impl Revocations {
    /// Starts the watch on `tasks`; it stops at `shutdown`.
    pub fn spawn(pool: PgPool, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let revocations = Revocations {
            ended: broadcast::channel(CAPACITY).0,
            pool,
        };
        tasks.spawn(revocations.clone().watch(shutdown));
        revocations
    }

    async fn watch(self, shutdown: CancellationToken) {
        let mut since = Utc::now();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = poll.tick() => {}
            }
            match tokens::ended_since(&self.pool, since).await {
                Ok((ended, now)) => {
                    since = now;
                    for id in ended {
                        let _nobody_listening = self.ended.send(id);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot check for revoked tokens"),
            }
        }
    }

    /// Resolves when `principal`'s token stops working; never for tokens of the configuration,
    /// which cannot be revoked.
    pub async fn ended(&self, principal: &Principal) {
        let Some(token) = principal.database_token() else {
            return std::future::pending().await;
        };
        let mut ended = self.ended.subscribe();
        loop {
            match ended.recv().await {
                Ok(id) if id == token => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !matches!(tokens::find_active(&self.pool, token).await, Ok(Some(_))) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }
}
