//! Phase `rendering`: the chart rendered with the deploy's values (`helm template`) and the tracking
//! policy of every resource resolved ([`plan`]), so that an invalid annotation or override fails the
//! deploy before helm touches the cluster. `?dry_run=true` answers with the same result.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::helm::{Helm, HelmError, HelmSlot, ValuesFiles};
use crate::domain::chart::{ChartCatalog, ChartSource};
use crate::domain::deploy::{NewDeploy, SecretValues};
use crate::domain::policy::TrackingOverrides;
use crate::domain::redaction::Redactor;
use crate::domain::release::ReleaseId;
use crate::domain::verdict::VerdictReason;
use crate::tracker::core::{PlanError, TrackedResource, plan};

/// What a deploy renders from.
pub struct RenderRequest<'a> {
    pub release: ReleaseId,
    pub chart: &'a ChartSource,
    pub values: &'a serde_json::Map<String, serde_json::Value>,
    pub secrets: Option<&'a SecretValues>,
    pub tracking: &'a TrackingOverrides,
}

impl<'a> RenderRequest<'a> {
    /// What a submitted deploy would render (`?dry_run=true`).
    pub fn of(new: &'a NewDeploy) -> Self {
        RenderRequest {
            release: new.release_id(),
            chart: &new.chart,
            values: &new.values,
            secrets: new.secret_values.as_ref(),
            tracking: &new.tracking,
        }
    }
}

/// Why a chart could not be rendered and planned.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error("cannot write the values file: {0}")]
    Values(std::io::Error),
    #[error(transparent)]
    Helm(#[from] HelmError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl RenderFailure {
    pub fn reason(&self) -> VerdictReason {
        match self {
            RenderFailure::Values(_) => VerdictReason::HelmFailed,
            RenderFailure::Helm(error) => error.reason(),
            RenderFailure::Plan(error) => error.reason(),
        }
    }

    /// The request field at fault, when the failure is the request's (its chart or its tracking
    /// policy) rather than the server's.
    pub fn field_at_fault(&self) -> Option<&'static str> {
        match self {
            RenderFailure::Plan(_) => Some("tracking"),
            RenderFailure::Helm(HelmError::Failed { .. } | HelmError::ChartNotInCatalog(_)) => {
                Some("chart")
            }
            _ => None,
        }
    }
}

/// `helm template` with the request's values (in `slot`), then every resource with its effective
/// tracking policy: the one render path of deploys and dry runs.
pub async fn render(
    helm: &Helm,
    slot: &HelmSlot,
    catalog: &ChartCatalog,
    request: &RenderRequest<'_>,
    time_limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<TrackedResource>, RenderFailure> {
    let chart = Helm::chart_args(request.chart, catalog)?;
    let values = ValuesFiles::write(&helm.config().home, request.values, request.secrets)
        .map_err(RenderFailure::Values)?;
    let invocation = helm.template(&request.release, chart, &values, time_limit);
    let manifest = helm
        .run(
            slot,
            invocation,
            &Redactor::new(request.secrets),
            None,
            cancel,
        )
        .await?;
    Ok(plan(
        &manifest,
        &request.release.namespace,
        request.tracking,
    )?)
}
