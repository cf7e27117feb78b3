//! A simulated control plane on a bare store (no HTTP server): controllers, scheduler and kubelet
//! started through `controllers::spawn_all`, with helpers to wait for states and inspect events.

#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubesim::control_loop::ControllerControl;
use kubesim::controllers;
use kubesim::logs::LogBook;
use kubesim::options::{ClusterOptions, KubeVersion};
use kubesim::store::{self, Store, StoredEvent, WatchEventType};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 1 simulated second = 50 ms.
pub const TIME_SCALE: f64 = 0.05;
/// Safety net only: every wait normally ends far earlier.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
pub const NAMESPACE: &str = "default";

pub struct Sim {
    pub store: Store,
    pub logs: LogBook,
    pub control: ControllerControl,
    pub options: ClusterOptions,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::start_with(KubeVersion::DEFAULT, 3)
    }

    pub fn start_with(kube_version: KubeVersion, nodes: u32) -> Sim {
        Sim::start_options(ClusterOptions {
            nodes,
            time_scale: TIME_SCALE,
            kube_version,
        })
    }

    /// At time scale 1.0: for what depends on wall-clock seconds (probe schedules against
    /// whole-second timestamps).
    pub fn start_in_real_time() -> Sim {
        Sim::start_options(ClusterOptions::default())
    }

    fn start_options(options: ClusterOptions) -> Sim {
        let nodes = options.nodes;
        let store = Store::new();
        for index in 0..nodes {
            let name = format!("node-{index}");
            let node = json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", index + 2)}],
                },
            });
            store.create(&store::NODES, node).expect("node created");
        }
        let logs = LogBook::new();
        let control = ControllerControl::new();
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        controllers::spawn_all(
            store.clone(),
            logs.clone(),
            options.clone(),
            control.clone(),
            &tasks,
            cancel.clone(),
        );
        Sim {
            store,
            logs,
            control,
            options,
            cancel,
            tasks,
        }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// A simulated duration in wall-clock time.
    pub fn scaled(&self, seconds: f64) -> Duration {
        self.options.scaled(Duration::from_secs_f64(seconds))
    }

    pub fn create(&self, resource: &store::ResourceType, object: Value) -> Value {
        self.store.create(resource, object).expect("object created")
    }

    pub fn get(&self, resource: &store::ResourceType, name: &str) -> Option<Value> {
        self.store.get(resource, Some(NAMESPACE), name)
    }

    /// Changes the object's spec through `change` (as `kubectl apply` would).
    pub fn edit(
        &self,
        resource: &store::ResourceType,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Value {
        self.store
            .modify(resource, Some(NAMESPACE), name, change)
            .expect("object edited")
    }

    pub fn delete(&self, resource: &store::ResourceType, name: &str) {
        self.store
            .delete(
                resource,
                Some(NAMESPACE),
                name,
                store::DeleteOptions::default(),
            )
            .expect("object deleted");
    }

    pub fn pods(&self) -> Vec<Arc<Value>> {
        self.store.list(&store::PODS, Some(NAMESPACE)).0
    }

    /// Waits until `probe` returns something; panics with `what` after the safety limit.
    pub async fn wait_for<T>(&self, what: &str, mut probe: impl FnMut(&Sim) -> Option<T>) -> T {
        let mut changes = self.store.subscribe();
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(found) = probe(self) {
                return found;
            }
            tokio::select! {
                _ = changes.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}; pods: {:#}", Value::Array(self.pods().iter().map(|pod| Value::clone(pod)).collect())),
            }
        }
    }

    pub async fn wait_until(&self, what: &str, mut condition: impl FnMut(&Sim) -> bool) {
        self.wait_for(what, |sim| condition(sim).then_some(()))
            .await
    }

    /// Core/v1 Events about `involved` (a name), oldest first.
    pub fn events_about(&self, involved: &str) -> Vec<Arc<Value>> {
        let mut events: Vec<Arc<Value>> = self
            .store
            .list(&store::EVENTS, Some(NAMESPACE))
            .0
            .into_iter()
            .filter(|event| event["involvedObject"]["name"] == involved)
            .collect();
        events.sort_by_key(|event| {
            event["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|rv| rv.parse::<u64>().ok())
        });
        events
    }

    pub fn has_event(&self, involved: &str, reason: &str, message: &str) -> bool {
        self.events_about(involved)
            .iter()
            .any(|event| event["reason"] == reason && event["message"] == message)
    }

    pub fn reasons_about(&self, involved: &str) -> Vec<String> {
        self.events_about(involved)
            .iter()
            .map(|event| event["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Records the pods as they are now (as ADDED) and every pod change from now on.
    pub fn record_pods(&self) -> PodHistory {
        let (pods, revision, mut changes) =
            self.store.list_and_subscribe(&store::PODS, Some(NAMESPACE));
        let initial = pods.into_iter().map(|pod| StoredEvent {
            event_type: WatchEventType::Added,
            resource: store::PODS,
            object: pod,
            resource_version: revision,
        });
        let history = PodHistory(Arc::new(Mutex::new(initial.collect())));
        let sink = history.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    change = changes.recv() => match change {
                        Ok(change) if change.resource == store::PODS => sink.0.lock().unwrap().push(change),
                        Ok(_) => {}
                        Err(error) => panic!("pod history lost changes: {error}"),
                    },
                }
            }
        });
        history
    }
}

#[derive(Clone)]
pub struct PodHistory(Arc<Mutex<Vec<StoredEvent>>>);

/// What happened to one pod object (one uid) while it was being deleted.
#[derive(Debug, PartialEq, Eq)]
pub enum PodStep {
    DeletionRequested,
    TerminalPhase(String),
    Removed,
}

impl PodHistory {
    pub fn changes(&self) -> Vec<StoredEvent> {
        self.0.lock().unwrap().clone()
    }

    /// Uids of pods removed from the store.
    pub fn removed(&self) -> Vec<(String, String)> {
        self.changes()
            .iter()
            .filter(|change| change.event_type == WatchEventType::Deleted)
            .map(|change| {
                (
                    name(&change.object).to_owned(),
                    uid(&change.object).to_owned(),
                )
            })
            .collect()
    }

    /// The deletion milestones of the pod with `pod_uid`, in order, without repeats.
    pub fn deletion_steps(&self, pod_uid: &str) -> Vec<PodStep> {
        let mut steps: Vec<PodStep> = Vec::new();
        for change in self
            .changes()
            .iter()
            .filter(|change| uid(&change.object) == pod_uid)
        {
            let object = &change.object;
            let step = if change.event_type == WatchEventType::Deleted {
                Some(PodStep::Removed)
            } else if matches!(
                object["status"]["phase"].as_str(),
                Some("Failed" | "Succeeded")
            ) {
                Some(PodStep::TerminalPhase(
                    object["status"]["phase"].as_str().unwrap().to_owned(),
                ))
            } else if object["metadata"]["deletionTimestamp"].is_string() {
                Some(PodStep::DeletionRequested)
            } else {
                None
            };
            if let Some(step) = step
                && steps.last() != Some(&step)
            {
                steps.push(step);
            }
        }
        steps
    }

    /// Largest number of active (not terminating, not finished) pods at any moment.
    pub fn max_active(&self, prefix: &str) -> usize {
        let mut active = std::collections::HashSet::new();
        let mut max = 0;
        for change in self.changes() {
            let object = &change.object;
            if !name(object).starts_with(prefix) {
                continue;
            }
            let is_active = change.event_type != WatchEventType::Deleted
                && !object["metadata"]["deletionTimestamp"].is_string()
                && !matches!(
                    object["status"]["phase"].as_str(),
                    Some("Failed" | "Succeeded")
                );
            if is_active {
                active.insert(uid(object).to_owned());
            } else {
                active.remove(uid(object));
            }
            max = max.max(active.len());
        }
        max
    }
}

pub use kubesim::pod_util::{condition, is_ready, name, uid};

pub fn int(object: &Value, pointer: &str) -> i64 {
    kubesim::pod_util::int_at(object, pointer, 0)
}

/// A pod template with one container `app` and an optional behaviour annotation.
pub fn template(app: &str, image: &str, behavior: Option<&str>) -> Value {
    let mut template = json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    });
    if let Some(behavior) = behavior {
        template["metadata"]["annotations"] = json!({"sim.rollcall.dev/behavior": behavior});
    }
    template
}

pub fn deployment(name: &str, replicas: i64, template: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": replicas, "selector": {"matchLabels": template["metadata"]["labels"].clone()}, "template": template},
    })
}

pub fn stateful_set(name: &str, replicas: i64, template: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas, "serviceName": name,
            "selector": {"matchLabels": template["metadata"]["labels"].clone()}, "template": template,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        },
    })
}

pub fn daemon_set(name: &str, template: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"selector": {"matchLabels": template["metadata"]["labels"].clone()}, "template": template},
    })
}

pub fn job(name: &str, mut template: Value, spec: Value) -> Value {
    template["spec"]["restartPolicy"] = json!("Never");
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"template": template},
    });
    for (key, value) in spec.as_object().into_iter().flatten() {
        job["spec"][key] = value.clone();
    }
    job
}

/// A bare pod bound to no node yet.
pub fn pod(name: &str, template: Value) -> Value {
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(NAMESPACE);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}
