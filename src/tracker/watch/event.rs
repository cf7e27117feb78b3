//! The events `track()` emits (DESIGN §3), in the shape the runner persists: kind, level, message, the
//! resource concerned and a small JSON `data` delta.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::tracker::core::{Change, Delta, Level, ResourceKey};

/// The §3 event types produced while tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ResourceAdded,
    /// Only on change.
    ResourceStatus,
    /// One incident, with its count and the allowance.
    ResourceFailure,
    /// Trouble reported without counting (FailedScheduling).
    ResourceWarning,
    ResourceReady,
    ResourceFailed,
    PodStatus,
    K8sEvent,
    ContainerLog,
    /// An error of rollcall's own API calls (watch dropped, 5xx, 429): retried, never a verdict.
    TrackerWarning,
    /// The final per-resource summary with evidence; always the last event.
    Report,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ResourceAdded => "resource.added",
            EventKind::ResourceStatus => "resource.status",
            EventKind::ResourceFailure => "resource.failure",
            EventKind::ResourceWarning => "resource.warning",
            EventKind::ResourceReady => "resource.ready",
            EventKind::ResourceFailed => "resource.failed",
            EventKind::PodStatus => "pod.status",
            EventKind::K8sEvent => "k8s.event",
            EventKind::ContainerLog => "container.log",
            EventKind::TrackerWarning => "tracker.warning",
            EventKind::Report => "report",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The resource an event is about, as §3 names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl From<&ResourceKey> for ResourceRef {
    fn from(key: &ResourceKey) -> Self {
        ResourceRef {
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        }
    }
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One event of a tracked deploy. `seq` is the runner's to assign when it persists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    pub data: serde_json::Value,
}

impl TrackEvent {
    pub fn new(
        kind: EventKind,
        level: Level,
        message: impl Into<String>,
        resource: Option<ResourceRef>,
        data: serde_json::Value,
    ) -> Self {
        TrackEvent {
            kind,
            at: Utc::now(),
            level,
            message: message.into(),
            resource,
            data,
        }
    }

    /// The event for one delta of the decision core.
    pub fn from_delta(delta: &Delta) -> Self {
        let resource = Some(ResourceRef::from(&delta.resource));
        let (kind, level, message, data) = match &delta.change {
            Change::Status { status } => (
                EventKind::ResourceStatus,
                Level::Info,
                status.message.clone(),
                to_json(status),
            ),
            Change::Incident {
                incident,
                count,
                allowance,
                level,
            } => {
                let allowed = allowance.map_or_else(String::new, |allowed| {
                    format!(" ({count}/{allowed} allowed)")
                });
                (
                    EventKind::ResourceFailure,
                    *level,
                    format!("{}: {}{allowed}", incident.reason, incident.message),
                    json!({"incident": incident, "count": count, "allowance": allowance}),
                )
            }
            Change::PodStatus { pod } => {
                let reason = pod
                    .reason
                    .as_ref()
                    .map_or_else(String::new, |reason| format!(", {reason}"));
                (
                    EventKind::PodStatus,
                    Level::Info,
                    format!(
                        "pod {}: {}, {} ready, {} restarts{reason}{}",
                        pod.name,
                        pod.phase,
                        pod.ready,
                        pod.restarts,
                        if pod.terminating { ", terminating" } else { "" }
                    ),
                    to_json(pod),
                )
            }
            Change::Warning {
                reason,
                message,
                pod,
            } => (
                EventKind::ResourceWarning,
                Level::Warning,
                format!("{reason}: {message}"),
                json!({"reason": reason, "pod": pod}),
            ),
            Change::K8sEvent { event, level } => (
                EventKind::K8sEvent,
                *level,
                format!(
                    "{} {}: {}: {}",
                    event.involved_kind, event.involved_name, event.reason, event.message
                ),
                to_json(event),
            ),
            Change::Ready { message } => (
                EventKind::ResourceReady,
                Level::Info,
                message.clone(),
                json!({}),
            ),
            Change::Failed { failure } => (
                EventKind::ResourceFailed,
                Level::Error,
                failure.message.clone(),
                to_json(failure),
            ),
        };
        TrackEvent::new(kind, level, message, resource, data)
    }
}

/// Serializes what we built ourselves; these types contain nothing that can fail to serialize.
pub(crate) fn to_json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|error| json!({"serialization_error": error.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::verdict::{VerdictDetail, VerdictReason};
    use crate::tracker::core::{Incident, ResourceStatus, State};

    fn key() -> ResourceKey {
        ResourceKey::new("apps/v1", "Deployment", Some("prod"), "web")
    }

    #[test]
    fn an_incident_reads_with_its_count_and_allowance() {
        let delta = Delta {
            resource: key(),
            change: Change::Incident {
                incident: Incident {
                    reason: VerdictReason::CrashLoopBackOff,
                    message: "back-off restarting failed container app".to_owned(),
                    detail: VerdictDetail {
                        pod: Some("web-1".to_owned()),
                        container: Some("app".to_owned()),
                        restart_count: Some(2),
                        ..VerdictDetail::default()
                    },
                    previous_instance: true,
                    observed_at: Utc::now(),
                },
                count: 2,
                allowance: Some(3),
                level: Level::Warning,
            },
        };
        let event = TrackEvent::from_delta(&delta);
        assert_eq!(event.kind, EventKind::ResourceFailure);
        assert_eq!(
            event.message,
            "CrashLoopBackOff: back-off restarting failed container app (2/3 allowed)"
        );
        assert_eq!(event.data["count"], 2);
        assert_eq!(event.data["incident"]["pod"], "web-1");
        assert_eq!(
            event.resource.map(|r| r.to_string()).as_deref(),
            Some("Deployment prod/web")
        );
    }

    #[test]
    fn serializes_with_the_section_3_field_names() {
        let delta = Delta {
            resource: key(),
            change: Change::Status {
                status: ResourceStatus {
                    state: State::Progressing,
                    message: "1 of 3 updated replicas are available".to_owned(),
                    ready: Some("1/3".to_owned()),
                    failures: Some("0/3 allowed".to_owned()),
                    incidents: 0,
                },
            },
        };
        let json = serde_json::to_value(TrackEvent::from_delta(&delta)).expect("serializable");
        assert_eq!(json["type"], "resource.status");
        assert_eq!(json["level"], "info");
        assert_eq!(
            json["resource"],
            json!({"kind": "Deployment", "namespace": "prod", "name": "web"})
        );
        assert_eq!(json["data"]["state"], "progressing");
        assert_eq!(json["data"]["ready"], "1/3");
    }
}
