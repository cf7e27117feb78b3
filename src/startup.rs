//! Wiring: state, router, server lifetime and graceful shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::chart::ChartCatalog;
use crate::domain::deploy::SecretValues;
use crate::events::{EventHub, listener};
use crate::http::auth::Authenticator;
use crate::runner::{self, Helm, RunnerError};
use crate::store::{self, StoreError};
use crate::telemetry::Metrics;

/// Everything handlers and background tasks share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub events: EventHub,
    pub auth: Arc<Authenticator>,
    pub catalog: Arc<ChartCatalog>,
    pub metrics: Arc<Metrics>,
    pub secrets: Arc<SecretStash>,
    pub config: Arc<Config>,
    /// The helm driver (deploys and `?dry_run=true`).
    pub helm: Arc<Helm>,
    /// Cancelled at shutdown: SSE streams end, writers flush, background tasks stop.
    pub shutdown: CancellationToken,
    /// Owns every background task; shutdown waits for them.
    pub tasks: TaskTracker,
}

/// Secret values of deploys accepted by this process, held in memory only until the runner takes
/// them (they are never stored; a deploy recovered by another process runs without them).
#[derive(Default)]
pub struct SecretStash(Mutex<HashMap<Uuid, SecretValues>>);

impl SecretStash {
    pub fn put(&self, deploy_id: Uuid, values: SecretValues) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(deploy_id, values);
    }

    pub fn take(&self, deploy_id: Uuid) -> Option<SecretValues> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&deploy_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error("cannot start the runner: {0}")]
    Runner(#[from] RunnerError),
}

/// Connects, migrates and starts the event relay; `shutdown` ends everything started here.
pub async fn build_state(
    config: Config,
    shutdown: CancellationToken,
) -> Result<AppState, StartupError> {
    let pool = store::connect(&config.database_url, config.db_max_connections).await?;
    store::migrate(&pool).await?;
    let tasks = TaskTracker::new();
    let metrics = Arc::new(Metrics::default());
    let events = EventHub::new(
        pool.clone(),
        config.event_bus_capacity,
        tasks.clone(),
        shutdown.clone(),
        metrics.clone(),
    );
    let relay = listener::listen(&events).await?;
    tasks.spawn(listener::relay(events.clone(), relay));
    let runner = config.runner.clone();
    let state = AppState {
        helm: Arc::new(Helm::new(config.helm.clone())),
        auth: Arc::new(Authenticator::new(
            pool.clone(),
            config.static_tokens.clone(),
        )),
        catalog: Arc::new(ChartCatalog::new(config.chart_dir.clone())),
        pool,
        events,
        metrics,
        secrets: Arc::default(),
        config: Arc::new(config),
        shutdown,
        tasks,
    };
    if let Some(options) = runner {
        runner::spawn(&state, options).await?;
    }
    Ok(state)
}

pub fn app(state: AppState) -> Router {
    crate::http::router(state)
}

/// Serves until the state's shutdown token is cancelled: stops accepting, ends SSE streams, waits
/// for open requests and background tasks (event writers flush), closes the pool.
pub async fn serve(state: AppState, listener: TcpListener) -> Result<(), StartupError> {
    let shutdown = state.shutdown.clone();
    let tasks = state.tasks.clone();
    let pool = state.pool.clone();
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    pool.close().await;
    result.map_err(StartupError::from)
}

pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    let state = build_state(config, shutdown).await?;
    tracing::info!(address = %listener.local_addr()?, "rollcall serving");
    serve(state, listener).await
}
