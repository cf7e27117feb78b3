//! The objects the core understands: typed k8s-openapi structs for known kinds, JSON for the rest.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;

use super::ResourceKey;

/// API groups served by Kubernetes itself: kinds there without a dedicated rule are passive (ready when
/// present). Anything else is a custom resource, judged by its status.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
    "events.k8s.io",
];

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("{kind} {name}: {source}")]
    Malformed {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
}

/// A built-in kind without a status worth reading, or a custom resource.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    /// `status` as sent by the API server (`Null` when absent).
    pub status: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrackedObject {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    ReplicaSet(Box<ReplicaSet>),
    ControllerRevision(Box<ControllerRevision>),
    Job(Box<Job>),
    Pod(Box<Pod>),
    Service(Box<Service>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
    CustomResourceDefinition(Box<CustomResourceDefinition>),
    Event(Box<Event>),
    Passive(GenericObject),
    Custom(GenericObject),
}

/// `From<Kind> for TrackedObject` and the per-variant metadata accessor, written once for all kinds.
macro_rules! typed_kinds {
    ($($variant:ident),+) => {
        $(impl From<$variant> for TrackedObject {
            fn from(object: $variant) -> Self {
                TrackedObject::$variant(Box::new(object))
            }
        })+

        impl TrackedObject {
            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(TrackedObject::$variant(object) => object.metadata(),)+
                    TrackedObject::Passive(object) | TrackedObject::Custom(object) => &object.metadata,
                }
            }

            /// `(apiVersion, kind)`.
            pub fn type_meta(&self) -> (&str, &str) {
                match self {
                    $(TrackedObject::$variant(_) => ($variant::API_VERSION, $variant::KIND),)+
                    TrackedObject::Passive(object) | TrackedObject::Custom(object) => {
                        (&object.api_version, &object.kind)
                    }
                }
            }

            fn parse_typed(api_version: &str, kind: &str, value: serde_json::Value) -> Option<Result<Self, ObjectError>> {
                $(if api_version == $variant::API_VERSION && kind == $variant::KIND {
                    return Some(typed::<$variant>(value).map(|object| TrackedObject::$variant(Box::new(object))));
                })+
                None
            }
        }
    };
}

typed_kinds!(
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ControllerRevision,
    Job,
    Pod,
    Service,
    PersistentVolumeClaim,
    CustomResourceDefinition,
    Event
);

/// Kubernetes' own API groups: what is in them is never a custom resource.
pub(crate) fn is_built_in_group(group: &str) -> bool {
    BUILT_IN_GROUPS.contains(&group)
}

fn typed<K: DeserializeOwned>(value: serde_json::Value) -> Result<K, ObjectError> {
    let kind = text_at(&value, "kind");
    let name = value
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    serde_json::from_value(value).map_err(|source| ObjectError::Malformed { kind, name, source })
}

fn text_at(value: &serde_json::Value, field: &str) -> String {
    value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl TrackedObject {
    /// Reads an object as the API server (or a YAML file) gives it.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ObjectError> {
        let api_version = text_at(&value, "apiVersion");
        let kind = text_at(&value, "kind");
        if api_version.is_empty() {
            return Err(ObjectError::MissingField("apiVersion"));
        }
        if kind.is_empty() {
            return Err(ObjectError::MissingField("kind"));
        }
        if let Some(parsed) = Self::parse_typed(&api_version, &kind, value.clone()) {
            return parsed;
        }
        let metadata: ObjectMeta = value
            .get("metadata")
            .cloned()
            .map(|metadata| {
                serde_json::from_value(metadata).map_err(|source| ObjectError::Malformed {
                    kind: kind.clone(),
                    name: String::new(),
                    source,
                })
            })
            .transpose()?
            .unwrap_or_default();
        let built_in =
            is_built_in_group(api_version.rsplit_once('/').map_or("", |(group, _)| group));
        let generic = GenericObject {
            status: value
                .get("status")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            api_version,
            kind,
            metadata,
        };
        Ok(if built_in {
            TrackedObject::Passive(generic)
        } else {
            TrackedObject::Custom(generic)
        })
    }

    pub fn key(&self) -> ResourceKey {
        let (api_version, kind) = self.type_meta();
        let metadata = self.metadata();
        ResourceKey::new(
            api_version,
            kind,
            metadata.namespace.as_deref(),
            metadata.name.clone().unwrap_or_default(),
        )
    }

    pub fn annotations(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.metadata().annotations.as_ref().unwrap_or(&EMPTY)
    }

    /// Whether this object is something rollcall tracks for its own sake (a workload, a custom resource,
    /// a Service...) rather than supporting material (Events, and the ReplicaSets, ControllerRevisions and
    /// Pods that a controller owns).
    pub fn is_trackable(&self) -> bool {
        match self {
            TrackedObject::Event(_) => false,
            TrackedObject::ReplicaSet(_)
            | TrackedObject::ControllerRevision(_)
            | TrackedObject::Pod(_) => controller_of(self.metadata()).is_none(),
            _ => true,
        }
    }
}

/// The owner reference flagged `controller: true`.
pub(crate) fn controller_of(
    metadata: &ObjectMeta,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_are_typed_others_passive_or_custom() {
        let deployment = TrackedObject::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"replicas": 2, "selector": {}, "template": {}}
        }))
        .unwrap();
        assert!(matches!(deployment, TrackedObject::Deployment(_)));
        assert_eq!(deployment.key().to_string(), "Deployment prod/web");

        let config = TrackedObject::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}
        }))
        .unwrap();
        assert!(matches!(config, TrackedObject::Passive(_)));

        let certificate = TrackedObject::from_value(serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "tls"},
            "status": {"conditions": []}
        }))
        .unwrap();
        assert!(matches!(certificate, TrackedObject::Custom(_)));
    }

    #[test]
    fn malformed_objects_are_errors() {
        let error = TrackedObject::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": "three"}
        }))
        .unwrap_err();
        assert!(error.to_string().starts_with("Deployment web:"), "{error}");
        assert!(matches!(
            TrackedObject::from_value(serde_json::json!({"kind": "Pod"})),
            Err(ObjectError::MissingField("apiVersion"))
        ));
    }
}
