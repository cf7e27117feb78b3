//! Label selectors (equality- and set-based) and field selectors, as list and watch take them.

use serde_json::Value;

use crate::api::error::ApiError;
use crate::store::{EVENTS, EVENTS_K8S_IO, PODS, ResourceType, SECRETS};

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::BadRequest(format!(
                "unable to parse requirement: invalid label selector {text:?}"
            ))
        };
        let mut requirements = Vec::new();
        for term in split_outside_parentheses(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, values)) = split_set(term, " notin ") {
                LabelRequirement::NotIn(key, values.ok_or_else(invalid)?)
            } else if let Some((key, values)) = split_set(term, " in ") {
                LabelRequirement::In(key, values.ok_or_else(invalid)?)
            } else if term.contains(char::is_whitespace) || term.contains('(') {
                return Err(invalid());
            } else {
                LabelRequirement::Exists(term.to_owned())
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| {
            labels
                .and_then(|labels| labels.get(key))
                .and_then(Value::as_str)
        };
        self.0.iter().all(|requirement| match requirement {
            LabelRequirement::Equals(key, value) => label(key) == Some(value.as_str()),
            LabelRequirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
            LabelRequirement::In(key, values) => {
                label(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
            LabelRequirement::NotIn(key, values) => {
                !label(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
            LabelRequirement::Exists(key) => label(key).is_some(),
            LabelRequirement::DoesNotExist(key) => label(key).is_none(),
        })
    }
}

fn split_outside_parentheses(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `key in (a,b)` → (key, Some([a, b])); a malformed set gives (key, None).
fn split_set(term: &str, operator: &str) -> Option<(String, Option<Vec<String>>)> {
    let (key, set) = term.split_once(operator)?;
    let values = set
        .trim()
        .strip_prefix('(')
        .and_then(|set| set.strip_suffix(')'))
        .map(|set| {
            set.split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect()
        });
    Some((key.trim().to_owned(), values))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldRequirement {
    pointer: String,
    value: String,
    equal: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses `metadata.name=web,status.phase!=Running`; fields the resource does not index are refused
    /// with the apiserver's message.
    pub fn parse(text: &str, rt: &ResourceType) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in text
            .split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
        {
            let (field, value, equal) = if let Some((field, value)) = term.split_once("!=") {
                (field, value, false)
            } else if let Some((field, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                (field, value, true)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            let pointer = field_pointer(rt, field).ok_or_else(|| {
                ApiError::BadRequest(format!("field label not supported: {field}"))
            })?;
            requirements.push(FieldRequirement {
                pointer,
                value: value.trim().to_owned(),
                equal,
            });
        }
        Ok(FieldSelector(requirements))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|requirement| {
            let actual = match object.pointer(&requirement.pointer) {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == requirement.value) == requirement.equal
        })
    }
}

/// The JSON pointer of a selectable field (pkg/registry/*/strategy.go `GetAttrs`).
fn field_pointer(rt: &ResourceType, field: &str) -> Option<String> {
    const POD_FIELDS: &[&str] = &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];
    const EVENT_FIELDS: &[&str] = &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ];
    const EVENTS_K8S_IO_FIELDS: &[&str] = &[
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    ];
    let as_pointer = |field: &str| format!("/{}", field.replace('.', "/"));
    let supported = match field {
        "metadata.name" | "metadata.namespace" => true,
        "source" if *rt == EVENTS => return Some("/source/component".into()),
        "type" if *rt == SECRETS => true,
        _ if *rt == PODS => POD_FIELDS.contains(&field),
        _ if *rt == EVENTS => EVENT_FIELDS.contains(&field),
        _ if *rt == EVENTS_K8S_IO => EVENTS_K8S_IO_FIELDS.contains(&field),
        _ => false,
    };
    supported.then(|| as_pointer(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DEPLOYMENTS;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "labels": labels}})
    }

    #[test]
    fn equality_and_set_based_label_selectors() {
        let object = labelled(json!({"app": "web", "tier": "front"}));
        let matches = |selector: &str| LabelSelector::parse(selector).unwrap().matches(&object);
        assert!(matches("app=web,tier==front"));
        assert!(matches("app in (api, web),!missing"));
        assert!(matches("tier notin (back),app"));
        assert!(matches(""));
        assert!(!matches("app!=web"));
        assert!(!matches("tier in (back)"));
        assert!(!matches("missing"));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors_on_indexed_fields_only() {
        let pod = json!({"metadata": {"name": "web-0", "namespace": "default"}, "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let selector =
            FieldSelector::parse("metadata.name=web-0,status.phase!=Pending", &PODS).unwrap();
        assert!(selector.matches(&pod));
        assert!(
            !FieldSelector::parse("spec.nodeName=node-2", &PODS)
                .unwrap()
                .matches(&pod)
        );
        let error = FieldSelector::parse("spec.replicas=1", &DEPLOYMENTS).unwrap_err();
        assert_eq!(
            error.to_string(),
            "field label not supported: spec.replicas"
        );

        let event = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web-0"}, "source": {"component": "kubelet"}});
        let selector =
            FieldSelector::parse("involvedObject.name=web-0,source=kubelet", &EVENTS).unwrap();
        assert!(selector.matches(&event));
    }
}
