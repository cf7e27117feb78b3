//! Custom resources, read like kstatus does: observedGeneration, then the `Stalled`, `Ready` and
//! `Reconciling` conditions, then common `status.phase` words. An empty status proves nothing (the
//! operator may not have looked yet), so the tracker lets it settle first. A configured
//! [`CustomResourceRule`] replaces the parts of this reading it decides (readiness, failure).

use serde_json::Value;

use super::{FailureSignal, Progress, Readiness};
use crate::domain::verdict::VerdictReason;
use crate::tracker::core::custom_rules::{ConditionMatch, CustomResourceRule};
use crate::tracker::core::object::GenericObject;

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
    last_transition: &'a str,
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
            last_transition: text(condition, "lastTransitionTime"),
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

fn holds(status: &Value, expected: &ConditionMatch) -> bool {
    condition(status, &expected.condition)
        .is_some_and(|found| found.status == expected.status.as_str())
}

fn phase(status: &Value) -> Option<&str> {
    status.get("phase").and_then(Value::as_str)
}

/// One custom resource as the messages name it.
struct Subject<'a> {
    kind: String,
    name: &'a str,
    generation: i64,
}

impl Subject<'_> {
    fn waiting(&self, message: String) -> Readiness {
        Readiness::new(Progress::Waiting, message)
    }

    /// What `rule` says is failing, if anything: the first matching `failed_when` condition, else a
    /// failed phase.
    fn rule_failure(&self, rule: &CustomResourceRule, status: &Value) -> Option<FailureSignal> {
        let Subject { kind, name, .. } = self;
        let by_condition = rule.failed_when.iter().find_map(|expected| {
            let found = condition(status, &expected.condition)
                .filter(|found| found.status == expected.status.as_str())?;
            Some(FailureSignal {
                // A condition that flips back and forth is one incident per transition.
                id: format!("custom/condition/{expected}/{}", found.last_transition),
                reason: if found.reason.is_empty() {
                    expected.condition.clone()
                } else {
                    found.reason.to_owned()
                },
                message: format!("{kind} {name:?} is {expected}{}", describe(&found)),
            })
        });
        by_condition.or_else(|| {
            let phase = phase(status)?;
            rule.failed_phases
                .contains(&phase.to_lowercase())
                .then(|| FailureSignal {
                    id: format!("custom/phase/{}/{}", phase.to_lowercase(), self.generation),
                    reason: phase.to_owned(),
                    message: format!("{kind} {name:?} is {phase}"),
                })
        })
    }

    fn rule_readiness(&self, rule: &CustomResourceRule, status: &Value) -> Readiness {
        let Subject { kind, name, .. } = self;
        let mut missing: Vec<String> = rule
            .ready_when
            .iter()
            .filter(|expected| !holds(status, expected))
            .map(ToString::to_string)
            .collect();
        let current_phase = phase(status).unwrap_or_default();
        if !rule.ready_phases.is_empty()
            && !rule.ready_phases.contains(&current_phase.to_lowercase())
        {
            missing.push(format!("phase {}", rule.ready_phases.join("|")));
        }
        if missing.is_empty() {
            Readiness::new(Progress::Done, format!("{kind} {name:?} is ready"))
        } else {
            self.waiting(format!(
                "Waiting for {kind} {name:?}: {}...",
                missing.join(", ")
            ))
        }
    }
}

/// kstatus (generic.go): a controller that reports `status.observedGeneration` has not acted on the
/// current spec until it equals `metadata.generation`; an object reporting none is not judged by it.
pub(crate) fn spec_not_observed(object: &GenericObject) -> Option<Readiness> {
    let generation = object.metadata.generation?;
    let observed = object.status.get("observedGeneration")?.as_i64()?;
    (observed != generation).then(|| {
        Readiness::new(
            Progress::Waiting,
            format!(
                "Waiting for {} {:?} spec update to be observed (generation {generation}, observed {observed})...",
                object.kind.to_lowercase(),
                object.metadata.name.as_deref().unwrap_or_default()
            ),
        )
    })
}

/// `rule`: the configured rule of this kind, if any; what it does not decide is read generically.
pub(crate) fn readiness(object: &GenericObject, rule: Option<&CustomResourceRule>) -> Readiness {
    let subject = Subject {
        kind: object.kind.to_lowercase(),
        name: object.metadata.name.as_deref().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
    };
    let Subject { kind, name, .. } = &subject;
    let status = &object.status;
    let ready_rule = rule.filter(|rule| rule.decides_readiness());
    let failure_rule = rule.filter(|rule| rule.decides_failure());
    if status.as_object().is_none_or(serde_json::Map::is_empty) {
        // A rule knows what ready looks like: an empty status simply is not it yet.
        return match ready_rule {
            Some(rule) => subject.rule_readiness(rule, status),
            None => Readiness::new(
                Progress::Settling,
                format!("Waiting for {kind} {name:?} to report a status..."),
            ),
        };
    }
    if let Some(waiting) = spec_not_observed(object) {
        return waiting;
    }
    match failure_rule {
        Some(rule) => {
            if let Some(signal) = subject.rule_failure(rule, status) {
                return if rule.terminal {
                    Readiness::new(
                        Progress::Failed {
                            reason: VerdictReason::CustomResourceFailed,
                            original: Some(signal.reason),
                        },
                        signal.message,
                    )
                } else {
                    Readiness {
                        signal: Some(signal.clone()),
                        ..subject.waiting(signal.message)
                    }
                };
            }
        }
        None => {
            if let Some(stalled) = condition(status, "Stalled").filter(|c| c.status == "True") {
                let reason = if stalled.reason.is_empty() {
                    "Stalled"
                } else {
                    stalled.reason
                };
                return Readiness::new(
                    Progress::Failed {
                        reason: VerdictReason::CustomResourceFailed,
                        original: Some(reason.to_owned()),
                    },
                    format!("{kind} {name:?} is stalled{}", describe(&stalled)),
                );
            }
        }
    }
    if let Some(rule) = ready_rule {
        return subject.rule_readiness(rule, status);
    }
    if let Some(reconciling) = condition(status, "Reconciling").filter(|c| c.status == "True") {
        return subject.waiting(format!(
            "{kind} {name:?} is reconciling{}",
            describe(&reconciling)
        ));
    }
    // kstatus: a Ready status other than True, False or Unknown decides nothing.
    if let Some(ready) = condition(status, "Ready")
        .filter(|ready| ["True", "False", "Unknown"].contains(&ready.status))
    {
        return if ready.status == "True" {
            Readiness::new(Progress::Done, format!("{kind} {name:?} is ready"))
        } else {
            subject.waiting(format!(
                "Waiting for {kind} {name:?} to be ready{}...",
                describe(&ready)
            ))
        };
    }
    if let Some(phase) = phase(status) {
        let lower = phase.to_lowercase();
        return if READY_PHASES.contains(&lower.as_str()) {
            Readiness::new(Progress::Done, format!("{kind} {name:?} is {phase}"))
        } else if failure_rule.is_none() && FAILED_PHASES.contains(&lower.as_str()) {
            Readiness::new(
                Progress::Failed {
                    reason: VerdictReason::CustomResourceFailed,
                    original: Some(phase.to_owned()),
                },
                format!("{kind} {name:?} is {phase}"),
            )
        } else {
            subject.waiting(format!("Waiting for {kind} {name:?}: phase {phase}..."))
        };
    }
    // A status without any signal we know: as kstatus, trust that the operator has caught up.
    Readiness::new(
        Progress::Done,
        format!("{kind} {name:?} reports neither a readiness condition nor a phase"),
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
        readiness(&custom(generation, status), None).progress
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
                reason: VerdictReason::CustomResourceFailed,
                original: Some("InvalidSpec".to_owned())
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
