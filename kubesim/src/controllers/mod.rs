//! The workload controllers (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, and the one for
//! Services and PersistentVolumeClaims), each a `Reconciler` in the loop of `control_loop`, and
//! [`spawn_all`], which starts them with the scheduler and the kubelet.

mod daemonset;
mod deployment;
mod job;
mod pod_control;
mod replicaset;
mod resources;
mod revisions;
mod statefulset;

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control_loop::{Context, ControllerControl, spawn_controller};
use crate::logs::LogBook;
use crate::options::ClusterOptions;
use crate::pod_util::PodReadiness;
use crate::recorder::Recorder;
use crate::store::Store;

/// Starts every controller, the scheduler and the kubelet of a cluster. They stop when `cancel` fires;
/// `tasks` lets the caller wait for them.
pub fn spawn_all(
    store: Store,
    logs: LogBook,
    options: ClusterOptions,
    control: ControllerControl,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) {
    let context = Context {
        recorder: Recorder::new(store.clone()),
        store,
        logs,
        options,
        control,
        readiness: PodReadiness::default(),
    };
    use crate::store::{
        CONTROLLER_REVISIONS, DAEMONSETS, DEPLOYMENTS, JOBS, NODES, PODS, PVCS, REPLICASETS,
        SERVICES, STATEFULSETS,
    };
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[DEPLOYMENTS, REPLICASETS, PODS],
        deployment::Controller::default(),
    );
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[REPLICASETS, PODS],
        replicaset::Controller,
    );
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[STATEFULSETS, PODS, CONTROLLER_REVISIONS, PVCS],
        statefulset::Controller::default(),
    );
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[DAEMONSETS, PODS, NODES, CONTROLLER_REVISIONS],
        daemonset::Controller,
    );
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[JOBS, PODS],
        job::Controller::default(),
    );
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[SERVICES, PVCS],
        resources::Controller,
    );
    spawn_controller(
        tasks,
        &cancel,
        &context,
        &[PODS, NODES],
        crate::kubelet::Scheduler,
    );
    crate::kubelet::spawn(context, tasks, cancel);
}

/// Remembers per object uid a wall-clock instant, e.g. when a Deployment last made progress; entries of
/// vanished objects are dropped by `retain`.
#[derive(Default)]
pub(crate) struct InstantsByUid(HashMap<String, tokio::time::Instant>);

impl InstantsByUid {
    pub fn get(&self, uid: &str) -> Option<tokio::time::Instant> {
        self.0.get(uid).copied()
    }

    pub fn set(&mut self, uid: &str, at: tokio::time::Instant) {
        self.0.insert(uid.to_owned(), at);
    }

    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.0.retain(|uid, _| live(uid));
    }
}
