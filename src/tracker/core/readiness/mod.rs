//! Readiness per kind (DESIGN §5.1). Deployment, StatefulSet and DaemonSet follow `kubectl rollout
//! status` (kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go) condition for condition and
//! message for message, minus kubectl's trailing newline. Absent status fields are zero, as in the API.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

mod custom;

use super::custom_rules::CustomResourceRule;
use super::object::TrackedObject;
use crate::domain::verdict::VerdictReason;

/// Job `backoffLimit` when the spec leaves it out (API default).
const DEFAULT_BACKOFF_LIMIT: i32 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    Waiting,
    Done,
    /// A terminal signal: nothing will make this resource ready without a new rollout.
    /// `original`: the object's own word, where it is not the reason itself.
    Failed {
        reason: VerdictReason,
        original: Option<String>,
    },
    /// A custom resource with an empty status: ready only once it has stayed empty for a while.
    Settling,
}

/// How incidents are weighed against the allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowance {
    /// `failures-allowed-per-replica × replicas`.
    PerReplica { replicas: u32 },
    /// Jobs: pod failures are evidence; the Job's own `backoffLimit` decides (reported as failed/limit).
    Backoff { failed: i32, limit: i32 },
}

/// A failure the resource reports about itself that counts as one incident against the allowance
/// (a non-terminal custom-resource rule), identified like pod incidents so that re-reading it adds
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailureSignal {
    pub id: String,
    pub reason: String,
    pub message: String,
}

impl Allowance {
    /// Before the object itself is seen (its pods may arrive first, from another watch): a Job's
    /// pod failures are evidence whatever its spec says, so they must not be counted per replica.
    pub(crate) fn before_seen(kind: &str) -> Allowance {
        if kind == "Job" {
            Allowance::Backoff {
                failed: 0,
                limit: DEFAULT_BACKOFF_LIMIT,
            }
        } else {
            Allowance::PerReplica { replicas: 1 }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub progress: Progress,
    pub message: String,
    /// (ready, desired), shown as "ready/desired".
    pub ready: Option<(i64, i64)>,
    pub allowance: Allowance,
    pub signal: Option<FailureSignal>,
}

impl Readiness {
    pub(crate) fn new(progress: Progress, message: String) -> Self {
        Readiness {
            progress,
            message,
            ready: None,
            allowance: Allowance::PerReplica { replicas: 1 },
            signal: None,
        }
    }

    fn with_ready(mut self, ready: i64, desired: i64) -> Self {
        self.ready = Some((ready, desired));
        self
    }

    fn with_replicas(mut self, replicas: i64) -> Self {
        // A resource scaled to zero still has one replica's worth of allowance for controller events.
        self.allowance = Allowance::PerReplica {
            replicas: u32::try_from(replicas.max(1)).unwrap_or(u32::MAX),
        };
        self
    }
}

fn count(value: Option<i32>) -> i64 {
    i64::from(value.unwrap_or(0))
}

/// Desired replicas; the API defaults an absent `spec.replicas` to 1.
fn desired(value: Option<i32>) -> i64 {
    i64::from(value.unwrap_or(1))
}

/// A condition as people read it: "Reason: message", or the reason alone.
fn reason_and_message(reason: &str, message: Option<&str>) -> String {
    match message.filter(|message| !message.is_empty()) {
        Some(message) => format!("{reason}: {message}"),
        None => reason.to_owned(),
    }
}

fn name(metadata: &ObjectMeta) -> &str {
    metadata.name.as_deref().unwrap_or_default()
}

fn generation(metadata: &ObjectMeta) -> i64 {
    metadata.generation.unwrap_or(0)
}

/// `rule`: the configured rule of the object's kind, for custom resources.
pub(crate) fn assess(object: &TrackedObject, rule: Option<&CustomResourceRule>) -> Readiness {
    match object {
        TrackedObject::Deployment(deployment) => deployment_readiness(deployment),
        TrackedObject::StatefulSet(set) => stateful_set_readiness(set),
        TrackedObject::DaemonSet(set) => daemon_set_readiness(set),
        TrackedObject::ReplicaSet(set) => replica_set_readiness(set),
        TrackedObject::Job(job) => job_readiness(job),
        TrackedObject::Pod(pod) => pod_readiness(pod),
        TrackedObject::Service(service) => service_readiness(service),
        TrackedObject::PersistentVolumeClaim(claim) => claim_readiness(claim),
        TrackedObject::CustomResourceDefinition(definition) => definition_readiness(definition),
        TrackedObject::Custom(object) => custom::readiness(object, rule),
        // kstatus holds every kind to a reported observedGeneration (helm: ReplicationControllers).
        TrackedObject::Passive(generic) => {
            custom::spec_not_observed(generic).unwrap_or_else(|| present(object))
        }
        TrackedObject::ControllerRevision(_) | TrackedObject::Event(_) => present(object),
    }
}

fn present(object: &TrackedObject) -> Readiness {
    let (_, kind) = object.type_meta();
    Readiness::new(
        Progress::Done,
        format!(
            "{} {:?} is present",
            kind.to_lowercase(),
            name(object.metadata())
        ),
    )
}

fn deployment_readiness(deployment: &Deployment) -> Readiness {
    let name = name(&deployment.metadata);
    let spec = &deployment.spec;
    let status = deployment.status.clone().unwrap_or_default();
    let replicas = desired(spec.replicas);
    let updated = count(status.updated_replicas);
    let available = count(status.available_replicas);
    let current = count(status.replicas);
    let base = |progress, message| {
        Readiness::new(progress, message)
            .with_ready(available, replicas)
            .with_replicas(replicas)
    };
    if generation(&deployment.metadata) > status.observed_generation.unwrap_or(0) {
        return base(
            Progress::Waiting,
            "Waiting for deployment spec update to be observed...".to_owned(),
        );
    }
    let deadline_exceeded = status.conditions.iter().flatten().any(|condition| {
        condition.type_.as_deref() == Some("Progressing")
            && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded {
        return base(
            Progress::Failed {
                reason: VerdictReason::ProgressDeadlineExceeded,
                original: None,
            },
            format!("deployment {name:?} exceeded its progress deadline"),
        );
    }
    if spec.paused == Some(true) {
        // kubectl would wait forever; a paused Deployment rolls nothing out, so there is nothing to wait for.
        return base(
            Progress::Done,
            format!("deployment {name:?} is paused: no rollout to wait for"),
        );
    }
    let (progress, message) = if updated < replicas {
        (
            Progress::Waiting,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."
            ),
        )
    } else if current > updated {
        (
            Progress::Waiting,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                current - updated
            ),
        )
    } else if available < updated {
        (
            Progress::Waiting,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        )
    } else {
        (
            Progress::Done,
            format!("deployment {name:?} successfully rolled out"),
        )
    };
    base(progress, message)
}

fn is_on_delete(strategy_type: Option<&str>) -> bool {
    strategy_type == Some("OnDelete")
}

fn stateful_set_readiness(set: &StatefulSet) -> Readiness {
    let name = name(&set.metadata);
    let spec = &set.spec;
    let status = set.status.clone().unwrap_or_default();
    let replicas = desired(spec.replicas);
    let ready = count(status.ready_replicas);
    let updated = count(status.updated_replicas);
    let observed = status.observed_generation.unwrap_or(0);
    let strategy = spec.update_strategy.as_ref();
    let base = |progress, message| {
        Readiness::new(progress, message)
            .with_ready(ready, replicas)
            .with_replicas(replicas)
    };
    if observed == 0 || generation(&set.metadata) > observed {
        return base(
            Progress::Waiting,
            "Waiting for statefulset spec update to be observed...".to_owned(),
        );
    }
    if is_on_delete(strategy.and_then(|strategy| strategy.type_.as_deref())) {
        // kubectl refuses OnDelete; the update only happens when someone deletes pods, so we don't block.
        return base(
            Progress::Done,
            format!(
                "statefulset {name:?} uses the OnDelete strategy: pods change only when deleted"
            ),
        );
    }
    if ready < replicas {
        return base(
            Progress::Waiting,
            format!("Waiting for {} pods to be ready...", replicas - ready),
        );
    }
    if let Some(rolling) = strategy.and_then(|strategy| strategy.rolling_update.as_ref()) {
        // The API defaults partition to 0; kubectl checks it only when set, which on a real cluster is always.
        let partition = count(rolling.partition);
        return if updated < replicas - partition {
            base(
                Progress::Waiting,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                ),
            )
        } else {
            base(
                Progress::Done,
                format!("partitioned roll out complete: {updated} new pods have been updated..."),
            )
        };
    }
    let update_revision = status.update_revision.unwrap_or_default();
    let current_revision = status.current_revision.unwrap_or_default();
    if update_revision != current_revision {
        base(
            Progress::Waiting,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
            ),
        )
    } else {
        base(
            Progress::Done,
            format!(
                "statefulset rolling update complete {} pods at revision {current_revision}...",
                count(status.current_replicas)
            ),
        )
    }
}

fn daemon_set_readiness(set: &DaemonSet) -> Readiness {
    let name = name(&set.metadata);
    let status = set.status.clone().unwrap_or_default();
    let desired_scheduled = i64::from(status.desired_number_scheduled);
    let updated = count(status.updated_number_scheduled);
    let available = count(status.number_available);
    let base = |progress, message| {
        Readiness::new(progress, message)
            .with_ready(available, desired_scheduled)
            .with_replicas(desired_scheduled)
    };
    if generation(&set.metadata) > status.observed_generation.unwrap_or(0) {
        return base(
            Progress::Waiting,
            "Waiting for daemon set spec update to be observed...".to_owned(),
        );
    }
    let strategy_type = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|strategy| strategy.type_.as_deref());
    if is_on_delete(strategy_type) {
        return base(
            Progress::Done,
            format!(
                "daemon set {name:?} uses the OnDelete strategy: pods change only when deleted"
            ),
        );
    }
    let (progress, message) = if updated < desired_scheduled {
        (
            Progress::Waiting,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired_scheduled} new pods have been updated..."
            ),
        )
    } else if available < desired_scheduled {
        (
            Progress::Waiting,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired_scheduled} updated pods are available..."
            ),
        )
    } else {
        (
            Progress::Done,
            format!("daemon set {name:?} successfully rolled out"),
        )
    };
    base(progress, message)
}

fn replica_set_readiness(set: &ReplicaSet) -> Readiness {
    let name = name(&set.metadata);
    let status = set.status.clone().unwrap_or_default();
    let replicas = desired(set.spec.replicas);
    let ready = count(status.ready_replicas);
    let available = count(status.available_replicas);
    let current = i64::from(status.replicas);
    let base = |progress, message| {
        Readiness::new(progress, message)
            .with_ready(available, replicas)
            .with_replicas(replicas)
    };
    if generation(&set.metadata) > status.observed_generation.unwrap_or(0) {
        return base(
            Progress::Waiting,
            "Waiting for replica set spec update to be observed...".to_owned(),
        );
    }
    // kstatus replicasetConditions, and what helm's check of every selected pod amounts to.
    let (progress, message) = if ready < replicas {
        (
            Progress::Waiting,
            format!(
                "Waiting for replica set {name:?}: {ready} of {replicas} replicas are ready..."
            ),
        )
    } else if available < replicas {
        (
            Progress::Waiting,
            format!(
                "Waiting for replica set {name:?}: {available} of {replicas} replicas are available..."
            ),
        )
    } else if current > replicas {
        (
            Progress::Waiting,
            format!(
                "Waiting for replica set {name:?}: {} extra replicas are pending termination...",
                current - replicas
            ),
        )
    } else {
        (
            Progress::Done,
            format!("replica set {name:?} has {available} available replicas"),
        )
    };
    base(progress, message)
}

fn job_readiness(job: &Job) -> Readiness {
    let name = name(&job.metadata);
    let spec = job.spec.as_ref();
    let status = job.status.clone().unwrap_or_default();
    let completions = desired(spec.and_then(|spec| spec.completions));
    let succeeded = count(status.succeeded);
    let failed = status.failed.unwrap_or(0);
    let active = count(status.active);
    let limit = spec
        .and_then(|spec| spec.backoff_limit)
        .unwrap_or(DEFAULT_BACKOFF_LIMIT);
    let true_condition = |types: &[&str]| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|condition| {
                types.contains(&condition.type_.as_str()) && condition.status == "True"
            })
            .cloned()
    };
    let (progress, message) = if let Some(condition) = true_condition(&["Failed", "FailureTarget"])
    {
        // FailureTarget precedes Failed while the controller removes the remaining pods: already certain.
        let reason = condition.reason.unwrap_or_else(|| "Failed".to_owned());
        (
            Progress::Failed {
                reason: VerdictReason::of_failed_job(&reason),
                original: Some(reason.clone()),
            },
            format!(
                "job {name:?} failed: {}",
                reason_and_message(&reason, condition.message.as_deref())
            ),
        )
    } else if true_condition(&["Complete", "SuccessCriteriaMet"]).is_some() {
        (Progress::Done, format!("job {name:?} completed"))
    } else if spec.and_then(|spec| spec.suspend) == Some(true) {
        // kstatus: Current, as rollcall takes a paused Deployment: nothing runs until it is resumed.
        // A Suspended condition not True yet: the controller is still stopping the Job's pods.
        let stopping = status
            .conditions
            .iter()
            .flatten()
            .any(|condition| condition.type_ == "Suspended" && condition.status != "True");
        if stopping {
            (
                Progress::Waiting,
                format!("Waiting for job {name:?} to be suspended..."),
            )
        } else {
            (
                Progress::Done,
                format!("job {name:?} is suspended: nothing runs until it is resumed"),
            )
        }
    } else {
        (
            Progress::Waiting,
            format!(
                "Waiting for job {name:?} to complete: {succeeded} of {completions} completions, {active} active, {failed} failed..."
            ),
        )
    };
    let mut readiness = Readiness::new(progress, message).with_ready(succeeded, completions);
    readiness.allowance = Allowance::Backoff { failed, limit };
    readiness
}

fn pod_readiness(pod: &Pod) -> Readiness {
    let name = name(&pod.metadata);
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_else(|| "Pending".to_owned());
    let ready_condition = status
        .conditions
        .iter()
        .flatten()
        .any(|condition| condition.type_ == "Ready" && condition.status == "True");
    let (progress, message) = match phase.as_str() {
        "Succeeded" => (Progress::Done, format!("pod {name:?} succeeded")),
        // Phase never leaves Failed: this pod will not become ready.
        "Failed" => (
            Progress::Failed {
                reason: VerdictReason::PodFailed,
                original: status.reason,
            },
            format!(
                "pod {name:?} failed{}",
                status.message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
        ),
        _ if ready_condition => (Progress::Done, format!("pod {name:?} is ready")),
        _ => (
            Progress::Waiting,
            format!("Waiting for pod {name:?} to be ready (phase {phase})..."),
        ),
    };
    Readiness::new(progress, message).with_ready(i64::from(ready_condition), 1)
}

/// helm's ReadyChecker (pkg/kube/ready.go `serviceReady`). A Service never fails: it only waits.
fn service_readiness(service: &Service) -> Readiness {
    let name = name(&service.metadata);
    let spec = service.spec.clone().unwrap_or_default();
    let service_type = spec.type_.unwrap_or_else(|| "ClusterIP".to_owned());
    if service_type == "ExternalName" {
        return Readiness::new(
            Progress::Done,
            format!("service {name:?} is an ExternalName"),
        );
    }
    if spec.cluster_ip.as_deref().unwrap_or_default().is_empty() {
        return Readiness::new(
            Progress::Waiting,
            format!("Waiting for service {name:?} to get a cluster IP..."),
        );
    }
    if service_type == "LoadBalancer" {
        let external_ips = spec.external_ips.unwrap_or_default();
        if !external_ips.is_empty() {
            // Bare metal without a load-balancer controller never assigns an ingress; the external IPs
            // already route to the Service.
            return Readiness::new(
                Progress::Done,
                format!(
                    "service {name:?} is ready on its external IPs {}: no load balancer ingress to wait for",
                    external_ips.join(", ")
                ),
            );
        }
        let ingress = service
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|balancer| balancer.ingress.as_ref())
            .is_some_and(|ingress| !ingress.is_empty());
        if !ingress {
            return Readiness::new(
                Progress::Waiting,
                format!("Waiting for service {name:?} to get a load balancer ingress..."),
            );
        }
    }
    Readiness::new(Progress::Done, format!("service {name:?} is ready"))
}

fn claim_readiness(claim: &PersistentVolumeClaim) -> Readiness {
    let name = name(&claim.metadata);
    let phase = claim
        .status
        .as_ref()
        .and_then(|status| status.phase.clone())
        .unwrap_or_else(|| "Pending".to_owned());
    let (progress, message) = match phase.as_str() {
        "Bound" => (
            Progress::Done,
            format!("persistent volume claim {name:?} is bound"),
        ),
        "Lost" => (
            Progress::Failed {
                reason: VerdictReason::ClaimLost,
                original: Some("Lost".to_owned()),
            },
            format!("persistent volume claim {name:?} lost its volume"),
        ),
        _ => (
            Progress::Waiting,
            format!("Waiting for persistent volume claim {name:?} to be bound (phase {phase})..."),
        ),
    };
    Readiness::new(progress, message)
}

fn definition_readiness(definition: &CustomResourceDefinition) -> Readiness {
    let name = name(&definition.metadata);
    let conditions = || {
        definition
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .into_iter()
            .flatten()
    };
    // kstatus: Failed. The kind is not served under names that conflict with another definition's
    // (helm's ReadyChecker lets it pass; the chart's custom resources would then not apply).
    if let Some(conflict) = conditions()
        .find(|condition| condition.type_ == "NamesAccepted" && condition.status == "False")
    {
        let reason = conflict
            .reason
            .clone()
            .filter(|reason| !reason.is_empty())
            .unwrap_or_else(|| "NotAccepted".to_owned());
        return Readiness::new(
            Progress::Failed {
                reason: VerdictReason::NamesNotAccepted,
                original: Some(reason.clone()),
            },
            format!(
                "custom resource definition {name:?} names are not accepted: {}",
                reason_and_message(&reason, conflict.message.as_deref())
            ),
        );
    }
    let established = conditions()
        .any(|condition| condition.type_ == "Established" && condition.status == "True");
    if established {
        Readiness::new(
            Progress::Done,
            format!("custom resource definition {name:?} is established"),
        )
    } else {
        Readiness::new(
            Progress::Waiting,
            format!("Waiting for custom resource definition {name:?} to be established..."),
        )
    }
}
