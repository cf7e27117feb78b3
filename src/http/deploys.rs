//! `/v1/deploys`: submit, list, inspect, cancel.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Auth;
use super::error::{
    ApiError, AuthProblems, BodyProblems, NotFoundProblem, ParameterProblems, Problem,
};
use super::json::{JsonBytes, MaybeJson, Path, Query, query_pairs};
use super::page;
use super::state::ApiState;
use crate::domain::FieldError;
use crate::domain::auth::Scope;
use crate::domain::deploy::{DeployRequest, DeployStatus, NewDeploy, QueueMode};
use crate::domain::labels::parse_label_selector;
use crate::domain::policy::TrackingPolicy;
use crate::runner::{self, RenderRequest};
use crate::store::StoreError;
use crate::store::deploy_events::EventTx;
use crate::store::deploys::{
    self, CreateDeploy, Deploy, DeployFilter, DeploySummary, Queued, ResourceState,
};
use crate::store::idempotency::{self, IdempotencyKey, StoredKey};
use crate::tracker::core::TrackedResource;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_deploy, list_deploys))
        .routes(routes!(get_deploy))
        .routes(routes!(cancel_deploy))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub events: String,
    pub cancel: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployAccepted {
    pub id: Uuid,
    pub status: DeployStatus,
    pub links: DeployLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployDetail {
    #[serde(flatten)]
    pub deploy: Deploy,
    pub resources: Vec<ResourceState>,
    pub permissions: DeployPermissions,
}

/// What the caller's token may do with this deploy, so that a page offers only what it allows.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployPermissions {
    /// The token holds the `cancel` scope over the deploy's release.
    pub cancel: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployPage {
    /// Summaries: a deploy's `values` and `tracking` are in `GET /v1/deploys/{id}`. A page holds
    /// `limit` deploys, or fewer when they would exceed 1 MiB of JSON.
    pub items: Vec<DeploySummary>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, recorded with the cancellation.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// Render the chart and resolve every resource's tracking policy; nothing is applied or queued.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to `?dry_run=true`: what the deploy would track, and how.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunResult {
    pub resources: Vec<PlannedResource>,
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

impl From<TrackedResource> for PlannedResource {
    fn from(resource: TrackedResource) -> Self {
        PlannedResource {
            api_version: resource.api_version,
            kind: resource.kind,
            namespace: resource.namespace,
            name: resource.name,
            policy: resource.policy,
        }
    }
}

/// Renders the chart as the runner would (`helm template` with the same values, no cluster) and
/// validates the tracking policy of every resource. Failures are the request's fault: 422.
async fn dry_run(state: &ApiState, new: &NewDeploy) -> Result<Response, ApiError> {
    let slot = state
        .helm
        .slot(&state.shutdown)
        .await
        .map_err(ApiError::internal)?;
    let rendered = runner::render(
        &state.helm,
        &slot,
        &state.charts,
        None,
        &RenderRequest::of(new),
        DRY_RUN_TIME_LIMIT,
        &state.shutdown,
    )
    .await;
    match rendered {
        Ok(rendered) => {
            let resources = rendered
                .resources
                .into_iter()
                .map(PlannedResource::from)
                .collect();
            Ok((StatusCode::OK, axum::Json(DryRunResult { resources })).into_response())
        }
        Err(failure) => match failure.field_at_fault() {
            Some(field) => Err(ApiError::Unprocessable {
                detail: format!("the chart cannot be deployed ({})", failure.reason()),
                errors: vec![FieldError::new(field, failure.to_string())],
            }),
            None => Err(ApiError::internal(failure)),
        },
    }
}

/// How long `helm template` may take for a dry run.
const DRY_RUN_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `202 Accepted` with the deploy's links and `Location`; `replayed` marks an answer given before.
pub fn accepted(id: Uuid, status: DeployStatus, replayed: bool) -> Response {
    let self_ = format!("/v1/deploys/{id}");
    let body = DeployAccepted {
        id,
        status,
        links: DeployLinks {
            events: format!("{self_}/events"),
            cancel: format!("{self_}/cancel"),
            self_: self_.clone(),
        },
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&self_) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    // Visible ASCII only, as the document's pattern says: no spaces, no bytes beyond ASCII.
    let is_valid =
        |key: &&str| (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    let key = value
        .to_str()
        .ok()
        .filter(is_valid)
        .ok_or_else(|| ApiError::BadRequest {
            detail: "invalid Idempotency-Key header".into(),
            errors: vec![FieldError::new(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )],
        })?;
    Ok(Some(key.to_owned()))
}

/// Answers a request whose key was used before: the same deploy for the same body, 422 otherwise.
fn replay(key: &IdempotencyKey, earlier: &StoredKey) -> Result<Response, ApiError> {
    if earlier.request_sha256 != key.request_sha256 {
        return Err(ApiError::Unprocessable {
            detail: "the Idempotency-Key was already used with a different request body".into(),
            errors: vec![FieldError::new(
                "Idempotency-Key",
                "reused with a different body",
            )],
        });
    }
    Ok(accepted(earlier.deploy_id, earlier.status, true))
}

/// Submit a deploy. It is queued at once; follow it with the `events` link.
#[utoipa::path(post, path = "/v1/deploys", tag = "deploys",
    params(CreateParams, ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "1 to 255 visible ASCII characters. Same key and body → the same deploy; same key, other body → 422. Keys are kept for the retention policy's `idempotency_key_days` (default 30 days)")),
    request_body(content = DeployRequest, example = json!({
        "release": "web",
        "namespace": "default",
        "chart": {"path": "web"},
        "values": {"replicas": 2},
        "labels": {"source": "ci"},
        "timeout": "5m"
    })),
    responses(
        (status = 202, body = DeployAccepted, headers(("Location" = String))),
        (status = 200, body = DryRunResult, description = "`?dry_run=true`: the resources and their effective tracking policy"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "queue mode reject and the release is busy"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid fields, each named; or the chart cannot be rendered (`?dry_run=true`); or the Idempotency-Key was used with another body"),
        AuthProblems, BodyProblems,
    ))]
async fn create_deploy(
    State(state): State<ApiState>,
    auth: Auth,
    Query(CreateParams {
        dry_run: is_dry_run,
    }): Query<CreateParams>,
    headers: HeaderMap,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    auth.require_scope(Scope::Deploy)?;
    // Checked even on a dry run, which ignores it: an invalid header is refused alike everywhere.
    let key_text = idempotency_key(&headers)?;
    let request: DeployRequest = body.parse()?;
    let new = NewDeploy::parse(request, &state.charts).map_err(ApiError::invalid_fields)?;
    state
        .notify_rules
        .check(&new.notify)
        .map_err(ApiError::invalid_fields)?;
    auth.require(Scope::Deploy, &new.release_id())?;
    if is_dry_run {
        return dry_run(&state, &new).await;
    }
    let key = match key_text {
        Some(key) => Some(IdempotencyKey {
            token_id: auth.0.id.clone(),
            key,
            request_sha256: body.canonical_sha256()?,
        }),
        None => None,
    };
    let id = Uuid::now_v7();
    let queued = queue_deploy(
        &state,
        None,
        Submission {
            id,
            deploy: &new,
            requested_by: &auth.0.name,
            idempotency: key.as_ref(),
        },
    )
    .await;
    match (queued, &key) {
        (Ok(Queued::Created { .. }), _) => Ok(accepted(id, DeployStatus::Queued, false)),
        (Ok(Queued::KeyUsed(earlier)), Some(key)) => replay(key, &earlier),
        // A concurrent request with the same key won; answer as it did.
        (Err(StoreError::IdempotencyKeyUsed), Some(key)) => {
            let earlier = idempotency::find(&state.pool, &key.token_id, &key.key)
                .await?
                .ok_or_else(|| ApiError::internal("idempotency key vanished"))?;
            replay(key, &earlier)
        }
        (Ok(Queued::KeyUsed(_)), None) => Err(ApiError::internal("a key used without a key")),
        (Err(error), _) => Err(error.into()),
    }
}

/// A valid deploy request, as the API or a webhook delivery submits it.
pub struct Submission<'a> {
    pub id: Uuid,
    pub deploy: &'a NewDeploy,
    pub requested_by: &'a str,
    pub idempotency: Option<&'a IdempotencyKey>,
}

/// The one way a valid deploy is queued, for `POST /v1/deploys` and webhook deliveries alike: in
/// `within`, after whatever the caller wrote there, or else on its own (a `fifo` deploy in a single
/// statement, the other queue modes in a transaction of their own), applying its queue mode under
/// the active-release constraint and keeping its secret values for the runner (sealed beside it
/// with a server key); then publishes its `deploy.queued` event and drops the values of the deploys
/// it superseded. On an error nothing is written: `within` rolls back.
pub async fn queue_deploy(
    state: &ApiState,
    within: Option<EventTx>,
    submission: Submission<'_>,
) -> Result<Queued, StoreError> {
    let new = submission.deploy;
    let create = CreateDeploy {
        id: submission.id,
        deploy: new,
        requested_by: submission.requested_by,
        idempotency: submission.idempotency,
        secret_values_digest: new
            .secret_values
            .as_ref()
            .and_then(|values| state.secrets.digest(values)),
        sealed_secret_values: new
            .secret_values
            .as_ref()
            .and_then(|values| state.secrets.keep(submission.id, values.clone())),
    };
    let queued = match within {
        None if new.queue == QueueMode::Fifo => state
            .submissions
            .create(state.events.origin(), &create)
            .await
            .map(|(queued, committed)| {
                state.events.publish(committed);
                queued
            }),
        within => {
            let mut tx = match within {
                Some(tx) => tx,
                None => state.events.begin().await?,
            };
            match deploys::create(&mut tx, &create).await {
                Ok(queued) => state.events.commit(tx).await.map(|()| queued),
                Err(error) => Err(error),
            }
        }
    };
    match &queued {
        Ok(Queued::Created { superseded }) => {
            for cancelled in superseded {
                state.secrets.forget(*cancelled);
            }
            tracing::info!(deploy_id = %submission.id, release = %new.release.as_str(), namespace = %new.namespace.as_str(), requested_by = %submission.requested_by, "deploy queued");
        }
        Ok(Queued::KeyUsed(_)) | Err(_) => state.secrets.forget(submission.id),
    }
    queued
}

/// A `key=value` label filter, as the document states it.
struct LabelSelector;

impl utoipa::PartialSchema for LabelSelector {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::domain::labels::selector_schema().into()
    }
}

impl ToSchema for LabelSelector {}

/// Parsed list parameters; `label` may repeat, which typed query decoding cannot express.
pub struct ListParams {
    filter: DeployFilter,
    limit: i64,
    before: Option<Uuid>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut params = ListParams {
            filter: DeployFilter::default(),
            limit: page::DEPLOYS.default,
            before: None,
        };
        let mut errors = Vec::new();
        let mut labels = BTreeMap::new();
        for (key, value) in query_pairs(parts)? {
            let mut invalid = |message: String| errors.push(FieldError::new(key.clone(), message));
            match key.as_str() {
                "release" => params.filter.release = Some(value),
                "namespace" => params.filter.namespace = Some(value),
                "cluster" => params.filter.cluster = Some(value),
                "status" => match DeployStatus::parse(&value) {
                    Some(status) => params.filter.status = Some(status),
                    None => invalid(format!("unknown status {value:?}")),
                },
                "label" => match parse_label_selector(&value) {
                    Ok((label, wanted)) => {
                        labels.insert(label, wanted);
                    }
                    Err(message) => invalid(message),
                },
                "limit" => match page::DEPLOYS.parse(&value) {
                    Ok(limit) => params.limit = limit,
                    Err(error) => errors.push(error),
                },
                "cursor" => match page::parse_cursor(&value) {
                    Ok(before) => params.before = Some(before),
                    Err(error) => errors.push(error),
                },
                _ => invalid("unknown query parameter".into()),
            }
        }
        params.filter.labels = labels;
        if errors.is_empty() {
            Ok(params)
        } else {
            Err(ApiError::invalid_query(errors))
        }
    }
}

/// List deploys readable by the token, newest first.
#[utoipa::path(get, path = "/v1/deploys", tag = "deploys",
    params(
        ("release" = Option<String>, Query),
        ("namespace" = Option<String>, Query),
        ("cluster" = Option<String>, Query),
        ("status" = Option<DeployStatus>, Query),
        ("label" = inline(Option<Vec<LabelSelector>>), Query, description = "`key=value`; repeat for several labels (all must match)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = DeployPage),
        AuthProblems, ParameterProblems,
    ))]
async fn list_deploys(
    State(state): State<ApiState>,
    auth: Auth,
    params: ListParams,
) -> Result<axum::Json<DeployPage>, ApiError> {
    auth.require_scope(Scope::Read)?;
    let mut items = deploys::list(
        &state.pool,
        &params.filter,
        &auth.0.readable_like_targets(),
        params.before,
        params.limit + 1,
    )
    .await?;
    let next_cursor = page::cut(&mut items, params.limit, |deploy| deploy.id);
    Ok(axum::Json(DeployPage { items, next_cursor }))
}

/// Loads a deploy and checks that the caller holds `scope` over its release.
pub async fn authorized_deploy(
    state: &ApiState,
    auth: &Auth,
    id: &str,
    scope: Scope,
) -> Result<Deploy, ApiError> {
    let not_found = || ApiError::NotFound(format!("no deploy {id}"));
    let id = Uuid::try_parse(id).map_err(|_| not_found())?;
    let deploy = deploys::get(&state.pool, id).await?.ok_or_else(not_found)?;
    auth.require(scope, &deploy.release_id())?;
    Ok(deploy)
}

/// A deploy with the state of each tracked resource.
#[utoipa::path(get, path = "/v1/deploys/{id}", tag = "deploys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = DeployDetail),
        AuthProblems, ParameterProblems, NotFoundProblem,
    ))]
async fn get_deploy(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<DeployDetail>, ApiError> {
    let deploy = authorized_deploy(&state, &auth, &id, Scope::Read).await?;
    let resources = deploys::resources(&state.pool, deploy.id).await?;
    let permissions = DeployPermissions {
        cancel: auth.0.allows(Scope::Cancel, &deploy.release_id()),
    };
    Ok(axum::Json(DeployDetail {
        deploy,
        resources,
        permissions,
    }))
}

/// Cancel a deploy: a queued one is cancelled at once (200), a running one becomes `cancelling`
/// until its runner stops helm (202); a finished one is a 409.
#[utoipa::path(post, path = "/v1/deploys/{id}/cancel", tag = "deploys",
    params(("id" = Uuid, Path)),
    request_body(content = Option<CancelRequest>, description = "Optional: no body, or `null`, is the same as `{}`"),
    responses(
        (status = 200, body = Deploy, description = "cancelled"),
        (status = 202, body = Deploy, description = "cancelling"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the deploy has finished"),
        AuthProblems, BodyProblems, NotFoundProblem,
    ))]
async fn cancel_deploy(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    MaybeJson(request): MaybeJson<CancelRequest>,
) -> Result<Response, ApiError> {
    let reason = request
        .and_then(|r| r.reason)
        .unwrap_or_else(|| "cancelled through the API".into());
    if reason.len() > 1024 {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "reason",
            "must be at most 1024 bytes",
        )]));
    }
    let deploy = authorized_deploy(&state, &auth, &id, Scope::Cancel).await?;
    let mut tx = state.events.begin().await?;
    let cancelled = deploys::cancel(&mut tx, deploy.id, &auth.0.name, &reason).await?;
    state.events.commit(tx).await?;
    let status = if cancelled.status == DeployStatus::Cancelled {
        // It will never run: its secret values are no longer needed.
        state.secrets.forget(cancelled.id);
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(cancelled)).into_response())
}
