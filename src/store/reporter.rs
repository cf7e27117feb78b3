//! Which replica exports the figures read from the database (deploys by status, the queue): the
//! one whose dedicated connection holds a session advisory lock. Summed over replicas, those
//! metrics then count each deploy once. When the holder stops or its connection breaks, PostgreSQL
//! releases the lock and another replica takes it at its next try. (A pooler in transaction mode,
//! such as PgBouncer's, does not keep session locks: connect rollcall to PostgreSQL directly.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, PgPool};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The advisory lock's key: "rollcall" in ASCII.
const LOCK_KEY: i64 = 0x726f_6c6c_6361_6c6c;
/// Between attempts to take the lock, and between checks that the connection holding it lives.
const RETRY: Duration = Duration::from_secs(2);

/// Whether this replica holds the reporter lock now.
#[derive(Debug, Clone, Default)]
pub struct ReporterRole(Arc<AtomicBool>);

impl ReporterRole {
    pub fn is_held(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, held: bool) {
        self.0.store(held, Ordering::Relaxed);
    }
}

/// Competes for the lock on a connection of its own (outside `pool`, which it would otherwise
/// hold one of forever): a first try before returning, so that a lone replica reports from its
/// first scrape, then every [`RETRY`]; stops, releasing the lock, at `shutdown`.
pub async fn spawn(
    pool: &PgPool,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> ReporterRole {
    let mut contender = Contender {
        options: pool.connect_options().as_ref().clone(),
        connection: None,
        role: ReporterRole::default(),
    };
    contender.try_once().await;
    let role = contender.role.clone();
    tasks.spawn(contender.compete(shutdown));
    role
}

struct Contender {
    options: PgConnectOptions,
    connection: Option<PgConnection>,
    role: ReporterRole,
}

impl Contender {
    async fn compete(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(RETRY) => self.try_once().await,
            }
        }
        self.role.set(false);
        if let Some(open) = self.connection {
            // Closing the session releases the lock at once, rather than when PostgreSQL notices.
            let _ = open.close().await;
        }
    }

    /// Takes the lock unless held, checks that the connection holding it lives; reconnects next
    /// time after an error.
    async fn try_once(&mut self) {
        if self.connection.is_none() {
            self.connection = PgConnection::connect_with(&self.options).await.ok();
        }
        let Some(open) = self.connection.as_mut() else {
            return;
        };
        match hold(open, self.role.is_held()).await {
            Ok(held) => self.role.set(held),
            Err(error) => {
                tracing::debug!(%error, "the reporter connection failed; reconnecting");
                self.role.set(false);
                self.connection = None;
            }
        }
    }
}

/// Whether the lock is held after this round: checked to be alive when `held`, else tried.
async fn hold(connection: &mut PgConnection, held: bool) -> Result<bool, sqlx::Error> {
    if held {
        sqlx::query_scalar!(r#"select 1 as "alive!""#)
            .fetch_one(&mut *connection)
            .await?;
        return Ok(true);
    }
    sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "locked!""#, LOCK_KEY)
        .fetch_one(&mut *connection)
        .await
}
