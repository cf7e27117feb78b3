//! The resources of a release, read from its rendered manifest (`helm template`, `helm get
//! manifest`: multi-document YAML, `# Source:` comments, empty documents where a template rendered
//! nothing), each with its effective tracking policy. The one place where a manifest is read and
//! policies are resolved: the rendering phase, `?dry_run=true` and tracking all call [`plan`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::policy::{PolicyError, PolicyTarget, TrackingOverrides, TrackingPolicy};
use crate::domain::verdict::VerdictReason;

/// One resource to follow, as the chart declared it, with its effective policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedResource {
    pub api_version: String,
    pub kind: String,
    /// The manifest's namespace, or the release namespace when the chart left it out. Cleared by
    /// `track()` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    /// The policy annotations (`rollcall.dev/...`, `werf.io/...`) live here, and helm's hook ones.
    pub annotations: BTreeMap<String, String>,
    /// The request's overrides combined with the annotations.
    pub policy: TrackingPolicy,
}

/// Why a rendered chart cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the rendered chart is not a valid manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("invalid tracking policy: {0}")]
    Policy(#[from] PolicyError),
}

impl PlanError {
    pub fn reason(&self) -> VerdictReason {
        match self {
            PlanError::Manifest(_) => VerdictReason::RenderFailed,
            PlanError::Policy(_) => VerdictReason::InvalidTrackingPolicy,
        }
    }
}

/// Reads the rendered manifest and resolves the policy of each resource; the first invalid one
/// fails, naming the resource and the annotation.
pub fn plan(
    manifest: &str,
    release_namespace: &str,
    overrides: &TrackingOverrides,
) -> Result<Vec<TrackedResource>, PlanError> {
    let resources = yaml_objects(manifest)
        .map_err(|YamlError { document, source }| ManifestError::Yaml { document, source })?
        .into_iter()
        .map(|(document, object)| declared(&object, document, release_namespace))
        .collect::<Result<Vec<_>, _>>()?;
    resources
        .into_iter()
        .map(|declared| {
            let policy = overrides.resolve(&PolicyTarget {
                kind: &declared.kind,
                namespace: declared.namespace.as_deref(),
                name: &declared.name,
                annotations: &declared.annotations,
            })?;
            Ok(TrackedResource {
                api_version: declared.api_version,
                kind: declared.kind,
                namespace: declared.namespace,
                name: declared.name,
                annotations: declared.annotations,
                policy,
            })
        })
        .collect()
}

/// An object of the manifest before its policy is resolved.
struct Declared {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    annotations: BTreeMap<String, String>,
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

/// A YAML document that is not YAML, numbered from 1 in its stream.
#[derive(Debug, thiserror::Error)]
#[error("document {document}: {source}")]
pub struct YamlError {
    pub document: usize,
    pub source: serde_yaml_ng::Error,
}

/// The objects of a YAML stream, each with the number of its document (from 1). Empty documents
/// (a template that rendered nothing) are skipped, and list documents (`kind: List`, `PodList`,
/// ... with `items`) unpacked, as helm and kubectl flatten them before applying.
pub fn yaml_objects(text: &str) -> Result<Vec<(usize, serde_json::Value)>, YamlError> {
    let mut objects = Vec::new();
    for (index, yaml) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = index + 1;
        let value = serde_json::Value::deserialize(yaml)
            .map_err(|source| YamlError { document, source })?;
        unpack(value, &mut |object| objects.push((document, object)));
    }
    Ok(objects)
}

fn unpack(value: serde_json::Value, found: &mut impl FnMut(serde_json::Value)) {
    let is_list = value
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"));
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(mut object)
            if is_list && object.get("items").is_some_and(serde_json::Value::is_array) =>
        {
            if let Some(serde_json::Value::Array(items)) = object.remove("items") {
                for item in items {
                    unpack(item, found);
                }
            }
        }
        object => found(object),
    }
}

fn declared(
    value: &serde_json::Value,
    document: usize,
    release_namespace: &str,
) -> Result<Declared, ManifestError> {
    let text = |pointer: &str, field: &'static str| {
        value
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or(ManifestError::MissingField { document, field })
    };
    let kind = text("/kind", "kind")?;
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
    Ok(Declared {
        api_version: text("/apiVersion", "apiVersion")?,
        name: text("/metadata/name", "metadata.name")?,
        kind,
        namespace: Some(namespace),
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::FailMode;

    fn parse(manifest: &str) -> Result<Vec<TrackedResource>, PlanError> {
        plan(manifest, "prod", &TrackingOverrides::default())
    }

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
        let resources = parse(MANIFEST).expect("valid manifest");
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
        assert_eq!(
            resources[0].policy.fail_mode,
            FailMode::HopeUntilEndOfDeployProcess
        );
    }

    #[test]
    fn a_stream_skips_empty_documents_and_unpacks_lists_of_any_kind() {
        let stream = "---\n# nothing\n---\nkind: PodList\nitems:\n  - {kind: Pod, n: 1}\n  - kind: List\n    items: [{kind: Pod, n: 2}]\n---\nkind: List\n---\n{kind: Pod, n: 3}\n";
        let objects: Vec<(usize, String)> = yaml_objects(stream)
            .unwrap()
            .into_iter()
            .map(|(document, object)| (document, object["n"].to_string()))
            .collect();
        let expected = [(2, "1"), (2, "2"), (3, "null"), (4, "3")];
        assert_eq!(
            objects,
            expected.map(|(document, n)| (document, n.to_owned()))
        );
    }

    #[test]
    fn names_the_document_that_lacks_a_name() {
        let error = parse("kind: Service\napiVersion: v1\nmetadata: {}\n")
            .expect_err("a nameless object is rejected");
        assert_eq!(
            error.to_string(),
            "the rendered chart is not a valid manifest: \
             manifest document 1: metadata.name is missing or not a string"
        );
    }

    #[test]
    fn names_the_document_with_broken_yaml() {
        let error =
            parse("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [unclosed\n")
                .expect_err("broken YAML is rejected");
        assert!(
            error
                .to_string()
                .contains(": manifest document 2: invalid YAML"),
            "{error}"
        );
    }

    const POLICY_MANIFEST: &str = "---\n# Source: web/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    werf.io/failures-allowed-per-replica: \"3\"\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n";

    fn overrides(json: serde_json::Value) -> TrackingOverrides {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn annotations_and_request_overrides_combine_into_effective_policies() {
        let request = overrides(serde_json::json!({
            "defaults": {"fail_mode": "HopeUntilEndOfDeployProcess"},
            "resources": [
                {"kind": "Deployment", "name": "web", "policy": {"failures_allowed_per_replica": 5}},
                {"kind": "Deployment", "policy": {"failures_allowed_per_replica": 7}}
            ]
        }));
        let planned = plan(POLICY_MANIFEST, "prod", &request).unwrap();
        assert_eq!(planned.len(), 2);
        let web = &planned[0];
        assert_eq!(
            (web.kind.as_str(), web.namespace.as_deref()),
            ("Deployment", Some("prod"))
        );
        // Without override the chart's annotation wins over request rules.
        assert_eq!(web.policy.failures_allowed_per_replica, 3);
        assert_eq!(web.policy.fail_mode, FailMode::HopeUntilEndOfDeployProcess);

        let forced = overrides(serde_json::json!({
            "resources": [
                {"kind": "Deployment", "override": true, "policy": {"failures_allowed_per_replica": 7}},
                {"kind": "Deployment", "name": "web", "override": true, "policy": {"failures_allowed_per_replica": 5}}
            ]
        }));
        let planned = plan(POLICY_MANIFEST, "prod", &forced).unwrap();
        // Rules marked `override` win over the chart's annotations; among matching rules the later wins.
        assert_eq!(planned[0].policy.failures_allowed_per_replica, 5);
        assert_eq!(planned[1].policy.failures_allowed_per_replica, 1);
    }

    #[test]
    fn an_invalid_annotation_names_resource_and_annotation() {
        let manifest = POLICY_MANIFEST.replace("\"3\"", "lots");
        let error = plan(&manifest, "prod", &Default::default()).unwrap_err();
        assert_eq!(error.reason(), VerdictReason::InvalidTrackingPolicy);
        let message = error.to_string();
        assert!(
            message.contains("Deployment prod/web")
                && message.contains("werf.io/failures-allowed-per-replica"),
            "{message}"
        );
    }

    #[test]
    fn a_broken_manifest_is_a_render_error() {
        let error = plan("kind: [", "prod", &Default::default()).unwrap_err();
        assert_eq!(error.reason(), VerdictReason::RenderFailed);
    }
}
