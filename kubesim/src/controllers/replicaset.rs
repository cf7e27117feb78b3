//! ReplicaSet controller (pkg/controller/replicaset): keeps `spec.replicas` active pods and reports
//! replicas / readyReplicas / availableReplicas.

use std::time::Duration;

use serde_json::{Value, json};

use super::pod_control::{self, PodControl};
use crate::control_loop::{Context, Reconciler};
use crate::pod_util::{
    self, PodName, ReadyCount, controller_reference, is_active, is_being_deleted, is_ready,
    owned_by, phase, pod_from_template,
};
use crate::recorder::EventSource;
use crate::store::{PODS, REPLICASETS};

static SOURCE: EventSource = EventSource::controller("replicaset-controller");

pub(crate) struct Controller;

impl Reconciler for Controller {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (sets, _) = context.store.list(&REPLICASETS, None);
        let (pods, _) = context.store.list(&PODS, None);
        sets.iter()
            .filter(|set| !is_being_deleted(set))
            .fold(None, |wake, set| {
                pod_util::earliest(wake, sync_replica_set(context, set, &pods))
            })
    }
}

fn sync_replica_set(context: &Context, set: &Value, all_pods: &[Value]) -> Option<Duration> {
    let namespace = pod_util::namespace(set);
    let set_name = pod_util::name(set);
    let wanted = pod_util::int_at(set, "/spec/replicas", 1);
    let owned = owned_by(all_pods, set);
    let mut active: Vec<&Value> = owned.iter().copied().filter(|pod| is_active(pod)).collect();
    let diff = wanted - active.len() as i64;
    let pods = PodControl {
        context,
        source: &SOURCE,
        owner_resource: &REPLICASETS,
        owner: set,
    };
    if diff > 0 {
        let template = &set["spec"]["template"];
        for _ in 0..diff {
            let pod = pod_from_template(
                template,
                namespace,
                controller_reference(&REPLICASETS, set),
                PodName::Generated(set_name),
                &[],
            );
            if !pods.create(pod) {
                break;
            }
        }
    } else if diff < 0 {
        active.sort_by_key(|pod| deletion_rank(pod));
        for victim in active.drain(..(-diff) as usize) {
            pods.delete(victim);
        }
    }
    write_status(context, set)
}

/// `ActivePodsWithRanks` ordering, simplified: unscheduled, then pending, then not ready, then the
/// newest first.
fn deletion_rank(pod: &Value) -> (bool, bool, bool, std::cmp::Reverse<String>) {
    (
        pod["spec"]["nodeName"].is_string(),
        phase(pod) != "Pending",
        is_ready(pod),
        std::cmp::Reverse(
            pod["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
    )
}

/// Status from the pods as they are now (re-read, so that creations of this sync count).
fn write_status(context: &Context, set: &Value) -> Option<Duration> {
    let namespace = pod_util::namespace(set);
    let (pods, _) = context.store.list(&PODS, Some(namespace));
    let active: Vec<&Value> = owned_by(&pods, set)
        .into_iter()
        .filter(|pod| is_active(pod))
        .collect();
    let template_labels = set["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|pod| {
            template_labels
                .iter()
                .all(|(key, value)| pod["metadata"]["labels"][key] == *value)
        })
        .count();
    let min_ready =
        context.scaled(Duration::from_secs(
            pod_util::int_at(set, "/spec/minReadySeconds", 0) as u64,
        ));
    let count = ReadyCount::of(&context.readiness, active.iter().copied(), min_ready);
    let mut status =
        json!({"replicas": active.len(), "observedGeneration": pod_util::generation(set)});
    for (field, value) in [
        ("fullyLabeledReplicas", fully_labeled as i64),
        ("readyReplicas", count.ready),
        ("availableReplicas", count.available),
    ] {
        if value > 0 {
            status[field] = json!(value);
        }
    }
    pod_control::write_status(context, &REPLICASETS, set, status);
    count.recheck_after
}
