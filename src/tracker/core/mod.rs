//! The pure decision core: plain Kubernetes objects in, per-resource verdicts out.
//!
//! Nothing here performs I/O or reads the clock: every method takes `now`. The watchers feed
//! [`TrackedObject`]s into a [`DeployTracker`] (or a single [`ResourceTracker`]) and forward the
//! returned [`Delta`]s as events; `rollcall explain` feeds a saved file through the same code.
//!
//! How the watcher/runner layer drives it:
//!
//! 1. For each resource of the release, resolve its policy
//!    ([`crate::domain::policy::TrackingOverrides::resolve`] with the manifest's annotations) and build
//!    `ResourceTracker::new(key, policy, tracking_started_at)` (plus
//!    [`ResourceTracker::with_custom_rules`] for the configured custom-resource rules, and
//!    [`ResourceTracker::awaiting_initial_lists`] when fed by watches that have not listed yet); hand
//!    them all to [`DeployTracker::new`]. Call [`DeployTracker::initial_lists_done`] for a resource once
//!    every watch it depends on has delivered its first list: before that it can fail but not be ready.
//!    Feed [`DeployTracker::observe_current`] what a quorum read of the resource found once helm has
//!    applied it (watches joined while running may lag behind): from then on its view never goes
//!    back to an older generation or to an object of another uid that predates the read.
//! 2. Convert every watch event into a [`TrackedObject`] — `TrackedObject::from(pod)` for typed objects,
//!    [`TrackedObject::from_value`] for `DynamicObject`s — and call [`DeployTracker::observe`] (added or
//!    modified) or [`DeployTracker::observe_deleted`]. Feed the tracked objects themselves, their
//!    ReplicaSets (Deployments) and ControllerRevisions (DaemonSets), pods and core/v1 Events; each
//!    resource keeps what belongs to it.
//! 3. Call [`DeployTracker::tick`] periodically (about once a second): the custom-resource settle
//!    window and the no-activity timeout advance only with time. (Readiness probe failures do not:
//!    they need evidence, the kubelet's `Unhealthy` Event or a Ready→NotReady transition.)
//! 4. Publish the returned deltas; after each call check [`DeployTracker::verdict`], which is decided
//!    once. [`DeployTracker::report`] gives the final report; fill `Evidence::log_lines` from the log
//!    streamer (the previous container instance when `Evidence::previous_instance`). Pods to stream logs
//!    from: [`ResourceTracker::current_pods`] and the policy's `logs` selection.

mod custom_rules;
mod deploy;
mod k8s_events;
mod manifest;
mod object;
mod pods;
mod readiness;
mod resource;
mod time;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::domain::event::Level;
use crate::domain::event::ResourceRef;
use crate::domain::verdict::{VerdictDetail, VerdictReason};

pub use custom_rules::{
    ConditionMatch, ConditionSpec, ConditionStatus, CustomResourceRule, CustomResourceRuleSpec,
    CustomResourceRules, RuleError, RuleFieldError,
};
pub use deploy::{DeployTracker, Report, ResourceReport, Verdict};
pub use manifest::{ManifestError, PlanError, TrackedResource, YamlError, plan, yaml_objects};
pub use object::{ObjectError, TrackedObject};
pub use resource::{CUSTOM_RESOURCE_SETTLE, ResourceTracker};

/// Identifies one tracked resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ResourceKey {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ResourceKey {
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        ResourceKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.into(),
        }
    }
}

impl From<&ResourceKey> for ResourceRef {
    fn from(key: &ResourceKey) -> Self {
        ResourceRef {
            kind: key.kind.clone(),
            namespace: key.namespace.clone().unwrap_or_default(),
            name: key.name.clone(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Where a resource stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not seen in the cluster yet.
    Pending,
    Progressing,
    Ready,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Progressing => "progressing",
            State::Ready => "ready",
            State::Failed => "failed",
        }
    }
}

/// The current reading of one resource, as shown per resource in `GET /v1/deploys/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceStatus {
    pub state: State,
    /// One line in the spirit of `kubectl rollout status`.
    pub message: String,
    /// "2/3": ready (or available, or succeeded) out of desired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// "1/3 allowed": incidents counted against the allowance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<String>,
    /// Incidents recorded so far (each counted once).
    pub incidents: u32,
}

/// One failure signal (§5.2), counted once however often it is observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub reason: VerdictReason,
    pub message: String,
    /// The pod, container and Kubernetes' own words.
    #[serde(flatten)]
    pub detail: VerdictDetail,
    /// The logs worth showing are those of the previous container instance (a crash loop).
    pub previous_instance: bool,
    pub observed_at: DateTime<Utc>,
}

/// A Kubernetes Event about the resource or one of its current pods, reduced to what users read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSummary {
    pub involved_kind: String,
    pub involved_name: String,
    pub reason: String,
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Why rollcall does not count this event although it looks alarming (§5.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored_because: Option<String>,
}

/// One pod of a resource as a person scanning a rollout wants to see it (`pod.status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodSummary {
    pub name: String,
    pub phase: String,
    /// Ready containers out of all containers: "1/2".
    pub ready: String,
    pub restarts: i32,
    /// The first container's waiting or terminated reason, when it is not simply running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Belongs to the revision being rolled out (only such pods can fail the resource).
    pub current_revision: bool,
    pub terminating: bool,
}

/// Why a resource failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A signal with no allowance: ProgressDeadlineExceeded, Job Failed, ErrImageNeverPull, ...
    Terminal,
    /// More incidents than the policy allows.
    AllowanceExceeded,
    /// No status change for the policy's no-activity timeout.
    NoActivity,
}

/// What a failure report shows: who failed, and the material to understand why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Read the logs of the previous container instance (`kubectl logs --previous`).
    pub previous_instance: bool,
    pub events: Vec<EventSummary>,
    /// Filled by the log streamer, never by the core.
    pub log_lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: VerdictReason,
    pub message: String,
    /// Who failed and Kubernetes' own words (exit code, termination reason, condition reason).
    #[serde(skip_serializing_if = "VerdictDetail::is_empty")]
    pub detail: VerdictDetail,
    pub evidence: Evidence,
}

/// What changed, for the caller to turn into a §3 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// `resource.status`: emitted only when the status differs from the previous one.
    Status { status: ResourceStatus },
    /// `resource.failure`: a new incident, with the running count and the allowance (None for Jobs,
    /// whose pod failures are evidence and whose allowance is their backoffLimit).
    Incident {
        incident: Incident,
        count: u32,
        allowance: Option<u32>,
        level: Level,
    },
    /// `pod.status`: a pod of the resource changed how it looks (emitted only on change).
    PodStatus { pod: PodSummary },
    /// Trouble that is reported but ends nothing by itself (FailedScheduling).
    Warning {
        reason: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pod: Option<String>,
    },
    /// `k8s.event`: an Event about the resource or its current pods, after tracking started.
    K8sEvent { event: EventSummary, level: Level },
    /// `resource.ready` (also after a recovery under HopeUntilEndOfDeployProcess).
    Ready { message: String },
    /// `resource.failed`.
    Failed { failure: Failure },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delta {
    pub resource: ResourceKey,
    #[serde(flatten)]
    pub change: Change,
}
