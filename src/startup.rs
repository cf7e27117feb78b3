//! Wiring: builds the API's state and the runner's context from the configuration, then serves
//! until a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::{EventHub, listener};
use crate::config::Config;
use crate::domain::chart::{ChartCatalog, ChartSources};
use crate::http::{
    self,
    auth::Authenticator,
    revocations::Revocations,
    state::{ApiLimits, ApiState},
    token_cache::TokenCache,
};
use crate::notify::{self, GuardedClient, NotifyContext, Signer};
use crate::runner::{self, Clusters, Helm, RenderCache, RunnerContext, RunnerError, SecretKeeper};
use crate::store::submissions::Submissions;
use crate::store::{self, StoreError};
use crate::telemetry::Metrics;

/// A started rollcall: the API's state, and the background work that shutdown waits for.
pub struct Rollcall {
    pub api: ApiState,
    tasks: TaskTracker,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot connect to PostgreSQL ({0}): start it, or point DATABASE_URL (--database-url) at a \
         running server"
    )]
    Connect(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error("cannot start the runner: {0}")]
    Runner(#[from] RunnerError),
    #[error(
        "cannot listen on {address} ({source}): set ROLLCALL_LISTEN (--listen) to a free address"
    )]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds the API's address; the error says how to choose another one.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Listen { address, source })
}

/// Connects, migrates, starts the event relay and (unless configured off) the runner; `shutdown`
/// ends everything started here. When a step fails, what the earlier ones started is stopped
/// before the error returns.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Rollcall, StartupError> {
    let pool = store::connect(&config.database_url, config.db_max_connections)
        .await
        .map_err(StartupError::Connect)?;
    store::migrate(&pool).await?;
    let tasks = TaskTracker::new();
    let started = shutdown.child_token();
    match start_tasks(config, pool.clone(), tasks.clone(), started.clone()).await {
        Ok(api) => Ok(Rollcall { api, tasks }),
        Err(error) => {
            started.cancel();
            tasks.close();
            tasks.wait().await;
            pool.close().await;
            Err(error)
        }
    }
}

async fn start_tasks(
    config: Config,
    pool: sqlx::PgPool,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) -> Result<ApiState, StartupError> {
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
    let reporter = store::reporter::spawn(&pool, &tasks, shutdown.clone()).await;
    store::retention::spawn(
        pool.clone(),
        config.retention.clone(),
        metrics.retention.clone(),
        &tasks,
        shutdown.clone(),
    );
    let helm = Arc::new(Helm::new(config.helm.clone(), metrics.helm.clone()));
    let charts = Arc::new(ChartSources {
        catalog: ChartCatalog::new(config.chart_dir.clone()),
        allowed: config.allowed_charts,
    });
    if config.secret_key.is_none() {
        tracing::warn!(
            "no ROLLCALL_SECRET_KEY: secret_values of a deploy are held in the memory of the \
             process that accepted it, and fail the deploy if another replica or a restart runs it"
        );
    }
    let secrets = SecretKeeper::new(config.secret_key.clone());
    let notify_rules = Arc::new(config.notify.rules());
    store::notifications::sync_configured(&pool, &config.notify.subscriptions).await?;
    let delivery = config.notify.delivery;
    notify::spawn(
        NotifyContext {
            pool: pool.clone(),
            signer: Arc::new(Signer::new(
                config.notify.default_secret,
                config.notify.secrets,
                config.secret_key.clone(),
            )),
            client: GuardedClient::new(config.notify.destinations, delivery.timeout),
            public_url: config.public_url.clone(),
            metrics: metrics.clone(),
            options: delivery,
            shutdown: shutdown.clone(),
        },
        &tasks,
    )
    .await?;
    if let Some(options) = config.runner {
        let context = RunnerContext {
            events: events.clone(),
            helm: helm.clone(),
            charts: charts.clone(),
            renders: RenderCache::default(),
            clusters: Clusters::new(config.helm.kubeconfig.clone(), metrics.watches.clone()),
            secrets: secrets.clone(),
            custom_resources: config.custom_resources,
            metrics: metrics.deploys.clone(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
        };
        runner::spawn(context, options).await?;
    }
    let token_cache = Arc::new(TokenCache::default());
    let revocations =
        Revocations::spawn(pool.clone(), token_cache.clone(), &tasks, shutdown.clone()).await?;
    let api = ApiState {
        auth: Arc::new(Authenticator::new(
            pool.clone(),
            config.static_tokens,
            token_cache,
        )),
        revocations,
        submissions: Submissions::spawn(pool.clone(), &tasks, shutdown.clone()),
        pool,
        events,
        metrics,
        reporter,
        charts,
        secrets,
        helm,
        limits: ApiLimits {
            body_limit: config.body_limit,
            sse_keep_alive: config.sse_keep_alive,
            connection: config.connection_limits,
        },
        secret_key: config.secret_key,
        public_url: config.public_url,
        notify_rules,
        configured_hooks: config.hooks.into(),
        shutdown,
    };
    Ok(api)
}

/// Serves until the shutdown token is cancelled: stops accepting, ends SSE streams, waits for open
/// requests and background tasks (event writers flush), closes the pool.
pub async fn serve(rollcall: Rollcall, listener: TcpListener) -> Result<(), StartupError> {
    let Rollcall { api, tasks } = rollcall;
    let shutdown = api.shutdown.clone();
    let pool = api.pool.clone();
    let limits = api.limits.connection;
    let result = http::server::serve(listener, http::router(api), limits, shutdown.clone()).await;
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
    let rollcall = start(config, shutdown).await?;
    tracing::info!(address = %listener.local_addr()?, "rollcall serving");
    serve(rollcall, listener).await
}
