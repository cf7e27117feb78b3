//! The scheduler (binds pods to nodes) and the kubelet (runs every bound pod through its simulated
//! lifecycle, one task per pod).

mod config;
mod pod;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control_loop::{Context, Reconciler};
use crate::pod_util;
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::timestamp;
use crate::store::{NODES, PODS, StoredEvent, WatchEventType};

static SCHEDULER: EventSource = EventSource::controller("default-scheduler");

/// Binds unscheduled pods: a pod pinned by node affinity (DaemonSets) goes to its node, others to the
/// node running the fewest pods.
pub(crate) struct Scheduler;

impl Reconciler for Scheduler {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (pods, _) = context.store.list(&PODS, None);
        let (nodes, _) = context.store.list(&NODES, None);
        let mut load: HashMap<&str, usize> =
            nodes.iter().map(|node| (pod_util::name(node), 0)).collect();
        for pod in pods.iter().filter(|pod| !pod_util::is_terminal(pod)) {
            if let Some(count) = pod["spec"]["nodeName"]
                .as_str()
                .and_then(|node| load.get_mut(node))
            {
                *count += 1;
            }
        }
        let pending = pods.iter().filter(|pod| {
            pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
                && !pod_util::is_being_deleted(pod)
                && pod["spec"]["schedulerName"]
                    .as_str()
                    .is_none_or(|scheduler| scheduler == "default-scheduler")
        });
        for pod in pending {
            let pinned = pod_util::node_of(pod).filter(|node| load.contains_key(node));
            let least_loaded = || {
                load.iter()
                    .min_by_key(|(name, count)| (**count, **name))
                    .map(|(name, _)| *name)
            };
            let Some(node) = pinned.or_else(least_loaded).map(str::to_owned) else {
                unschedulable(context, pod, nodes.len());
                continue;
            };
            bind(context, pod, &node);
            if let Some(count) = load.get_mut(node.as_str()) {
                *count += 1;
            }
        }
        None
    }
}

fn bind(context: &Context, pod: &Value, node: &str) {
    let uid = pod_util::uid(pod).to_owned();
    let now = timestamp(chrono::Utc::now());
    let result = context.store.modify(&PODS, Some(pod_util::namespace(pod)), pod_util::name(pod), |object| {
        if pod_util::uid(object) != uid || object["spec"]["nodeName"].is_string() {
            return;
        }
        object["spec"]["nodeName"] = json!(node);
        let conditions = &mut object["status"]["conditions"];
        if !conditions.is_array() {
            *conditions = json!([]);
        }
        let conditions = conditions.as_array_mut().expect("just made an array");
        conditions.retain(|condition| condition["type"] != "PodScheduled");
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        if !object["status"]["phase"].is_string() {
            object["status"]["phase"] = json!("Pending");
        }
    });
    match result {
        Ok(bound) => context.recorder.record(
            &SCHEDULER,
            InvolvedObject::of(&PODS, &bound),
            EventType::Normal,
            "Scheduled",
            format!(
                "Successfully assigned {}/{} to {node}",
                pod_util::namespace(pod),
                pod_util::name(pod)
            ),
        ),
        Err(error) => tracing::debug!(%error, "pod not bound"),
    }
}

fn unschedulable(context: &Context, pod: &Value, node_count: usize) {
    let message =
        format!("0/{node_count} nodes are available: no nodes available to schedule pods.");
    let uid = pod_util::uid(pod).to_owned();
    let now = timestamp(chrono::Utc::now());
    let result = context.store.modify(&PODS, Some(pod_util::namespace(pod)), pod_util::name(pod), |object| {
        if pod_util::uid(object) != uid || pod_util::condition(object, "PodScheduled").is_some() {
            return;
        }
        object["status"]["phase"] = json!("Pending");
        object["status"]["conditions"] = json!([{
            "type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
            "reason": "Unschedulable", "message": message,
        }]);
    });
    if let Ok(updated) = result
        && updated != *pod
    {
        context.recorder.record(
            &SCHEDULER,
            InvolvedObject::of(&PODS, pod),
            EventType::Warning,
            "FailedScheduling",
            message,
        );
    }
}

/// Starts the kubelet: it follows pod changes and runs one task per pod bound to a node.
pub(crate) fn spawn(context: Context, tasks: &TaskTracker, cancel: CancellationToken) {
    let pod_tasks = tasks.clone();
    let changes = context.store.subscribe();
    tasks.spawn(async move {
        let mut kubelet = Kubelet {
            context,
            tasks: pod_tasks,
            cancel,
            pods: HashMap::new(),
            next_ip: Arc::default(),
        };
        kubelet.run(changes).await;
    });
}

struct Kubelet {
    context: Context,
    tasks: TaskTracker,
    cancel: CancellationToken,
    /// Latest object of every pod being run, keyed by uid; `None` once it left the store.
    pods: HashMap<String, watch::Sender<Option<Value>>>,
    next_ip: Arc<AtomicU32>,
}

impl Kubelet {
    async fn run(&mut self, mut changes: broadcast::Receiver<StoredEvent>) {
        self.resync();
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                change = changes.recv() => match change {
                    Ok(change) if change.resource == PODS => {
                        if change.event_type == WatchEventType::Deleted {
                            self.forget(pod_util::uid(&change.object));
                        } else {
                            self.consider(Value::clone(&change.object));
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    fn resync(&mut self) {
        let (pods, _) = self.context.store.list(&PODS, None);
        let live = pod_util::uids(&pods);
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !live.contains(uid.as_str()))
            .cloned()
            .collect();
        gone.iter().for_each(|uid| self.forget(uid));
        pods.iter().for_each(|pod| self.consider(Value::clone(pod)));
    }

    fn forget(&mut self, uid: &str) {
        if let Some(sender) = self.pods.remove(uid) {
            sender.send_replace(None);
        }
        self.context.readiness.forget(uid);
    }

    fn consider(&mut self, pod: Value) {
        let uid = pod_util::uid(&pod).to_owned();
        if let Some(sender) = self.pods.get(&uid) {
            sender.send_replace(Some(pod));
            return;
        }
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            return;
        }
        let (sender, receiver) = watch::channel(Some(pod.clone()));
        self.pods.insert(uid, sender);
        let context = self.context.clone();
        let cancel = self.cancel.clone();
        let ip = self
            .next_ip
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = pod::run(context, pod, receiver, ip) => {}
            }
        });
    }
}
