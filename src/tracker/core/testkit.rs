//! Builders for test objects: `deployment("web").replicas(3).updated(2).available(2)`.
//! Every object lives in namespace `prod` and has a uid derived from its name.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, Deployment,
    DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetStatus,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Event, ObjectReference, Pod, PodCondition, PodSpec,
    PodStatus, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::time::to_time;
use super::{ResourceKey, ResourceTracker, TrackedObject};
use crate::domain::policy::TrackingPolicy;

pub(crate) const NAMESPACE: &str = "prod";

/// Seconds after a fixed origin.
pub(crate) fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(NAMESPACE.to_owned()),
        uid: Some(format!("uid-{name}")),
        generation: Some(1),
        creation_timestamp: Some(to_time(t(0))),
        ..ObjectMeta::default()
    }
}

fn controlled_by(kind: &str, name: &str) -> Vec<OwnerReference> {
    vec![OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{name}"),
        controller: Some(true),
        ..OwnerReference::default()
    }]
}

fn set_label(metadata: &mut ObjectMeta, key: &str, value: &str) {
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
}

fn set_annotation(metadata: &mut ObjectMeta, key: &str, value: &str) {
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
}

/// A tracker for `object` with the default policy, tracking since `t(0)`.
pub(crate) fn tracker(object: &TrackedObject) -> ResourceTracker {
    tracker_with(object, TrackingPolicy::default())
}

pub(crate) fn tracker_with(object: &TrackedObject, policy: TrackingPolicy) -> ResourceTracker {
    ResourceTracker::new(object.key(), policy, t(0))
}

pub(crate) fn key(kind: &str, name: &str) -> ResourceKey {
    let api_version = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" => "batch/v1",
        _ => "v1",
    };
    ResourceKey::new(api_version, kind, Some(NAMESPACE), name)
}

macro_rules! into_tracked {
    ($($builder:ident),+) => {
        $(impl From<$builder> for TrackedObject {
            fn from(builder: $builder) -> Self {
                TrackedObject::from(builder.build())
            }
        })+
    };
}

into_tracked!(
    DeploymentBuilder,
    StatefulSetBuilder,
    DaemonSetBuilder,
    JobBuilder,
    PodBuilder,
    EventBuilder
);

pub(crate) struct DeploymentBuilder {
    object: Deployment,
    total: Option<i32>,
}

pub(crate) fn deployment(name: &str) -> DeploymentBuilder {
    DeploymentBuilder {
        object: Deployment {
            metadata: meta(name),
            spec: DeploymentSpec {
                replicas: Some(1),
                ..DeploymentSpec::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                ..DeploymentStatus::default()
            }),
        },
        total: None,
    }
}

impl DeploymentBuilder {
    fn status(&mut self) -> &mut DeploymentStatus {
        self.object.status.get_or_insert_with(Default::default)
    }

    pub(crate) fn replicas(mut self, replicas: i32) -> Self {
        self.object.spec.replicas = Some(replicas);
        self
    }

    pub(crate) fn updated(mut self, updated: i32) -> Self {
        self.status().updated_replicas = Some(updated);
        self
    }

    pub(crate) fn available(mut self, available: i32) -> Self {
        self.status().available_replicas = Some(available);
        self.status().ready_replicas = Some(available);
        self
    }

    /// `status.replicas` (old + new pods); defaults to the updated count.
    pub(crate) fn total(mut self, total: i32) -> Self {
        self.total = Some(total);
        self
    }

    pub(crate) fn generation(mut self, generation: i64) -> Self {
        self.object.metadata.generation = Some(generation);
        self
    }

    pub(crate) fn observed(mut self, generation: i64) -> Self {
        self.status().observed_generation = Some(generation);
        self
    }

    /// The revision the Deployment controller wrote on it: its ReplicaSet of that revision.
    pub(crate) fn revision(mut self, revision: u32) -> Self {
        set_annotation(
            &mut self.object.metadata,
            "deployment.kubernetes.io/revision",
            &revision.to_string(),
        );
        self
    }

    pub(crate) fn no_status(mut self) -> Self {
        self.object.status = None;
        self
    }

    pub(crate) fn paused(mut self) -> Self {
        self.object.spec.paused = Some(true);
        self
    }

    pub(crate) fn progress_deadline_exceeded(mut self) -> Self {
        let name = self.object.metadata.name.clone().unwrap_or_default();
        self.status().conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".to_owned()),
            status: Some("False".to_owned()),
            reason: Some("ProgressDeadlineExceeded".to_owned()),
            message: Some(format!(
                "ReplicaSet \"{name}-abc\" has timed out progressing."
            )),
            ..DeploymentCondition::default()
        }]);
        self
    }

    pub(crate) fn build(mut self) -> Deployment {
        if let Some(status) = self.object.status.as_mut() {
            status.replicas = self.total.or(status.updated_replicas);
        }
        self.object
    }
}

/// A ReplicaSet of `deployment` with pod-template-hash `hash` at `revision`.
pub(crate) fn replica_set(deployment: &str, hash: &str, revision: u32) -> TrackedObject {
    let name = format!("{deployment}-{hash}");
    let mut metadata = meta(&name);
    metadata.owner_references = Some(controlled_by("Deployment", deployment));
    set_label(&mut metadata, "pod-template-hash", hash);
    set_annotation(
        &mut metadata,
        "deployment.kubernetes.io/revision",
        &revision.to_string(),
    );
    TrackedObject::from(ReplicaSet {
        metadata,
        spec: ReplicaSetSpec::default(),
        status: None,
    })
}

pub(crate) struct StatefulSetBuilder(StatefulSet);

pub(crate) fn statefulset(name: &str) -> StatefulSetBuilder {
    StatefulSetBuilder(StatefulSet {
        metadata: meta(name),
        spec: StatefulSetSpec {
            replicas: Some(1),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    ..RollingUpdateStatefulSetStrategy::default()
                }),
            }),
            ..StatefulSetSpec::default()
        },
        status: Some(StatefulSetStatus {
            observed_generation: Some(1),
            ..StatefulSetStatus::default()
        }),
    })
}

impl StatefulSetBuilder {
    fn status(&mut self) -> &mut StatefulSetStatus {
        self.0.status.get_or_insert_with(Default::default)
    }

    pub(crate) fn replicas(mut self, replicas: i32) -> Self {
        self.0.spec.replicas = Some(replicas);
        self
    }

    pub(crate) fn ready(mut self, ready: i32) -> Self {
        self.status().ready_replicas = Some(ready);
        self
    }

    pub(crate) fn updated(mut self, updated: i32) -> Self {
        self.status().updated_replicas = Some(updated);
        self
    }

    pub(crate) fn current(mut self, current: i32) -> Self {
        self.status().current_replicas = Some(current);
        self
    }

    pub(crate) fn revisions(mut self, current: &str, update: &str) -> Self {
        self.status().current_revision = Some(current.to_owned());
        self.status().update_revision = Some(update.to_owned());
        self
    }

    pub(crate) fn observed(mut self, generation: i64) -> Self {
        self.status().observed_generation = Some(generation);
        self
    }

    pub(crate) fn partition(mut self, partition: i32) -> Self {
        if let Some(rolling) = self
            .0
            .spec
            .update_strategy
            .as_mut()
            .and_then(|strategy| strategy.rolling_update.as_mut())
        {
            rolling.partition = Some(partition);
        }
        self
    }

    /// As an object created before API defaulting filled in `rollingUpdate`.
    pub(crate) fn without_rolling_update(mut self) -> Self {
        if let Some(strategy) = self.0.spec.update_strategy.as_mut() {
            strategy.rolling_update = None;
        }
        self
    }

    pub(crate) fn on_delete(mut self) -> Self {
        self.0.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".to_owned()),
            rolling_update: None,
        });
        self
    }

    pub(crate) fn build(self) -> StatefulSet {
        self.0
    }
}

pub(crate) struct DaemonSetBuilder(DaemonSet);

pub(crate) fn daemonset(name: &str) -> DaemonSetBuilder {
    DaemonSetBuilder(DaemonSet {
        metadata: meta(name),
        spec: DaemonSetSpec::default(),
        status: Some(DaemonSetStatus {
            observed_generation: Some(1),
            ..DaemonSetStatus::default()
        }),
    })
}

impl DaemonSetBuilder {
    fn status(&mut self) -> &mut DaemonSetStatus {
        self.0.status.get_or_insert_with(Default::default)
    }

    pub(crate) fn desired(mut self, desired: i32) -> Self {
        self.status().desired_number_scheduled = desired;
        self
    }

    pub(crate) fn updated(mut self, updated: i32) -> Self {
        self.status().updated_number_scheduled = Some(updated);
        self
    }

    pub(crate) fn available(mut self, available: i32) -> Self {
        self.status().number_available = Some(available);
        self
    }

    pub(crate) fn generation(mut self, generation: i64) -> Self {
        self.0.metadata.generation = Some(generation);
        self
    }

    pub(crate) fn template_generation(mut self, generation: &str) -> Self {
        set_annotation(
            &mut self.0.metadata,
            "deprecated.daemonset.template.generation",
            generation,
        );
        self
    }

    pub(crate) fn on_delete(mut self) -> Self {
        self.0.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("OnDelete".to_owned()),
            rolling_update: None,
        });
        self
    }

    pub(crate) fn build(self) -> DaemonSet {
        self.0
    }
}

pub(crate) struct JobBuilder(Job);

pub(crate) fn job(name: &str) -> JobBuilder {
    JobBuilder(Job {
        metadata: meta(name),
        spec: Some(JobSpec::default()),
        status: Some(JobStatus::default()),
    })
}

impl JobBuilder {
    fn status(&mut self) -> &mut JobStatus {
        self.0.status.get_or_insert_with(Default::default)
    }

    pub(crate) fn backoff_limit(mut self, limit: i32) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .backoff_limit = Some(limit);
        self
    }

    pub(crate) fn active(mut self, active: i32) -> Self {
        self.status().active = Some(active);
        self
    }

    pub(crate) fn failed(mut self, failed: i32) -> Self {
        self.status().failed = Some(failed);
        self
    }

    pub(crate) fn succeeded(mut self, succeeded: i32) -> Self {
        self.status().succeeded = Some(succeeded);
        self
    }

    pub(crate) fn condition(mut self, type_: &str, reason: &str, message: &str) -> Self {
        self.status()
            .conditions
            .get_or_insert_with(Vec::new)
            .push(JobCondition {
                type_: type_.to_owned(),
                status: "True".to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message.to_owned()),
                ..JobCondition::default()
            });
        self
    }

    pub(crate) fn build(self) -> Job {
        self.0
    }
}

pub(crate) struct PodBuilder(Pod);

pub(crate) fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: meta(name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".to_owned(),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            ..PodStatus::default()
        }),
    })
}

impl PodBuilder {
    fn status(&mut self) -> &mut PodStatus {
        self.0.status.get_or_insert_with(Default::default)
    }

    fn container_status(&mut self, name: &str) -> &mut ContainerStatus {
        let statuses = self
            .status()
            .container_statuses
            .get_or_insert_with(Vec::new);
        if let Some(index) = statuses.iter().position(|status| status.name == name) {
            return &mut statuses[index];
        }
        statuses.push(ContainerStatus {
            name: name.to_owned(),
            ..ContainerStatus::default()
        });
        statuses.last_mut().expect("just pushed")
    }

    /// A pod of ReplicaSet `<deployment>-<hash>`.
    pub(crate) fn of_replica_set(mut self, deployment: &str, hash: &str) -> Self {
        self.0.metadata.owner_references =
            Some(controlled_by("ReplicaSet", &format!("{deployment}-{hash}")));
        set_label(&mut self.0.metadata, "pod-template-hash", hash);
        self
    }

    /// A pod of `owner` (StatefulSet, DaemonSet, Job) at controller revision `revision`.
    pub(crate) fn of(mut self, kind: &str, owner: &str, revision: &str) -> Self {
        self.0.metadata.owner_references = Some(controlled_by(kind, owner));
        set_label(&mut self.0.metadata, "controller-revision-hash", revision);
        self
    }

    pub(crate) fn label(mut self, key: &str, value: &str) -> Self {
        set_label(&mut self.0.metadata, key, value);
        self
    }

    pub(crate) fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.to_owned());
        self
    }

    pub(crate) fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(to_time(t(1)));
        self
    }

    pub(crate) fn phase(mut self, phase: &str) -> Self {
        self.status().phase = Some(phase.to_owned());
        self
    }

    pub(crate) fn ready(mut self) -> Self {
        self.status().conditions = Some(vec![PodCondition {
            type_: "Ready".to_owned(),
            status: "True".to_owned(),
            ..PodCondition::default()
        }]);
        self.container_status("app").ready = true;
        self
    }

    pub(crate) fn readiness_probe(
        mut self,
        initial_delay: i32,
        period: i32,
        threshold: i32,
    ) -> Self {
        if let Some(container) = self
            .0
            .spec
            .as_mut()
            .and_then(|spec| spec.containers.first_mut())
        {
            container.readiness_probe = Some(Probe {
                initial_delay_seconds: Some(initial_delay),
                period_seconds: Some(period),
                failure_threshold: Some(threshold),
                ..Probe::default()
            });
        }
        self
    }

    /// The pod's Ready condition turned False at `since`.
    pub(crate) fn unready_since(mut self, since: DateTime<Utc>) -> Self {
        self.status().conditions = Some(vec![PodCondition {
            type_: "Ready".to_owned(),
            status: "False".to_owned(),
            last_transition_time: Some(to_time(since)),
            ..PodCondition::default()
        }]);
        self
    }

    pub(crate) fn running(mut self, started_at: DateTime<Utc>, ready: bool) -> Self {
        let status = self.container_status("app");
        status.ready = ready;
        status.started = Some(true);
        status.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(to_time(started_at)),
            }),
            ..ContainerState::default()
        });
        self
    }

    pub(crate) fn waiting(mut self, reason: &str, restarts: i32) -> Self {
        let status = self.container_status("app");
        status.restart_count = restarts;
        status.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_owned()),
                message: Some(format!("{reason} for app")),
            }),
            ..ContainerState::default()
        });
        self
    }

    pub(crate) fn restarts(mut self, restarts: i32) -> Self {
        self.container_status("app").restart_count = restarts;
        self
    }

    /// Crashed instance `instance` (its container id), now waiting in CrashLoopBackOff.
    pub(crate) fn crash_loop(self, restarts: i32, instance: &str) -> Self {
        let mut builder = self.waiting("CrashLoopBackOff", restarts);
        builder.container_status("app").last_state = Some(terminated_state(1, instance));
        builder
    }

    /// Running again after instance `instance` crashed at `finished_at` (the crash itself unseen).
    pub(crate) fn restarted_after_crash(
        self,
        restarts: i32,
        instance: &str,
        finished_at: DateTime<Utc>,
    ) -> Self {
        let mut builder = self.running(finished_at, false);
        let status = builder.container_status("app");
        status.restart_count = restarts;
        let mut crashed = terminated_state(1, instance);
        if let Some(terminated) = crashed.terminated.as_mut() {
            terminated.finished_at = Some(to_time(finished_at));
        }
        status.last_state = Some(crashed);
        builder
    }

    /// Instance `instance` has just exited with `exit_code`.
    pub(crate) fn terminated(mut self, exit_code: i32, instance: &str, restarts: i32) -> Self {
        let status = self.container_status("app");
        status.restart_count = restarts;
        status.state = Some(terminated_state(exit_code, instance));
        self
    }

    /// As a runtime that reports no container ids or timestamps: only restart counters identify crashes.
    pub(crate) fn without_container_ids(mut self) -> Self {
        let status = self.container_status("app");
        for state in [status.state.as_mut(), status.last_state.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(terminated) = state.terminated.as_mut() {
                terminated.container_id = None;
            }
        }
        self
    }

    pub(crate) fn reason(mut self, reason: &str) -> Self {
        self.status().reason = Some(reason.to_owned());
        self
    }

    pub(crate) fn build(self) -> Pod {
        self.0
    }
}

fn terminated_state(exit_code: i32, instance: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.to_owned()),
            container_id: Some(format!("containerd://{instance}")),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

pub(crate) struct EventBuilder(Event);

/// An Event with `reason` about `kind`/`name` (uid `uid-<name>`), last seen at `t(10)`.
pub(crate) fn event(reason: &str, kind: &str, name: &str) -> EventBuilder {
    let event_name = format!("{name}.{reason}");
    EventBuilder(Event {
        metadata: meta(&event_name),
        involved_object: ObjectReference {
            kind: Some(kind.to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(format!("{reason} happened to {name}")),
        type_: Some("Warning".to_owned()),
        count: Some(1),
        last_timestamp: Some(to_time(t(10))),
        ..Event::default()
    })
}

impl EventBuilder {
    pub(crate) fn message(mut self, message: &str) -> Self {
        self.0.message = Some(message.to_owned());
        self
    }

    pub(crate) fn at(mut self, at: DateTime<Utc>) -> Self {
        self.0.last_timestamp = Some(to_time(at));
        self
    }

    pub(crate) fn count(mut self, count: i32) -> Self {
        self.0.count = Some(count);
        self
    }

    /// The part of the involved object it is about, e.g. `spec.containers{app}`.
    pub(crate) fn field_path(mut self, path: &str) -> Self {
        self.0.involved_object.field_path = Some(path.to_owned());
        self
    }

    pub(crate) fn build(self) -> Event {
        self.0
    }
}
