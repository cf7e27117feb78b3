//! The resources of a release, read from its rendered manifest (`helm get manifest`: multi-document
//! YAML, `# Source:` comments, empty documents where a template rendered nothing).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::policy::{PolicyError, PolicyTarget, TrackingOverrides, TrackingPolicy};

/// One resource to follow, as the chart declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedResource {
    pub api_version: String,
    pub kind: String,
    /// The manifest's namespace, or the release namespace when the chart left it out. Cleared by
    /// `track()` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    /// The policy annotations (`rollcall.dev/...`, `werf.io/...`) live here.
    pub annotations: BTreeMap<String, String>,
}

impl TrackedResource {
    /// Its effective tracking policy: the request's overrides combined with its annotations.
    pub fn resolve_policy(
        &self,
        overrides: &TrackingOverrides,
    ) -> Result<TrackingPolicy, PolicyError> {
        overrides.resolve(&PolicyTarget {
            kind: &self.kind,
            namespace: self.namespace.as_deref(),
            name: &self.name,
            annotations: &self.annotations,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest document {document}: invalid YAML: {source}")]
    Yaml {
        document: usize,
        source: serde_yaml_ng::Error,
    },
    #[error("manifest document {document}: {field} is missing or not a string")]
    MissingField {
        document: usize,
        field: &'static str,
    },
}

/// Reads every object of a rendered manifest; `List` kinds are flattened into their items.
pub fn parse_manifest(
    manifest: &str,
    release_namespace: &str,
) -> Result<Vec<TrackedResource>, ManifestError> {
    let mut resources = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(manifest).enumerate() {
        let document_number = index + 1;
        let value =
            serde_json::Value::deserialize(document).map_err(|source| ManifestError::Yaml {
                document: document_number,
                source,
            })?;
        collect(value, document_number, release_namespace, &mut resources)?;
    }
    Ok(resources)
}

fn collect(
    value: serde_json::Value,
    document: usize,
    release_namespace: &str,
    resources: &mut Vec<TrackedResource>,
) -> Result<(), ManifestError> {
    if value.is_null() {
        return Ok(());
    }
    let text = |pointer: &str, field: &'static str| {
        value
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or(ManifestError::MissingField { document, field })
    };
    let kind = text("/kind", "kind")?;
    if kind == "List"
        && let Some(items) = value.get("items").and_then(serde_json::Value::as_array)
    {
        for item in items.clone() {
            collect(item, document, release_namespace, resources)?;
        }
        return Ok(());
    }
    let annotations = value
        .pointer("/metadata/annotations")
        .and_then(serde_json::Value::as_object)
        .map(|annotations| {
            annotations
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or(release_namespace)
        .to_owned();
    resources.push(TrackedResource {
        api_version: text("/apiVersion", "apiVersion")?,
        name: text("/metadata/name", "metadata.name")?,
        kind,
        namespace: Some(namespace),
        annotations,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"---
# Source: web/templates/empty.yaml
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    werf.io/fail-mode: HopeUntilEndOfDeployProcess
    replicas: 3
spec:
  replicas: 3
---
# Source: web/templates/migrate.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: jobs
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings}
"#;

    #[test]
    fn reads_each_object_defaulting_the_namespace_and_keeping_string_annotations() {
        let resources = parse_manifest(MANIFEST, "prod").expect("valid manifest");
        let names: Vec<(&str, &str, Option<&str>)> = resources
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.namespace.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("Deployment", "web", Some("prod")),
                ("Job", "migrate", Some("jobs")),
                ("ConfigMap", "settings", Some("prod")),
            ]
        );
        assert_eq!(resources[0].api_version, "apps/v1");
        assert_eq!(
            resources[0]
                .annotations
                .get("werf.io/fail-mode")
                .map(String::as_str),
            Some("HopeUntilEndOfDeployProcess")
        );
        assert!(!resources[0].annotations.contains_key("replicas"));
    }

    #[test]
    fn names_the_document_that_lacks_a_name() {
        let error = parse_manifest("kind: Service\napiVersion: v1\nmetadata: {}\n", "prod")
            .expect_err("a nameless object is rejected");
        assert_eq!(
            error.to_string(),
            "manifest document 1: metadata.name is missing or not a string"
        );
    }

    #[test]
    fn names_the_document_with_broken_yaml() {
        let error = parse_manifest(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [unclosed\n",
            "prod",
        )
        .expect_err("broken YAML is rejected");
        assert!(
            error
                .to_string()
                .starts_with("manifest document 2: invalid YAML"),
            "{error}"
        );
    }
}
