//! Helpers shared by the controllers and the kubelet: owner references, pod predicates (active, ready,
//! available), the node a pod runs on, template hashes, int-or-percent values and condition lists.
//! Objects are JSON in wire form.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::store::ResourceType;
use crate::store::timestamp;

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub fn uid(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn generation(object: &Value) -> i64 {
    object["metadata"]["generation"].as_i64().unwrap_or(1)
}

pub fn int_at(object: &Value, pointer: &str, default: i64) -> i64 {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["labels"][key].as_str()
}

/// StatefulSets and DaemonSets: `updateStrategy.type` RollingUpdate (the default) rather than OnDelete.
pub fn rolling_update(set: &Value) -> bool {
    set["spec"]["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

pub fn is_being_deleted(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// The uid of the controller owning `object`, if any.
pub fn controller_uid(object: &Value) -> Option<&str> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|reference| reference["controller"] == json!(true))
        .and_then(|reference| reference["uid"].as_str())
}

/// The uids of `objects`, to look up in constant time.
pub fn uids(objects: &[Arc<Value>]) -> HashSet<&str> {
    objects.iter().map(|object| uid(object)).collect()
}

/// Objects grouped by the uid of their controller: one pass over them, instead of one per owner
/// (a sync of a thousand owners over thousands of pods).
pub struct ByController<'a>(HashMap<&'a str, Vec<&'a Value>>);

impl<'a> ByController<'a> {
    pub fn of(objects: &'a [Arc<Value>]) -> Self {
        let mut groups: HashMap<&str, Vec<&Value>> = HashMap::new();
        for object in objects {
            if let Some(controller) = controller_uid(object) {
                groups.entry(controller).or_default().push(object);
            }
        }
        ByController(groups)
    }

    /// The objects `owner` controls.
    pub fn owned_by(&self, owner: &Value) -> &[&'a Value] {
        self.0.get(uid(owner)).map_or(&[], Vec::as_slice)
    }
}

/// Objects among `objects` whose controller is `owner`.
pub fn owned_by<'a>(objects: &'a [Arc<Value>], owner: &Value) -> Vec<&'a Value> {
    let owner_uid = uid(owner);
    objects
        .iter()
        .map(|object| &**object)
        .filter(|object| controller_uid(object) == Some(owner_uid))
        .collect()
}

/// The ownerReference controller-created children carry.
pub fn controller_reference(resource: &ResourceType, owner: &Value) -> Value {
    json!({
        "apiVersion": resource.api_version(),
        "kind": resource.kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A pod built from a workload's pod template.
pub fn pod_from_template(
    template: &Value,
    namespace: &str,
    owner: Value,
    name: PodName<'_>,
    labels: &[(&str, String)],
) -> Value {
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    for (key, value) in labels {
        metadata["labels"][*key] = json!(value);
    }
    metadata["namespace"] = json!(namespace);
    metadata["ownerReferences"] = json!([owner]);
    match name {
        PodName::Generated(prefix) => metadata["generateName"] = json!(format!("{prefix}-")),
        PodName::Fixed(name) => metadata["name"] = json!(name),
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}

pub enum PodName<'a> {
    /// `generateName` = `<prefix>-`, as ReplicaSets, DaemonSets and Jobs do.
    Generated(&'a str),
    /// StatefulSet identities.
    Fixed(String),
}

pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

pub fn is_terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// `controller.FilterActivePods`: not terminal and not being deleted.
pub fn is_active(pod: &Value) -> bool {
    !is_terminal(pod) && !is_being_deleted(pod)
}

pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|condition| condition["type"] == kind)
}

pub fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|ready| ready["status"] == "True")
}

pub fn is_running_and_ready(pod: &Value) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// The node a pod is bound to, or pinned to by node affinity as daemon pods are.
pub(crate) fn node_of(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().or_else(|| {
        pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
            .as_array()?
            .iter()
            .flat_map(|term| term["matchFields"].as_array().into_iter().flatten())
            .find(|field| field["key"] == "metadata.name" && field["operator"] == "In")
            .and_then(|field| field["values"][0].as_str())
    })
}

/// When each pod became Ready, precisely: object timestamps have whole seconds, too coarse for
/// `minReadySeconds` at small time scales. Written by the kubelet, read by controllers.
#[derive(Clone, Default)]
pub struct PodReadiness(Arc<Mutex<HashMap<String, tokio::time::Instant>>>);

impl PodReadiness {
    pub fn set_ready(&self, pod_uid: &str, ready: bool) {
        let mut since = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ready {
            since
                .entry(pod_uid.to_owned())
                .or_insert_with(tokio::time::Instant::now);
        } else {
            since.remove(pod_uid);
        }
    }

    pub fn forget(&self, pod_uid: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pod_uid);
    }

    /// `IsPodAvailable`: Ok when ready for at least `min_ready` (scaled), Err(remaining) while ready
    /// but not yet long enough, None when not ready.
    pub fn availability(&self, pod: &Value, min_ready: Duration) -> Option<Result<(), Duration>> {
        if !is_ready(pod) {
            return None;
        }
        if min_ready.is_zero() {
            return Some(Ok(()));
        }
        let since = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid(pod))
            .copied();
        let ready_for = match since {
            Some(since) => since.elapsed(),
            // Readiness not witnessed by our kubelet (e.g. written through the API): trust the timestamp.
            None => condition(pod, "Ready")
                .and_then(|ready| ready["lastTransitionTime"].as_str())
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .and_then(|at| (Utc::now() - at.with_timezone(&Utc)).to_std().ok())
                .unwrap_or(Duration::ZERO),
        };
        Some(if ready_for >= min_ready {
            Ok(())
        } else {
            Err(min_ready - ready_for)
        })
    }
}

/// Counts ready and available pods and the earliest time one more pod becomes available.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadyCount {
    pub ready: i64,
    pub available: i64,
    pub recheck_after: Option<Duration>,
}

impl ReadyCount {
    pub fn of<'a>(
        readiness: &PodReadiness,
        pods: impl IntoIterator<Item = &'a Value>,
        min_ready: Duration,
    ) -> Self {
        let mut count = ReadyCount::default();
        for pod in pods {
            match readiness.availability(pod, min_ready) {
                None => {}
                Some(Ok(())) => {
                    count.ready += 1;
                    count.available += 1;
                }
                Some(Err(remaining)) => {
                    count.ready += 1;
                    count.recheck_after = Some(
                        count
                            .recheck_after
                            .map_or(remaining, |other| other.min(remaining)),
                    );
                }
            }
        }
        count
    }
}

/// Earliest of two optional wake-ups.
pub fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int, or `"25%"` of `total` rounded up or down.
pub fn int_or_percent(value: Option<&Value>, total: i64, default: &str, round_up: bool) -> i64 {
    let value = value.cloned().unwrap_or_else(|| json!(default));
    if let Some(int) = value.as_i64() {
        return int;
    }
    let text = value.as_str().unwrap_or(default);
    let percent: f64 = text.trim_end_matches('%').parse().unwrap_or(0.0);
    let scaled = percent * total as f64 / 100.0;
    (if round_up {
        scaled.ceil()
    } else {
        scaled.floor()
    }) as i64
}

/// FNV-32a, the hash Kubernetes uses for pod-template-hash and ControllerRevision names.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// `rand.SafeEncodeString`: maps each character onto an alphabet without vowels or look-alikes.
fn safe_encode(text: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    text.bytes()
        .map(|byte| ALPHABET[usize::from(byte) % ALPHABET.len()] as char)
        .collect()
}

/// Hash of a pod template (and collision count), e.g. `7c5ddbdf54`.
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut text = serde_json::to_string(template).unwrap_or_default();
    if collision_count > 0 {
        text.push_str(&collision_count.to_string());
    }
    safe_encode(&fnv32a(text.as_bytes()).to_string())
}

/// `SetDeploymentCondition`-style update: unchanged status and reason leave the list alone; otherwise
/// the old entry is removed and the new one appended, keeping `lastTransitionTime` when only the reason
/// changed. `time_fields` names the timestamps the kind uses besides `lastTransitionTime`.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    time_fields: &[&str],
) -> bool {
    let existing = conditions
        .iter()
        .position(|condition| condition["type"] == kind);
    let now = json!(timestamp(Utc::now()));
    let mut transition = now.clone();
    if let Some(index) = existing {
        let current = &conditions[index];
        if current["status"] == status && current["reason"] == reason {
            return false;
        }
        if current["status"] == status {
            transition = current["lastTransitionTime"].clone();
        }
        conditions.remove(index);
    }
    let mut condition = json!({"type": kind, "status": status});
    for field in time_fields {
        condition[*field] = now.clone();
    }
    condition["lastTransitionTime"] = transition;
    condition["reason"] = json!(reason);
    condition["message"] = json!(message);
    conditions.push(condition);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_use_the_safe_alphabet_and_change_with_the_template() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}});
        let hash = template_hash(&template, 0);
        assert!(hash.len() >= 6 && hash.len() <= 10, "{hash}");
        assert!(
            hash.chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{hash}"
        );
        assert_eq!(hash, template_hash(&template, 0));
        let mut changed = template.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_ne!(hash, template_hash(&changed, 0));
        assert_ne!(hash, template_hash(&template, 1));
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        assert_eq!(int_or_percent(None, 3, "25%", true), 1);
        assert_eq!(int_or_percent(None, 3, "25%", false), 0);
        assert_eq!(int_or_percent(Some(&json!("50%")), 5, "25%", true), 3);
        assert_eq!(int_or_percent(Some(&json!(2)), 5, "25%", true), 2);
        assert_eq!(int_or_percent(Some(&json!("10%")), 10, "25%", false), 1);
    }

    #[test]
    fn set_condition_appends_changes_and_keeps_transition_time_on_same_status() {
        let mut conditions = vec![
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
        ];
        assert!(!set_condition(
            &mut conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
            &["lastUpdateTime"]
        ));
        assert!(set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            "m",
            &["lastUpdateTime"]
        ));
        assert_eq!(conditions[0]["type"], "Available");
        assert_eq!(conditions[1]["type"], "Progressing");
        assert_eq!(conditions[1]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert!(set_condition(
            &mut conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "m",
            &["lastUpdateTime"]
        ));
        assert_ne!(conditions[1]["lastTransitionTime"], "2020-01-01T00:00:00Z");
    }
}
