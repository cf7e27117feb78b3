//! Kubernetes Events: which ones are incidents, which are warnings only, and which are the churn of a
//! healthy rollout that merely look alarming (DESIGN §5.2, §5.3).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Event;

use super::EventSummary;
use super::time::{from_micro_time, from_time};
use crate::domain::verdict::VerdictReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventClass {
    /// Counts against the allowance (controller `FailedCreate`: quota, admission webhooks...).
    Incident(VerdictReason),
    /// Reported, never ends anything by itself (`FailedScheduling`: only the deadlines end it).
    Warning,
    /// Looks like a failure, is not one.
    Benign(&'static str),
    /// Anything else: relayed as it is.
    Plain,
}

pub(crate) fn classify(event: &Event) -> EventClass {
    let message = event.message.as_deref().unwrap_or_default();
    match event.reason.as_deref().unwrap_or_default() {
        "FailedCreate" => EventClass::Incident(VerdictReason::FailedCreate),
        "FailedScheduling" => EventClass::Warning,
        // Kubernetes 1.27–1.30 before PR #123809: the StatefulSet controller took a pod it had deleted
        // itself (phase Failed while terminating) for a crashed one.
        "RecreatingFailedPod" | "RecreatingTerminatedPod" => EventClass::Benign(
            "the StatefulSet controller is replacing a pod it deleted during the rolling update",
        ),
        "FailedDelete" if message.contains("not found") => {
            EventClass::Benign("the pod the controller meant to delete was already gone")
        }
        _ => EventClass::Plain,
    }
}

/// When the event last happened: the legacy `lastTimestamp`, the new API's `series`/`eventTime`, or
/// the object's creation.
pub(crate) fn last_seen(event: &Event) -> Option<DateTime<Utc>> {
    event
        .last_timestamp
        .as_ref()
        .map(from_time)
        .or_else(|| {
            event
                .series
                .as_ref()
                .and_then(|series| series.last_observed_time.as_ref())
                .map(from_micro_time)
        })
        .or_else(|| event.event_time.as_ref().map(from_micro_time))
        .or_else(|| event.first_timestamp.as_ref().map(from_time))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(from_time))
}

/// Identity of an event object: repeated occurrences update the same object (`count` + 1).
pub(crate) fn identity(event: &Event) -> String {
    event.metadata.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            event.metadata.namespace.as_deref().unwrap_or_default(),
            event.metadata.name.as_deref().unwrap_or_default()
        )
    })
}

pub(crate) fn occurrences(event: &Event) -> i32 {
    event
        .count
        .or_else(|| event.series.as_ref().and_then(|series| series.count))
        .unwrap_or(1)
}

pub(crate) fn summarize(event: &Event, class: &EventClass) -> EventSummary {
    EventSummary {
        involved_kind: event.involved_object.kind.clone().unwrap_or_default(),
        involved_name: event.involved_object.name.clone().unwrap_or_default(),
        reason: event.reason.clone().unwrap_or_default(),
        message: event.message.clone().unwrap_or_default(),
        type_: event.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
        count: occurrences(event),
        at: last_seen(event),
        ignored_because: match class {
            EventClass::Benign(why) => Some((*why).to_owned()),
            _ => None,
        },
    }
}
