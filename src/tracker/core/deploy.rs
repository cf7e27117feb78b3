//! The deploy-level view: fail modes and track-termination modes applied across resources (§5.4).
//!
//! | fail mode | the resource fails (allowance exceeded, terminal signal, no activity) |
//! |---|---|
//! | `FailWholeDeployProcessImmediately` | the deploy fails at once |
//! | `HopeUntilEndOfDeployProcess` | the resource is `failed` but still tracked and may recover; the deploy fails if it is still failed once every blocking resource has settled (ready or failed) |
//! | `IgnoreAndContinueDeployProcess` | incidents never fail it; a terminal signal or the no-activity timeout does, handled as under Hope |
//!
//! `NonBlocking` resources are not waited for: the deploy succeeds once every blocking resource is ready,
//! whatever they are doing. While the deploy is still running their failures count as above.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Delta, Failure, Incident, ResourceKey, ResourceStatus, ResourceTracker, State, TrackedObject,
};
use crate::domain::policy::FailMode;
use crate::domain::verdict::{VerdictDetail, VerdictReason};

/// The deploy's tracking outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Verdict {
    Succeeded,
    Failed {
        reason: VerdictReason,
        resource: ResourceKey,
        message: String,
        /// Boxed: a verdict is decided once, and most checks of it find none or a success.
        #[serde(skip_serializing_if = "VerdictDetail::is_empty")]
        detail: Box<VerdictDetail>,
    },
}

/// The final per-resource summary with evidence (the `report` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub resources: Vec<ResourceReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceReport {
    pub resource: ResourceKey,
    pub status: ResourceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub incidents: Vec<Incident>,
}

impl From<&ResourceTracker> for ResourceReport {
    fn from(tracker: &ResourceTracker) -> Self {
        ResourceReport {
            resource: tracker.key().clone(),
            status: tracker.status().clone(),
            failure: tracker.failure().cloned(),
            incidents: tracker.incidents().to_vec(),
        }
    }
}

/// All resources of one deploy, and the verdict once it is certain.
#[derive(Debug, Clone, Default)]
pub struct DeployTracker {
    resources: Vec<ResourceTracker>,
    verdict: Option<Verdict>,
}

impl DeployTracker {
    pub fn new(resources: Vec<ResourceTracker>) -> Self {
        let mut tracker = DeployTracker {
            resources,
            verdict: None,
        };
        tracker.decide();
        tracker
    }

    pub fn resources(&self) -> &[ResourceTracker] {
        &self.resources
    }

    /// Decided once: later observations never change it.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    pub fn observe(&mut self, object: &TrackedObject, now: DateTime<Utc>) -> Vec<Delta> {
        self.each(|resource| resource.observe(object, now))
    }

    pub fn observe_deleted(&mut self, object: &TrackedObject, now: DateTime<Utc>) -> Vec<Delta> {
        self.each(|resource| resource.observe_deleted(object, now))
    }

    /// The resource `key` as a quorum read found it (see [`ResourceTracker::observe_current`]).
    pub fn observe_current(
        &mut self,
        key: &ResourceKey,
        object: Option<&TrackedObject>,
        now: DateTime<Utc>,
    ) -> Vec<Delta> {
        self.each(|resource| {
            if resource.key() == key {
                resource.observe_current(object, now)
            } else {
                Vec::new()
            }
        })
    }

    /// Every watch `key` depends on has delivered its first list (see
    /// [`ResourceTracker::awaiting_initial_lists`]).
    pub fn initial_lists_done(&mut self, key: &ResourceKey, now: DateTime<Utc>) -> Vec<Delta> {
        self.each(|resource| {
            if resource.key() == key {
                resource.initial_lists_done(now)
            } else {
                Vec::new()
            }
        })
    }

    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Delta> {
        self.each(|resource| resource.tick(now))
    }

    pub fn report(&self) -> Report {
        Report {
            verdict: self.verdict.clone(),
            resources: self.resources.iter().map(ResourceReport::from).collect(),
        }
    }

    fn each(&mut self, mut step: impl FnMut(&mut ResourceTracker) -> Vec<Delta>) -> Vec<Delta> {
        let deltas = self.resources.iter_mut().flat_map(&mut step).collect();
        self.decide();
        deltas
    }

    fn decide(&mut self) {
        if self.verdict.is_some() {
            return;
        }
        let immediate = self
            .resources
            .iter()
            .filter(|resource| {
                resource.policy().fail_mode == FailMode::FailWholeDeployProcessImmediately
            })
            .find_map(failed_verdict);
        if let Some(verdict) = immediate {
            self.verdict = Some(verdict);
            return;
        }
        let all_settled = self
            .resources
            .iter()
            .filter(|resource| resource.is_blocking())
            .all(ResourceTracker::has_settled);
        if all_settled {
            self.verdict = Some(
                self.resources
                    .iter()
                    .find_map(failed_verdict)
                    .unwrap_or(Verdict::Succeeded),
            );
        }
    }
}

/// The verdict a failed resource gives the deploy.
fn failed_verdict(resource: &ResourceTracker) -> Option<Verdict> {
    let failure = resource
        .failure()
        .filter(|_| resource.state() == State::Failed)?;
    Some(Verdict::Failed {
        reason: failure.reason,
        resource: resource.key().clone(),
        message: failure.message.clone(),
        detail: Box::new(failure.detail.clone()),
    })
}
