//! The object store of the simulated cluster (what etcd plus the apiserver's registry do in a real one).
//!
//! Objects are `serde_json::Value`s in their JSON wire form. Every write gets a new cluster-wide
//! resourceVersion and is published, in order, to subscribers (the watch endpoints, the controllers and the
//! kubelet). Deletion follows Kubernetes: graceful pod termination, finalizers and garbage collection of
//! dependents through `ownerReferences` (kubernetes-behaviour.md §7.7).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// One kind of object the cluster stores, identified like the API identifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural lower-case resource name as in URLs (`deployments`).
    pub resource: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

impl ResourceType {
    const fn builtin(
        group: &'static str,
        version: &'static str,
        resource: &'static str,
        kind: &'static str,
        namespaced: bool,
    ) -> Self {
        Self {
            group,
            version,
            resource,
            kind,
            namespaced,
        }
    }

    /// A resource type whose names are only known at run time (custom resources). The strings are
    /// interned, so repeated registrations of the same CRD do not grow memory.
    pub fn custom(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
    ) -> Self {
        Self {
            group: intern(group),
            version: intern(version),
            resource: intern(resource),
            kind: intern(kind),
            namespaced,
        }
    }

    /// `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`: how Kubernetes names the resource in error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `Pod`, `Deployment.apps`: how Kubernetes names the kind in validation errors.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `metadata.generation` is maintained. Core kinds have none (pods only from 1.33), nor do
    /// events and RBAC objects.
    fn tracks_generation(&self) -> bool {
        !matches!(
            self.group,
            "" | "events.k8s.io" | "rbac.authorization.k8s.io"
        )
    }

    fn is_builtin(&self) -> bool {
        BUILTIN.contains(self)
    }
}

fn intern(text: &str) -> &'static str {
    static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = interned.iter().find(|existing| **existing == text) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    interned.push(leaked);
    leaked
}

pub const NAMESPACES: ResourceType =
    ResourceType::builtin("", "v1", "namespaces", "Namespace", false);
pub const NODES: ResourceType = ResourceType::builtin("", "v1", "nodes", "Node", false);
pub const PODS: ResourceType = ResourceType::builtin("", "v1", "pods", "Pod", true);
pub const SERVICES: ResourceType = ResourceType::builtin("", "v1", "services", "Service", true);
pub const ENDPOINTS: ResourceType = ResourceType::builtin("", "v1", "endpoints", "Endpoints", true);
pub const CONFIGMAPS: ResourceType =
    ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true);
pub const SECRETS: ResourceType = ResourceType::builtin("", "v1", "secrets", "Secret", true);
pub const SERVICE_ACCOUNTS: ResourceType =
    ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true);
pub const EVENTS: ResourceType = ResourceType::builtin("", "v1", "events", "Event", true);
pub const PVCS: ResourceType = ResourceType::builtin(
    "",
    "v1",
    "persistentvolumeclaims",
    "PersistentVolumeClaim",
    true,
);
pub const DEPLOYMENTS: ResourceType =
    ResourceType::builtin("apps", "v1", "deployments", "Deployment", true);
pub const REPLICASETS: ResourceType =
    ResourceType::builtin("apps", "v1", "replicasets", "ReplicaSet", true);
pub const STATEFULSETS: ResourceType =
    ResourceType::builtin("apps", "v1", "statefulsets", "StatefulSet", true);
pub const DAEMONSETS: ResourceType =
    ResourceType::builtin("apps", "v1", "daemonsets", "DaemonSet", true);
pub const CONTROLLER_REVISIONS: ResourceType = ResourceType::builtin(
    "apps",
    "v1",
    "controllerrevisions",
    "ControllerRevision",
    true,
);
pub const JOBS: ResourceType = ResourceType::builtin("batch", "v1", "jobs", "Job", true);
pub const EVENTS_K8S_IO: ResourceType =
    ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true);
pub const ROLES: ResourceType =
    ResourceType::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true);
pub const ROLE_BINDINGS: ResourceType = ResourceType::builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "rolebindings",
    "RoleBinding",
    true,
);
pub const CLUSTER_ROLES: ResourceType = ResourceType::builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterroles",
    "ClusterRole",
    false,
);
pub const CLUSTER_ROLE_BINDINGS: ResourceType = ResourceType::builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterrolebindings",
    "ClusterRoleBinding",
    false,
);
pub const POD_DISRUPTION_BUDGETS: ResourceType = ResourceType::builtin(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "PodDisruptionBudget",
    true,
);
pub const INGRESSES: ResourceType =
    ResourceType::builtin("networking.k8s.io", "v1", "ingresses", "Ingress", true);
pub const NETWORK_POLICIES: ResourceType = ResourceType::builtin(
    "networking.k8s.io",
    "v1",
    "networkpolicies",
    "NetworkPolicy",
    true,
);
pub const HORIZONTAL_POD_AUTOSCALERS: ResourceType = ResourceType::builtin(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "HorizontalPodAutoscaler",
    true,
);
pub const CRDS: ResourceType = ResourceType::builtin(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    false,
);

/// Every built-in resource type the cluster serves.
pub const BUILTIN: &[ResourceType] = &[
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    ENDPOINTS,
    CONFIGMAPS,
    SECRETS,
    SERVICE_ACCOUNTS,
    EVENTS,
    PVCS,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    CONTROLLER_REVISIONS,
    JOBS,
    EVENTS_K8S_IO,
    ROLES,
    ROLE_BINDINGS,
    CLUSTER_ROLES,
    CLUSTER_ROLE_BINDINGS,
    POD_DISRUPTION_BUDGETS,
    INGRESSES,
    NETWORK_POLICIES,
    HORIZONTAL_POD_AUTOSCALERS,
    CRDS,
];

/// Built-in types whose `status` is written only through the `/status` subresource.
const BUILTIN_WITH_STATUS: &[ResourceType] = &[
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    PVCS,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    JOBS,
    POD_DISRUPTION_BUDGETS,
    INGRESSES,
    HORIZONTAL_POD_AUTOSCALERS,
    CRDS,
];

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// How many past changes are kept for watches that resume from a resourceVersion.
const HISTORY_LIMIT: usize = 20_000;
const BROADCAST_CAPACITY: usize = 16_384;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{} \"{name}\" not found", .resource.group_resource())]
    NotFound {
        resource: ResourceType,
        name: String,
    },
    #[error("{prefix}{} \"{name}\" already exists", .resource.group_resource(), prefix = if *.terminating { "object is being deleted: " } else { "" })]
    AlreadyExists {
        resource: ResourceType,
        name: String,
        terminating: bool,
    },
    #[error("Operation cannot be fulfilled on {} \"{name}\": {reason}", .resource.group_resource())]
    Conflict {
        resource: ResourceType,
        name: String,
        reason: String,
    },
    #[error("{} \"{name}\" is invalid: {cause}", .resource.group_kind())]
    Invalid {
        resource: ResourceType,
        name: String,
        cause: Box<FieldCause>,
    },
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
}

/// The field a validation error is about (`causes[]` of the Status).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldCause {
    pub field: String,
    pub message: String,
}

impl FieldCause {
    pub fn new(field: &str, message: impl Into<String>) -> Box<Self> {
        Box::new(Self {
            field: field.to_owned(),
            message: message.into(),
        })
    }
}

const STALE_OBJECT: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
}

impl WatchEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
        }
    }
}

/// One change, as published to subscribers. The object is shared: every watcher sees the same allocation.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub event_type: WatchEventType,
    pub resource: ResourceType,
    pub object: Arc<Value>,
    pub resource_version: u64,
}

impl StoredEvent {
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    pub fn name(&self) -> &str {
        name_of(&self.object)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// For pods: `None` uses `spec.terminationGracePeriodSeconds` (default 30); 0 removes the pod at once.
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// `None`: Background, except Orphan for batch/v1 Jobs (the apiserver's defaults).
    pub propagation: Option<Propagation>,
}

impl DeleteOptions {
    /// What the kubelet sends once a pod's containers stopped, and what a forced delete does.
    pub fn immediate() -> Self {
        Self {
            grace_period_seconds: Some(0),
            ..Self::default()
        }
    }
}

/// The result of a delete call: the object's last state and whether it is gone or only terminating.
#[derive(Clone, Debug)]
pub struct Deleted {
    pub object: Value,
    pub removed: bool,
}

/// (namespace or "" for cluster-scoped, name)
type ObjectKey = (String, String);

struct Inner {
    revision: u64,
    /// Shared with the change events and the lists that read them: a list costs no deep copy.
    objects: HashMap<ResourceType, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<StoredEvent>,
    /// Every change with a resourceVersion above this one is still in `history`.
    history_floor: u64,
    events: broadcast::Sender<StoredEvent>,
}

/// The shared object store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty cluster with the initial namespaces.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let store = Store {
            inner: Arc::new(Mutex::new(Inner {
                revision: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_floor: 0,
                events,
            })),
        };
        for namespace in INITIAL_NAMESPACES {
            store
                .create(
                    &NAMESPACES,
                    json!({"metadata": {"name": namespace}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
                )
                .expect("a fresh store has no namespaces");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The resourceVersion of the latest change.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    pub fn get(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.lock().get(rt, &key(rt, namespace, name)).cloned()
    }

    /// Objects of one type (in one namespace, or all when `None`), ordered by namespace and name, with the
    /// resourceVersion of the list.
    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        (inner.list(rt, namespace), inner.revision)
    }

    /// Assigns uid, resourceVersion, creationTimestamp, generation 1 (where tracked) and a name from
    /// `metadata.generateName`. Namespaced objects need an existing namespace that is not terminating.
    pub fn create(&self, rt: &ResourceType, object: Value) -> Result<Value, StoreError> {
        self.lock().create(rt, object)
    }

    /// Replaces everything but status (for types with a status subresource) and the system metadata.
    /// Conflict when the object carries a stale `metadata.resourceVersion`; generation bumped on spec change.
    pub fn update(&self, rt: &ResourceType, object: Value) -> Result<Value, StoreError> {
        self.lock().update(rt, object, UpdateScope::Main)
    }

    /// Replaces only `.status` (the `/status` subresource).
    pub fn update_status(&self, rt: &ResourceType, object: Value) -> Result<Value, StoreError> {
        self.lock().update(rt, object, UpdateScope::Status)
    }

    /// Atomic read-modify-write under the store lock, for controllers and the kubelet. The closure may
    /// change metadata, spec and status. A closure that changes nothing writes nothing (no new
    /// resourceVersion, no event).
    pub fn modify(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = key(rt, namespace, name);
        let current = inner.get(rt, &key).ok_or_else(|| not_found(rt, name))?;
        let mut changed = current.clone();
        change(&mut changed);
        if changed == *current {
            return Ok(current.clone());
        }
        let current = current.clone();
        Ok(inner.replace(rt, &current, changed))
    }

    /// Kubernetes delete semantics: objects with finalizers, pods bound to a node with a grace period above
    /// 0, and Foreground deletions get `deletionTimestamp` and stay; everything else is removed at once,
    /// and its dependents are garbage-collected.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: DeleteOptions,
    ) -> Result<Deleted, StoreError> {
        self.lock().delete(rt, &key(rt, namespace, name), &options)
    }

    /// Every change from now on, in resourceVersion order. A receiver that falls more than
    /// 16384 events behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredEvent> {
        self.lock().events.subscribe()
    }

    /// The changes after `resource_version` still in history, and a subscription to the ones after them.
    /// `Gone` when history no longer reaches back that far.
    pub fn watch_since(
        &self,
        resource_version: u64,
    ) -> Result<(Vec<StoredEvent>, broadcast::Receiver<StoredEvent>), StoreError> {
        let inner = self.lock();
        if resource_version < inner.history_floor {
            return Err(StoreError::Gone {
                requested: resource_version,
                oldest: inner.history_floor,
            });
        }
        let missed = inner
            .history
            .iter()
            .filter(|event| event.resource_version > resource_version)
            .cloned()
            .collect();
        Ok((missed, inner.events.subscribe()))
    }

    /// A consistent snapshot of one type and a subscription to every change after it.
    pub fn list_and_subscribe(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<StoredEvent>) {
        let inner = self.lock();
        (
            inner.list(rt, namespace),
            inner.revision,
            inner.events.subscribe(),
        )
    }

    /// Forgets the change history, so that watches from any older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.history_floor = inner.revision;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum UpdateScope {
    Main,
    Status,
}

fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
    let namespace = if rt.namespaced {
        namespace.unwrap_or_default()
    } else {
        ""
    };
    (namespace.to_owned(), name.to_owned())
}

fn key_of(rt: &ResourceType, object: &Value) -> ObjectKey {
    key(rt, namespace_of(object), name_of(object))
}

fn not_found(rt: &ResourceType, name: &str) -> StoreError {
    StoreError::NotFound {
        resource: *rt,
        name: name.to_owned(),
    }
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let root = object.as_object_mut().expect("made an object above");
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    metadata.as_object_mut().expect("made an object above")
}

fn finalizers_of(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|finalizers| {
            finalizers
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn is_terminating(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The user-controlled part compared for generation bumps: every top-level field but metadata and status.
fn spec_part(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter(|(field, _)| {
                    !matches!(
                        field.as_str(),
                        "metadata" | "status" | "kind" | "apiVersion"
                    )
                })
                .map(|(field, value)| (field.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A name suffix like the apiserver's: five characters without vowels or look-alikes.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect()
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Inner {
    fn get(&self, rt: &ResourceType, key: &ObjectKey) -> Option<&Value> {
        self.objects
            .get(rt)
            .and_then(|objects| objects.get(key))
            .map(|object| &**object)
    }

    fn list(&self, rt: &ResourceType, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objects) = self.objects.get(rt) else {
            return Vec::new();
        };
        match namespace.filter(|_| rt.namespaced) {
            Some(namespace) => objects
                .range((namespace.to_owned(), String::new())..)
                .take_while(|((ns, _), _)| ns == namespace)
                .map(|(_, object)| Arc::clone(object))
                .collect(),
            None => objects.values().cloned().collect(),
        }
    }

    fn has_status_subresource(&self, rt: &ResourceType) -> bool {
        if rt.is_builtin() {
            return BUILTIN_WITH_STATUS.contains(rt);
        }
        let crd_name = format!("{}.{}", rt.resource, rt.group);
        self.get(&CRDS, &(String::new(), crd_name))
            .and_then(|crd| crd.pointer("/spec/versions"))
            .and_then(Value::as_array)
            .is_some_and(|versions| {
                versions.iter().any(|version| {
                    version.get("name").and_then(Value::as_str) == Some(rt.version)
                        && version.pointer("/subresources/status").is_some()
                })
            })
    }

    /// Records a change: new resourceVersion, stored (or removed), kept in history, published.
    fn commit(
        &mut self,
        event_type: WatchEventType,
        rt: &ResourceType,
        mut object: Value,
    ) -> Value {
        self.revision += 1;
        let revision = self.revision;
        metadata_mut(&mut object).insert("resourceVersion".into(), revision.to_string().into());
        let key = key_of(rt, &object);
        let shared = Arc::new(object);
        let objects = self.objects.entry(*rt).or_default();
        if event_type == WatchEventType::Deleted {
            objects.remove(&key);
        } else {
            objects.insert(key, Arc::clone(&shared));
        }
        let object = (*shared).clone();
        let event = StoredEvent {
            event_type,
            resource: *rt,
            object: shared,
            resource_version: revision,
        };
        if self.history.len() == HISTORY_LIMIT
            && let Some(dropped) = self.history.pop_front()
        {
            self.history_floor = dropped.resource_version;
        }
        self.history.push_back(event.clone());
        // No receivers is normal (nobody watching yet).
        let _ = self.events.send(event);
        object
    }

    fn create(&mut self, rt: &ResourceType, mut object: Value) -> Result<Value, StoreError> {
        let now = Utc::now();
        let metadata = metadata_mut(&mut object);
        let name = match metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_owned(),
            None => match metadata.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(StoreError::Invalid {
                        resource: *rt,
                        name: String::new(),
                        cause: FieldCause::new(
                            "metadata.name",
                            "Required value: name or generateName is required",
                        ),
                    });
                }
            },
        };
        metadata.insert("name".into(), name.clone().into());
        if rt.namespaced {
            let namespace = metadata
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .unwrap_or("default")
                .to_owned();
            metadata.insert("namespace".into(), namespace.into());
        } else {
            metadata.remove("namespace");
        }
        metadata.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        metadata.insert("creationTimestamp".into(), timestamp(now).into());
        metadata.remove("deletionTimestamp");
        metadata.remove("deletionGracePeriodSeconds");
        if rt.tracks_generation() {
            metadata.insert("generation".into(), 1.into());
        } else {
            metadata.remove("generation");
        }
        if let Some(fields) = object.as_object_mut() {
            fields.insert("apiVersion".into(), rt.api_version().into());
            fields.insert("kind".into(), rt.kind.into());
        }
        // The pod registry starts every pod Pending (pkg/registry/core/pod/strategy.go PrepareForCreate).
        if *rt == PODS && object.pointer("/status/phase").is_none() {
            object["status"]["phase"] = "Pending".into();
        }
        let key = key_of(rt, &object);
        if rt.namespaced {
            match self.get(&NAMESPACES, &(String::new(), key.0.clone())) {
                None => return Err(not_found(&NAMESPACES, &key.0)),
                Some(namespace) if is_terminating(namespace) => {
                    return Err(StoreError::Invalid {
                        resource: *rt,
                        name,
                        cause: FieldCause::new(
                            "metadata.namespace",
                            format!(
                                "Forbidden: unable to create new content in namespace {} because it is being terminated",
                                key.0
                            ),
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(existing) = self.get(rt, &key) {
            return Err(StoreError::AlreadyExists {
                resource: *rt,
                name,
                terminating: is_terminating(existing),
            });
        }
        Ok(self.commit(WatchEventType::Added, rt, object))
    }

    fn update(
        &mut self,
        rt: &ResourceType,
        object: Value,
        scope: UpdateScope,
    ) -> Result<Value, StoreError> {
        let key = key_of(rt, &object);
        let current = self
            .get(rt, &key)
            .ok_or_else(|| not_found(rt, &key.1))?
            .clone();
        if let Some(expected) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            && Some(expected)
                != current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(StoreError::Conflict {
                resource: *rt,
                name: key.1,
                reason: STALE_OBJECT.into(),
            });
        }
        let mut next = match scope {
            UpdateScope::Status => {
                let mut next = current.clone();
                match object.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(fields) = next.as_object_mut() {
                            fields.remove("status");
                        }
                    }
                }
                next
            }
            UpdateScope::Main => {
                let mut next = object;
                if self.has_status_subresource(rt) {
                    match current.get("status") {
                        Some(status) => next["status"] = status.clone(),
                        None => {
                            if let Some(fields) = next.as_object_mut() {
                                fields.remove("status");
                            }
                        }
                    }
                }
                // A terminating object cannot gain new finalizers through a stale write of old metadata;
                // system fields always come from the stored object.
                let metadata = metadata_mut(&mut next);
                for field in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "namespace",
                ] {
                    match current.pointer(&format!("/metadata/{field}")) {
                        Some(value) => metadata.insert(field.into(), value.clone()),
                        None => metadata.remove(field),
                    };
                }
                next
            }
        };
        if let Some(fields) = next.as_object_mut() {
            fields.insert("apiVersion".into(), rt.api_version().into());
            fields.insert("kind".into(), rt.kind.into());
        }
        if next == current {
            return Ok(current);
        }
        Ok(self.write(rt, &current, next, scope == UpdateScope::Main))
    }

    /// Writes a changed object: generation bump, resourceVersion, event; then removes it if it was
    /// terminating and lost its last finalizer.
    fn replace(&mut self, rt: &ResourceType, current: &Value, next: Value) -> Value {
        self.write(rt, current, next, false)
    }

    /// `user_write`: a write of the main resource through the API, where a Deployment's annotation
    /// change also bumps its generation (annotations are copied to ReplicaSets; apps strategy.go).
    /// Controllers write annotations through `/status`, which does not.
    fn write(
        &mut self,
        rt: &ResourceType,
        current: &Value,
        mut next: Value,
        user_write: bool,
    ) -> Value {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        if rt.tracks_generation() {
            let annotations_changed = user_write
                && *rt == DEPLOYMENTS
                && current.pointer("/metadata/annotations")
                    != next.pointer("/metadata/annotations");
            let bump = spec_part(current) != spec_part(&next) || annotations_changed;
            let generation = generation.unwrap_or(1) + i64::from(bump);
            metadata_mut(&mut next).insert("generation".into(), generation.into());
        }
        let written = self.commit(WatchEventType::Modified, rt, next);
        if self.ready_to_remove(rt, &written) {
            return self.remove(rt, written);
        }
        written
    }

    /// A terminating object without finalizers is removed, except a pod in its grace period: the kubelet
    /// removes it (delete with grace 0) once its containers stopped.
    fn ready_to_remove(&self, rt: &ResourceType, object: &Value) -> bool {
        let in_grace = *rt == PODS
            && object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_some_and(|grace| grace > 0);
        is_terminating(object) && finalizers_of(object).is_empty() && !in_grace
    }

    fn delete(
        &mut self,
        rt: &ResourceType,
        key: &ObjectKey,
        options: &DeleteOptions,
    ) -> Result<Deleted, StoreError> {
        let current = self
            .get(rt, key)
            .ok_or_else(|| not_found(rt, &key.1))?
            .clone();
        let precondition_failed = options
            .precondition_uid
            .as_deref()
            .is_some_and(|uid| uid != uid_of(&current))
            || options
                .precondition_resource_version
                .as_deref()
                .is_some_and(|rv| {
                    Some(rv)
                        != current
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                });
        if precondition_failed {
            return Err(StoreError::Conflict {
                resource: *rt,
                name: key.1.clone(),
                reason: "Precondition failed".into(),
            });
        }
        let propagation = options.propagation.unwrap_or(if *rt == JOBS {
            Propagation::Orphan
        } else {
            Propagation::Background
        });

        if *rt == PODS {
            return Ok(self.delete_pod(current, options));
        }
        if *rt == NAMESPACES {
            return Ok(self.delete_namespace(current));
        }
        if propagation == Propagation::Orphan {
            self.orphan_dependents(uid_of(&current).to_owned());
        }
        let mut finalizers = finalizers_of(&current);
        if propagation == Propagation::Foreground
            && self.has_dependents(uid_of(&current))
            && !finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
        {
            finalizers.push(FOREGROUND_FINALIZER.into());
        }
        if finalizers.is_empty() {
            let object = self.remove(rt, current);
            return Ok(Deleted {
                object,
                removed: true,
            });
        }
        let object = if is_terminating(&current) && finalizers == finalizers_of(&current) {
            current
        } else {
            let mut next = current.clone();
            let metadata = metadata_mut(&mut next);
            metadata
                .entry("deletionTimestamp")
                .or_insert_with(|| timestamp(Utc::now()).into());
            metadata
                .entry("deletionGracePeriodSeconds")
                .or_insert_with(|| 0.into());
            metadata.insert("finalizers".into(), finalizers.into());
            self.replace(rt, &current, next)
        };
        if propagation == Propagation::Foreground {
            self.delete_dependents(uid_of(&object).to_owned(), Propagation::Foreground);
            // The dependents may all have gone at once.
            if let Some(owner) = self.get(rt, key).cloned() {
                self.release_foreground_owner(rt, owner);
            }
        }
        let removed = self.get(rt, key).is_none();
        Ok(Deleted { object, removed })
    }

    fn delete_pod(&mut self, current: Value, options: &DeleteOptions) -> Deleted {
        let bound = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|node| !node.is_empty());
        let finished = matches!(
            current.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let grace = options.grace_period_seconds.unwrap_or_else(|| {
            current
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        let grace = if !bound || finished { 0 } else { grace.max(0) };
        let in_grace = current
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if grace == 0 && finalizers_of(&current).is_empty() {
            let object = self.remove(&PODS, current);
            return Deleted {
                object,
                removed: true,
            };
        }
        // A second delete may only shorten the grace period.
        if in_grace.is_some_and(|existing| existing <= grace) {
            return Deleted {
                object: current,
                removed: false,
            };
        }
        let mut next = current.clone();
        let deadline = Utc::now() + chrono::Duration::seconds(grace);
        let metadata = metadata_mut(&mut next);
        metadata.insert("deletionTimestamp".into(), timestamp(deadline).into());
        metadata.insert("deletionGracePeriodSeconds".into(), grace.into());
        let object = self.replace(&PODS, &current, next);
        let removed = self.get(&PODS, &key_of(&PODS, &object)).is_none();
        Deleted { object, removed }
    }

    /// The namespace turns Terminating, its content is deleted, and it goes once empty.
    fn delete_namespace(&mut self, current: Value) -> Deleted {
        let namespace = name_of(&current).to_owned();
        let object = if is_terminating(&current) {
            current
        } else {
            let mut next = current.clone();
            metadata_mut(&mut next)
                .insert("deletionTimestamp".into(), timestamp(Utc::now()).into());
            next["status"] = json!({"phase": "Terminating"});
            self.replace(&NAMESPACES, &current, next)
        };
        let content: Vec<(ResourceType, ObjectKey)> = self
            .objects
            .iter()
            .filter(|(rt, _)| rt.namespaced)
            .flat_map(|(rt, objects)| {
                objects
                    .keys()
                    .filter(|(ns, _)| *ns == namespace)
                    .map(|key| (*rt, key.clone()))
            })
            .collect();
        for (rt, key) in content {
            // Objects may already be gone through garbage collection of an earlier one.
            let _ = self.delete(&rt, &key, &DeleteOptions::default());
        }
        self.remove_namespace_if_empty(&namespace);
        let removed = self.get(&NAMESPACES, &(String::new(), namespace)).is_none();
        Deleted { object, removed }
    }

    fn remove_namespace_if_empty(&mut self, namespace: &str) {
        let key = (String::new(), namespace.to_owned());
        let Some(ns) = self.get(&NAMESPACES, &key) else {
            return;
        };
        if !is_terminating(ns) {
            return;
        }
        let empty = self
            .objects
            .iter()
            .filter(|(rt, _)| rt.namespaced)
            .all(|(_, objects)| !objects.keys().any(|(ns, _)| ns == namespace));
        if empty {
            let ns = ns.clone();
            self.remove(&NAMESPACES, ns);
        }
    }

    /// Removes an object for good and garbage-collects what depended on it.
    fn remove(&mut self, rt: &ResourceType, object: Value) -> Value {
        let key = key_of(rt, &object);
        if self.get(rt, &key).is_none() {
            return object;
        }
        let removed = self.commit(WatchEventType::Deleted, rt, object);
        let uid = uid_of(&removed).to_owned();
        self.delete_dependents(uid, Propagation::Background);
        for owner_uid in owner_uids(&removed) {
            if let Some((owner_rt, owner)) = self.find_by_uid(&owner_uid) {
                self.release_foreground_owner(&owner_rt, owner);
            }
        }
        if *rt == CRDS {
            self.remove_custom_resources(&removed);
        }
        if rt.namespaced {
            self.remove_namespace_if_empty(&key.0);
        }
        removed
    }

    fn remove_custom_resources(&mut self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let doomed: Vec<Value> = self
            .objects
            .iter()
            .filter(|(rt, _)| rt.group == group && rt.resource == plural && !rt.is_builtin())
            .flat_map(|(_, objects)| objects.values().map(|object| Value::clone(object)))
            .collect();
        for object in doomed {
            let version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .and_then(|api_version| api_version.rsplit('/').next())
                .unwrap_or_default()
                .to_owned();
            if let Some(rt) = self
                .objects
                .keys()
                .find(|rt| rt.group == group && rt.resource == plural && rt.version == version)
                .copied()
            {
                self.remove(&rt, object);
            }
        }
    }

    fn find_by_uid(&self, uid: &str) -> Option<(ResourceType, Value)> {
        self.objects.iter().find_map(|(rt, objects)| {
            objects
                .values()
                .find(|object| uid_of(object) == uid)
                .map(|object| (*rt, Value::clone(object)))
        })
    }

    fn dependents(&self, owner_uid: &str) -> Vec<(ResourceType, Value)> {
        self.objects
            .iter()
            .flat_map(|(rt, objects)| {
                objects
                    .values()
                    .filter(|object| owner_uids(object).iter().any(|uid| uid == owner_uid))
                    .map(|object| (*rt, Value::clone(object)))
            })
            .collect()
    }

    fn has_dependents(&self, owner_uid: &str) -> bool {
        self.objects.values().any(|objects| {
            objects
                .values()
                .any(|object| owner_uids(object).iter().any(|uid| uid == owner_uid))
        })
    }

    fn delete_dependents(&mut self, owner_uid: String, propagation: Propagation) {
        for (rt, dependent) in self.dependents(&owner_uid) {
            let key = key_of(&rt, &dependent);
            let options = DeleteOptions {
                propagation: Some(propagation),
                ..DeleteOptions::default()
            };
            // A dependent may already be gone through an earlier cascade.
            let _ = self.delete(&rt, &key, &options);
        }
    }

    /// GC's orphan finalizer, done at once: dependents lose their owner reference.
    fn orphan_dependents(&mut self, owner_uid: String) {
        for (rt, dependent) in self.dependents(&owner_uid) {
            let mut next = dependent.clone();
            if let Some(refs) = next
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid.as_str()));
                if refs.is_empty()
                    && let Some(metadata) = next.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    metadata.remove("ownerReferences");
                }
            }
            self.replace(&rt, &dependent, next);
        }
    }

    /// A Foreground-deleted owner loses its `foregroundDeletion` finalizer once no dependent is left.
    fn release_foreground_owner(&mut self, rt: &ResourceType, owner: Value) {
        let finalizers = finalizers_of(&owner);
        if !finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
            || self.has_dependents(uid_of(&owner))
        {
            return;
        }
        let mut next = owner.clone();
        let remaining: Vec<String> = finalizers
            .into_iter()
            .filter(|f| f != FOREGROUND_FINALIZER)
            .collect();
        let metadata = metadata_mut(&mut next);
        if remaining.is_empty() {
            metadata.remove("finalizers");
        } else {
            metadata.insert("finalizers".into(), remaining.into());
        }
        self.replace(rt, &owner, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
    }

    fn owned(kind: &str, name: &str, owner: &Value) -> Value {
        json!({
            "metadata": {
                "name": name,
                "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name_of(owner), "uid": uid_of(owner), "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {"replicas": 1}
        })
    }

    fn bound_pod(name: &str, owner: Option<&Value>) -> Value {
        let mut pod = json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": "node-0", "containers": [{"name": "app", "image": "nginx"}]}});
        if let Some(owner) = owner {
            pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name_of(owner), "uid": uid_of(owner), "controller": true}]);
        }
        pod
    }

    fn rv(object: &Value) -> u64 {
        object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn create_assigns_system_metadata_and_rejects_duplicates() {
        let store = Store::new();
        let created = store.create(&DEPLOYMENTS, json!({"metadata": {"generateName": "web-", "namespace": "default"}, "spec": {"replicas": 1}})).unwrap();
        let name = name_of(&created);
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(created["kind"], "Deployment");
        assert_eq!(created["apiVersion"], "apps/v1");
        let pod = store.create(&PODS, bound_pod("p", None)).unwrap();
        assert_eq!(pod["status"]["phase"], "Pending");
        assert!(!uid_of(&created).is_empty());
        assert!(created["metadata"]["creationTimestamp"].is_string());

        let cm = store.create(&CONFIGMAPS, config_map("c")).unwrap();
        assert!(cm["metadata"].get("generation").is_none());
        let duplicate = store.create(&CONFIGMAPS, config_map("c")).unwrap_err();
        assert_eq!(duplicate.to_string(), "configmaps \"c\" already exists");
    }

    #[test]
    fn create_in_missing_namespace_is_not_found() {
        let store = Store::new();
        let error = store
            .create(
                &CONFIGMAPS,
                json!({"metadata": {"name": "c", "namespace": "nope"}}),
            )
            .unwrap_err();
        assert_eq!(error.to_string(), "namespaces \"nope\" not found");
    }

    #[test]
    fn update_detects_conflicts_and_bumps_generation_only_on_spec_change() {
        let store = Store::new();
        let created = store
            .create(&DEPLOYMENTS, owned("X", "web", &json!({})))
            .unwrap();
        let mut stale = created.clone();
        let mut changed = created.clone();
        changed["spec"]["replicas"] = 3.into();
        let updated = store.update(&DEPLOYMENTS, changed).unwrap();
        assert_eq!(updated["metadata"]["generation"], 2);
        assert!(rv(&updated) > rv(&created));

        stale["spec"]["replicas"] = 5.into();
        let conflict = store.update(&DEPLOYMENTS, stale).unwrap_err();
        assert!(matches!(conflict, StoreError::Conflict { .. }));
        assert!(
            conflict
                .to_string()
                .starts_with("Operation cannot be fulfilled on deployments.apps \"web\"")
        );

        let mut labelled = updated.clone();
        labelled["metadata"]["labels"] = json!({"a": "b"});
        let labelled = store.update(&DEPLOYMENTS, labelled).unwrap();
        assert_eq!(labelled["metadata"]["generation"], 2);
    }

    #[test]
    fn deployment_annotations_bump_generation_only_on_user_writes() {
        let store = Store::new();
        store
            .create(&DEPLOYMENTS, owned("X", "web", &json!({})))
            .unwrap();
        let by_controller = store
            .modify(&DEPLOYMENTS, Some("default"), "web", |d| {
                d["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
            })
            .unwrap();
        assert_eq!(by_controller["metadata"]["generation"], 1);
        let mut by_user = by_controller.clone();
        by_user["metadata"]["annotations"]["team"] = "a".into();
        assert_eq!(
            store.update(&DEPLOYMENTS, by_user).unwrap()["metadata"]["generation"],
            2
        );
    }

    #[test]
    fn main_resource_writes_ignore_status_and_status_writes_ignore_spec() {
        let store = Store::new();
        let created = store
            .create(&DEPLOYMENTS, owned("X", "web", &json!({})))
            .unwrap();
        let mut with_status = created.clone();
        with_status["status"] = json!({"replicas": 1});
        with_status["spec"]["replicas"] = 9.into();
        let after_status = store.update_status(&DEPLOYMENTS, with_status).unwrap();
        assert_eq!(after_status["status"]["replicas"], 1);
        assert_eq!(after_status["spec"]["replicas"], 1);

        let mut main = after_status.clone();
        main["status"] = json!({"replicas": 7});
        let after_main = store.update(&DEPLOYMENTS, main).unwrap();
        assert_eq!(after_main["status"]["replicas"], 1);
    }

    #[test]
    fn modify_without_change_writes_nothing() {
        let store = Store::new();
        let created = store.create(&CONFIGMAPS, config_map("c")).unwrap();
        let mut events = store.subscribe();
        let same = store
            .modify(&CONFIGMAPS, Some("default"), "c", |_| {})
            .unwrap();
        assert_eq!(rv(&same), rv(&created));
        assert!(events.try_recv().is_err());
        let changed = store
            .modify(&CONFIGMAPS, Some("default"), "c", |cm| {
                cm["data"]["a"] = "2".into()
            })
            .unwrap();
        assert!(rv(&changed) > rv(&created));
        let event = events.try_recv().unwrap();
        assert_eq!(event.event_type, WatchEventType::Modified);
        assert_eq!(event.object["data"]["a"], "2");
    }

    #[test]
    fn bound_pods_terminate_with_grace_and_go_on_immediate_delete() {
        let store = Store::new();
        store.create(&PODS, bound_pod("p", None)).unwrap();
        let deleted = store
            .delete(&PODS, Some("default"), "p", DeleteOptions::default())
            .unwrap();
        assert!(!deleted.removed);
        assert_eq!(deleted.object["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(is_terminating(&deleted.object));
        // The kubelet reports the containers as stopped: still there until the grace-0 delete.
        store
            .modify(&PODS, Some("default"), "p", |pod| {
                pod["status"] = json!({"phase": "Running"})
            })
            .unwrap();
        assert!(store.get(&PODS, Some("default"), "p").is_some());
        let gone = store
            .delete(&PODS, Some("default"), "p", DeleteOptions::immediate())
            .unwrap();
        assert!(gone.removed);
        assert!(store.get(&PODS, Some("default"), "p").is_none());
    }

    #[test]
    fn unbound_pods_are_removed_at_once() {
        let store = Store::new();
        let mut pod = bound_pod("p", None);
        pod["spec"]["nodeName"] = Value::Null;
        store.create(&PODS, pod).unwrap();
        assert!(
            store
                .delete(&PODS, Some("default"), "p", DeleteOptions::default())
                .unwrap()
                .removed
        );
    }

    #[test]
    fn finalizers_hold_an_object_until_removed() {
        let store = Store::new();
        let mut cm = config_map("c");
        cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
        store.create(&CONFIGMAPS, cm).unwrap();
        let deleted = store
            .delete(&CONFIGMAPS, Some("default"), "c", DeleteOptions::default())
            .unwrap();
        assert!(!deleted.removed);
        assert!(is_terminating(&deleted.object));
        store
            .modify(&CONFIGMAPS, Some("default"), "c", |cm| {
                cm["metadata"]["finalizers"] = json!([]);
            })
            .unwrap();
        assert!(store.get(&CONFIGMAPS, Some("default"), "c").is_none());
    }

    #[test]
    fn background_deletion_collects_dependents_transitively() {
        let store = Store::new();
        let deployment = store
            .create(&DEPLOYMENTS, owned("X", "web", &json!({})))
            .unwrap();
        let replica_set = store
            .create(&REPLICASETS, owned("Deployment", "web-1", &deployment))
            .unwrap();
        let mut pod = bound_pod("web-1-a", Some(&replica_set));
        pod["status"] = json!({"phase": "Running"});
        store.create(&PODS, pod).unwrap();
        store.create(&CONFIGMAPS, config_map("unrelated")).unwrap();

        let deleted = store
            .delete(
                &DEPLOYMENTS,
                Some("default"),
                "web",
                DeleteOptions::default(),
            )
            .unwrap();
        assert!(deleted.removed);
        assert!(store.get(&REPLICASETS, Some("default"), "web-1").is_none());
        let pod = store.get(&PODS, Some("default"), "web-1-a").unwrap();
        assert!(is_terminating(&pod), "running pods terminate with grace");
        assert!(
            store
                .get(&CONFIGMAPS, Some("default"), "unrelated")
                .is_some()
        );
    }

    #[test]
    fn orphan_deletion_keeps_dependents_without_owner_reference() {
        let store = Store::new();
        let job = store.create(&JOBS, owned("X", "job", &json!({}))).unwrap();
        let mut pod = bound_pod("job-a", None);
        pod["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "job", "uid": uid_of(&job)}]);
        store.create(&PODS, pod).unwrap();
        assert!(
            store
                .delete(&JOBS, Some("default"), "job", DeleteOptions::default())
                .unwrap()
                .removed
        );
        let pod = store.get(&PODS, Some("default"), "job-a").unwrap();
        assert!(pod["metadata"].get("ownerReferences").is_none());
        assert!(!is_terminating(&pod));
    }

    #[test]
    fn foreground_deletion_waits_for_dependents() {
        let store = Store::new();
        let replica_set = store
            .create(&REPLICASETS, owned("X", "rs", &json!({})))
            .unwrap();
        let mut pod = bound_pod("rs-a", Some(&replica_set));
        pod["status"] = json!({"phase": "Running"});
        store.create(&PODS, pod).unwrap();
        let options = DeleteOptions {
            propagation: Some(Propagation::Foreground),
            ..DeleteOptions::default()
        };
        let deleted = store
            .delete(&REPLICASETS, Some("default"), "rs", options)
            .unwrap();
        assert!(!deleted.removed);
        assert_eq!(
            deleted.object["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        store
            .delete(&PODS, Some("default"), "rs-a", DeleteOptions::immediate())
            .unwrap();
        assert!(store.get(&REPLICASETS, Some("default"), "rs").is_none());
    }

    #[test]
    fn namespace_deletion_removes_content_then_namespace() {
        let store = Store::new();
        store
            .create(&NAMESPACES, json!({"metadata": {"name": "team"}}))
            .unwrap();
        store
            .create(
                &CONFIGMAPS,
                json!({"metadata": {"name": "c", "namespace": "team"}}),
            )
            .unwrap();
        let deleted = store
            .delete(&NAMESPACES, None, "team", DeleteOptions::default())
            .unwrap();
        assert!(deleted.removed);
        assert!(store.list(&CONFIGMAPS, Some("team")).0.is_empty());
    }

    #[test]
    fn watch_since_replays_history_and_compaction_makes_it_gone() {
        let store = Store::new();
        let first = store.create(&CONFIGMAPS, config_map("a")).unwrap();
        store.create(&CONFIGMAPS, config_map("b")).unwrap();
        let (missed, _) = store.watch_since(rv(&first)).unwrap();
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].name(), "b");

        store.compact();
        let error = store.watch_since(rv(&first)).unwrap_err();
        assert!(matches!(error, StoreError::Gone { .. }));
        assert!(error.to_string().starts_with("too old resource version"));
        let (missed, mut live) = store.watch_since(store.revision()).unwrap();
        assert!(missed.is_empty());
        store.create(&CONFIGMAPS, config_map("c")).unwrap();
        assert_eq!(live.try_recv().unwrap().name(), "c");
    }

    #[test]
    fn list_is_per_namespace_and_ordered() {
        let store = Store::new();
        store
            .create(&NAMESPACES, json!({"metadata": {"name": "other"}}))
            .unwrap();
        store.create(&CONFIGMAPS, config_map("b")).unwrap();
        store.create(&CONFIGMAPS, config_map("a")).unwrap();
        store
            .create(
                &CONFIGMAPS,
                json!({"metadata": {"name": "z", "namespace": "other"}}),
            )
            .unwrap();
        let (items, revision) = store.list(&CONFIGMAPS, Some("default"));
        let names: Vec<&str> = items.iter().map(|item| name_of(item)).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(revision, store.revision());
        assert_eq!(store.list(&CONFIGMAPS, None).0.len(), 3);
    }

    #[test]
    fn custom_resource_types_are_interned() {
        let a = ResourceType::custom("example.com", "v1", "widgets", "Widget", true);
        let b = ResourceType::custom("example.com", "v1", "widgets", "Widget", true);
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.resource, b.resource));
        assert_eq!(a.group_resource(), "widgets.example.com");
    }
}
