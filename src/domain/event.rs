//! Deploy events (DESIGN §3): small deltas with a gapless `seq` per deploy.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use uuid::Uuid;

use super::storable::{storable_json, storable_text};

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// Every event type rollcall emits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    DeployQueued => "deploy.queued",
    DeployStarted => "deploy.started",
    DeployCancelling => "deploy.cancelling",
    DeploySucceeded => "deploy.succeeded",
    DeployFailed => "deploy.failed",
    DeployCancelled => "deploy.cancelled",
    DeployRecovered => "deploy.recovered",
    Phase => "phase",
    HelmOutput => "helm.output",
    ResourceAdded => "resource.added",
    ResourceStatus => "resource.status",
    ResourceReady => "resource.ready",
    ResourceFailure => "resource.failure",
    ResourceFailed => "resource.failed",
    ResourceWarning => "resource.warning",
    PodStatus => "pod.status",
    K8sEvent => "k8s.event",
    ContainerLog => "container.log",
    LogCapped => "log.capped",
    RollbackStarted => "rollback.started",
    RollbackSucceeded => "rollback.succeeded",
    RollbackFailed => "rollback.failed",
    Report => "report",
    TrackerWarning => "tracker.warning",
}

/// The document lists the names as sent (`deploy.queued`), which the derive, reading the names
/// through this file's macro, would not.
impl utoipa::PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|kind| kind.as_str())))
            .description(Some("Every event type rollcall emits."))
            .into()
    }
}

impl ToSchema for EventType {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventType")
    }
}

impl EventType {
    /// The schema of a selection [`EventType::select`] accepts, as a pattern: names and families
    /// (`deploy.*`) separated by commas, spaces around them allowed.
    pub fn selection_schema() -> Schema {
        let mut families: Vec<&str> = EventType::ALL
            .iter()
            .filter_map(|kind| kind.as_str().split_once('.').map(|(family, _)| family))
            .collect();
        families.sort_unstable();
        families.dedup();
        let names: Vec<String> = EventType::ALL
            .iter()
            .map(|kind| kind.as_str().replace('.', "\\."))
            .chain(families.iter().map(|family| format!("{family}\\.\\*")))
            .collect();
        let one = format!("\\s*({})\\s*", names.join("|"));
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^{one}(,{one})*$")))
            .description(Some(
                "Event types and families of them, comma-separated, e.g. `deploy.*,phase`.",
            ))
            .into()
    }

    /// The types a selection such as `deploy.*,phase` names: types by name, or every type of a
    /// family (`<family>.*`). A name that matches no type is an error naming it.
    pub fn select(selection: &str) -> Result<Vec<EventType>, String> {
        let mut selected = Vec::new();
        for name in selection.split(',').map(str::trim) {
            let named: Vec<EventType> = match name.strip_suffix(".*") {
                Some(family) => EventType::ALL
                    .iter()
                    .copied()
                    .filter(|kind| {
                        kind.as_str()
                            .strip_prefix(family)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                    .collect(),
                None => EventType::parse(name).into_iter().collect(),
            };
            if named.is_empty() {
                return Err(format!(
                    "{name:?} is no event type nor family of them (e.g. deploy.*)"
                ));
            }
            selected.extend(named);
        }
        Ok(selected)
    }

    /// The last event of a deploy: streams end after it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventType::DeploySucceeded | EventType::DeployFailed | EventType::DeployCancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "info" => Some(Level::Info),
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// The Kubernetes object an event is about (`namespace` is empty for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct ResourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    /// Replaces what PostgreSQL cannot store (see [`crate::domain::storable`]).
    pub fn make_storable(&mut self) {
        for text in [&mut self.kind, &mut self.namespace, &mut self.name] {
            storable_text(text);
        }
    }
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// An event before the store gives it a `seq` and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    /// When it happened; stamped at creation so batching does not blur the times.
    pub at: DateTime<Utc>,
    pub level: Level,
    pub resource: Option<ResourceRef>,
    pub message: String,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: EventType, message: impl Into<String>) -> Self {
        Self {
            kind,
            at: Utc::now(),
            level: Level::Info,
            resource: None,
            message: message.into(),
            data: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    pub fn resource(mut self, resource: ResourceRef) -> Self {
        self.resource = Some(resource);
        self
    }

    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    /// Replaces what PostgreSQL cannot store (see [`crate::domain::storable`]).
    pub fn make_storable(&mut self) {
        storable_text(&mut self.message);
        storable_json(&mut self.data);
        if let Some(resource) = &mut self.resource {
            resource.make_storable();
        }
    }

    /// The event as stored: the `seq` the store gave it in `deploy`'s sequence.
    pub fn persisted(self, deploy_id: Uuid, seq: i64) -> Event {
        Event {
            deploy_id,
            seq,
            kind: self.kind,
            at: self.at,
            level: self.level,
            resource: self.resource,
            message: self.message,
            data: self.data,
        }
    }
}

/// A persisted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub deploy_id: Uuid,
    /// Gapless per deploy as written, starting at 1; the SSE `id`. The retention policy may later
    /// remove events of a finished deploy (its log lines first, never its terminal event or its
    /// `report`), leaving gaps that readers step over.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub at: DateTime<Utc>,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!(EventType::DeployFailed.is_terminal());
        assert!(!EventType::DeployCancelling.is_terminal());
    }

    #[test]
    fn a_selection_names_types_and_families() {
        let selected = EventType::select("deploy.*, phase").unwrap();
        assert!(selected.contains(&EventType::DeployQueued));
        assert!(selected.contains(&EventType::DeployCancelled));
        assert!(selected.contains(&EventType::Phase));
        assert!(!selected.contains(&EventType::ContainerLog));
        assert_eq!(
            EventType::select("rollback.*").unwrap(),
            [
                EventType::RollbackStarted,
                EventType::RollbackSucceeded,
                EventType::RollbackFailed
            ]
        );
        for wrong in ["", "deploy", "deploy.", "depl.*", "phase,nope", "report.*"] {
            assert!(EventType::select(wrong).is_err(), "{wrong:?}");
        }
    }
}
