//! Pods: which ones belong to a resource's current revision, and which of their states are incidents
//! (DESIGN §5.2) — identified so that observing the same state again adds nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Event, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::object::{TrackedObject, controller_of};
use super::time::from_time;
use super::{Incident, PodSummary, ResourceKey};
use crate::domain::policy::TrackingPolicy;
use crate::domain::verdict::{VerdictDetail, VerdictReason};

const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";
const DAEMON_SET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";
const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

/// Signals that no retry can fix: the pod spec itself must change.
const TERMINAL_REASONS: &[VerdictReason] = &[
    VerdictReason::ErrImageNeverPull,
    VerdictReason::InvalidImageName,
];

/// Kubelet probe defaults (pkg/apis/core/v1/defaults.go).
const DEFAULT_PROBE_PERIOD_SECONDS: i32 = 10;
const DEFAULT_PROBE_FAILURE_THRESHOLD: i32 = 3;

fn label<'a>(metadata: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn annotation<'a>(metadata: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Identity of a child object in the tracker's maps: its uid, or its name when a fixture has none.
pub(crate) fn object_key(metadata: &ObjectMeta) -> String {
    metadata
        .uid
        .clone()
        .or_else(|| metadata.name.clone())
        .unwrap_or_default()
}

pub(crate) fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// A ReplicaSet named `<deployment>-<pod-template-hash>` (the hash never contains '-').
pub(crate) fn is_replica_set_of(deployment: &str, replica_set: &str) -> bool {
    replica_set
        .strip_prefix(deployment)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| !hash.is_empty() && !hash.contains('-'))
}

/// Namespaces compared the way the API fills them in: absent means `default`.
pub(crate) fn same_namespace(a: Option<&str>, b: Option<&str>) -> bool {
    a.unwrap_or("default") == b.unwrap_or("default")
}

/// Whether `child` (a Pod, ReplicaSet or ControllerRevision) is controlled by the resource `key`
/// (whose uid is `owner_uid` once seen), directly or — for a Deployment's pods — through one of its
/// ReplicaSets.
pub(crate) fn belongs_to(key: &ResourceKey, owner_uid: Option<&str>, child: &ObjectMeta) -> bool {
    if !same_namespace(key.namespace.as_deref(), child.namespace.as_deref()) {
        return false;
    }
    if key.kind == "Pod" {
        return child.name.as_deref() == Some(key.name.as_str());
    }
    let Some(controller) = controller_of(child) else {
        return false;
    };
    if key.kind == "Deployment" && controller.kind == "ReplicaSet" {
        return is_replica_set_of(&key.name, &controller.name);
    }
    let uid_matches =
        owner_uid.is_none_or(|uid| controller.uid.is_empty() || controller.uid == uid);
    controller.kind == key.kind && controller.name == key.name && uid_matches
}

/// How to tell the pods of the revision being rolled out from the old ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CurrentRevision {
    /// No revision information (yet): every pod of the resource counts.
    Any,
    /// Deployment: pods of the newest ReplicaSet.
    ReplicaSet(String),
    /// Not known yet: the workload itself has not been seen (its pods may arrive first), or its
    /// Deployment controller has not observed the newest spec (the new ReplicaSet may not exist,
    /// so the newest one may be the previous revision's). No pod counts until it is known.
    Unknown,
    /// StatefulSet `status.updateRevision`, DaemonSet newest ControllerRevision hash.
    RevisionHash(String),
    /// DaemonSet template generation (`pod-template-generation` label).
    TemplateGeneration(String),
}

impl CurrentRevision {
    pub(crate) fn of(
        resource: &TrackedObject,
        replica_sets: &BTreeMap<String, ReplicaSet>,
        revisions: &BTreeMap<String, ControllerRevision>,
    ) -> CurrentRevision {
        match resource {
            TrackedObject::Deployment(deployment)
                if deployment
                    .status
                    .as_ref()
                    .and_then(|status| status.observed_generation)
                    .unwrap_or(0)
                    < deployment.metadata.generation.unwrap_or(0) =>
            {
                CurrentRevision::Unknown
            }
            // The controller writes the new ReplicaSet's revision on the Deployment before it
            // observes the generation: the ReplicaSet of that revision is the current one, and
            // until the ReplicaSets' watch shows it (it may lag), no pod counts.
            TrackedObject::Deployment(deployment) => {
                match annotation(&deployment.metadata, DEPLOYMENT_REVISION) {
                    Some(revision) => replica_sets
                        .values()
                        .find(|set| {
                            annotation(&set.metadata, DEPLOYMENT_REVISION) == Some(revision)
                        })
                        .and_then(|set| set.metadata.name.clone())
                        .map_or(CurrentRevision::Unknown, CurrentRevision::ReplicaSet),
                    None => replica_sets
                        .values()
                        .max_by_key(|set| {
                            let revision = annotation(&set.metadata, DEPLOYMENT_REVISION)
                                .and_then(|text| text.parse::<i64>().ok())
                                .unwrap_or(0);
                            (
                                revision,
                                set.metadata.creation_timestamp.as_ref().map(from_time),
                            )
                        })
                        .and_then(|set| set.metadata.name.clone())
                        .map_or(CurrentRevision::Any, CurrentRevision::ReplicaSet),
                }
            }
            TrackedObject::StatefulSet(set) => set
                .status
                .as_ref()
                .and_then(|status| status.update_revision.clone())
                .filter(|revision| !revision.is_empty())
                .map_or(CurrentRevision::Any, CurrentRevision::RevisionHash),
            TrackedObject::DaemonSet(set) => {
                if let Some(generation) = annotation(&set.metadata, DAEMON_SET_TEMPLATE_GENERATION)
                {
                    return CurrentRevision::TemplateGeneration(generation.to_owned());
                }
                revisions
                    .values()
                    .max_by_key(|revision| revision.revision)
                    .and_then(|revision| {
                        label(&revision.metadata, REVISION_HASH_LABEL)
                            .map(str::to_owned)
                            .or_else(|| {
                                let name = revision.metadata.name.as_deref()?;
                                Some(name.rsplit_once('-')?.1.to_owned())
                            })
                    })
                    .map_or(CurrentRevision::Any, CurrentRevision::RevisionHash)
            }
            _ => CurrentRevision::Any,
        }
    }

    pub(crate) fn includes(&self, pod: &Pod) -> bool {
        let metadata = &pod.metadata;
        match self {
            CurrentRevision::Any => true,
            CurrentRevision::Unknown => false,
            CurrentRevision::ReplicaSet(name) => {
                controller_of(metadata).is_some_and(|owner| &owner.name == name)
                    || name
                        .rsplit_once('-')
                        .is_some_and(|(_, hash)| label(metadata, POD_TEMPLATE_HASH) == Some(hash))
            }
            CurrentRevision::RevisionHash(hash) => {
                label(metadata, CONTROLLER_REVISION_HASH) == Some(hash.as_str())
            }
            CurrentRevision::TemplateGeneration(generation) => {
                label(metadata, POD_TEMPLATE_GENERATION).is_none_or(|label| label == generation)
            }
        }
    }
}

/// An incident found in a pod, with the identity that makes re-observation a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub id: String,
    pub incident: Incident,
    pub terminal: bool,
}

fn container_spec<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|container| container.name == name)
}

/// How long readiness may fail after a container starts before it is an incident: the annotation, or
/// what the probe itself tolerates (`initialDelaySeconds + periodSeconds × failureThreshold`).
fn readiness_window(pod: &Pod, container: &str, policy: &TrackingPolicy) -> Option<Duration> {
    if let Some(window) = policy.ignore_readiness_probe_fails_for.get(container) {
        return Some(window.0);
    }
    let probe = container_spec(pod, container)?.readiness_probe.as_ref()?;
    let seconds = probe.initial_delay_seconds.unwrap_or(0)
        + probe.period_seconds.unwrap_or(DEFAULT_PROBE_PERIOD_SECONDS)
            * probe
                .failure_threshold
                .unwrap_or(DEFAULT_PROBE_FAILURE_THRESHOLD);
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

/// The kubelet's latest report that a container's readiness probe failed: its `Unhealthy`
/// "Readiness probe failed" Event, which the kubelet folds into one object whose `lastTimestamp`
/// moves with every new failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeFailure {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// Readiness probe failures by pod (its [`object_key`]) and container.
pub(crate) type ProbeFailures = HashMap<(String, String), ProbeFailure>;

const READINESS_PROBE_FAILED: &str = "Readiness probe failed";

/// The container whose readiness probe `event` says failed, if it says so: named by the Event's
/// `fieldPath` (`spec.containers{web}`), or the pod's only container when the Event names none.
pub(crate) fn readiness_probe_failure(event: &Event, pod: &Pod) -> Option<String> {
    let message = event.message.as_deref().unwrap_or_default();
    if event.reason.as_deref() != Some("Unhealthy") || !message.starts_with(READINESS_PROBE_FAILED)
    {
        return None;
    }
    match event.involved_object.field_path.as_deref() {
        Some(path) => path
            .strip_prefix("spec.containers{")
            .and_then(|rest| rest.strip_suffix('}'))
            .map(str::to_owned),
        None => match pod.spec.as_ref().map(|spec| spec.containers.as_slice()) {
            Some([only]) => Some(only.name.clone()),
            _ => None,
        },
    }
}

/// Kubernetes writes `metav1.Time` with whole seconds: comparisons between two such stamps are
/// made on whole seconds, whatever precision a source happens to give.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(0)
}

struct PodContext<'a> {
    pod: &'a Pod,
    key: String,
    name: &'a str,
    now: DateTime<Utc>,
    /// When tracking began: a crash that ended before it is history.
    since: DateTime<Utc>,
    probe_failures: &'a ProbeFailures,
    /// When the pod's Ready condition last turned False, if it is False.
    not_ready_since: Option<DateTime<Utc>>,
}

impl PodContext<'_> {
    /// An incident of `container` (of the pod itself when `None`), identified within the pod by
    /// `identity`.
    fn candidate(
        &self,
        container: Option<&ContainerStatus>,
        identity: &str,
        reason: VerdictReason,
        message: String,
        previous_instance: bool,
    ) -> Candidate {
        let name = container.map(|status| status.name.as_str());
        Candidate {
            id: format!("pod/{}/{}/{identity}", self.key, name.unwrap_or_default()),
            terminal: TERMINAL_REASONS.contains(&reason),
            incident: Incident {
                reason,
                message,
                detail: VerdictDetail {
                    pod: Some(self.name.to_owned()),
                    container: name.map(str::to_owned),
                    restart_count: container.map(|status| status.restart_count),
                    ..VerdictDetail::default()
                },
                previous_instance,
                observed_at: self.now,
            },
        }
    }

    /// A container instance that exited non-zero: a crash, or in a pod that is never restarted
    /// (a Job's), a failed run.
    fn exit_reason(&self) -> VerdictReason {
        let restart_policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|spec| spec.restart_policy.as_deref());
        if restart_policy == Some("Never") {
            VerdictReason::ContainerFailed
        } else {
            VerdictReason::CrashLoopBackOff
        }
    }

    fn container_incidents(
        &self,
        status: &ContainerStatus,
        policy: &TrackingPolicy,
    ) -> Vec<Candidate> {
        let name = status.name.as_str();
        let restarts = status.restart_count;
        let no_state = ContainerState::default();
        let state = status.state.as_ref().unwrap_or(&no_state);
        let mut found = Vec::new();
        let last_terminated = status
            .last_state
            .as_ref()
            .and_then(|state| state.terminated.as_ref());
        if let Some(waiting) = &state.waiting {
            let kubelet_reason = waiting.reason.as_deref().unwrap_or_default();
            match VerdictReason::of_waiting_container(kubelet_reason) {
                Some(VerdictReason::CrashLoopBackOff) => {
                    // One crash is one incident: keyed by the dead instance, like its `terminated`
                    // state below. The kubelet has already counted this crash in `restarts`.
                    let instance = crash_instance(last_terminated, restarts - 1);
                    let exit = last_terminated
                        .map(|terminated| format!(" (last exit code {})", terminated.exit_code))
                        .unwrap_or_default();
                    found.push(
                        self.candidate(
                            Some(status),
                            &format!("crash/{instance}"),
                            VerdictReason::CrashLoopBackOff,
                            format!(
                                "container {name:?} is crash looping{exit}, restarted {restarts} times"
                            ),
                            true,
                        )
                        .ended(last_terminated),
                    );
                }
                Some(reason) => {
                    let detail = waiting.message.clone().unwrap_or_default();
                    found.push(self.candidate(
                        Some(status),
                        &format!("{kubelet_reason}/{restarts}"),
                        reason,
                        if detail.is_empty() {
                            format!("container {name:?} is waiting: {kubelet_reason}")
                        } else {
                            format!("container {name:?} is waiting: {kubelet_reason}: {detail}")
                        },
                        false,
                    ));
                }
                None => {}
            }
        }
        // A crash first seen after its restart (it ended before the first observation, or in
        // updates a re-list skipped) still counts. Its identity is the one it has while crash
        // looping (recorded first above) or terminated, so it counts once.
        if let Some(terminated) = last_terminated
            && terminated.exit_code != 0
            && self.ended_while_tracking(terminated)
        {
            found.push(
                self.candidate(
                    Some(status),
                    &format!("crash/{}", crash_instance(Some(terminated), restarts - 1)),
                    VerdictReason::CrashLoopBackOff,
                    format!(
                        "container {name:?} restarted after exiting with code {} ({})",
                        terminated.exit_code,
                        termination_reason(terminated)
                    ),
                    true,
                )
                .ended(Some(terminated)),
            );
        }
        if let Some(terminated) = &state.terminated
            && terminated.exit_code != 0
        {
            found.push(
                self.candidate(
                    Some(status),
                    &format!("crash/{}", crash_instance(Some(terminated), restarts)),
                    self.exit_reason(),
                    format!(
                        "container {name:?} terminated with exit code {} ({})",
                        terminated.exit_code,
                        termination_reason(terminated)
                    ),
                    false,
                )
                .ended(Some(terminated)),
            );
        }
        if let Some(running) = &state.running
            && let Some(started) = running.started_at.as_ref().map(from_time)
            && let Some(window) = readiness_window(self.pod, name, policy)
            && let Some(evidence) = self.readiness_failure(name, status.ready, started, window)
        {
            found.push(self.candidate(
                Some(status),
                &format!("readiness/{restarts}"),
                VerdictReason::ReadinessProbeFailed,
                format!(
                    "container {name:?} {evidence}, past its {}s window",
                    window.as_secs()
                ),
                false,
            ));
        }
        found
    }

    /// Evidence that the instance of `container` started at `started` failed its readiness probe
    /// after its `window`: a failure the kubelet reported, or the pod turning not ready while the
    /// container is not ready (the pod was Ready, so the container was, after this instance
    /// started). A container that simply is not ready yet is progress, never a failure. Both
    /// stamps have whole seconds, so only a failure recorded at least `window + 1s` after the
    /// recorded start certainly came after the window.
    fn readiness_failure(
        &self,
        container: &str,
        ready: bool,
        started: DateTime<Utc>,
        window: Duration,
    ) -> Option<String> {
        let started = whole_second(started);
        let window = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        let earliest = started
            .checked_add_signed(window + TimeDelta::seconds(1))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let after_start = |at: DateTime<Utc>| (whole_second(at) - started).num_seconds();
        if let Some(failure) = self
            .probe_failures
            .get(&(self.key.clone(), container.to_owned()))
            .filter(|failure| whole_second(failure.at) >= earliest)
        {
            return Some(format!(
                "failed its readiness probe {}s after starting ({})",
                after_start(failure.at),
                failure.message
            ));
        }
        self.not_ready_since
            .filter(|since| !ready && whole_second(*since) > started)
            .filter(|since| whole_second(*since) >= earliest)
            .map(|since| {
                format!(
                    "turned not ready {}s after starting (the pod's Ready condition turned False)",
                    after_start(since)
                )
            })
    }

    /// Whether the instance ended after tracking began (when its end is unknown: whether the pod
    /// was created after).
    fn ended_while_tracking(&self, terminated: &ContainerStateTerminated) -> bool {
        terminated
            .finished_at
            .as_ref()
            .or(self.pod.metadata.creation_timestamp.as_ref())
            .is_some_and(|at| from_time(at) >= self.since)
    }
}

impl Candidate {
    /// With how the container instance ended, when it has.
    fn ended(mut self, terminated: Option<&ContainerStateTerminated>) -> Self {
        if let Some(terminated) = terminated {
            let detail = &mut self.incident.detail;
            detail.exit_code = Some(terminated.exit_code);
            detail.signal = terminated.signal;
            detail.termination_reason = Some(termination_reason(terminated).to_owned());
        }
        self
    }
}

/// Kubernetes' word for how an instance ended; runtimes that give none mean a plain error.
fn termination_reason(terminated: &ContainerStateTerminated) -> &str {
    terminated.reason.as_deref().unwrap_or("Error")
}

/// Names one container instance: its container id, else its start or finish time, else the
/// restart counter it died at (`restarts` as reported next to the terminated state).
fn crash_instance(terminated: Option<&ContainerStateTerminated>, restarts: i32) -> String {
    terminated
        .and_then(|terminated| {
            terminated
                .container_id
                .clone()
                .or_else(|| {
                    terminated
                        .started_at
                        .as_ref()
                        .map(|at| from_time(at).to_rfc3339())
                })
                .or_else(|| {
                    terminated
                        .finished_at
                        .as_ref()
                        .map(|at| from_time(at).to_rfc3339())
                })
        })
        .unwrap_or_else(|| format!("restart-{restarts}"))
}

/// Whether the logs worth showing for `incident` are now the previous container instance's
/// (`kubectl logs --previous`): the container waits to restart after a crash (during back-off the
/// kubelet serves the crashed run as `previous`), or has started again since the incident.
pub(crate) fn logs_of_previous_instance(pod: &Pod, incident: &Incident) -> bool {
    let status = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find(|status| Some(&status.name) == incident.detail.container.as_ref());
    let Some(status) = status else {
        return incident.previous_instance;
    };
    let backing_off = status
        .state
        .as_ref()
        .is_some_and(|state| state.waiting.is_some())
        && status
            .last_state
            .as_ref()
            .is_some_and(|state| state.terminated.is_some());
    let restarted_since = incident
        .detail
        .restart_count
        .is_some_and(|count| status.restart_count > count);
    incident.previous_instance || backing_off || restarted_since
}

/// Incidents visible in a pod right now, given the readiness probe failures reported so far.
/// Callers pass only current-revision, non-terminating pods.
pub(crate) fn incidents(
    pod: &Pod,
    policy: &TrackingPolicy,
    probe_failures: &ProbeFailures,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Candidate> {
    let context = PodContext {
        pod,
        key: object_key(&pod.metadata),
        name: pod_name(pod),
        now,
        since,
        probe_failures,
        not_ready_since: pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|condition| condition.type_ == "Ready" && condition.status == "False")
            .and_then(|condition| condition.last_transition_time.as_ref())
            .map(from_time),
    };
    let no_status = PodStatus::default();
    let status = pod.status.as_ref().unwrap_or(&no_status);
    let mut found: Vec<Candidate> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .flat_map(|container| context.container_incidents(container, policy))
        .collect();
    if status.phase.as_deref() == Some("Failed") {
        // Eviction and the like: the whole pod is gone for good.
        let mut failed = context.candidate(
            None,
            "failed",
            VerdictReason::PodFailed,
            format!(
                "pod {:?} failed{}",
                context.name,
                status
                    .message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            false,
        );
        failed
            .incident
            .detail
            .original_reason
            .clone_from(&status.reason);
        found.push(failed);
    }
    found
}

/// What a pod shows; a change counts as activity for the no-activity timeout.
pub(crate) fn summarize(pod: &Pod, current_revision: bool) -> PodSummary {
    let no_status = PodStatus::default();
    let status = pod.status.as_ref().unwrap_or(&no_status);
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    let reason = containers.iter().find_map(|container| {
        let state = container.state.as_ref()?;
        state
            .waiting
            .as_ref()
            .and_then(|waiting| waiting.reason.clone())
            .or_else(|| {
                state.terminated.as_ref().map(|terminated| {
                    terminated
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("exit code {}", terminated.exit_code))
                })
            })
    });
    PodSummary {
        name: pod_name(pod).to_owned(),
        phase: status.phase.clone().unwrap_or_else(|| "Pending".to_owned()),
        ready: format!(
            "{}/{}",
            containers
                .iter()
                .filter(|container| container.ready)
                .count(),
            containers.len()
        ),
        restarts: containers
            .iter()
            .map(|container| container.restart_count)
            .sum(),
        reason,
        current_revision,
        terminating: is_terminating(pod),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_set_names_are_matched_by_hash_suffix() {
        assert!(is_replica_set_of("web", "web-7c5ddbdf54"));
        assert!(!is_replica_set_of("web", "web-api-7c5ddbdf54"));
        assert!(!is_replica_set_of("web", "web-"));
        assert!(!is_replica_set_of("web", "webapp-7c5d"));
    }
}
