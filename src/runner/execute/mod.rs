//! One deploy from claim to verdict: render, upgrade, track, roll back when asked, and stop,
//! repair and record when cancelled. A deploy taken over from a dead process resumes here too.

mod hooks;
mod lease;
mod repair;
mod rollback;
mod tracking;
mod upgrade;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hooks::{UpgradePlan, Upgraded};
use lease::{Halt, HaltCause, keep_lease};

use super::chart::LocalChart;
use super::helm::{HelmError, HelmSlot, Invocation};
use super::manifest_check::ManifestCheck;
use super::secrets::DeploySecrets;
use super::{Helm, RenderFailure, RenderRequest, Rendered, Runner, render};
use crate::bus::{EventWriter, WriterError};
use crate::domain::deploy::{DeployStatus, Outcome, Phase};
use crate::domain::event::{EventType, NewEvent};
use crate::domain::redaction::Redactor;
use crate::domain::release::ReleaseId;
use crate::domain::verdict::{Verdict, VerdictReason};
use crate::store::deploys::{self, Deploy, Finish, ResourceState};
use crate::store::{self, StoreError};
use crate::tracker::core::TrackedResource;
use crate::tracker::watch::WatchHold;

/// Helm output lines buffered before helm itself is slowed down.
const OUTPUT_BUFFER: usize = 256;
/// How often a store operation is tried again while the database is unreachable.
const STORE_RETRY: Duration = Duration::from_millis(500);

pub(super) enum Start {
    /// Claimed from the queue.
    Fresh,
    /// Taken over after its owner's lease expired.
    Recovered,
}

/// Why a step did not reach a verdict.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("halted")]
    Halted,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Events(#[from] WriterError),
}

type Flow = Result<Finish, Interrupted>;

/// What an upgrade starts from: the plan it is told and the chart it applies.
type Prepared = (UpgradePlan, LocalChart);

/// Runs (or resumes) one deploy and records its end, unless the deploy must be left to another
/// process. `claimed_slot`: the helm slot it was claimed with, for its first helm run.
pub(super) async fn execute(
    runner: Arc<Runner>,
    deploy: Deploy,
    start: Start,
    claimed_slot: Option<HelmSlot>,
) {
    let id = deploy.id;
    let secrets = match runner
        .context
        .secrets
        .take(runner.context.events.pool(), id, deploy.has_secret_values)
        .await
    {
        Ok(secrets) => secrets,
        Err(error) => {
            tracing::error!(deploy_id = %id, %error, "cannot read the deploy's secret values; the lease will expire and it resumes");
            return;
        }
    };
    let writer =
        EventWriter::open(&runner.context.events, id).redacting(Redactor::new(secrets.values()));
    let halt = Arc::new(Halt::new());
    let done = CancellationToken::new();
    let keeper = runner.context.tasks.spawn(keep_lease(
        Arc::clone(&runner),
        id,
        Arc::clone(&halt),
        done.clone(),
    ));
    let run = DeployRun {
        runner: &runner,
        target: deploy.release_id(),
        secrets,
        deploy,
        writer: &writer,
        halt: &halt,
        resources: Mutex::new(HashMap::new()),
        decided_at: Mutex::new(None),
        claimed_slot: Mutex::new(claimed_slot),
        waited_for_helm: Mutex::new(Duration::ZERO),
    };
    let flow = match start {
        Start::Fresh => run.run_fresh().await,
        Start::Recovered => run.resume().await,
    };
    let finish = match flow {
        Ok(finish) => Some(finish),
        Err(Interrupted::Halted) if halt.cause() == Some(HaltCause::Cancelled) => {
            run.cancel_and_repair().await.ok()
        }
        Err(Interrupted::Halted) => None,
        Err(error) => {
            tracing::error!(deploy_id = %id, %error, "deploy interrupted; the lease will expire and it resumes");
            None
        }
    };
    // Verdicts quote Kubernetes and helm, which may quote the secret values.
    let finish = finish.map(|finish| Finish {
        verdict: finish
            .verdict
            .map(|verdict| writer.redactor().redact_verdict(verdict)),
        ..finish
    });
    let decided_at = *run
        .decided_at
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    done.cancel();
    let _ = keeper.await;
    // The terminal event must be the deploy's last: everything emitted is written first.
    if let Err(error) = writer.close().await {
        tracing::error!(deploy_id = %id, %error, "events of the deploy were lost");
    }
    match finish {
        Some(finish) => {
            let (runner, finish) = (&runner, &finish);
            let recorded = until_stored(&halt.abandon, || async move {
                record_finish(runner, id, finish).await
            })
            .await;
            match recorded {
                Ok(ended) => measure(runner, &ended, decided_at),
                Err(error) => {
                    tracing::error!(deploy_id = %id, %error, "cannot record the end of the deploy");
                }
            }
        }
        None if halt.cause() == Some(HaltCause::Shutdown) => {
            if let Err(error) = store::deploys::release_lease(
                runner.context.events.pool(),
                id,
                &runner.options.owner,
            )
            .await
            {
                tracing::warn!(deploy_id = %id, %error, "cannot hand the lease back");
            }
        }
        None => {}
    }
}

/// Records the end; returns the deploy as it ended, once its terminal event is persisted.
async fn record_finish(
    runner: &Runner,
    id: uuid::Uuid,
    finish: &Finish,
) -> Result<Deploy, StoreError> {
    let mut tx = runner.context.events.begin().await?;
    let ended = deploys::finish(&mut tx, id, finish.clone()).await?;
    runner.context.events.commit(tx).await?;
    Ok(ended)
}

/// The deploy's duration, and the verdict latency when tracking decided it.
fn measure(runner: &Runner, ended: &Deploy, decided_at: Option<std::time::Instant>) {
    let metrics = &runner.context.metrics;
    if let (Some(started), Some(finished)) = (ended.started_at, ended.finished_at) {
        let reason = ended.verdict.as_ref().map(|verdict| verdict.reason);
        metrics.finished(
            ended.status,
            reason,
            (finished - started).to_std().unwrap_or_default(),
        );
    }
    if let Some(decided_at) = decided_at {
        metrics.verdict_persisted(ended.status, decided_at.elapsed());
    }
}

/// Runs a store operation again while the database is unreachable (a restart, a failover), so
/// that the deploy waits for it rather than dropping its work; gives up when `stop` is cancelled.
async fn until_stored<T, Attempt>(
    stop: &CancellationToken,
    operation: impl Fn() -> Attempt,
) -> Result<T, Interrupted>
where
    Attempt: Future<Output = Result<T, StoreError>>,
{
    let mut waiting = false;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() => {
                if !waiting {
                    tracing::warn!(%error, "database unreachable; the deploy waits until it is back");
                    waiting = true;
                }
                tokio::select! {
                    () = stop.cancelled() => return Err(Interrupted::Halted),
                    () = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// One deploy being run by this process: what every phase of it needs.
struct DeployRun<'a> {
    runner: &'a Runner,
    deploy: Deploy,
    target: ReleaseId,
    secrets: DeploySecrets,
    writer: &'a EventWriter,
    halt: &'a Halt,
    /// Per-resource state as last written to `deploy_resources`.
    resources: Mutex<HashMap<(String, String, String), ResourceState>>,
    /// When the last tracking received what decided its verdict.
    decided_at: Mutex<Option<std::time::Instant>>,
    /// The helm slot the deploy was claimed with, until its first helm run takes it.
    claimed_slot: Mutex<Option<HelmSlot>>,
    /// Time spent waiting for helm slots: the deploy's timeout does not count it.
    waited_for_helm: Mutex<Duration>,
}

/// A helm slot held by a deploy; the runner learns when it is free again.
struct HeldSlot<'a> {
    slot: HelmSlot,
    runner: &'a Runner,
}

impl Drop for HeldSlot<'_> {
    fn drop(&mut self) {
        self.runner.slot_freed.notify_one();
    }
}

fn failed(verdict: Verdict, revision: Option<i32>) -> Finish {
    Finish {
        outcome: Outcome::Failed,
        verdict: Some(verdict),
        revision,
        rolled_back_to: None,
    }
}
impl DeployRun<'_> {
    fn helm(&self) -> &Helm {
        &self.runner.context.helm
    }

    /// What is left of the deploy's timeout (at least a second, so that a late step still starts
    /// and reports its own timeout). Waits for a helm slot do not count: the timeout covers the
    /// deploy's own helm runs and tracking.
    fn remaining(&self) -> Duration {
        let started = self.deploy.started_at.unwrap_or_else(Utc::now);
        let elapsed = (Utc::now() - started).to_std().unwrap_or_default();
        let waited = *self
            .waited_for_helm
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.deploy
            .timeout()
            .saturating_sub(elapsed.saturating_sub(waited))
            .max(Duration::from_secs(1))
    }

    /// A helm slot: the one the deploy was claimed with, else a free one of the pool, waited for.
    async fn helm_slot(&self, stop: &CancellationToken) -> Result<HeldSlot<'_>, HelmError> {
        let claimed = self
            .claimed_slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let slot = match claimed {
            Some(slot) => slot,
            None => {
                let asked = std::time::Instant::now();
                let slot = self.helm().slot(stop).await?;
                *self
                    .waited_for_helm
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) += asked.elapsed();
                slot
            }
        };
        Ok(HeldSlot {
            slot,
            runner: self.runner,
        })
    }

    /// Runs a helm query whose stdout is JSON in a slot of its own.
    async fn helm_json<T: serde::de::DeserializeOwned>(
        &self,
        invocation: Invocation,
        stop: &CancellationToken,
    ) -> Result<T, HelmError> {
        let held = self.helm_slot(stop).await?;
        self.helm().run_json(&held.slot, invocation, stop).await
    }

    async fn emit(&self, event: NewEvent) -> Result<(), Interrupted> {
        Ok(self.writer.emit(event).await?)
    }

    /// [`until_stored`] for this deploy: halted when it must be left alone.
    async fn stored<T, Attempt>(&self, operation: impl Fn() -> Attempt) -> Result<T, Interrupted>
    where
        Attempt: Future<Output = Result<T, StoreError>>,
    {
        until_stored(&self.halt.abandon, operation).await
    }

    async fn phase(&self, phase: Phase) -> Result<(), Interrupted> {
        // Events emitted so far are written before the phase event, keeping their order.
        self.writer.flush().await?;
        let events = &self.runner.context.events;
        self.stored(|| async move {
            let mut tx = events.begin().await?;
            deploys::set_phase(&mut tx, self.deploy.id, phase).await?;
            events.commit(tx).await
        })
        .await
    }

    /// Runs helm in a slot of its own, streaming its output as `helm.output` events.
    async fn run_helm(
        &self,
        invocation: Invocation,
        stop: &CancellationToken,
    ) -> Result<String, HelmError> {
        let held = self.helm_slot(stop).await?;
        self.run_helm_in(&held.slot, invocation, stop).await
    }

    /// Runs helm in `slot`, streaming its output as `helm.output` events.
    async fn run_helm_in(
        &self,
        slot: &HelmSlot,
        invocation: Invocation,
        stop: &CancellationToken,
    ) -> Result<String, HelmError> {
        let command = invocation.command;
        let (lines, mut received) = mpsc::channel(OUTPUT_BUFFER);
        let run = async move {
            let result = self
                .helm()
                .run(slot, invocation, self.writer.redactor(), Some(&lines), stop)
                .await;
            drop(lines);
            result
        };
        let forward = async {
            while let Some(line) = received.recv().await {
                let event = NewEvent::new(EventType::HelmOutput, line.text)
                    .data(json!({"command": command, "stream": line.stream.as_str()}));
                if let Err(error) = self.emit(event).await {
                    tracing::warn!(deploy_id = %self.deploy.id, %error, "helm output not recorded");
                }
            }
        };
        let (result, ()) = tokio::join!(run, forward);
        result
    }

    async fn run_fresh(&self) -> Flow {
        if let DeploySecrets::Unavailable(unavailable) = &self.secrets {
            return Ok(failed(
                Verdict::new(
                    VerdictReason::SecretValuesUnavailable,
                    unavailable.to_string(),
                ),
                None,
            ));
        }
        self.phase(Phase::Rendering).await?;
        // One slot for the render and the upgrade; tracking needs none.
        let held = match self.helm_slot(&self.halt.any).await {
            Ok(held) => held,
            Err(_cancelled) => return Err(Interrupted::Halted),
        };
        let prepared = if self.helm().hands_over_manifests() {
            self.prepare_hand_over(&held.slot).await
        } else {
            self.render_first(&held.slot).await?
        };
        let (plan, chart) = match prepared {
            Ok(prepared) => prepared,
            Err(RenderFailure::Helm(HelmError::Cancelled { .. })) => {
                return Err(Interrupted::Halted);
            }
            Err(failure) => {
                return Ok(failed(
                    Verdict::new(failure.reason(), failure.to_string()),
                    None,
                ));
            }
        };
        let upgraded = self
            .upgrade_following_hooks(&held.slot, &chart, plan)
            .await?;
        drop(held);
        let (release, _held_watches) = match upgraded {
            Ok(Upgraded { release, watches }) => (release, watches),
            Err(failure) => {
                if let Some(HelmError::Cancelled { .. }) = failure.error {
                    return Err(Interrupted::Halted);
                }
                let changed = failure
                    .error
                    .as_ref()
                    .is_some_and(HelmError::may_have_changed_the_cluster);
                if changed && !failure.before_apply {
                    return self.after_failure(failure.verdict, None).await;
                }
                return Ok(failed(failure.verdict, None));
            }
        };
        let revision = release.version;
        self.stored(|| async move {
            deploys::set_revision(self.runner.context.events.pool(), self.deploy.id, revision).await
        })
        .await?;
        self.track_revision(release.version, release.manifest).await
    }

    /// Announces the planned resources before helm may apply them (`command` rendered them): the
    /// `rendered` event, their watches held (they list while helm runs, and through tracking), the
    /// phase `upgrading`; returns the hooks to follow and the held watches.
    async fn announce_plan(
        &self,
        resources: &[TrackedResource],
        command: &str,
    ) -> Result<(Vec<TrackedResource>, Vec<WatchHold>), Interrupted> {
        self.emit(
            NewEvent::new(
                EventType::HelmOutput,
                format!("rendered {} resources", resources.len()),
            )
            .data(json!({"command": command, "resources": resources.len()})),
        )
        .await?;
        let watches = self.hold_watches(resources).await;
        self.phase(Phase::Upgrading).await?;
        Ok((hooks::upgrade_hooks(resources), watches))
    }

    /// helm 4: the chart located; helm hands its manifest over during the upgrade.
    async fn prepare_hand_over(&self, slot: &HelmSlot) -> Result<Prepared, RenderFailure> {
        let chart = self
            .helm()
            .locate(
                &self.deploy.chart,
                &self.runner.context.charts,
                slot,
                self.remaining(),
                &self.halt.any,
            )
            .await?;
        let check =
            ManifestCheck::create(&self.helm().config().home).map_err(|source| HelmError::Io {
                command: "upgrade",
                source,
            })?;
        Ok((UpgradePlan::HandedOver(check), chart))
    }

    /// helm 3: rendered with `helm template` first, then announced.
    async fn render_first(
        &self,
        slot: &HelmSlot,
    ) -> Result<Result<Prepared, RenderFailure>, Interrupted> {
        let request = RenderRequest {
            release: self.target.clone(),
            chart: &self.deploy.chart,
            values: &self.deploy.values,
            secrets: self.secrets.values(),
            tracking: &self.deploy.tracking,
        };
        let rendered = render(
            self.helm(),
            slot,
            &self.runner.context.charts,
            Some(&self.runner.context.renders),
            &request,
            self.remaining(),
            &self.halt.any,
        )
        .await;
        let Rendered { resources, chart } = match rendered {
            Ok(rendered) => rendered,
            Err(failure) => return Ok(Err(failure)),
        };
        let (hooks, watches) = self.announce_plan(&resources, "template").await?;
        Ok(Ok((UpgradePlan::Rendered { hooks, watches }, chart)))
    }

    /// A deploy taken over from a process that died: a cancel in flight is completed, tracking is
    /// re-attached to the revision helm made, a rollback is finished, anything else is repaired
    /// and run again.
    async fn resume(&self) -> Flow {
        if self.deploy.status == DeployStatus::Cancelling {
            self.halt.trigger(HaltCause::Cancelled);
            return Err(Interrupted::Halted);
        }
        match (self.deploy.phase, self.deploy.revision) {
            (Some(Phase::Tracking), Some(revision)) => self.track_revision(revision, None).await,
            (Some(Phase::RollingBack), revision) => {
                let failure = self.deploy.verdict.clone().unwrap_or_else(|| {
                    Verdict::new(
                        VerdictReason::Interrupted,
                        "the rollcall process rolling this deploy back stopped before recording \
                         why it failed",
                    )
                });
                let rolled_back_to = self.resume_rollback(revision).await?;
                Ok(Finish {
                    rolled_back_to,
                    ..failed(failure, revision)
                })
            }
            _ => {
                self.repair(&self.halt.any).await?;
                self.run_fresh().await
            }
        }
    }
}
