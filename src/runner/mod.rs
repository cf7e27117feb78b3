//! The runner: turns queued deploys into real ones (render, helm upgrade, tracking, verdict) with
//! every step recorded as events.
//!
//! Workers claim deploys with `FOR UPDATE SKIP LOCKED` (the database serializes the deploys of a
//! release), hold a lease they renew, and a global limit caps the deploys one process runs at once.
//! helm processes have a small pool of their own (one slot per core by default): a queued deploy
//! is claimed only with a free helm slot, which it gives back once helm has applied the release,
//! while tracking (cheap: shared watches) goes on for every deploy in flight. Deploys whose lease
//! expired (their process died) are taken over and resumed or repaired.

pub mod chart;
mod clusters;
mod execute;
pub mod helm;
mod manifest_check;
pub mod pinned_helm;
pub mod render;
mod secrets;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use clusters::{ClusterError, Clusters};
pub use helm::{Helm, HelmConfig, HelmError, HelmSlot, ValuesFiles, default_helm_slots};
pub use render::{RenderCache, RenderFailure, RenderRequest, Rendered, render};
pub use secrets::{DeploySecrets, SecretKeeper, SecretStash, SecretsUnavailable};

use crate::bus::{BusMessage, EventHub};
use crate::domain::chart::ChartSources;
use crate::domain::event::EventType;
use crate::store::deploys::Deploy;
use crate::store::{self, StoreError};
use crate::telemetry::DeployMetrics;
use crate::tracker::core::CustomResourceRules;

/// How long a lease lasts unless configured otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Deploys one process has in flight at once unless configured otherwise: most of them are being
/// tracked, which costs little; helm runs in its own, smaller pool.
pub const DEFAULT_PARALLELISM: usize = 1000;

/// What the runner's workers use, and nothing else; `startup` builds it from the configuration.
pub struct RunnerContext {
    /// Writes and delivers the deploys' events; its pool is the database.
    pub events: EventHub,
    pub helm: Arc<Helm>,
    /// The catalog, and the repositories and registries charts are fetched from.
    pub charts: Arc<ChartSources>,
    /// Renders of unchanged charts and values, reused.
    pub renders: RenderCache,
    pub clusters: Clusters,
    /// Secret values the API accepted, taken when a deploy starts.
    pub secrets: SecretKeeper,
    /// How custom resources of configured kinds are read.
    pub custom_resources: CustomResourceRules,
    /// How deploys end, how quickly, and the slots in use.
    pub metrics: Arc<DeployMetrics>,
    /// Owns the workers; shutdown waits for them.
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

/// How this process runs deploys.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Names this process in leases and events; unique per process.
    pub owner: String,
    /// Deploys in flight at once in this process (helm processes have their own pool, the helm
    /// slots of [`HelmConfig`]).
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
            parallelism: DEFAULT_PARALLELISM,
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

/// The workers of one process.
pub(crate) struct Runner {
    context: RunnerContext,
    options: RunnerOptions,
    permits: Arc<Semaphore>,
    /// A deploy of this process ended, or gave its helm slot back.
    slot_freed: Notify,
    /// Deploys this process is executing: it never takes them over from itself, even when their
    /// lease ran out while the database was away.
    executing: Mutex<HashSet<Uuid>>,
}

/// Checks the helm binary, then starts the worker loop on the context's task tracker; it stops at
/// the context's shutdown.
pub async fn spawn(context: RunnerContext, options: RunnerOptions) -> Result<(), RunnerError> {
    let version = context.helm.check_version().await?;
    if context.helm.hands_over_manifests() {
        manifest_check::install_plugin(&context.helm.data_home().join("plugins")).map_err(
            |source| HelmError::Io {
                command: "plugin install",
                source,
            },
        )?;
    }
    tracing::info!(
        %version,
        owner = %options.owner,
        parallelism = options.parallelism,
        helm_slots = context.helm.config().slots,
        "runner started"
    );
    let tasks = context.tasks.clone();
    context.metrics.set_slots(options.parallelism.max(1));
    let runner = Arc::new(Runner {
        context,
        permits: Arc::new(Semaphore::new(options.parallelism.max(1))),
        slot_freed: Notify::new(),
        executing: Mutex::new(HashSet::new()),
        options,
    });
    tasks.spawn(runner.run());
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
        let shutdown = self.context.shutdown.clone();
        // Submits and ends of deploys, on any replica, wake the loop; the poll is the safety net.
        let mut bus = self.context.events.subscribe();
        let mut poll = tokio::time::interval(self.options.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recovery = tokio::time::interval(self.options.lease / 3);
        recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = recovery.tick() => self.recover_expired().await,
                _ = poll.tick() => self.claim_runnable().await,
                () = self.slot_freed.notified() => {
                    // A deploy to take over has run against its timeout since it first started:
                    // it gets a freed slot before the queue does, which would otherwise always win.
                    self.recover_expired().await;
                    self.claim_runnable().await;
                }
                message = bus.recv() => if changes_the_queue(&message) {
                    self.claim_runnable().await;
                },
            }
        }
        self.context.clusters.shutdown().await;
    }

    fn lease_until(&self) -> chrono::DateTime<Utc> {
        Utc::now() + self.options.lease
    }

    fn executing(&self) -> MutexGuard<'_, HashSet<Uuid>> {
        self.executing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Executes `deploy` in a slot of its own (with the helm slot it was claimed with), known as
    /// executing here until it ends.
    fn start(
        self: &Arc<Self>,
        deploy: Deploy,
        start: execute::Start,
        slot: OwnedSemaphorePermit,
        helm_slot: Option<HelmSlot>,
    ) {
        self.executing().insert(deploy.id);
        let runner = Arc::clone(self);
        let busy = self.context.metrics.slot_taken();
        self.context.tasks.spawn(async move {
            let id = deploy.id;
            execute::execute(Arc::clone(&runner), deploy, start, helm_slot).await;
            runner.executing().remove(&id);
            drop((slot, busy));
            runner.slot_freed.notify_one();
        });
    }

    /// Starts queued deploys while this process has free slots and helm free slots: a deploy's
    /// timeout starts with its helm run, so it waits in the queue rather than for a helm slot.
    async fn claim_runnable(self: &Arc<Self>) {
        while let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            let Some(helm_slot) = self.context.helm.try_slot() else {
                return;
            };
            match self.claim().await {
                Ok(Some(deploy)) => {
                    self.start(deploy, execute::Start::Fresh, permit, Some(helm_slot));
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
        let mut tx = self.context.events.begin().await?;
        let claimed =
            store::deploys::claim_next(&mut tx, &self.options.owner, self.lease_until()).await?;
        self.context.events.commit(tx).await?;
        Ok(claimed)
    }

    /// Takes over deploys whose owner stopped renewing its lease.
    async fn recover_expired(self: &Arc<Self>) {
        while let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            match self.take_over().await {
                Ok(Some(deploy)) => {
                    tracing::warn!(deploy_id = %deploy.id, "recovering a deploy whose lease expired");
                    self.start(deploy, execute::Start::Recovered, permit, None);
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
        let executing: Vec<Uuid> = self.executing().iter().copied().collect();
        let mut tx = self.context.events.begin().await?;
        let taken = store::deploys::take_over_expired(
            &mut tx,
            &self.options.owner,
            self.lease_until(),
            &executing,
        )
        .await?;
        self.context.events.commit(tx).await?;
        Ok(taken)
    }
}
