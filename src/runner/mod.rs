//! The runner: turns queued deploys into real ones (render, helm upgrade, tracking, verdict) with
//! every step recorded as events.
//!
//! Workers claim deploys with `FOR UPDATE SKIP LOCKED` (the database serializes the deploys of a
//! release), hold a lease they renew, and a global limit caps the deploys one process runs at once.
//! Deploys whose lease expired (their process died) are taken over and resumed or repaired.

mod clusters;
mod execute;
pub mod helm;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

pub use clusters::{ClusterError, Clusters};
pub use helm::{Helm, HelmConfig, HelmError, Redactor, ReleaseTarget, ValuesFiles};
pub use render::{PlannedResource, RenderError};

use crate::domain::chart::{ChartCatalog, ChartSource};
use crate::domain::deploy::SecretValues;
use crate::domain::event::EventType;
use crate::domain::policy::TrackingOverrides;
use crate::domain::verdict::VerdictReason;
use crate::events::BusMessage;
use crate::startup::AppState;
use crate::store::{self, StoreError};
use crate::tracker::watch::TrackedResource;

/// How long a lease lasts unless configured otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How this process runs deploys.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Names this process in leases and events; unique per process.
    pub owner: String,
    /// Deploys run at once by this process.
    pub parallelism: usize,
    /// How long a lease lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often the queue is polled for runnable deploys.
    pub poll_interval: Duration,
    /// Used when a request does not ask for a rollback itself.
    pub rollback_on_failure: bool,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            owner: format!(
                "{}-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "rollcall".into()),
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..8]
            ),
            parallelism: 8,
            lease: DEFAULT_LEASE,
            poll_interval: Duration::from_millis(250),
            rollback_on_failure: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Helm(#[from] HelmError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a chart could not be rendered and planned.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error("cannot write the values file: {0}")]
    Values(std::io::Error),
    #[error(transparent)]
    Helm(#[from] HelmError),
    #[error(transparent)]
    Plan(#[from] RenderError),
}

impl RenderFailure {
    pub fn reason(&self) -> VerdictReason {
        match self {
            RenderFailure::Values(_) => VerdictReason::HelmFailed,
            RenderFailure::Helm(error) => error.reason(),
            RenderFailure::Plan(error) => error.reason(),
        }
    }
}

/// What a deploy renders from.
pub struct RenderRequest<'a> {
    pub target: ReleaseTarget,
    pub chart: &'a ChartSource,
    pub values: &'a serde_json::Map<String, serde_json::Value>,
    pub secrets: Option<&'a SecretValues>,
    pub tracking: &'a TrackingOverrides,
}

/// `helm template` with the request's values, then every resource's effective tracking policy.
pub async fn render(
    helm: &Helm,
    catalog: &ChartCatalog,
    request: &RenderRequest<'_>,
    time_limit: Duration,
    redactor: &Redactor,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(Vec<TrackedResource>, Vec<PlannedResource>), RenderFailure> {
    let chart = Helm::chart_args(request.chart, catalog)?;
    let values = ValuesFiles::write(&helm.config().home, request.values, request.secrets)
        .map_err(RenderFailure::Values)?;
    let invocation = helm.template(&request.target, chart, &values, time_limit);
    let manifest = helm.run(invocation, redactor, None, cancel).await?;
    Ok(render::plan(
        &manifest,
        &request.target.namespace,
        request.tracking,
    )?)
}

/// The workers of one process.
pub(crate) struct Runner {
    state: AppState,
    helm: Arc<Helm>,
    clusters: Clusters,
    options: RunnerOptions,
    permits: Arc<Semaphore>,
    /// A deploy of this process ended and gave its slot back.
    slot_freed: Notify,
}

/// Checks the helm binary, then starts the worker loop on the state's task tracker; it stops at
/// the state's shutdown.
pub async fn spawn(state: &AppState, options: RunnerOptions) -> Result<(), RunnerError> {
    let version = state.helm.check_version().await?;
    tracing::info!(%version, owner = %options.owner, parallelism = options.parallelism, "runner started");
    let runner = Arc::new(Runner {
        state: state.clone(),
        helm: state.helm.clone(),
        clusters: Clusters::new(state.helm.config().kubeconfig.clone()),
        permits: Arc::new(Semaphore::new(options.parallelism.max(1))),
        slot_freed: Notify::new(),
        options,
    });
    state.tasks.spawn(runner.run());
    Ok(())
}

/// A deploy queued or ended (on any replica) may make a queued deploy runnable; a bus that lagged
/// or resynced may have missed one.
fn changes_the_queue(message: &Result<BusMessage, RecvError>) -> bool {
    match message {
        Ok(BusMessage::Event(published)) => {
            let kind = published.event.kind;
            kind == EventType::DeployQueued || kind.is_terminal()
        }
        Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => true,
        Err(RecvError::Closed) => false,
    }
}

impl Runner {
    async fn run(self: Arc<Self>) {
        let shutdown = self.state.shutdown.clone();
        // Submits and ends of deploys, on any replica, wake the loop; the poll is the safety net.
        let mut bus = self.state.events.subscribe();
        let mut poll = tokio::time::interval(self.options.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recovery = tokio::time::interval(self.options.lease / 3);
        recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = recovery.tick() => self.recover_expired().await,
                _ = poll.tick() => self.claim_runnable().await,
                () = self.slot_freed.notified() => self.claim_runnable().await,
                message = bus.recv() => if changes_the_queue(&message) {
                    self.claim_runnable().await;
                },
            }
        }
        self.clusters.shutdown().await;
    }

    fn lease_until(&self) -> chrono::DateTime<Utc> {
        Utc::now() + self.options.lease
    }

    /// Starts queued deploys while this process has free slots.
    async fn claim_runnable(self: &Arc<Self>) {
        while let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            match self.claim().await {
                Ok(Some(deploy)) => {
                    let runner = Arc::clone(self);
                    self.state.tasks.spawn(async move {
                        execute::execute(Arc::clone(&runner), deploy, execute::Start::Fresh).await;
                        drop(permit);
                        runner.slot_freed.notify_one();
                    });
                }
                Ok(None) => return,
                // Another process started a deploy of the same release first: try again next tick.
                Err(StoreError::ReleaseBusy { .. }) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim a deploy");
                    return;
                }
            }
        }
    }

    async fn claim(&self) -> Result<Option<store::deploys::Deploy>, StoreError> {
        let mut tx = self.state.events.begin().await?;
        let claimed =
            store::deploys::claim_next(&mut tx, &self.options.owner, self.lease_until()).await?;
        self.state.events.commit(tx).await?;
        Ok(claimed)
    }

    /// Takes over deploys whose owner stopped renewing its lease.
    async fn recover_expired(self: &Arc<Self>) {
        while let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            match self.take_over().await {
                Ok(Some(deploy)) => {
                    tracing::warn!(deploy_id = %deploy.id, "recovering a deploy whose lease expired");
                    let runner = Arc::clone(self);
                    self.state.tasks.spawn(async move {
                        execute::execute(runner, deploy, execute::Start::Recovered).await;
                        drop(permit);
                    });
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot take over expired leases");
                    return;
                }
            }
        }
    }

    async fn take_over(&self) -> Result<Option<store::deploys::Deploy>, StoreError> {
        let mut tx = self.state.events.begin().await?;
        let taken =
            store::deploys::take_over_expired(&mut tx, &self.options.owner, self.lease_until())
                .await?;
        self.state.events.commit(tx).await?;
        Ok(taken)
    }
}
