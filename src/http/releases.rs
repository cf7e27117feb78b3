//! `/v1/releases`: the latest deploy of each release, and one release's history.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Auth;
use super::error::{ApiError, AuthProblems, NotFoundProblem, ParameterProblems};
use super::json::{Path, Query};
use super::page;
use super::state::ApiState;
use crate::domain::auth::Scope;
use crate::domain::names::ClusterName;
use crate::domain::release::ReleaseId;
use crate::store::deploys::{self, DeployFilter, DeploySummary};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_releases))
        .routes(routes!(get_release))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseSummary {
    pub cluster: String,
    pub namespace: String,
    pub release: String,
    pub last_deploy: DeploySummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseList {
    pub items: Vec<ReleaseSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseHistory {
    pub cluster: String,
    pub namespace: String,
    pub release: String,
    pub last_deploy: DeploySummary,
    /// Newest first, including the last deploy.
    pub history: Vec<DeploySummary>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReleasesParams {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Default `default`.
    pub cluster: Option<String>,
    /// History length, 1 to 200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Every release readable by the token with its latest deploy.
#[utoipa::path(get, path = "/v1/releases", tag = "releases", params(ReleasesParams),
    responses(
        (status = 200, body = ReleaseList),
        AuthProblems, ParameterProblems,
    ))]
async fn list_releases(
    State(state): State<ApiState>,
    auth: Auth,
    Query(params): Query<ReleasesParams>,
) -> Result<axum::Json<ReleaseList>, ApiError> {
    auth.require_scope(Scope::Read)?;
    let filter = DeployFilter {
        cluster: params.cluster,
        namespace: params.namespace,
        ..DeployFilter::default()
    };
    let latest =
        deploys::latest_per_release(&state.pool, &filter, &auth.0.readable_like_targets()).await?;
    let items = latest
        .into_iter()
        .map(|deploy| ReleaseSummary {
            cluster: deploy.cluster.clone(),
            namespace: deploy.namespace.clone(),
            release: deploy.release.clone(),
            last_deploy: deploy,
        })
        .collect();
    Ok(axum::Json(ReleaseList { items }))
}

/// One release: its latest deploy and its history.
#[utoipa::path(get, path = "/v1/releases/{namespace}/{release}", tag = "releases",
    params(("namespace" = String, Path), ("release" = String, Path), HistoryParams),
    responses(
        (status = 200, body = ReleaseHistory),
        AuthProblems, ParameterProblems, NotFoundProblem,
    ))]
async fn get_release(
    State(state): State<ApiState>,
    auth: Auth,
    Path((namespace, release)): Path<(String, String)>,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<ReleaseHistory>, ApiError> {
    let cluster = params
        .cluster
        .unwrap_or_else(|| ClusterName::DEFAULT.to_owned());
    let limit = page::RELEASE_HISTORY.limit(params.limit)?;
    auth.require(Scope::Read, &ReleaseId::new(&cluster, &namespace, &release))?;
    let history =
        deploys::release_history(&state.pool, &cluster, &namespace, &release, limit).await?;
    let last_deploy = history.first().cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "no deploys of release {cluster}/{namespace}/{release}"
        ))
    })?;
    Ok(axum::Json(ReleaseHistory {
        cluster,
        namespace,
        release,
        last_deploy,
        history,
    }))
}
