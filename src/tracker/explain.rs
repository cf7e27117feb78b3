//! `rollcall explain`: the decision core's reading of saved objects, without a cluster.
//!
//! The input is a YAML stream (or `kind: List` documents, as `kubectl get -o yaml` prints them) holding
//! workloads and, optionally, their ReplicaSets, ControllerRevisions, Pods and Events. Every object that
//! rollcall would track for its own sake gets a verdict; the others are material for those verdicts.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::core::{
    CustomResourceRules, Incident, ObjectError, ResourceTracker, State, TrackedObject, YamlError,
    yaml_objects,
};
use crate::domain::policy::{PolicyError, PolicyTarget, TrackingOverrides};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("document {document}: {source}")]
    Object {
        document: usize,
        source: ObjectError,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// One resource's verdict, as printed by `rollcall explain -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub state: State,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<String>,
    pub incidents: Vec<Incident>,
    /// Failed for a reason no allowance covers (ProgressDeadlineExceeded, Job Failed, ...).
    pub terminal: bool,
}

/// Reads a YAML stream into objects, unpacking `List` documents.
pub fn parse_stream(text: &str) -> Result<Vec<TrackedObject>, ExplainError> {
    yaml_objects(text)?
        .into_iter()
        .map(|(document, object)| {
            TrackedObject::from_value(object)
                .map_err(|source| ExplainError::Object { document, source })
        })
        .collect()
}

/// Runs the core over `objects` as if they had all been observed at `now`, tracking since `since`
/// (default: the beginning of time, so that every Event in the file counts), reading custom
/// resources by `rules` where configured.
pub fn explain(
    objects: &[TrackedObject],
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    rules: &CustomResourceRules,
) -> Result<Vec<Explanation>, ExplainError> {
    let started_at = since.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let overrides = TrackingOverrides::default();
    // Objects first, Events last: an Event about a pod counts only once the pod is known.
    let mut ordered: Vec<&TrackedObject> = objects
        .iter()
        .filter(|object| !matches!(object, TrackedObject::Event(_)))
        .collect();
    ordered.extend(
        objects
            .iter()
            .filter(|object| matches!(object, TrackedObject::Event(_))),
    );
    objects
        .iter()
        .filter(|object| object.is_trackable())
        .map(|object| {
            let key = object.key();
            let policy = overrides.resolve(&PolicyTarget {
                kind: &key.kind,
                namespace: key.namespace.as_deref(),
                name: &key.name,
                annotations: object.annotations(),
            })?;
            let mut tracker =
                ResourceTracker::new(key.clone(), policy, started_at).with_custom_rules(rules);
            for observed in &ordered {
                tracker.observe(observed, now);
            }
            tracker.tick(now);
            let status = tracker.status().clone();
            Ok(Explanation {
                api_version: key.api_version,
                kind: key.kind,
                namespace: key.namespace,
                name: key.name,
                terminal: tracker
                    .failure()
                    .is_some_and(|failure| failure.kind == super::core::FailureKind::Terminal),
                state: status.state,
                message: status.message,
                ready: status.ready,
                failures: status.failures,
                incidents: tracker.incidents().to_vec(),
            })
        })
        .collect()
}

/// A table for people: one line per resource, its incidents indented below.
pub fn render_text(explanations: &[Explanation]) -> String {
    let rows: Vec<[String; 5]> = explanations
        .iter()
        .map(|explanation| {
            [
                match &explanation.namespace {
                    Some(namespace) => {
                        format!("{}/{}/{}", namespace, explanation.kind, explanation.name)
                    }
                    None => format!("{}/{}", explanation.kind, explanation.name),
                },
                explanation.state.as_str().to_owned(),
                explanation.ready.clone().unwrap_or_else(|| "-".to_owned()),
                explanation
                    .failures
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                explanation.message.clone(),
            ]
        })
        .collect();
    let header = ["RESOURCE", "STATE", "READY", "FAILURES", "MESSAGE"].map(str::to_owned);
    let widths: Vec<usize> = (0..4)
        .map(|column| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |row: &[String; 5]| {
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(out, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", row[4]);
    };
    line(&header);
    for row in &rows {
        line(row);
    }
    for explanation in explanations {
        for incident in &explanation.incidents {
            let _ = writeln!(
                out,
                "  {}/{}: {} {}: {}",
                explanation.kind,
                explanation.name,
                incident.detail.pod.as_deref().unwrap_or("-"),
                incident.reason,
                incident.message
            );
        }
    }
    out
}
