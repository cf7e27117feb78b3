//! PostgreSQL persistence: one module per table group, SQL next to its use.

pub mod deploy_events;
pub mod deploy_secret_values;
pub mod deploys;
pub mod idempotency;
pub mod notifications;
pub mod reporter;
pub mod retention;
pub mod submissions;
pub mod tokens;
pub mod webhooks;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::deploy::TransitionError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("deploy {0} not found")]
    DeployNotFound(Uuid),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("release {release} already has an active deploy")]
    ReleaseBusy { release: String },
    #[error("deploy {blocking} of this release is queued or running")]
    QueueRejected { blocking: Uuid },
    #[error("the Idempotency-Key was already used")]
    IdempotencyKeyUsed,
    #[error("a hook named {0} already exists")]
    HookExists(String),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The database could not be reached or went away mid-request (a restart, a failover, a cut
    /// connection): the same request may succeed once it is back.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut,
            ) => true,
            // SQLSTATE class 08: connection exception; 57P01-57P03: the server is shutting down,
            // crashed or is still starting.
            StoreError::Database(sqlx::Error::Database(error)) => error
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        }
    }
}

/// Connects with a bounded pool; `max_connections` comes from configuration.
///
/// Every connection plans each statement for its parameters and for the tables as they are at
/// that moment (`plan_cache_mode`). By default PostgreSQL switches a prepared statement to a
/// generic plan after five runs and keeps that plan until the table is next analyzed. A plan made
/// while a table was nearly empty scans it whole: on a fresh database, submissions fell from 6,000
/// to 800 per second within half a minute as every one scanned all earlier deploys. Planning costs
/// little next to that. Set once the connection is open rather than as a startup option, which
/// poolers such as PgBouncer refuse.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let connected = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|connection, _| {
            Box::pin(async move {
                sqlx::raw_sql("set plan_cache_mode = force_custom_plan")
                    .execute(connection)
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await;
    match connected {
        Ok(pool) => Ok(pool),
        // The pool retries until its timeout and then says only that it timed out; one direct
        // attempt tells why (refused, authentication, no such database).
        Err(sqlx::Error::PoolTimedOut) => Err(PgConnection::connect(url)
            .await
            .err()
            .unwrap_or(sqlx::Error::PoolTimedOut)
            .into()),
        Err(error) => Err(error.into()),
    }
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query_scalar!("select 1").fetch_one(pool).await?;
    Ok(())
}

/// Turns a violation of the named constraint into a domain error; other errors pass through.
fn on_constraint(
    error: sqlx::Error,
    constraint: &str,
    mapped: impl FnOnce() -> StoreError,
) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.constraint() == Some(constraint) => mapped(),
        _ => StoreError::Database(error),
    }
}
