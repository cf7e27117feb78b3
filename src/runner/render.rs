//! The chart rendered with the deploy's values (`helm template`) and the tracking policy of every
//! resource resolved ([`plan`]), so that an invalid annotation or override fails before helm touches
//! the cluster: phase `rendering` with helm 3 (helm 4 hands its manifest over instead, see
//! `manifest_check`), and `?dry_run=true`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::chart::LocalChart;
use super::helm::{Helm, HelmError, HelmSlot, ValuesFiles};
use crate::domain::chart::{ChartCatalog, ChartSource, ChartSources};
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
            RenderFailure::Helm(
                HelmError::Failed { .. }
                | HelmError::ChartNotInCatalog(_)
                | HelmError::ChartNotAllowed(_)
                | HelmError::ChartFetch { .. },
            ) => Some("chart"),
            _ => None,
        }
    }
}

/// What a render yields: the resources with their policies, and the chart it used (pulled once,
/// for the upgrade to use too).
pub struct Rendered {
    pub resources: Vec<TrackedResource>,
    pub chart: LocalChart,
}

/// Renders kept for reuse: a deploy whose release, chart contents and values are those of an
/// earlier render takes its manifest instead of running `helm template` again. Only catalog
/// charts (whose contents are read here) without secret values are kept.
#[derive(Debug, Default)]
pub struct RenderCache {
    /// (digest of what was rendered, manifest), newest last.
    manifests: Mutex<VecDeque<(String, Arc<str>)>>,
}

/// Renders a [`RenderCache`] keeps.
const CACHED_RENDERS: usize = 64;

impl RenderCache {
    fn get(&self, key: &str) -> Option<Arc<str>> {
        self.lock()
            .iter()
            .find(|(kept, _)| kept == key)
            .map(|(_, manifest)| Arc::clone(manifest))
    }

    fn keep(&self, key: String, manifest: Arc<str>) {
        let mut manifests = self.lock();
        if manifests.len() == CACHED_RENDERS {
            manifests.pop_front();
        }
        manifests.push_back((key, manifest));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Arc<str>)>> {
        self.manifests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a render is made of, as a digest: the release, the catalog chart's files and the values;
/// `None` when it cannot be kept (secret values, a chart from a repository, unreadable files).
fn render_key(catalog: &ChartCatalog, request: &RenderRequest<'_>) -> Option<String> {
    let ChartSource::Path { path } = request.chart else {
        return None;
    };
    if request.secrets.is_some() {
        return None;
    }
    let chart = catalog.resolve(path).ok()??;
    let mut digest = Sha256::new();
    for part in [
        &request.release.cluster,
        &request.release.namespace,
        &request.release.release,
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    digest.update(serde_json::to_vec(request.values).ok()?);
    hash_files(&chart, &chart, &mut digest).ok()?;
    Some(hex::encode(digest.finalize()))
}

/// Hashes the files under `path` (a chart directory or archive) by relative name and contents, in
/// name order; a symlink makes the chart unfit for keeping (where it leads may change).
fn hash_files(root: &Path, path: &Path, digest: &mut Sha256) -> std::io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_symlink() {
        return Err(std::io::Error::other("a symlink in the chart"));
    }
    if metadata.is_file() {
        let name = path.strip_prefix(root).unwrap_or(path);
        digest.update(name.to_string_lossy().as_bytes());
        digest.update([0]);
        digest.update(std::fs::read(path)?);
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        hash_files(root, &entry, digest)?;
    }
    Ok(())
}

/// The chart located (pulled when it is a repository or OCI chart), `helm template` with the
/// request's values (in `slot`), then every resource with its effective tracking policy: the one
/// render path of deploys and dry runs. With a `cache`, an unchanged render is reused.
pub async fn render(
    helm: &Helm,
    slot: &HelmSlot,
    charts: &ChartSources,
    cache: Option<&RenderCache>,
    request: &RenderRequest<'_>,
    time_limit: Duration,
    cancel: &CancellationToken,
) -> Result<Rendered, RenderFailure> {
    let chart = helm
        .locate(request.chart, charts, slot, time_limit, cancel)
        .await?;
    let key = cache.and_then(|_| render_key(&charts.catalog, request));
    let kept = cache
        .zip(key.as_deref())
        .and_then(|(cache, key)| cache.get(key));
    let manifest = match kept {
        Some(manifest) => manifest,
        None => {
            let values = ValuesFiles::write(&helm.config().home, request.values, request.secrets)
                .map_err(RenderFailure::Values)?;
            let invocation = helm.template(&request.release, chart.args(), &values, time_limit);
            let redactor = Redactor::new(request.secrets);
            let manifest: Arc<str> = helm
                .run(slot, invocation, &redactor, None, cancel)
                .await?
                .into();
            if let (Some(cache), Some(key)) = (cache, key) {
                cache.keep(key, Arc::clone(&manifest));
            }
            manifest
        }
    };
    let resources = plan(&manifest, &request.release.namespace, request.tracking)?;
    Ok(Rendered { resources, chart })
}
