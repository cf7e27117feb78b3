//! Writes core/v1 Events the way client-go's legacy recorder does: one Event per distinct
//! (source, object, type, reason, message), repeats bump `count` and `lastTimestamp`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use serde_json::{Value, json};

use crate::store::{self, ResourceType, Store, StoreError, timestamp};

/// How many distinct events are remembered for aggregation.
const AGGREGATION_CACHE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who reports the event: `source.component` and, for the kubelet, `source.host`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventSource {
    pub component: &'static str,
    pub host: Option<String>,
}

impl EventSource {
    pub const fn controller(component: &'static str) -> Self {
        Self {
            component,
            host: None,
        }
    }

    pub fn kubelet(node: &str) -> Self {
        Self {
            component: "kubelet",
            host: Some(node.to_owned()),
        }
    }
}

/// The object an event is about, as in `involvedObject`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InvolvedObject {
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// e.g. `spec.containers{web}` for kubelet events about one container.
    pub field_path: Option<String>,
}

impl InvolvedObject {
    pub fn of(resource: &ResourceType, object: &Value) -> Self {
        let metadata = &object["metadata"];
        let text = |field: &str| metadata[field].as_str().unwrap_or_default().to_owned();
        Self {
            kind: resource.kind.to_owned(),
            api_version: resource.api_version(),
            namespace: metadata["namespace"].as_str().map(str::to_owned),
            name: text("name"),
            uid: text("uid"),
            resource_version: text("resourceVersion"),
            field_path: None,
        }
    }

    pub fn with_field_path(mut self, field_path: String) -> Self {
        self.field_path = Some(field_path);
        self
    }

    fn to_json(&self) -> Value {
        let mut reference = json!({
            "kind": self.kind,
            "apiVersion": self.api_version,
            "name": self.name,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
        });
        if let Some(namespace) = &self.namespace {
            reference["namespace"] = json!(namespace);
        }
        if let Some(field_path) = &self.field_path {
            reference["fieldPath"] = json!(field_path);
        }
        reference
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EventKey {
    source: EventSource,
    object: InvolvedObject,
    event_type: EventType,
    reason: String,
    message: String,
}

/// Shared by every controller and the kubelet of one cluster.
#[derive(Clone)]
pub struct Recorder {
    store: Store,
    /// Names of the Events already written, for aggregation of repeats.
    written: Arc<Mutex<HashMap<EventKey, (String, String)>>>,
}

impl Recorder {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            written: Arc::default(),
        }
    }

    pub fn record(
        &self,
        source: &EventSource,
        object: InvolvedObject,
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let now = timestamp(Utc::now());
        let key = EventKey {
            source: source.clone(),
            object,
            event_type,
            reason: reason.to_owned(),
            message,
        };
        let previous = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some((namespace, name)) = previous {
            let bumped = self
                .store
                .modify(&store::EVENTS, Some(&namespace), &name, |event| {
                    event["count"] = json!(event["count"].as_i64().unwrap_or(1) + 1);
                    event["lastTimestamp"] = json!(now);
                });
            match bumped {
                Ok(_) => return,
                // Someone deleted the Event (TTL, user): start a new one.
                Err(StoreError::NotFound { .. }) => {}
                Err(error) => {
                    tracing::warn!(%error, reason = key.reason, "could not aggregate event");
                    return;
                }
            }
        }
        let namespace = key
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let mut event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": format!("{}.{nanos:x}", key.object.name), "namespace": namespace},
            "involvedObject": key.object.to_json(),
            "reason": key.reason,
            "message": key.message,
            "type": event_type.as_str(),
            "source": {"component": source.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "eventTime": null,
            "reportingComponent": source.component,
            "reportingInstance": source.host.clone().unwrap_or_default(),
        });
        if let Some(host) = &source.host {
            event["source"]["host"] = json!(host);
        }
        match self.store.create(&store::EVENTS, event) {
            Ok(created) => {
                let name = created["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
                // client-go's events cache is an LRU of 4096 entries: repeats older than that start a new Event.
                if written.len() >= AGGREGATION_CACHE {
                    written.clear();
                }
                written.insert(key, (namespace, name));
            }
            Err(error) => tracing::warn!(%error, reason = key.reason, "could not record event"),
        }
    }
}
