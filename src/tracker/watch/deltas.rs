//! The decision core's deltas as the §3 events the runner persists: the type, level, message, the
//! resource concerned and a small JSON `data` delta.

use serde::Serialize;
use serde_json::json;

use crate::domain::event::{EventType, Level, NewEvent, ResourceRef};
use crate::tracker::core::{Change, Delta};

/// The event for one delta of the decision core.
pub fn event_of(delta: &Delta) -> NewEvent {
    let (kind, level, message, data) = match &delta.change {
        Change::Status { status } => (
            EventType::ResourceStatus,
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
                EventType::ResourceFailure,
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
                EventType::PodStatus,
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
            EventType::ResourceWarning,
            Level::Warning,
            format!("{reason}: {message}"),
            json!({"reason": reason, "pod": pod}),
        ),
        Change::K8sEvent { event, level } => (
            EventType::K8sEvent,
            *level,
            format!(
                "{} {}: {}: {}",
                event.involved_kind, event.involved_name, event.reason, event.message
            ),
            to_json(event),
        ),
        Change::Ready { message } => (
            EventType::ResourceReady,
            Level::Info,
            message.clone(),
            json!({}),
        ),
        Change::Failed { failure } => (
            EventType::ResourceFailed,
            Level::Error,
            failure.message.clone(),
            to_json(failure),
        ),
    };
    NewEvent::new(kind, message)
        .level(level)
        .resource(ResourceRef::from(&delta.resource))
        .data(data)
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
    use chrono::Utc;

    use crate::tracker::core::{Incident, ResourceKey, ResourceStatus, State};

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
        let event = event_of(&delta);
        assert_eq!(event.kind, EventType::ResourceFailure);
        assert_eq!(event.level, Level::Warning);
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
    fn a_status_change_carries_the_section_3_fields() {
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
        let event = event_of(&delta);
        assert_eq!(event.kind, EventType::ResourceStatus);
        assert_eq!(event.level, Level::Info);
        assert_eq!(
            event.resource,
            Some(ResourceRef {
                kind: "Deployment".into(),
                namespace: "prod".into(),
                name: "web".into()
            })
        );
        assert_eq!(event.data["state"], "progressing");
        assert_eq!(event.data["ready"], "1/3");
    }
}
