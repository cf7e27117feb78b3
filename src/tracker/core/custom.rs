//! Custom resources, read like kstatus does: observedGeneration, then the `Stalled`, `Ready` and
//! `Reconciling` conditions, then common `status.phase` words. An empty status proves nothing (the
//! operator may not have looked yet), so the tracker lets it settle first.

use serde_json::Value;

use super::object::GenericObject;
use super::readiness::{Progress, Readiness};

const READY_PHASES: &[&str] = &[
    "ready",
    "running",
    "active",
    "succeeded",
    "completed",
    "complete",
    "healthy",
    "available",
    "bound",
    "established",
    "deployed",
];
const FAILED_PHASES: &[&str] = &["failed", "failure", "error", "degraded"];

struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<Condition<'a>> {
    let text = |value: &'a Value, field: &str| {
        value.get(field).and_then(Value::as_str).unwrap_or_default()
    };
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|condition| condition.get("type").and_then(Value::as_str) == Some(type_))
        .map(|condition| Condition {
            status: text(condition, "status"),
            reason: text(condition, "reason"),
            message: text(condition, "message"),
        })
}

fn describe(condition: &Condition<'_>) -> String {
    match (condition.reason, condition.message) {
        ("", "") => String::new(),
        (reason, "") => format!(": {reason}"),
        ("", message) => format!(": {message}"),
        (reason, message) => format!(": {reason}: {message}"),
    }
}

pub(crate) fn readiness(object: &GenericObject) -> Readiness {
    let kind = object.kind.to_lowercase();
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let status = &object.status;
    let waiting = |message: String| Readiness {
        progress: Progress::Waiting,
        message,
        ready: None,
        allowance: super::readiness::Allowance::PerReplica { replicas: 1 },
    };
    let with = |progress: Progress, message: String| Readiness {
        progress,
        ..waiting(message)
    };
    if status.as_object().is_none_or(serde_json::Map::is_empty) {
        return with(
            Progress::Settling,
            format!("Waiting for {kind} {name:?} to report a status..."),
        );
    }
    let generation = object.metadata.generation.unwrap_or(0);
    if let Some(observed) = status.get("observedGeneration").and_then(Value::as_i64)
        && observed < generation
    {
        return waiting(format!(
            "Waiting for {kind} {name:?} spec update to be observed ({observed} of {generation})..."
        ));
    }
    if let Some(stalled) = condition(status, "Stalled").filter(|c| c.status == "True") {
        let reason = if stalled.reason.is_empty() {
            "Stalled"
        } else {
            stalled.reason
        };
        return with(
            Progress::Failed {
                reason: reason.to_owned(),
            },
            format!("{kind} {name:?} is stalled{}", describe(&stalled)),
        );
    }
    if let Some(reconciling) = condition(status, "Reconciling").filter(|c| c.status == "True") {
        return waiting(format!(
            "{kind} {name:?} is reconciling{}",
            describe(&reconciling)
        ));
    }
    if let Some(ready) = condition(status, "Ready") {
        return if ready.status == "True" {
            with(Progress::Done, format!("{kind} {name:?} is ready"))
        } else {
            waiting(format!(
                "Waiting for {kind} {name:?} to be ready{}...",
                describe(&ready)
            ))
        };
    }
    if let Some(phase) = status.get("phase").and_then(Value::as_str) {
        let lower = phase.to_lowercase();
        return if READY_PHASES.contains(&lower.as_str()) {
            with(Progress::Done, format!("{kind} {name:?} is {phase}"))
        } else if FAILED_PHASES.contains(&lower.as_str()) {
            with(
                Progress::Failed {
                    reason: phase.to_owned(),
                },
                format!("{kind} {name:?} is {phase}"),
            )
        } else {
            waiting(format!("Waiting for {kind} {name:?}: phase {phase}..."))
        };
    }
    // A status without any signal we know: as kstatus, trust that the operator has caught up.
    with(
        Progress::Done,
        format!("{kind} {name:?} has a status without conditions"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::core::object::TrackedObject;

    fn custom(generation: i64, status: Value) -> GenericObject {
        let object = TrackedObject::from_value(serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "generation": generation}, "status": status
        }))
        .unwrap();
        match object {
            TrackedObject::Custom(generic) => generic,
            other => panic!("expected a custom resource, got {other:?}"),
        }
    }

    fn progress(generation: i64, status: Value) -> Progress {
        readiness(&custom(generation, status)).progress
    }

    #[test]
    fn conditions_decide_in_kstatus_order() {
        let ready = serde_json::json!({"conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(progress(1, ready.clone()), Progress::Done);
        let stale = serde_json::json!({"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(progress(2, stale), Progress::Waiting);
        let stalled = serde_json::json!({"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "bad"}]});
        assert_eq!(
            progress(1, stalled),
            Progress::Failed {
                reason: "InvalidSpec".to_owned()
            }
        );
        let reconciling = serde_json::json!({"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "True"}]});
        assert_eq!(progress(1, reconciling), Progress::Waiting);
        let not_ready = serde_json::json!({"conditions": [{"type": "Ready", "status": "False"}]});
        assert_eq!(progress(1, not_ready), Progress::Waiting);
    }

    #[test]
    fn phases_and_empty_status() {
        assert_eq!(
            progress(1, serde_json::json!({"phase": "Running"})),
            Progress::Done
        );
        assert!(matches!(
            progress(1, serde_json::json!({"phase": "Failed"})),
            Progress::Failed { .. }
        ));
        assert_eq!(
            progress(1, serde_json::json!({"phase": "Provisioning"})),
            Progress::Waiting
        );
        assert_eq!(progress(1, Value::Null), Progress::Settling);
        assert_eq!(progress(1, serde_json::json!({})), Progress::Settling);
        assert_eq!(progress(1, serde_json::json!({"url": "x"})), Progress::Done);
    }
}
