//! `rollcall explain`: the decision core's reading of saved objects, without a cluster.
//!
//! The input is a YAML stream (or `kind: List` documents, as `kubectl get -o yaml` prints them) holding
//! workloads and, optionally, their ReplicaSets, ControllerRevisions, Pods and Events. Every object that
//! rollcall would track for its own sake gets a verdict; the others are material for those verdicts.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::core::{
    CustomResourceRules, FailureKind, ObjectError, ResourceReport, ResourceTracker, TrackedObject,
    YamlError, yaml_objects,
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

/// One resource's verdict: the core's report of it, as the `report` event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation(pub ResourceReport);

impl Explanation {
    /// Failed for a reason no allowance covers (ProgressDeadlineExceeded, Job Failed, ...).
    pub fn is_terminal(&self) -> bool {
        self.0
            .failure
            .as_ref()
            .is_some_and(|failure| failure.kind == FailureKind::Terminal)
    }
}

/// `rollcall explain -o json` prints each resource flat and camelCased, as kubectl users read it:
/// `apiVersion`, `kind`, `namespace`, `name`, `state`, `message`, `ready`, `failures`, the
/// `incidents` themselves and `terminal`.
impl Serialize for Explanation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ResourceReport {
            resource,
            status,
            incidents,
            ..
        } = &self.0;
        let mut json = serializer.serialize_map(None)?;
        json.serialize_entry("apiVersion", &resource.api_version)?;
        json.serialize_entry("kind", &resource.kind)?;
        if let Some(namespace) = &resource.namespace {
            json.serialize_entry("namespace", namespace)?;
        }
        json.serialize_entry("name", &resource.name)?;
        json.serialize_entry("state", &status.state)?;
        json.serialize_entry("message", &status.message)?;
        if let Some(ready) = &status.ready {
            json.serialize_entry("ready", ready)?;
        }
        if let Some(failures) = &status.failures {
            json.serialize_entry("failures", failures)?;
        }
        json.serialize_entry("incidents", incidents)?;
        json.serialize_entry("terminal", &self.is_terminal())?;
        json.end()
    }
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
            Ok(Explanation(ResourceReport::from(&tracker)))
        })
        .collect()
}

/// A table for people: one line per resource, its incidents indented below.
pub fn render_text(explanations: &[Explanation]) -> String {
    let rows: Vec<[String; 5]> = explanations
        .iter()
        .map(|Explanation(report)| {
            let (resource, status) = (&report.resource, &report.status);
            [
                match &resource.namespace {
                    Some(namespace) => format!("{namespace}/{}/{}", resource.kind, resource.name),
                    None => format!("{}/{}", resource.kind, resource.name),
                },
                status.state.as_str().to_owned(),
                status.ready.clone().unwrap_or_else(|| "-".to_owned()),
                status.failures.clone().unwrap_or_else(|| "-".to_owned()),
                status.message.clone(),
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
    for Explanation(report) in explanations {
        for incident in &report.incidents {
            let _ = writeln!(
                out,
                "  {}/{}: {} {}: {}",
                report.resource.kind,
                report.resource.name,
                incident.detail.pod.as_deref().unwrap_or("-"),
                incident.reason,
                incident.message
            );
        }
    }
    out
}
