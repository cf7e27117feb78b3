//! DaemonSet controller (pkg/controller/daemon): one pod per eligible node, pinned with node affinity,
//! rolling update bounded by maxUnavailable, and the per-node status counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::pod_control::{PodControl, write_status};
use super::revisions;
use crate::control_loop::{Context, Reconciler, TransitionKind};
use crate::pod_util::{
    self, PodName, ReadyCount, controller_reference, int_or_percent, is_active, is_being_deleted,
    is_terminal, node_of, owned_by, pod_from_template,
};
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::{DAEMONSETS, NODES, PODS};

static SOURCE: EventSource = EventSource::controller("daemonset-controller");
const HASH_LABEL: &str = "controller-revision-hash";

pub(crate) struct Controller;

impl Reconciler for Controller {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (sets, _) = context.store.list(&DAEMONSETS, None);
        let (nodes, _) = context.store.list(&NODES, None);
        sets.iter()
            .filter(|set| !is_being_deleted(set))
            .fold(None, |wake, set| {
                pod_util::earliest(wake, sync_daemon_set(context, set, &nodes))
            })
    }
}

fn should_run_on(set: &Value, node: &Value) -> bool {
    let selector = set["spec"]["template"]["spec"]["nodeSelector"].as_object();
    selector
        .into_iter()
        .flatten()
        .all(|(key, value)| node["metadata"]["labels"][key] == *value)
}

fn daemon_tolerations(template_tolerations: &Value) -> Value {
    let mut tolerations = template_tolerations.as_array().cloned().unwrap_or_default();
    let standard = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    for (key, effect) in standard {
        if !tolerations
            .iter()
            .any(|toleration| toleration["key"] == key)
        {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    json!(tolerations)
}

struct DaemonSync<'a> {
    context: &'a Context,
    set: &'a Value,
    namespace: &'a str,
}

impl DaemonSync<'_> {
    fn event(&self, event_type: EventType, reason: &str, message: String) {
        self.context.recorder.record(
            &SOURCE,
            InvolvedObject::of(&DAEMONSETS, self.set),
            event_type,
            reason,
            message,
        );
    }

    fn create_on(&self, node: &str, hash: &str) {
        let mut template = self.set["spec"]["template"].clone();
        template["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        });
        template["spec"]["tolerations"] = daemon_tolerations(&template["spec"]["tolerations"]);
        let pod = pod_from_template(
            &template,
            self.namespace,
            controller_reference(&DAEMONSETS, self.set),
            PodName::Generated(pod_util::name(self.set)),
            &[
                (HASH_LABEL, hash.to_owned()),
                (
                    "pod-template-generation",
                    pod_util::generation(self.set).to_string(),
                ),
            ],
        );
        self.pods().create(pod);
    }

    fn pods(&self) -> PodControl<'_> {
        PodControl {
            context: self.context,
            source: &SOURCE,
            owner_resource: &DAEMONSETS,
            owner: self.set,
        }
    }

    fn delete(&self, pod: &Value) {
        self.pods().delete(pod);
    }
}

fn sync_daemon_set(context: &Context, set: &Value, nodes: &[Arc<Value>]) -> Option<Duration> {
    let namespace = pod_util::namespace(set);
    let sync = DaemonSync {
        context,
        set,
        namespace,
    };
    let existing_revisions = revisions::list(context, set);
    let update = match revisions::ensure_update_revision(
        context,
        &DAEMONSETS,
        set,
        &set["spec"]["template"],
        &existing_revisions,
    ) {
        Ok(update) => update,
        Err(error) => {
            tracing::warn!(%error, "daemonset revision not written");
            return None;
        }
    };
    let eligible: Vec<&str> = nodes
        .iter()
        .filter(|node| should_run_on(set, node))
        .map(|node| pod_util::name(node))
        .collect();
    let min_ready =
        context.scaled(Duration::from_secs(
            pod_util::int_at(set, "/spec/minReadySeconds", 0) as u64,
        ));
    let (pods, _) = context.store.list(&PODS, Some(namespace));
    let owned = owned_by(&pods, set);

    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for pod in &owned {
        if is_terminal(pod) && !is_being_deleted(pod) {
            let node = node_of(pod).unwrap_or_default();
            sync.event(
                EventType::Warning,
                "FailedDaemonPod",
                format!(
                    "Found failed daemon pod {namespace}/{} on node {node}, will try to kill it",
                    pod_util::name(pod)
                ),
            );
            sync.delete(pod);
        } else if is_active(pod) {
            by_node
                .entry(node_of(pod).unwrap_or_default())
                .or_default()
                .push(pod);
        }
    }
    for (node, node_pods) in by_node.iter_mut() {
        node_pods.sort_by_key(|pod| {
            pod["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        if !eligible.contains(node) {
            node_pods.drain(..).for_each(|pod| sync.delete(pod));
        } else if node_pods.len() > 1 {
            node_pods.drain(1..).for_each(|pod| sync.delete(pod));
        }
    }
    for node in &eligible {
        if by_node.get(node).is_none_or(Vec::is_empty) {
            sync.create_on(node, &update.hash);
        }
    }

    let available_on = |node: &str| {
        by_node
            .get(node)
            .and_then(|pods| pods.first())
            .is_some_and(|pod| {
                matches!(context.readiness.availability(pod, min_ready), Some(Ok(())))
            })
    };
    let rolling = pod_util::rolling_update(set);
    if rolling {
        let max_unavailable = int_or_percent(
            set.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
            eligible.len() as i64,
            "1",
            true,
        )
        .max(1);
        let mut unavailable = eligible.iter().filter(|node| !available_on(node)).count() as i64;
        let outdated: Vec<(&str, &Value)> = eligible
            .iter()
            .filter_map(|node| Some((*node, *by_node.get(node)?.first()?)))
            .filter(|(_, pod)| pod_util::label(pod, HASH_LABEL) != Some(update.hash.as_str()))
            .collect();
        // Unavailable outdated pods go at once, available ones within the budget.
        for (node, pod) in outdated.iter().filter(|(node, _)| !available_on(node)) {
            tracing::trace!(node, "replacing unavailable outdated daemon pod");
            sync.delete(pod);
        }
        for (_, pod) in outdated.iter().filter(|(node, _)| available_on(node)) {
            if unavailable >= max_unavailable {
                break;
            }
            sync.delete(pod);
            unavailable += 1;
        }
    }

    let (pods, _) = context.store.list(&PODS, Some(namespace));
    let active: Vec<&Value> = owned_by(&pods, set)
        .into_iter()
        .filter(|pod| is_active(pod))
        .collect();
    let mut first_on_node: BTreeMap<&str, &Value> = BTreeMap::new();
    for pod in &active {
        let node = node_of(pod).unwrap_or_default();
        let newer = first_on_node.get(node).is_some_and(|current| {
            current["metadata"]["creationTimestamp"].as_str()
                <= pod["metadata"]["creationTimestamp"].as_str()
        });
        if !newer {
            first_on_node.insert(node, pod);
        }
    }
    let scheduled: Vec<&Value> = eligible
        .iter()
        .filter_map(|node| first_on_node.get(node).copied())
        .collect();
    let count = ReadyCount::of(&context.readiness, scheduled.iter().copied(), min_ready);
    let updated = eligible
        .iter()
        .filter(|node| {
            active.iter().any(|pod| {
                node_of(pod) == Some(node)
                    && pod_util::label(pod, HASH_LABEL) == Some(update.hash.as_str())
            })
        })
        .count() as i64;
    let misscheduled = first_on_node
        .keys()
        .filter(|node| !eligible.contains(node))
        .count();
    let desired = eligible.len() as i64;
    let mut status = json!({
        "currentNumberScheduled": scheduled.len(),
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": count.ready,
        "observedGeneration": pod_util::generation(set),
    });
    for (field, value) in [
        ("updatedNumberScheduled", updated),
        ("numberAvailable", count.available),
        ("numberUnavailable", desired - count.available),
    ] {
        if value > 0 {
            status[field] = json!(value);
        }
    }
    let done = |status: &Value| {
        pod_util::int_at(status, "/updatedNumberScheduled", 0) == desired
            && pod_util::int_at(status, "/numberAvailable", 0) == desired
    };
    if done(&status) && !done(&set["status"]) {
        context.control.notify(
            TransitionKind::RolloutComplete { kind: "DaemonSet" },
            namespace,
            pod_util::name(set),
        );
    }
    write_status(context, &DAEMONSETS, set, status);
    let mut live: Vec<&str> = vec![&update.name];
    let revision_names: Vec<String> = active
        .iter()
        .filter_map(|pod| pod_util::label(pod, HASH_LABEL))
        .map(|hash| format!("{}-{hash}", pod_util::name(set)))
        .collect();
    live.extend(revision_names.iter().map(String::as_str));
    revisions::truncate_history(context, set, &revisions::list(context, set), &live);
    count.recheck_after
}
