//! Phase `tracking`: the revision's resources followed to a verdict, their state kept in
//! `deploy_resources`.

use std::sync::PoisonError;

use tokio_util::sync::CancellationToken;

use super::{DeployRun, Flow, Interrupted};
use crate::domain::deploy::{Outcome, Phase};
use crate::domain::event::{EventType, NewEvent};
use crate::domain::verdict::{Verdict, VerdictReason};
use crate::runner::helm::HelmError;
use crate::store::deploys::{self, Finish, ResourceState};
use crate::tracker::core::{TrackedResource, plan};
use crate::tracker::watch::{
    Deadlines, TrackOptions, TrackOutcome, WatchHold, hold_watches, track,
};

impl DeployRun<'_> {
    /// Tracks `revision`; `manifest` is its rendered resources when helm already printed them.
    pub(super) async fn track_revision(&self, revision: i32, manifest: Option<String>) -> Flow {
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

    /// Holds the watches that tracking `resources` will need while helm applies them; none when
    /// the cluster is unusable (tracking reports that).
    pub(super) async fn hold_watches(&self, resources: &[TrackedResource]) -> Vec<WatchHold> {
        match self.runner.context.clusters.hub(&self.target.cluster).await {
            Ok(hub) => hold_watches(&hub, resources).await,
            Err(_) => Vec::new(),
        }
    }

    /// Follows the resources of `revision` (its `manifest`, else asked of helm) to a verdict;
    /// `Err(verdict)` when they failed.
    pub(super) async fn track(
        &self,
        revision: i32,
        manifest: Option<String>,
        stop: &CancellationToken,
    ) -> Result<Result<(), Verdict>, Interrupted> {
        let manifest = match manifest {
            Some(manifest) => manifest,
            None => {
                let invocation = self.helm().get_manifest(&self.target, revision);
                let manifest = match self.helm_slot(stop).await {
                    Ok(held) => {
                        self.helm()
                            .run(&held.slot, invocation, self.writer.redactor(), None, stop)
                            .await
                    }
                    Err(error) => Err(error),
                };
                match manifest {
                    Ok(manifest) => manifest,
                    Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
                    Err(error) => {
                        return Ok(Err(Verdict::new(error.reason(), error.to_string())));
                    }
                }
            }
        };
        let resources = match plan(&manifest, &self.target.namespace, &self.deploy.tracking) {
            Ok(resources) => resources,
            Err(error) => return Ok(Err(Verdict::new(error.reason(), error.to_string()))),
        };
        let hub = match self.runner.context.clusters.hub(&self.target.cluster).await {
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
            custom_resources: self.runner.context.custom_resources.clone(),
            ..TrackOptions::default()
        };
        let mut tracking = track(&hub, resources, options, stop.child_token());
        while let Some(event) = tracking.next_event().await {
            self.record_resource(&event).await?;
            self.emit(event).await?;
        }
        let report = match tracking.finish().await {
            Ok(report) => {
                *self
                    .decided_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = report.decided_at;
                report
            }
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
                resource: Some(resource),
                message,
                detail,
            }),
            TrackOutcome::TimedOut { waiting_for } => {
                let names: Vec<String> = waiting_for.iter().map(ToString::to_string).collect();
                Err(Verdict {
                    resource: waiting_for.first().cloned(),
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
    pub(super) async fn record_resource(&self, event: &NewEvent) -> Result<(), Interrupted> {
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
        // What the events say, as they are stored.
        let message = || self.writer.redactor().redact(&event.message);
        let key = (
            resource.kind.clone(),
            resource.namespace.clone(),
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
                EventType::ResourceAdded => {}
                EventType::ResourceStatus => {
                    state.state = text("state").unwrap_or_else(|| state.state.clone());
                    state.ready = text("ready").unwrap_or_default();
                    state.failures = text("failures").unwrap_or_default();
                    state.message = message();
                }
                EventType::ResourceReady => {
                    state.state = "ready".into();
                    state.message = message();
                }
                EventType::ResourceFailed => {
                    state.state = "failed".into();
                    state.message = message();
                }
                _ => return Ok(()),
            }
            state.clone()
        };
        let updated = &updated;
        self.stored(|| async move {
            deploys::upsert_resource(self.runner.context.events.pool(), self.deploy.id, updated)
                .await
        })
        .await
    }
}
