//! Deployment controller (pkg/controller/deployment): one ReplicaSet per pod template, rolled with
//! RollingUpdate (maxSurge/maxUnavailable) or Recreate, status and the Progressing/Available conditions.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::InstantsByUid;
use super::pod_control::write_status;
use crate::control_loop::{Context, Reconciler, TransitionKind};
use crate::pod_util::{
    self, ByController, controller_reference, int_or_percent, is_being_deleted, owned_by,
    set_condition,
};
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::{DEPLOYMENTS, PODS, REPLICASETS, StoreError};

static SOURCE: EventSource = EventSource::controller("deployment-controller");
const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const HASH_LABEL: &str = "pod-template-hash";
/// Annotations of the Deployment that are not copied onto its ReplicaSets.
const NOT_COPIED: [&str; 5] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deployment.kubernetes.io/revision-history",
];
const CONDITION_TIMES: &[&str] = &["lastUpdateTime"];

#[derive(Default)]
pub(crate) struct Controller {
    /// When each Deployment last progressed, precisely (conditions only carry whole seconds).
    progressed_at: InstantsByUid,
}

impl Reconciler for Controller {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (deployments, _) = context.store.list(&DEPLOYMENTS, None);
        let live = pod_util::uids(&deployments);
        self.progressed_at.retain(|uid| live.contains(uid));
        let (sets, _) = context.store.list(&REPLICASETS, None);
        let owned = ByController::of(&sets);
        let mut wake = None;
        for deployment in deployments
            .iter()
            .filter(|deployment| !is_being_deleted(deployment))
        {
            let sets = owned.owned_by(deployment);
            wake = pod_util::earliest(wake, self.sync_deployment(context, deployment, sets));
        }
        wake
    }
}

/// The rollout strategy with surge and unavailability resolved against `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: i64,
        max_unavailable: i64,
    },
}

impl Strategy {
    /// Defaults 25%/25%; surge rounds up, unavailable down; both zero makes unavailable 1.
    pub fn of(deployment: &Value, replicas: i64) -> Strategy {
        let strategy = &deployment["spec"]["strategy"];
        if strategy["type"] == "Recreate" {
            return Strategy::Recreate;
        }
        let rolling = &strategy["rollingUpdate"];
        let max_surge = int_or_percent(rolling.get("maxSurge"), replicas, "25%", true);
        let mut max_unavailable =
            int_or_percent(rolling.get("maxUnavailable"), replicas, "25%", false);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable: max_unavailable.min(replicas),
        }
    }

    fn max_unavailable(self, replicas: i64) -> i64 {
        match self {
            Strategy::RollingUpdate {
                max_unavailable, ..
            } if replicas > 0 => max_unavailable,
            _ => 0,
        }
    }

    fn max_surge(self) -> i64 {
        match self {
            Strategy::RollingUpdate { max_surge, .. } => max_surge,
            Strategy::Recreate => 0,
        }
    }
}

/// Replica counts of one ReplicaSet: desired (spec) and observed (status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetCounts {
    pub name: String,
    pub spec: i64,
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
}

impl SetCounts {
    fn of(set: &Value) -> Self {
        Self {
            name: pod_util::name(set).to_owned(),
            spec: pod_util::int_at(set, "/spec/replicas", 1),
            replicas: pod_util::int_at(set, "/status/replicas", 0),
            ready: pod_util::int_at(set, "/status/readyReplicas", 0),
            available: pod_util::int_at(set, "/status/availableReplicas", 0),
        }
    }
}

/// The next scaling step of a rolling update (rolling.go): the new ReplicaSet's size when it should
/// change, otherwise the old ReplicaSets' sizes (oldest first) after scaling down.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RollingStep {
    ScaleNew(i64),
    ScaleOld(Vec<i64>),
    Nothing,
}

pub(crate) fn rolling_step(
    replicas: i64,
    strategy: Strategy,
    new: &SetCounts,
    old: &[SetCounts],
) -> RollingStep {
    let total_spec: i64 = new.spec + old.iter().map(|set| set.spec).sum::<i64>();
    // reconcileNewReplicaSet
    if new.spec > replicas {
        return RollingStep::ScaleNew(replicas);
    }
    if new.spec < replicas {
        let max_total = replicas + strategy.max_surge();
        if total_spec < max_total {
            let scale_up = (max_total - total_spec).min(replicas - new.spec);
            return RollingStep::ScaleNew(new.spec + scale_up);
        }
    }
    // reconcileOldReplicaSets
    if old.iter().all(|set| set.spec == 0) {
        return RollingStep::Nothing;
    }
    let min_available = replicas - strategy.max_unavailable(replicas);
    let new_unavailable = new.spec - new.available;
    let max_scaled_down = total_spec - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return RollingStep::Nothing;
    }
    let mut sizes: Vec<i64> = old.iter().map(|set| set.spec).collect();
    // cleanupUnhealthyReplicas: unavailable old pods go first.
    let mut cleaned = 0;
    for (size, set) in sizes.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (*size - set.available).max(0);
        let down = unhealthy.min(max_scaled_down - cleaned);
        *size -= down;
        cleaned += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate: then available ones, down to minAvailable.
    let available: i64 = new.available + old.iter().map(|set| set.available).sum::<i64>();
    let budget = (available - min_available).max(0);
    let mut scaled = 0;
    for size in sizes.iter_mut() {
        if scaled >= budget {
            break;
        }
        let down = (*size).min(budget - scaled);
        *size -= down;
        scaled += down;
    }
    if sizes.iter().zip(old).all(|(size, set)| *size == set.spec) {
        RollingStep::Nothing
    } else {
        RollingStep::ScaleOld(sizes)
    }
}

fn revision_of(set: &Value) -> i64 {
    set["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// `EqualIgnoreHash`: the ReplicaSet's template equals the Deployment's apart from the hash label.
fn template_matches(set: &Value, template: &Value) -> bool {
    let mut candidate = set["spec"]["template"].clone();
    if let Some(labels) = candidate["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
        if labels.is_empty() && template["metadata"]["labels"].is_null() {
            candidate["metadata"]
                .as_object_mut()
                .map(|metadata| metadata.remove("labels"));
        }
    }
    candidate == *template
}

struct Rollout<'a> {
    context: &'a Context,
    deployment: &'a Value,
    namespace: &'a str,
    name: &'a str,
    replicas: i64,
    strategy: Strategy,
}

impl Rollout<'_> {
    fn involved(&self) -> InvolvedObject {
        InvolvedObject::of(&DEPLOYMENTS, self.deployment)
    }

    fn scaling_event(&self, set_name: &str, from: i64, to: i64) {
        let direction = if to > from { "up" } else { "down" };
        // kubernetes PR #125118 (1.31) reworded the message.
        let message = if self.context.options.kube_version.minor >= 31 {
            format!("Scaled {direction} replica set {set_name} from {from} to {to}")
        } else if from == 0 {
            format!("Scaled up replica set {set_name} to {to}")
        } else {
            format!("Scaled {direction} replica set {set_name} to {to} from {from}")
        };
        self.context.recorder.record(
            &SOURCE,
            self.involved(),
            EventType::Normal,
            "ScalingReplicaSet",
            message,
        );
    }

    /// Scales a ReplicaSet, refreshing its desired/max annotations; returns its new state.
    fn scale(&self, set: &Value, to: i64) -> Option<Value> {
        let from = pod_util::int_at(set, "/spec/replicas", 1);
        let max_replicas = self.replicas + self.strategy.max_surge();
        let result = self.context.store.modify(
            &REPLICASETS,
            Some(self.namespace),
            pod_util::name(set),
            |object| {
                object["spec"]["replicas"] = json!(to);
                object["metadata"]["annotations"][DESIRED_REPLICAS] =
                    json!(self.replicas.to_string());
                object["metadata"]["annotations"][MAX_REPLICAS] = json!(max_replicas.to_string());
            },
        );
        match result {
            Ok(updated) => {
                if from != to {
                    self.scaling_event(pod_util::name(set), from, to);
                }
                Some(updated)
            }
            Err(error) => {
                tracing::debug!(%error, "replica set not scaled");
                None
            }
        }
    }

    fn create_new_set(
        &self,
        template: &Value,
        hash: &str,
        revision: i64,
        size: i64,
    ) -> Result<Value, StoreError> {
        let mut template = template.clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = self.deployment["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut annotations: Map<String, Value> = self.deployment["metadata"]["annotations"]
            .as_object()
            .map(|annotations| {
                annotations
                    .iter()
                    .filter(|(key, _)| !NOT_COPIED.contains(&key.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        annotations.insert(REVISION.to_owned(), json!(revision.to_string()));
        annotations.insert(
            DESIRED_REPLICAS.to_owned(),
            json!(self.replicas.to_string()),
        );
        annotations.insert(
            MAX_REPLICAS.to_owned(),
            json!((self.replicas + self.strategy.max_surge()).to_string()),
        );
        let set = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": format!("{}-{hash}", self.name),
                "namespace": self.namespace,
                "labels": template["metadata"]["labels"].clone(),
                "annotations": annotations,
                "ownerReferences": [controller_reference(&DEPLOYMENTS, self.deployment)],
            },
            "spec": {
                "replicas": size,
                "minReadySeconds": pod_util::int_at(self.deployment, "/spec/minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        });
        self.context.store.create(&REPLICASETS, set)
    }
}

impl Controller {
    /// `owned`: the ReplicaSets the Deployment controls.
    fn sync_deployment(
        &mut self,
        context: &Context,
        deployment: &Value,
        owned: &[&Value],
    ) -> Option<Duration> {
        let namespace = pod_util::namespace(deployment);
        let name = pod_util::name(deployment);
        let replicas = pod_util::int_at(deployment, "/spec/replicas", 1);
        let rollout = Rollout {
            context,
            deployment,
            namespace,
            name,
            replicas,
            strategy: Strategy::of(deployment, replicas),
        };
        let template = &deployment["spec"]["template"];
        let mut sets: Vec<Value> = owned.iter().copied().cloned().collect();
        sets.sort_by_key(|set| (revision_of(set), pod_util::name(set).to_owned()));
        let mut conditions: Vec<Value> = deployment["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let collision_count = pod_util::int_at(deployment, "/status/collisionCount", 0);
        let hash = pod_util::template_hash(template, collision_count);
        let paused = deployment["spec"]["paused"] == json!(true);

        // Our own ReplicaSet of this hash counts as the new one even if the API server defaulted its
        // template differently, so that it is not mistaken for a hash collision.
        let own_name = format!("{name}-{hash}");
        let new_index = sets
            .iter()
            .position(|set| template_matches(set, template))
            .or_else(|| sets.iter().position(|set| pod_util::name(set) == own_name));
        let old_revision_max = sets
            .iter()
            .enumerate()
            .filter(|(index, _)| Some(*index) != new_index)
            .map(|(_, set)| revision_of(set))
            .max()
            .unwrap_or(0);
        let mut new_set = new_index.map(|index| sets.remove(index));
        let mut old_sets = sets;

        // Rolling back to an old template re-numbers its ReplicaSet as the newest revision.
        if let Some(set) = &new_set
            && revision_of(set) <= old_revision_max
        {
            let revision = (old_revision_max + 1).to_string();
            if let Ok(updated) = context.store.modify(
                &REPLICASETS,
                Some(namespace),
                pod_util::name(set),
                |object| {
                    object["metadata"]["annotations"][REVISION] = json!(revision);
                },
            ) {
                new_set = Some(updated);
            }
        }
        if let Some(set) = &new_set
            && pod_util::condition(deployment, "Progressing").is_none()
        {
            let message = format!("Found new replica set {:?}", pod_util::name(set));
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                &message,
                CONDITION_TIMES,
            );
        }

        let old_pods_exist = |old_sets: &[Value]| {
            let (pods, _) = context.store.list(&PODS, Some(namespace));
            old_sets.iter().any(|set| !owned_by(&pods, set).is_empty())
        };
        let mut collision = false;
        if new_set.is_none() && !paused {
            let size = match rollout.strategy {
                Strategy::Recreate
                    if old_sets
                        .iter()
                        .any(|set| pod_util::int_at(set, "/spec/replicas", 1) > 0)
                        || old_pods_exist(&old_sets) =>
                {
                    None
                }
                Strategy::Recreate => Some(replicas),
                Strategy::RollingUpdate { max_surge, .. } => {
                    let current: i64 = old_sets
                        .iter()
                        .map(|set| pod_util::int_at(set, "/spec/replicas", 1))
                        .sum();
                    Some((replicas + max_surge - current).clamp(0, replicas))
                }
            };
            if let Some(size) = size {
                match rollout.create_new_set(template, &hash, old_revision_max + 1, size) {
                    Ok(created) => {
                        let set_name = pod_util::name(&created).to_owned();
                        if size > 0 {
                            rollout.scaling_event(&set_name, 0, size);
                        }
                        let message = format!("Created new replica set {set_name:?}");
                        set_condition(
                            &mut conditions,
                            "Progressing",
                            "True",
                            "NewReplicaSetCreated",
                            &message,
                            CONDITION_TIMES,
                        );
                        self.progressed_at
                            .set(pod_util::uid(deployment), Instant::now());
                        new_set = Some(created);
                    }
                    // A foreign ReplicaSet holds the name: bump collisionCount for a new hash.
                    Err(StoreError::AlreadyExists { .. }) => collision = true,
                    Err(error) => {
                        let message = format!(
                            "Failed to create new replica set {:?}: {error}",
                            format!("{name}-{hash}")
                        );
                        set_condition(
                            &mut conditions,
                            "Progressing",
                            "False",
                            "ReplicaSetCreateError",
                            &message,
                            CONDITION_TIMES,
                        );
                        context.recorder.record(
                            &SOURCE,
                            rollout.involved(),
                            EventType::Warning,
                            "ReplicaSetCreateError",
                            message,
                        );
                    }
                }
            }
        }

        if !paused {
            match (rollout.strategy, new_set.clone()) {
                (Strategy::Recreate, set) => {
                    let mut scaled_old = false;
                    for old in old_sets
                        .iter_mut()
                        .filter(|set| pod_util::int_at(set, "/spec/replicas", 1) > 0)
                    {
                        if let Some(updated) = rollout.scale(old, 0) {
                            *old = updated;
                            scaled_old = true;
                        }
                    }
                    if let Some(set) = set
                        && !scaled_old
                        && !old_pods_exist(&old_sets)
                        && pod_util::int_at(&set, "/spec/replicas", 1) != replicas
                    {
                        new_set = rollout.scale(&set, replicas).or(new_set);
                    }
                }
                (Strategy::RollingUpdate { .. }, Some(set)) => {
                    let old_counts: Vec<SetCounts> = old_sets.iter().map(SetCounts::of).collect();
                    match rolling_step(
                        replicas,
                        rollout.strategy,
                        &SetCounts::of(&set),
                        &old_counts,
                    ) {
                        RollingStep::ScaleNew(size) => {
                            new_set = rollout.scale(&set, size).or(new_set)
                        }
                        RollingStep::ScaleOld(sizes) => {
                            for (old, size) in old_sets.iter_mut().zip(sizes) {
                                if pod_util::int_at(old, "/spec/replicas", 1) != size
                                    && let Some(updated) = rollout.scale(old, size)
                                {
                                    *old = updated;
                                }
                            }
                        }
                        RollingStep::Nothing => {}
                    }
                }
                (Strategy::RollingUpdate { .. }, None) => {}
            }
        }
        self.cleanup_history(context, deployment, &mut old_sets);
        self.write_status(
            &rollout,
            new_set.as_ref(),
            &old_sets,
            conditions,
            collision.then_some(collision_count + 1),
        )
    }

    /// Old ReplicaSets scaled to zero beyond `revisionHistoryLimit` are deleted, oldest first.
    fn cleanup_history(&self, context: &Context, deployment: &Value, old_sets: &mut Vec<Value>) {
        let limit = pod_util::int_at(deployment, "/spec/revisionHistoryLimit", 10).max(0) as usize;
        let empty: Vec<usize> = (0..old_sets.len())
            .filter(|index| {
                pod_util::int_at(&old_sets[*index], "/spec/replicas", 1) == 0
                    && pod_util::int_at(&old_sets[*index], "/status/replicas", 0) == 0
            })
            .collect();
        let excess = empty.len().saturating_sub(limit);
        for index in empty.into_iter().take(excess).rev() {
            let set = old_sets.remove(index);
            let namespace = pod_util::namespace(&set);
            if let Err(error) = context.store.delete(
                &REPLICASETS,
                Some(namespace),
                pod_util::name(&set),
                Default::default(),
            ) {
                tracing::debug!(%error, "old replica set not deleted");
            }
        }
    }

    fn write_status(
        &mut self,
        rollout: &Rollout<'_>,
        new_set: Option<&Value>,
        old_sets: &[Value],
        mut conditions: Vec<Value>,
        collision_count: Option<i64>,
    ) -> Option<Duration> {
        let Rollout {
            context,
            deployment,
            namespace,
            name,
            replicas,
            strategy,
        } = *rollout;
        let uid = pod_util::uid(deployment).to_owned();
        // The revision annotation is mirrored on the Deployment (kubectl rollout history reads it).
        let mut generation = pod_util::generation(deployment);
        if let Some(set) = new_set {
            let revision = set["metadata"]["annotations"][REVISION].clone();
            if deployment["metadata"]["annotations"][REVISION] != revision
                && let Ok(updated) =
                    context
                        .store
                        .modify(&DEPLOYMENTS, Some(namespace), name, |object| {
                            if pod_util::uid(object) == uid {
                                object["metadata"]["annotations"][REVISION] = revision;
                            }
                        })
            {
                generation = pod_util::generation(&updated);
            }
        }
        let counts: Vec<SetCounts> = new_set
            .into_iter()
            .chain(old_sets)
            .map(SetCounts::of)
            .collect();
        let total_replicas: i64 = counts.iter().map(|set| set.replicas).sum();
        let updated = new_set.map(|set| SetCounts::of(set).replicas).unwrap_or(0);
        let ready: i64 = counts.iter().map(|set| set.ready).sum();
        let available: i64 = counts.iter().map(|set| set.available).sum();
        let spec_total: i64 = counts.iter().map(|set| set.spec).sum();
        let mut status = json!({"observedGeneration": generation});
        for (field, value) in [
            ("replicas", total_replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", (spec_total - available).max(0)),
        ] {
            if value > 0 {
                status[field] = json!(value);
            }
        }
        if let Some(count) =
            collision_count.or_else(|| deployment["status"]["collisionCount"].as_i64())
        {
            status["collisionCount"] = json!(count);
        }

        if available >= replicas - strategy.max_unavailable(replicas) {
            set_condition(
                &mut conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                CONDITION_TIMES,
            );
        } else {
            set_condition(
                &mut conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                CONDITION_TIMES,
            );
        }

        // syncRolloutStatus
        let subject = match new_set {
            Some(set) => format!("ReplicaSet {:?}", pod_util::name(set)),
            None => format!("Deployment {name:?}"),
        };
        let deadline = context.scaled(Duration::from_secs(
            pod_util::int_at(deployment, "/spec/progressDeadlineSeconds", 600).max(0) as u64,
        ));
        let progressing = conditions
            .iter()
            .find(|condition| condition["type"] == "Progressing")
            .cloned();
        let already_complete = total_replicas == updated
            && progressing
                .as_ref()
                .is_some_and(|condition| condition["reason"] == "NewReplicaSetAvailable");
        let complete = updated == replicas && total_replicas == replicas && available == replicas;
        let previous = &deployment["status"];
        let before = |field: &str| previous[field].as_i64().unwrap_or(0);
        let made_progress = updated > before("updatedReplicas")
            || (total_replicas - updated) < (before("replicas") - before("updatedReplicas"))
            || ready > before("readyReplicas")
            || available > before("availableReplicas");
        let mut wake = None;
        let paused = deployment["spec"]["paused"].as_bool().unwrap_or(false);
        // checkPausedConditions: a timed-out rollout keeps its reason.
        let progressing_reason = progressing
            .as_ref()
            .map(|condition| condition["reason"].clone());
        if progressing_reason != Some(json!("ProgressDeadlineExceeded")) {
            let paused_shown = progressing_reason == Some(json!("DeploymentPaused"));
            if paused && !paused_shown {
                set_condition(
                    &mut conditions,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    CONDITION_TIMES,
                );
            } else if !paused && paused_shown {
                set_condition(
                    &mut conditions,
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                    CONDITION_TIMES,
                );
                self.progressed_at.set(&uid, Instant::now());
            }
        }
        if !already_complete && !paused {
            if complete {
                let message = format!("{subject} has successfully progressed.");
                if set_condition(
                    &mut conditions,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &message,
                    CONDITION_TIMES,
                ) {
                    context.control.notify(
                        TransitionKind::RolloutComplete { kind: "Deployment" },
                        namespace,
                        name,
                    );
                }
            } else if made_progress {
                let message = format!("{subject} is progressing.");
                let keep_transition = progressing
                    .as_ref()
                    .filter(|condition| condition["status"] == "True")
                    .map(|condition| condition["lastTransitionTime"].clone());
                conditions.retain(|condition| condition["type"] != "Progressing");
                set_condition(
                    &mut conditions,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &message,
                    CONDITION_TIMES,
                );
                if let (Some(time), Some(condition)) = (keep_transition, conditions.last_mut()) {
                    condition["lastTransitionTime"] = time;
                }
                self.progressed_at.set(&uid, Instant::now());
                wake = Some(deadline);
            } else if let Some(condition) = &progressing
                && condition["reason"] != "ProgressDeadlineExceeded"
            {
                let since = self.progressed_at.get(&uid).unwrap_or_else(|| {
                    // Progress before our time (e.g. a restarted controller): start the clock now.
                    self.progressed_at.set(&uid, Instant::now());
                    Instant::now()
                });
                let elapsed = since.elapsed();
                if elapsed > deadline {
                    let message = format!("{subject} has timed out progressing.");
                    set_condition(
                        &mut conditions,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &message,
                        CONDITION_TIMES,
                    );
                    context.control.notify(
                        TransitionKind::ProgressDeadlineExceeded,
                        namespace,
                        name,
                    );
                } else {
                    wake = Some(deadline - elapsed + Duration::from_millis(1));
                }
            }
        }
        status["conditions"] = json!(conditions);
        write_status(context, &DEPLOYMENTS, deployment, status);
        wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(spec: i64, available: i64) -> SetCounts {
        SetCounts {
            name: String::new(),
            spec,
            replicas: spec,
            ready: available,
            available,
        }
    }

    #[test]
    fn strategy_defaults_to_quarter_surge_and_unavailable() {
        let deployment = json!({"spec": {}});
        assert_eq!(
            Strategy::of(&deployment, 3),
            Strategy::RollingUpdate {
                max_surge: 1,
                max_unavailable: 0
            }
        );
        assert_eq!(
            Strategy::of(&deployment, 4),
            Strategy::RollingUpdate {
                max_surge: 1,
                max_unavailable: 1
            }
        );
        assert_eq!(
            Strategy::of(&deployment, 10),
            Strategy::RollingUpdate {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        let zero = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}});
        assert_eq!(
            Strategy::of(&zero, 3),
            Strategy::RollingUpdate {
                max_surge: 0,
                max_unavailable: 1
            }
        );
        assert_eq!(
            Strategy::of(&json!({"spec": {"strategy": {"type": "Recreate"}}}), 3),
            Strategy::Recreate
        );
    }

    #[test]
    fn rolling_update_of_three_with_surge_one_unavailable_zero_follows_kubernetes() {
        let strategy = Strategy::RollingUpdate {
            max_surge: 1,
            max_unavailable: 0,
        };
        // new RS created at 1 (surge), old at 3
        assert_eq!(
            rolling_step(3, strategy, &set(0, 0), &[set(3, 3)]),
            RollingStep::ScaleNew(1)
        );
        // new pod not yet available: nothing may go
        assert_eq!(
            rolling_step(3, strategy, &set(1, 0), &[set(3, 3)]),
            RollingStep::Nothing
        );
        // new pod available: one old goes
        assert_eq!(
            rolling_step(3, strategy, &set(1, 1), &[set(3, 3)]),
            RollingStep::ScaleOld(vec![2])
        );
        assert_eq!(
            rolling_step(3, strategy, &set(1, 1), &[set(2, 2)]),
            RollingStep::ScaleNew(2)
        );
        assert_eq!(
            rolling_step(3, strategy, &set(3, 3), &[set(1, 1)]),
            RollingStep::ScaleOld(vec![0])
        );
        assert_eq!(
            rolling_step(3, strategy, &set(3, 3), &[set(0, 0)]),
            RollingStep::Nothing
        );
    }

    #[test]
    fn unhealthy_old_pods_are_removed_first_and_scale_down_goes_oldest_first() {
        let strategy = Strategy::RollingUpdate {
            max_surge: 1,
            max_unavailable: 1,
        };
        // 4 replicas, new at 2 (1 available), two old sets: oldest with 1 unavailable pod
        let step = rolling_step(4, strategy, &set(2, 1), &[set(2, 1), set(1, 1)]);
        // total 5, minAvailable 3, newUnavailable 1 -> maxScaledDown 1: the unhealthy old pod goes
        assert_eq!(step, RollingStep::ScaleOld(vec![1, 1]));
        // new RS larger than wanted: scaled straight down
        assert_eq!(
            rolling_step(2, strategy, &set(3, 3), &[]),
            RollingStep::ScaleNew(2)
        );
    }

    #[test]
    fn template_match_ignores_only_the_hash_label() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        let set = json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"containers": []}}}});
        assert!(template_matches(&set, &template));
        let other = json!({"spec": {"template": {"metadata": {"labels": {"app": "api", "pod-template-hash": "abc"}}, "spec": {"containers": []}}}});
        assert!(!template_matches(&other, &template));
    }
}
