//! Hears of changes to tokens on every replica: the database announces each change (NOTIFY on
//! `rollcall_token_changes`, from a trigger, on commit) to a LISTEN connection of this process,
//! which drops the token from the [`TokenCache`] and ends the token's SSE streams. When that
//! connection is lost, announcements are lost with it: the cache is bypassed until it is back, then
//! emptied, and every stream checks its own token again. Streams also end when their token expires.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::token_cache::TokenCache;
use crate::domain::auth::Principal;
use crate::store::StoreError;
use crate::store::tokens::{self, TOKEN_CHANGES_CHANNEL};

/// Changes buffered for slow streams; a stream that lags rechecks its own token.
const CAPACITY: usize = 1024;
/// Between attempts to listen again after the connection failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What a stream learns about tokens.
#[derive(Debug, Clone, Copy)]
enum TokenChange {
    /// This token changed (revoked, expired early, rescoped, deleted).
    Changed(Uuid),
    /// Changes may have been missed: every stream checks its token.
    Unknown,
}

/// Tokens that stopped working, as this process learns of them. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    changes: broadcast::Sender<TokenChange>,
    pool: PgPool,
}

impl Revocations {
    /// Listens before returning, so that the cache serves from the first request; then follows on
    /// `tasks` until `shutdown`.
    pub async fn spawn(
        pool: PgPool,
        cache: Arc<TokenCache>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let revocations = Revocations {
            changes: broadcast::channel(CAPACITY).0,
            pool,
        };
        let listener = revocations.listen().await?;
        cache.resume();
        tasks.spawn(revocations.clone().follow(listener, cache, shutdown));
        Ok(revocations)
    }

    /// A LISTEN connection of its own, outside the pool (which it would hold a slot of forever).
    async fn listen(&self) -> Result<PgListener, StoreError> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.pool.connect_options().as_ref().clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(TOKEN_CHANGES_CHANNEL).await?;
        Ok(listener)
    }

    async fn follow(
        self,
        mut listener: PgListener,
        cache: Arc<TokenCache>,
        shutdown: CancellationToken,
    ) {
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notice)) => match notice.payload().parse::<Uuid>() {
                    Ok(token) => {
                        cache.forget(token);
                        let _nobody_listening = self.changes.send(TokenChange::Changed(token));
                    }
                    Err(_) => tracing::warn!(
                        payload = notice.payload(),
                        "ignoring a malformed token change notice"
                    ),
                },
                // The connection was lost and sqlx has listened again on a new one.
                Ok(None) => self.changes_missed(&cache),
                Err(error) => {
                    tracing::warn!(%error, "lost the token change listener; asking the database for every token until it is back");
                    cache.suspend();
                    listener = loop {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(RECONNECT_DELAY) => {}
                        }
                        match self.listen().await {
                            Ok(listener) => break listener,
                            Err(error) => {
                                tracing::debug!(%error, "token change listener still down");
                            }
                        }
                    };
                    tracing::info!("token change listener back");
                    self.changes_missed(&cache);
                }
            }
        }
    }

    /// Listening again: what changed meanwhile was not heard.
    fn changes_missed(&self, cache: &TokenCache) {
        cache.resume();
        let _nobody_listening = self.changes.send(TokenChange::Unknown);
    }

    /// Resolves when `principal`'s token stops working (revoked, changed, expired); never for
    /// tokens of the configuration, which cannot be revoked.
    pub async fn ended(&self, principal: &Principal) {
        let Some(token) = principal.database_token() else {
            return std::future::pending().await;
        };
        let expiry = async {
            match principal.expires_at {
                Some(at) => {
                    tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = expiry => {}
            () = self.revoked(token) => {}
        }
    }

    async fn revoked(&self, token: Uuid) {
        let mut changes = self.changes.subscribe();
        loop {
            let recheck = match changes.recv().await {
                Ok(TokenChange::Changed(id)) => id == token,
                Ok(TokenChange::Unknown) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            };
            // A change may leave the token working (e.g. renamed): the database decides.
            if recheck && !matches!(tokens::find_active(&self.pool, token).await, Ok(Some(_))) {
                return;
            }
        }
    }
}
