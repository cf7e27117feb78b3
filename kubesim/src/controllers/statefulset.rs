//! StatefulSet controller (pkg/controller/statefulset): stable pod identities `<set>-<ordinal>`,
//! OrderedReady or Parallel management, RollingUpdate from the highest ordinal down to the partition,
//! OnDelete, ControllerRevisions, and (emulating 1.27–1.30) the recreation of pods that reached phase
//! Failed while terminating, with its `RecreatingFailedPod` / `FailedDelete ... not found` events.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::pod_control;
use super::revisions::{self, UpdateRevision};
use crate::control_loop::{Context, Reconciler, TransitionKind};
use crate::pod_util::{
    self, PodName, controller_reference, is_being_deleted, is_running_and_ready, is_terminal,
    owned_by, pod_from_template,
};
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::{
    DeleteOptions, PODS, PVCS, STATEFULSETS, StoreError, StoredEvent, WatchEventType,
};

static SOURCE: EventSource = EventSource::controller("statefulset-controller");
const REVISION_LABEL: &str = "controller-revision-hash";

/// A pod seen in phase Failed/Succeeded while terminating, which the pre-1.31 controller recreates.
struct FailedPod {
    uid: String,
    announced: bool,
}

#[derive(Default)]
pub(crate) struct Controller {
    /// Keyed by (namespace, pod name); only filled when emulating a version before 1.31.
    failed_terminating: HashMap<(String, String), FailedPod>,
}

impl Reconciler for Controller {
    fn observe(&mut self, context: &Context, change: &StoredEvent) {
        // The old controller acted on what its informer had seen, even when the pod was gone by the
        // time it reacted: remember every terminal-while-terminating pod from the watch.
        let pod = &change.object;
        if change.resource == PODS
            && change.event_type == WatchEventType::Modified
            && context
                .options
                .kube_version
                .statefulset_recreates_failed_terminating_pods()
            && is_being_deleted(pod)
            && is_terminal(pod)
            && pod["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|owners| owners.iter().any(|owner| owner["kind"] == "StatefulSet"))
        {
            let key = (
                pod_util::namespace(pod).to_owned(),
                pod_util::name(pod).to_owned(),
            );
            self.failed_terminating
                .entry(key)
                .or_insert_with(|| FailedPod {
                    uid: pod_util::uid(pod).to_owned(),
                    announced: false,
                });
        }
    }

    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (sets, _) = context.store.list(&STATEFULSETS, None);
        let mut wake = None;
        for set in sets.iter().filter(|set| !is_being_deleted(set)) {
            wake = pod_util::earliest(wake, self.sync_set(context, set));
        }
        wake
    }
}

struct SetSync<'a> {
    context: &'a Context,
    set: &'a Value,
    namespace: &'a str,
    name: &'a str,
    min_ready: Duration,
}

impl SetSync<'_> {
    fn event(&self, event_type: EventType, reason: &str, message: String) {
        self.context.recorder.record(
            &SOURCE,
            InvolvedObject::of(&STATEFULSETS, self.set),
            event_type,
            reason,
            message,
        );
    }

    fn is_healthy(&self, pod: &Value) -> bool {
        is_running_and_ready(pod)
            && !is_being_deleted(pod)
            && matches!(
                self.context.readiness.availability(pod, self.min_ready),
                Some(Ok(()))
            )
    }

    fn delete_pod(&self, pod_name: &str, uid: Option<String>) -> Result<(), StoreError> {
        let options = DeleteOptions {
            precondition_uid: uid,
            ..Default::default()
        };
        match self
            .context
            .store
            .delete(&PODS, Some(self.namespace), pod_name, options)
        {
            Ok(_) => {
                self.event(
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {pod_name} in StatefulSet {} successful",
                        self.name
                    ),
                );
                Ok(())
            }
            Err(error) => {
                self.event(
                    EventType::Warning,
                    "FailedDelete",
                    format!(
                        "delete Pod {pod_name} in StatefulSet {} failed error: {error}",
                        self.name
                    ),
                );
                Err(error)
            }
        }
    }

    fn create_pod(&self, ordinal: i64, template: &Value, revision: &str) {
        let pod_name = format!("{}-{ordinal}", self.name);
        let mut template = template.clone();
        for claim_template in self.set["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let claim_name = format!("{}-{pod_name}", pod_util::name(claim_template));
            self.ensure_claim(claim_template, &claim_name, &pod_name);
            let volumes = &mut template["spec"]["volumes"];
            if !volumes.is_array() {
                *volumes = json!([]);
            }
            let volumes = volumes.as_array_mut().expect("just made an array");
            volumes.retain(|volume| volume["name"] != claim_template["metadata"]["name"]);
            volumes.push(json!({"name": pod_util::name(claim_template), "persistentVolumeClaim": {"claimName": claim_name}}));
        }
        template["spec"]["hostname"] = json!(pod_name);
        if let Some(service) = self.set["spec"]["serviceName"].as_str() {
            template["spec"]["subdomain"] = json!(service);
        }
        let pod = pod_from_template(
            &template,
            self.namespace,
            controller_reference(&STATEFULSETS, self.set),
            PodName::Fixed(pod_name.clone()),
            &[
                (REVISION_LABEL, revision.to_owned()),
                ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                ("apps.kubernetes.io/pod-index", ordinal.to_string()),
            ],
        );
        match self.context.store.create(&PODS, pod) {
            Ok(_) => self.event(
                EventType::Normal,
                "SuccessfulCreate",
                format!(
                    "create Pod {pod_name} in StatefulSet {} successful",
                    self.name
                ),
            ),
            // The old object is still being deleted: not evented, retried on a later sync.
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(error) => self.event(
                EventType::Warning,
                "FailedCreate",
                format!(
                    "create Pod {pod_name} in StatefulSet {} failed error: {error}",
                    self.name
                ),
            ),
        }
    }

    fn ensure_claim(&self, claim_template: &Value, claim_name: &str, pod_name: &str) {
        if self
            .context
            .store
            .get(&PVCS, Some(self.namespace), claim_name)
            .is_some()
        {
            return;
        }
        let mut metadata = claim_template["metadata"].clone();
        metadata["name"] = json!(claim_name);
        metadata["namespace"] = json!(self.namespace);
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": claim_template["spec"].clone()});
        match self.context.store.create(&PVCS, claim) {
            Ok(_) => self.event(
                EventType::Normal,
                "SuccessfulCreate",
                format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {} success", self.name),
            ),
            Err(error) => self.event(
                EventType::Warning,
                "FailedCreate",
                format!("create Claim {claim_name} for Pod {pod_name} in StatefulSet {} failed error: {error}", self.name),
            ),
        }
    }
}

fn ordinal_of(set_name: &str, pod: &Value) -> Option<i64> {
    pod_util::name(pod)
        .strip_prefix(set_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

impl Controller {
    fn sync_set(&mut self, context: &Context, set: &Value) -> Option<Duration> {
        let namespace = pod_util::namespace(set);
        let name = pod_util::name(set);
        let sync = SetSync {
            context,
            set,
            namespace,
            name,
            min_ready: context.scaled(Duration::from_secs(pod_util::int_at(
                set,
                "/spec/minReadySeconds",
                0,
            ) as u64)),
        };
        let template = &set["spec"]["template"];
        let existing_revisions = revisions::list(context, set);
        let update = match revisions::ensure_update_revision(
            context,
            &STATEFULSETS,
            set,
            template,
            &existing_revisions,
        ) {
            Ok(update) => update,
            Err(error) => {
                tracing::warn!(%error, "statefulset revision not written");
                return None;
            }
        };
        let all_revisions = revisions::list(context, set);
        let current = set["status"]["currentRevision"]
            .as_str()
            .and_then(|current| {
                all_revisions
                    .iter()
                    .find(|revision| pod_util::name(revision) == current)
            })
            .unwrap_or_else(|| {
                all_revisions
                    .iter()
                    .find(|revision| pod_util::name(revision) == update.name)
                    .expect("update revision exists")
            });
        let current_name = pod_util::name(current).to_owned();
        let current_template = revisions::template_of(current);

        self.manage_pods(&sync, &update, &current_name, &current_template);

        let (pods, _) = context.store.list(&PODS, Some(namespace));
        let owned = owned_by(&pods, set);
        let mut live: Vec<&str> = vec![&current_name, &update.name];
        live.extend(
            owned
                .iter()
                .filter_map(|pod| pod_util::label(pod, REVISION_LABEL)),
        );
        revisions::truncate_history(context, set, &all_revisions, &live);
        write_status(&sync, &owned, &current_name, &update.name)
    }

    fn manage_pods(
        &mut self,
        sync: &SetSync<'_>,
        update: &UpdateRevision,
        current_name: &str,
        current_template: &Value,
    ) {
        let SetSync {
            context,
            set,
            namespace,
            name,
            ..
        } = *sync;
        let legacy = context
            .options
            .kube_version
            .statefulset_recreates_failed_terminating_pods();
        let replicas = pod_util::int_at(set, "/spec/replicas", 1);
        let rolling = pod_util::rolling_update(set);
        let partition = if rolling {
            pod_util::int_at(set, "/spec/updateStrategy/rollingUpdate/partition", 0)
        } else {
            0
        };
        let monotonic = set["spec"]["podManagementPolicy"] != "Parallel";
        let (pods, _) = context.store.list(&PODS, Some(namespace));
        let owned = owned_by(&pods, set);
        let by_ordinal: HashMap<i64, &Value> = owned
            .iter()
            .filter_map(|pod| Some((ordinal_of(name, pod)?, *pod)))
            .collect();

        for ordinal in 0..replicas {
            let pod_name = format!("{name}-{ordinal}");
            let key = (namespace.to_owned(), pod_name.clone());
            let Some(pod) = by_ordinal.get(&ordinal) else {
                if let Some(failed) = self.failed_terminating.remove(&key) {
                    if !failed.announced {
                        announce_recreation(sync, &pod_name);
                    }
                    // The informer-cache view was stale: the kubelet already removed the pod.
                    let _ = sync.delete_pod(&pod_name, Some(failed.uid));
                }
                let (template, revision) = if rolling && ordinal < partition {
                    (current_template, current_name)
                } else {
                    (&set["spec"]["template"], update.name.as_str())
                };
                sync.create_pod(ordinal, template, revision);
                if monotonic {
                    return;
                }
                continue;
            };
            if is_terminal(pod) {
                if !is_being_deleted(pod) {
                    if legacy {
                        announce_recreation(sync, &pod_name);
                    }
                    let _ = sync.delete_pod(&pod_name, Some(pod_util::uid(pod).to_owned()));
                } else if legacy {
                    let failed = self
                        .failed_terminating
                        .entry(key)
                        .or_insert_with(|| FailedPod {
                            uid: pod_util::uid(pod).to_owned(),
                            announced: false,
                        });
                    if !failed.announced {
                        announce_recreation(sync, &pod_name);
                        failed.announced = true;
                    }
                }
                if monotonic {
                    return;
                }
                continue;
            }
            if monotonic && !sync.is_healthy(pod) {
                return;
            }
        }

        let mut condemned: Vec<(i64, &Value)> = by_ordinal
            .iter()
            .filter(|(ordinal, _)| **ordinal >= replicas)
            .map(|(ordinal, pod)| (*ordinal, *pod))
            .collect();
        condemned.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));
        for (_, pod) in condemned {
            if !is_being_deleted(pod) {
                let _ = sync.delete_pod(pod_util::name(pod), Some(pod_util::uid(pod).to_owned()));
            }
            if monotonic {
                return;
            }
        }

        if !rolling {
            return;
        }
        for ordinal in (partition.max(0)..replicas).rev() {
            let Some(pod) = by_ordinal.get(&ordinal) else {
                return;
            };
            if pod_util::label(pod, REVISION_LABEL) != Some(update.name.as_str())
                && !is_being_deleted(pod)
            {
                let _ = sync.delete_pod(pod_util::name(pod), Some(pod_util::uid(pod).to_owned()));
                return;
            }
            if !sync.is_healthy(pod) {
                return;
            }
        }
    }
}

fn announce_recreation(sync: &SetSync<'_>, pod_name: &str) {
    sync.event(
        EventType::Warning,
        "RecreatingFailedPod",
        format!(
            "StatefulSet {}/{} is recreating failed Pod {pod_name}",
            sync.namespace, sync.name
        ),
    );
}

fn write_status(
    sync: &SetSync<'_>,
    owned: &[&Value],
    current_name: &str,
    update_name: &str,
) -> Option<Duration> {
    let SetSync {
        context,
        set,
        namespace,
        name,
        min_ready,
    } = *sync;
    let not_terminating_at = |revision: &str| {
        owned
            .iter()
            .filter(|pod| {
                !is_being_deleted(pod) && pod_util::label(pod, REVISION_LABEL) == Some(revision)
            })
            .count() as i64
    };
    let replicas = owned.len() as i64;
    let running_ready: Vec<&Value> = owned
        .iter()
        .copied()
        .filter(|pod| is_running_and_ready(pod))
        .collect();
    let count = pod_util::ReadyCount::of(&context.readiness, running_ready, min_ready);
    let updated = not_terminating_at(update_name);
    let mut current = not_terminating_at(current_name);
    let mut current_revision = current_name.to_owned();
    let rolling = pod_util::rolling_update(set);
    // completeRollingUpdate
    if rolling && updated == replicas && count.ready == replicas {
        current_revision = update_name.to_owned();
        current = updated;
    }
    let mut status = json!({
        "observedGeneration": pod_util::generation(set),
        "replicas": replicas,
        "availableReplicas": count.available,
        "currentRevision": current_revision,
        "updateRevision": update_name,
        "collisionCount": pod_util::int_at(set, "/status/collisionCount", 0),
    });
    for (field, value) in [
        ("readyReplicas", count.ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ] {
        if value > 0 {
            status[field] = json!(value);
        }
    }
    let wanted = pod_util::int_at(set, "/spec/replicas", 1);
    let complete = |status: &Value| {
        status["updateRevision"] == status["currentRevision"]
            && pod_util::int_at(status, "/readyReplicas", 0) == wanted
            && pod_util::int_at(status, "/updatedReplicas", 0) == wanted
            && pod_util::int_at(status, "/replicas", 0) == wanted
    };
    if complete(&status) && !complete(&set["status"]) {
        context.control.notify(
            TransitionKind::RolloutComplete {
                kind: "StatefulSet",
            },
            namespace,
            name,
        );
    }
    pod_control::write_status(context, &STATEFULSETS, set, status);
    count.recheck_after
}
