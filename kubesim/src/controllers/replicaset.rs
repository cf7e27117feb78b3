//! ReplicaSet controller (pkg/controller/replicaset): keeps `spec.replicas` active pods and reports
//! replicas / readyReplicas / availableReplicas.

use std::time::Duration;

use serde_json::{Value, json};

use super::pod_control::{self, PodControl};
use crate::control_loop::{Context, Reconciler};
use crate::pod_util::{
    self, ByController, PodName, ReadyCount, controller_reference, is_active, is_being_deleted,
    is_ready, phase, pod_from_template,
};
use crate::recorder::EventSource;
use crate::store::{PODS, REPLICASETS};

static SOURCE: EventSource = EventSource::controller("replicaset-controller");

pub(crate) struct Controller;

impl Reconciler for Controller {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (sets, _) = context.store.list(&REPLICASETS, None);
        let live: Vec<&Value> = sets
            .iter()
            .map(|set| &**set)
            .filter(|set| !is_being_deleted(set))
            .collect();
        let (pods, _) = context.store.list(&PODS, None);
        let owned = ByController::of(&pods);
        let mut scaled = false;
        for set in &live {
            scaled |= scale(context, set, owned.owned_by(set));
        }
        // Status from the pods as they are now, so that the creations of this sync count.
        let pods = if scaled {
            context.store.list(&PODS, None).0
        } else {
            pods
        };
        let owned = ByController::of(&pods);
        live.iter().fold(None, |wake, set| {
            pod_util::earliest(wake, write_status(context, set, owned.owned_by(set)))
        })
    }
}

/// Creates or deletes pods towards `spec.replicas`; true when it did either.
fn scale(context: &Context, set: &Value, owned: &[&Value]) -> bool {
    let namespace = pod_util::namespace(set);
    let set_name = pod_util::name(set);
    let wanted = pod_util::int_at(set, "/spec/replicas", 1);
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
    diff != 0
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

/// Status from `owned`, the pods of `set`.
fn write_status(context: &Context, set: &Value, owned: &[&Value]) -> Option<Duration> {
    let active: Vec<&Value> = owned.iter().copied().filter(|pod| is_active(pod)).collect();
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
