//! Phase `rendering`: the chart rendered with the deploy's values (`helm template`) and the tracking
//! policy of every resource resolved, so that an invalid annotation or override fails the deploy
//! before helm touches the cluster. `?dry_run=true` answers with the same result.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::policy::{PolicyError, TrackingOverrides, TrackingPolicy};
use crate::domain::verdict::VerdictReason;
use crate::tracker::watch::{ManifestError, TrackedResource, parse_manifest};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the rendered chart is not a valid manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("invalid tracking policy: {0}")]
    Policy(#[from] PolicyError),
}

impl RenderError {
    pub fn reason(&self) -> VerdictReason {
        match self {
            RenderError::Manifest(_) => VerdictReason::RenderFailed,
            RenderError::Policy(_) => VerdictReason::InvalidTrackingPolicy,
        }
    }
}

/// One resource the deploy would track, with its effective policy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlannedResource {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[schema(value_type = Object)]
    pub policy: TrackingPolicy,
}

/// Reads the rendered manifest and resolves the policy of each resource; the first invalid one
/// fails, naming the resource and the annotation.
pub fn plan(
    manifest: &str,
    namespace: &str,
    overrides: &TrackingOverrides,
) -> Result<(Vec<TrackedResource>, Vec<PlannedResource>), RenderError> {
    let resources = parse_manifest(manifest, namespace)?;
    let planned = resources
        .iter()
        .map(|resource| {
            let policy = resource.resolve_policy(overrides)?;
            Ok(PlannedResource {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
                namespace: resource.namespace.clone(),
                name: resource.name.clone(),
                policy,
            })
        })
        .collect::<Result<Vec<_>, PolicyError>>()?;
    Ok((resources, planned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::FailMode;

    const MANIFEST: &str = "---\n# Source: web/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    werf.io/failures-allowed-per-replica: \"3\"\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n";

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
        let (resources, planned) = plan(MANIFEST, "prod", &request).unwrap();
        assert_eq!(resources.len(), 2);
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
        let (_, planned) = plan(MANIFEST, "prod", &forced).unwrap();
        // Rules marked `override` win over the chart's annotations; among matching rules the later wins.
        assert_eq!(planned[0].policy.failures_allowed_per_replica, 5);
        assert_eq!(planned[1].policy.failures_allowed_per_replica, 1);
    }

    #[test]
    fn an_invalid_annotation_names_resource_and_annotation() {
        let manifest = MANIFEST.replace("\"3\"", "lots");
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
