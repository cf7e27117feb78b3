//! One deploy from claim to verdict: render, upgrade, track, roll back when asked, and stop,
//! repair and record when cancelled. A deploy taken over from a dead process resumes here too.

mod hooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::helm::{HelmError, HistoryEntry, Redactor, ReleaseInfo, ReleaseTarget, ValuesFiles};
use super::{Helm, RenderFailure, RenderRequest, Runner, render};
use crate::domain::deploy::{DeployStatus, Outcome, Phase, SecretValues};
use crate::domain::event::{self, EventType, Level, NewEvent};
use crate::domain::verdict::{Verdict, VerdictReason};
use crate::events::{EventWriter, WriterError};
use crate::store::deploys::{self, Deploy, Finish, ResourceState};
use crate::store::{self, StoreError};
use crate::tracker::watch::{
    Deadlines, EventKind, ResourceRef, TrackEvent, TrackOptions, TrackOutcome, parse_manifest,
    track,
};

/// Longest pause between lease renewals; a cancel request is noticed at the next renewal.
const MAX_RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// Helm output lines buffered before helm itself is slowed down.
const OUTPUT_BUFFER: usize = 256;

pub(super) enum Start {
    /// Claimed from the queue.
    Fresh,
    /// Taken over after its owner's lease expired.
    Recovered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HaltCause {
    /// A cancel was requested: stop, repair, end `cancelled`.
    Cancelled,
    /// Another process holds the lease now: stop touching the deploy.
    LeaseLost,
    /// This process is stopping: stop and hand the lease back.
    Shutdown,
}

/// Stops a deploy's work from outside (the lease keeper).
struct Halt {
    /// Cancelled for any cause: stops helm and tracking.
    any: CancellationToken,
    /// Cancelled only when the deploy must be left alone; the repair after a cancel runs under it.
    abandon: CancellationToken,
    cause: Mutex<Option<HaltCause>>,
}

impl Halt {
    fn new() -> Self {
        Halt {
            any: CancellationToken::new(),
            abandon: CancellationToken::new(),
            cause: Mutex::new(None),
        }
    }

    fn trigger(&self, cause: HaltCause) {
        {
            let mut current = self.cause.lock().unwrap_or_else(|p| p.into_inner());
            // Leaving the deploy alone overrides a cancel in progress, never the other way round.
            if current.is_none() || cause != HaltCause::Cancelled {
                *current = Some(cause);
            }
        }
        self.any.cancel();
        if cause != HaltCause::Cancelled {
            self.abandon.cancel();
        }
    }

    fn cause(&self) -> Option<HaltCause> {
        *self.cause.lock().unwrap_or_else(|p| p.into_inner())
    }
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

/// Runs (or resumes) one deploy and records its end, unless the deploy must be left to another
/// process.
pub(super) async fn execute(runner: Arc<Runner>, deploy: Deploy, start: Start) {
    let id = deploy.id;
    let writer = match EventWriter::open(&runner.state.events, id).await {
        Ok(writer) => writer,
        Err(error) => {
            tracing::error!(deploy_id = %id, %error, "cannot open the event writer; the lease will expire");
            return;
        }
    };
    let halt = Arc::new(Halt::new());
    let done = CancellationToken::new();
    let keeper = runner.state.tasks.spawn(keep_lease(
        Arc::clone(&runner),
        id,
        Arc::clone(&halt),
        done.clone(),
    ));
    let secrets = runner.state.secrets.take(id);
    let job = Job {
        runner: &runner,
        target: ReleaseTarget {
            cluster: deploy.cluster.clone(),
            namespace: deploy.namespace.clone(),
            release: deploy.release.clone(),
        },
        redactor: Redactor::new(secrets.as_ref()),
        secrets,
        deploy,
        writer: &writer,
        halt: &halt,
        resources: Mutex::new(HashMap::new()),
    };
    let flow = match start {
        Start::Fresh => job.run_fresh().await,
        Start::Recovered => job.resume().await,
    };
    let finish = match flow {
        Ok(finish) => Some(finish),
        Err(Interrupted::Halted) if halt.cause() == Some(HaltCause::Cancelled) => {
            job.cancel_and_repair().await.ok()
        }
        Err(Interrupted::Halted) => None,
        Err(error) => {
            tracing::error!(deploy_id = %id, %error, "deploy interrupted; the lease will expire and it resumes");
            None
        }
    };
    done.cancel();
    let _ = keeper.await;
    // The terminal event must be the deploy's last: everything emitted is written first.
    if let Err(error) = writer.close().await {
        tracing::error!(deploy_id = %id, %error, "events of the deploy were lost");
    }
    match finish {
        Some(finish) => {
            if let Err(error) = record_finish(&runner, id, finish).await {
                tracing::error!(deploy_id = %id, %error, "cannot record the end of the deploy");
            }
        }
        None if halt.cause() == Some(HaltCause::Shutdown) => {
            if let Err(error) =
                store::deploys::release_lease(runner.state.events.pool(), id, &runner.options.owner)
                    .await
            {
                tracing::warn!(deploy_id = %id, %error, "cannot hand the lease back");
            }
        }
        None => {}
    }
}

async fn record_finish(runner: &Runner, id: uuid::Uuid, finish: Finish) -> Result<(), StoreError> {
    let mut tx = runner.state.events.begin().await?;
    deploys::finish(&mut tx, id, finish).await?;
    runner.state.events.commit(tx).await
}

/// Renews the lease until `done`; notices cancel requests, a lost lease and shutdown.
async fn keep_lease(runner: Arc<Runner>, id: uuid::Uuid, halt: Arc<Halt>, done: CancellationToken) {
    let every = (runner.options.lease / 3).min(MAX_RENEW_INTERVAL);
    let shutdown = runner.state.shutdown.clone();
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = shutdown.cancelled() => {
                halt.trigger(HaltCause::Shutdown);
                return;
            }
            () = tokio::time::sleep(every) => {}
        }
        let until = Utc::now() + runner.options.lease;
        match store::deploys::renew_lease(
            runner.state.events.pool(),
            id,
            &runner.options.owner,
            until,
        )
        .await
        {
            Ok(Some(DeployStatus::Cancelling)) => halt.trigger(HaltCause::Cancelled),
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(deploy_id = %id, "lease lost; leaving the deploy to its new owner");
                halt.trigger(HaltCause::LeaseLost);
                return;
            }
            // Retried at the next tick; if the database stays away the lease runs out and another
            // process (or this one) resumes the deploy.
            Err(error) => tracing::warn!(deploy_id = %id, %error, "cannot renew the lease"),
        }
    }
}

struct Job<'a> {
    runner: &'a Runner,
    deploy: Deploy,
    target: ReleaseTarget,
    secrets: Option<SecretValues>,
    redactor: Redactor,
    writer: &'a EventWriter,
    halt: &'a Halt,
    /// Per-resource state as last written to `deploy_resources`.
    resources: Mutex<HashMap<(String, String, String), ResourceState>>,
}

fn failed(verdict: Verdict, revision: Option<i32>) -> Finish {
    Finish {
        outcome: Outcome::Failed,
        verdict: Some(verdict),
        revision,
        rolled_back_to: None,
    }
}

fn domain_resource(resource: &ResourceRef) -> event::ResourceRef {
    event::ResourceRef {
        kind: resource.kind.clone(),
        namespace: resource.namespace.clone().unwrap_or_default(),
        name: resource.name.clone(),
    }
}

/// A tracking event as stored; kinds and levels share their wire names.
fn stored_event(event: TrackEvent) -> NewEvent {
    let level = serde_json::to_value(event.level)
        .ok()
        .and_then(|value| value.as_str().and_then(Level::parse))
        .unwrap_or_default();
    NewEvent {
        kind: EventType::parse(event.kind.as_str()).unwrap_or(EventType::TrackerWarning),
        at: event.at,
        level,
        resource: event.resource.as_ref().map(domain_resource),
        message: event.message,
        data: event.data,
    }
}

impl Job<'_> {
    fn helm(&self) -> &Helm {
        &self.runner.helm
    }

    /// What is left of the deploy's timeout (at least a second, so that a late step still starts
    /// and reports its own timeout).
    fn remaining(&self) -> Duration {
        let started = self.deploy.started_at.unwrap_or_else(Utc::now);
        let elapsed = (Utc::now() - started).to_std().unwrap_or_default();
        self.deploy
            .timeout()
            .saturating_sub(elapsed)
            .max(Duration::from_secs(1))
    }

    async fn emit(&self, event: NewEvent) -> Result<(), Interrupted> {
        Ok(self.writer.emit(event).await?)
    }

    async fn phase(&self, phase: Phase) -> Result<(), Interrupted> {
        // Events emitted so far are written before the phase event, keeping their order.
        self.writer.flush().await?;
        let events = &self.runner.state.events;
        let mut tx = events.begin().await?;
        deploys::set_phase(&mut tx, self.deploy.id, phase).await?;
        events.commit(tx).await?;
        Ok(())
    }

    /// Runs helm, streaming its output as `helm.output` events.
    async fn run_helm(
        &self,
        invocation: super::helm::Invocation,
        stop: &CancellationToken,
    ) -> Result<String, HelmError> {
        let command = invocation.command;
        let (lines, mut received) = mpsc::channel(OUTPUT_BUFFER);
        let run = async move {
            let result = self
                .helm()
                .run(invocation, &self.redactor, Some(&lines), stop)
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
        if self.deploy.secret_values_digest.is_some() && self.secrets.is_none() {
            return Ok(failed(
                Verdict::new(
                    VerdictReason::SecretValuesUnavailable,
                    "the secret values of this deploy were held only by the rollcall process that \
                     accepted it, which stopped; submit the deploy again",
                ),
                None,
            ));
        }
        self.phase(Phase::Rendering).await?;
        let request = RenderRequest {
            target: self.target.clone(),
            chart: &self.deploy.chart,
            values: &self.deploy.values,
            secrets: self.secrets.as_ref(),
            tracking: &self.deploy.tracking,
        };
        let rendered = render(
            self.helm(),
            &self.runner.state.catalog,
            &request,
            self.remaining(),
            &self.redactor,
            &self.halt.any,
        )
        .await;
        let hooks = match rendered {
            Ok((resources, planned)) => {
                self.emit(
                    NewEvent::new(
                        EventType::HelmOutput,
                        format!("rendered {} resources", planned.len()),
                    )
                    .data(json!({"command": "template", "resources": planned.len()})),
                )
                .await?;
                hooks::upgrade_hooks(&resources)
            }
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
        self.phase(Phase::Upgrading).await?;
        let release = match self.upgrade_following_hooks(&hooks).await {
            Ok(release) => release,
            Err(failure) => {
                if let HelmError::Cancelled { .. } = failure.error {
                    return Err(Interrupted::Halted);
                }
                if failure.error.may_have_changed_the_cluster() {
                    return self.after_failure(failure.verdict, None).await;
                }
                return Ok(failed(failure.verdict, None));
            }
        };
        store::deploys::set_revision(
            self.runner.state.events.pool(),
            self.deploy.id,
            release.version,
        )
        .await?;
        self.track_revision(release.version, release.manifest).await
    }

    async fn upgrade(&self) -> Result<ReleaseInfo, HelmError> {
        let chart = Helm::chart_args(&self.deploy.chart, &self.runner.state.catalog)?;
        let values = ValuesFiles::write(
            &self.helm().config().home,
            &self.deploy.values,
            self.secrets.as_ref(),
        )
        .map_err(|source| HelmError::Io {
            command: "upgrade",
            source,
        })?;
        let invocation = self.helm().upgrade(
            &self.target,
            chart,
            &values,
            self.remaining(),
            self.deploy.create_namespace,
        );
        let output = self.run_helm(invocation, &self.halt.any).await?;
        let release: ReleaseInfo =
            serde_json::from_str(&output).map_err(|error| HelmError::Unexpected {
                command: "upgrade",
                message: error.to_string(),
            })?;
        self.emit(
            NewEvent::new(
                EventType::HelmOutput,
                format!(
                    "release {} revision {}: {}",
                    self.target.release, release.version, release.info.status
                ),
            )
            .data(json!({"command": "upgrade", "revision": release.version, "status": release.info.status})),
        )
        .await
        .map_err(|error| HelmError::Unexpected {
            command: "upgrade",
            message: error.to_string(),
        })?;
        Ok(release)
    }

    /// Tracks `revision`; `manifest` is its rendered resources when helm already printed them.
    async fn track_revision(&self, revision: i32, manifest: Option<String>) -> Flow {
        self.phase(Phase::Tracking).await?;
        match self.track(revision, manifest, &self.halt.any).await? {
            Ok(()) => Ok(Finish {
                outcome: Outcome::Succeeded,
                verdict: None,
                revision: Some(revision),
                rolled_back_to: None,
            }),
            Err(failure) => self.after_failure(failure, Some(revision)).await,
        }
    }

    /// Follows the resources of `revision` (its `manifest`, else asked of helm) to a verdict;
    /// `Err(verdict)` when they failed.
    async fn track(
        &self,
        revision: i32,
        manifest: Option<String>,
        stop: &CancellationToken,
    ) -> Result<Result<(), Verdict>, Interrupted> {
        let manifest = match manifest {
            Some(manifest) => manifest,
            None => {
                let invocation = self.helm().get_manifest(&self.target, revision);
                match self
                    .helm()
                    .run(invocation, &self.redactor, None, stop)
                    .await
                {
                    Ok(manifest) => manifest,
                    Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
                    Err(error) => {
                        return Ok(Err(Verdict::new(error.reason(), error.to_string())));
                    }
                }
            }
        };
        let resources = match parse_manifest(&manifest, &self.target.namespace) {
            Ok(resources) => resources,
            Err(error) => {
                return Ok(Err(Verdict::new(
                    VerdictReason::RenderFailed,
                    error.to_string(),
                )));
            }
        };
        let hub = match self.runner.clusters.hub(&self.target.cluster).await {
            Ok(hub) => hub,
            Err(error) => {
                return Ok(Err(Verdict::new(
                    VerdictReason::KubernetesApiError,
                    error.to_string(),
                )));
            }
        };
        let options = TrackOptions {
            deadlines: Deadlines {
                overall: self.remaining(),
                ..Deadlines::default()
            },
            since: self.deploy.started_at,
            custom_resources: self.runner.state.config.custom_resources.clone(),
            ..TrackOptions::default()
        };
        let mut tracking = match track(
            &hub,
            resources,
            &self.deploy.tracking,
            options,
            stop.child_token(),
        ) {
            Ok(tracking) => tracking,
            Err(error) => {
                return Ok(Err(Verdict::new(
                    VerdictReason::InvalidTrackingPolicy,
                    error.to_string(),
                )));
            }
        };
        while let Some(event) = tracking.next_event().await {
            self.record_resource(&event).await?;
            self.emit(stored_event(event)).await?;
        }
        let report = match tracking.finish().await {
            Ok(report) => report,
            Err(error) => {
                return Ok(Err(Verdict::new(
                    VerdictReason::InternalError,
                    error.to_string(),
                )));
            }
        };
        Ok(match report.outcome {
            TrackOutcome::Succeeded => Ok(()),
            TrackOutcome::Failed {
                reason,
                resource,
                message,
                detail,
            } => Err(Verdict {
                reason,
                resource: Some(domain_resource(&resource)),
                message,
                detail,
            }),
            TrackOutcome::TimedOut { waiting_for } => {
                let names: Vec<String> = waiting_for.iter().map(ToString::to_string).collect();
                Err(Verdict {
                    resource: waiting_for.first().map(domain_resource),
                    ..Verdict::new(
                        VerdictReason::Timeout,
                        format!(
                            "the deploy's timeout passed while waiting for {}",
                            names.join(", ")
                        ),
                    )
                })
            }
            TrackOutcome::Cancelled if stop.is_cancelled() => return Err(Interrupted::Halted),
            TrackOutcome::Cancelled => Err(Verdict::new(
                VerdictReason::InternalError,
                "tracking stopped early",
            )),
        })
    }

    /// Keeps `deploy_resources` in step with the tracking events.
    async fn record_resource(&self, event: &TrackEvent) -> Result<(), Interrupted> {
        let Some(resource) = &event.resource else {
            return Ok(());
        };
        let text = |key: &str| {
            event
                .data
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let key = (
            resource.kind.clone(),
            resource.namespace.clone().unwrap_or_default(),
            resource.name.clone(),
        );
        let updated = {
            let mut resources = self.resources.lock().unwrap_or_else(|p| p.into_inner());
            let state = resources
                .entry(key.clone())
                .or_insert_with(|| ResourceState {
                    kind: key.0.clone(),
                    namespace: key.1.clone(),
                    name: key.2.clone(),
                    state: "pending".into(),
                    ready: String::new(),
                    failures: String::new(),
                    message: String::new(),
                });
            match event.kind {
                EventKind::ResourceAdded => {}
                EventKind::ResourceStatus => {
                    state.state = text("state").unwrap_or_else(|| state.state.clone());
                    state.ready = text("ready").unwrap_or_default();
                    state.failures = text("failures").unwrap_or_default();
                    state.message = event.message.clone();
                }
                EventKind::ResourceReady => {
                    state.state = "ready".into();
                    state.message = event.message.clone();
                }
                EventKind::ResourceFailed => {
                    state.state = "failed".into();
                    state.message = event.message.clone();
                }
                _ => return Ok(()),
            }
            state.clone()
        };
        deploys::upsert_resource(self.runner.state.events.pool(), self.deploy.id, &updated).await?;
        Ok(())
    }

    /// A failed deploy: rolled back first when the request (or the server default) asks for it.
    async fn after_failure(&self, failure: Verdict, revision: Option<i32>) -> Flow {
        if !(self.deploy.rollback_on_failure || self.runner.options.rollback_on_failure) {
            return Ok(failed(failure, revision));
        }
        self.enter_rollback(&failure).await?;
        let rolled_back_to = self.roll_back(revision, &self.halt.any).await?;
        Ok(Finish {
            rolled_back_to,
            ..failed(failure, revision)
        })
    }

    /// The `rolling_back` phase, recorded together with the failure it rolls back from.
    async fn enter_rollback(&self, failure: &Verdict) -> Result<(), Interrupted> {
        self.writer.flush().await?;
        let events = &self.runner.state.events;
        let mut tx = events.begin().await?;
        deploys::set_phase(&mut tx, self.deploy.id, Phase::RollingBack).await?;
        store::deploys::set_failure(&mut tx, self.deploy.id, failure).await?;
        events.commit(tx).await?;
        Ok(())
    }

    /// The newest good revision older than `failed` (any, when the failed one is unknown).
    async fn last_good_revision(
        &self,
        failed: Option<i32>,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, HelmError> {
        let history: Vec<HistoryEntry> = self
            .helm()
            .run_json(self.helm().history(&self.target), stop)
            .await?;
        Ok(history
            .iter()
            .filter(|entry| matches!(entry.status.as_str(), "deployed" | "superseded"))
            .filter(|entry| failed.is_none_or(|failed| entry.revision < failed))
            .map(|entry| entry.revision)
            .max())
    }

    /// `helm rollback` to the last good revision, then tracking of the revision it creates; every
    /// step an event. Returns the revision returned to, if any.
    async fn roll_back(
        &self,
        failed_revision: Option<i32>,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        let target = match self.last_good_revision(failed_revision, stop).await {
            Ok(Some(target)) => target,
            Ok(None) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    "no earlier good revision to roll back to".into(),
                    json!({}),
                )
                .await?;
                return Ok(None);
            }
            Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    error.to_string(),
                    json!({"reason": error.reason()}),
                )
                .await?;
                return Ok(None);
            }
        };
        store::deploys::set_rollback_target(
            self.runner.state.events.pool(),
            self.deploy.id,
            target,
        )
        .await?;
        self.rollback_to(target, None, stop).await
    }

    /// `helm rollback` to `target`, then tracking of the revision it creates. `found`: what a
    /// resumed rollback found the release in.
    async fn rollback_to(
        &self,
        target: i32,
        found: Option<&HistoryEntry>,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        let (message, data) = match found {
            None => (
                format!("rolling back to revision {target}"),
                json!({"to_revision": target}),
            ),
            Some(found) => (
                format!(
                    "resuming the rollback to revision {target}: the release is {} at revision {}",
                    found.status, found.revision
                ),
                json!({
                    "to_revision": target,
                    "resumed": true,
                    "repair": found.status.starts_with("pending"),
                    "status": found.status,
                    "revision": found.revision,
                }),
            ),
        };
        self.rollback_event(EventType::RollbackStarted, Level::Warning, message, data)
            .await?;
        let rollback = self.helm().rollback(&self.target, target, self.remaining());
        let restored = match self.run_helm(rollback, stop).await {
            Ok(_) => self.current_revision(stop).await,
            Err(error) => Err(error),
        };
        match restored {
            Ok(restored) => self.track_rollback(target, restored, stop).await,
            Err(HelmError::Cancelled { .. }) => Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    error.to_string(),
                    json!({"reason": error.reason(), "to_revision": target}),
                )
                .await?;
                Ok(None)
            }
        }
    }

    /// Tracks `restored`, the revision a rollback to `target` created, and records its verdict.
    async fn track_rollback(
        &self,
        target: i32,
        restored: i32,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        match self.track(restored, None, stop).await? {
            Ok(()) => {
                self.rollback_event(
                    EventType::RollbackSucceeded,
                    Level::Info,
                    format!("rolled back to revision {target} (new revision {restored}), resources ready"),
                    json!({"to_revision": target, "revision": restored}),
                )
                .await?;
            }
            Err(rollback_verdict) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    format!("rolled back to revision {target}, but: {}", rollback_verdict.message),
                    json!({"to_revision": target, "revision": restored, "verdict": rollback_verdict}),
                )
                .await?;
            }
        }
        Ok(Some(target))
    }

    /// A rollback whose process stopped: finished where helm got to. Done already (the newest
    /// revision is the rollback to the recorded target): tracked. Left `pending-*` or never
    /// started: helm rollback to the recorded target (not the newest deployed revision, which may
    /// be the failed one), then tracked.
    async fn resume_rollback(
        &self,
        failed_revision: Option<i32>,
    ) -> Result<Option<i32>, Interrupted> {
        let stop = &self.halt.any;
        let Some(target) = self.deploy.rollback_target else {
            return self.roll_back(failed_revision, stop).await;
        };
        let history: Vec<HistoryEntry> = match self
            .helm()
            .run_json(self.helm().history(&self.target), stop)
            .await
        {
            Ok(history) => history,
            Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    format!("cannot resume the rollback to revision {target}: {error}"),
                    json!({"reason": error.reason(), "to_revision": target}),
                )
                .await?;
                return Ok(None);
            }
        };
        let newest = history.into_iter().max_by_key(|entry| entry.revision);
        match newest {
            Some(entry)
                if entry.status == "deployed"
                    && entry.description == format!("Rollback to {target}")
                    && failed_revision.is_none_or(|failed| entry.revision > failed) =>
            {
                self.emit(
                    NewEvent::new(
                        EventType::HelmOutput,
                        format!(
                            "the rollback to revision {target} had completed (revision {}); tracking it",
                            entry.revision
                        ),
                    )
                    .data(json!({"command": "history", "to_revision": target, "revision": entry.revision})),
                )
                .await?;
                self.track_rollback(target, entry.revision, stop).await
            }
            found => self.rollback_to(target, found.as_ref(), stop).await,
        }
    }

    async fn rollback_event(
        &self,
        kind: EventType,
        level: Level,
        message: String,
        data: serde_json::Value,
    ) -> Result<(), Interrupted> {
        self.emit(NewEvent::new(kind, message).level(level).data(data))
            .await
    }

    async fn current_revision(&self, stop: &CancellationToken) -> Result<i32, HelmError> {
        let status: ReleaseInfo = self
            .helm()
            .run_json(self.helm().status(&self.target), stop)
            .await?;
        Ok(status.version)
    }

    /// A release that a stopped helm left `pending-*` is rolled back to its last good revision (or
    /// uninstalled when it never had one). Returns the revision returned to.
    async fn repair(&self, stop: &CancellationToken) -> Result<Option<i32>, Interrupted> {
        let status: ReleaseInfo = match self
            .helm()
            .run_json(self.helm().status(&self.target), stop)
            .await
        {
            Ok(status) => status,
            Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
            // No release (a first install that never started) or an unreachable cluster: record it.
            Err(error) => {
                self.emit(
                    NewEvent::new(
                        EventType::HelmOutput,
                        format!("release status unknown, nothing repaired: {error}"),
                    )
                    .level(Level::Warning)
                    .data(json!({"command": "status", "reason": error.reason()})),
                )
                .await?;
                return Ok(None);
            }
        };
        if !status.is_pending() {
            return Ok(None);
        }
        self.rollback_event(
            EventType::RollbackStarted,
            Level::Warning,
            format!(
                "release left {} at revision {}; repairing",
                status.info.status, status.version
            ),
            json!({"repair": true, "status": status.info.status, "revision": status.version}),
        )
        .await?;
        // A rollback left pending returns to its recorded target: the newest deployed revision
        // before it may be the failed one it was rolling back from.
        let recorded = match status.info.status.as_str() {
            "pending-rollback" => deploys::get(self.runner.state.events.pool(), self.deploy.id)
                .await?
                .and_then(|deploy| deploy.rollback_target),
            _ => None,
        };
        let target = match recorded {
            Some(target) => Some(target),
            None => match self.last_good_revision(Some(status.version), stop).await {
                Ok(target) => target,
                Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
                Err(_) => None,
            },
        };
        let (invocation, done) = match target {
            Some(target) => (
                self.helm().rollback(&self.target, target, self.remaining()),
                format!("release repaired: rolled back to revision {target}"),
            ),
            None => (
                self.helm().uninstall(&self.target, self.remaining()),
                "release repaired: the install that never completed was uninstalled".to_owned(),
            ),
        };
        match self.run_helm(invocation, stop).await {
            Ok(_) => {
                self.rollback_event(
                    EventType::RollbackSucceeded,
                    Level::Info,
                    done,
                    json!({"repair": true, "to_revision": target}),
                )
                .await?;
                Ok(target)
            }
            Err(HelmError::Cancelled { .. }) => Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    format!("repair failed: {error}"),
                    json!({"repair": true, "reason": error.reason()}),
                )
                .await?;
                Ok(None)
            }
        }
    }

    /// After a cancel stopped the work: repair the release, then end `cancelled` with who and why.
    async fn cancel_and_repair(&self) -> Result<Finish, Interrupted> {
        let repaired = self.repair(&self.halt.abandon).await?;
        let current = deploys::get(self.runner.state.events.pool(), self.deploy.id)
            .await?
            .ok_or(StoreError::DeployNotFound(self.deploy.id))?;
        let by = current.cancelled_by.unwrap_or_else(|| "unknown".into());
        let reason = current.cancel_reason.unwrap_or_default();
        Ok(Finish {
            outcome: Outcome::Cancelled,
            verdict: Some(Verdict::new(
                VerdictReason::Cancelled,
                format!("cancelled by {by}: {reason}"),
            )),
            revision: current.revision,
            rolled_back_to: repaired,
        })
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
