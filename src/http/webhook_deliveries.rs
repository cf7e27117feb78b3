//! `POST /v1/hooks/{name}`: deliveries from GitHub, GitLab and generic senders, authenticated by
//! their signature rather than a token; and `GET /v1/hooks/{name}/deliveries`, the recent ones
//! with how each was answered.
//!
//! A delivery is verified on its raw bytes before anything parses it; an unverified one writes
//! nothing (it is counted, and logged at most every few seconds). A verified one is recorded under
//! its delivery id, unique per hook: a redelivery that finds a deploy answers with it, on any
//! replica and after restarts, and the deploy and its delivery are written in one transaction.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Auth;
use super::deploys::{DeployAccepted, accepted, queue_deploy};
use super::error::{ApiError, Problem};
use super::json::{Query, parse_json};
use super::page;
use super::state::ApiState;
use super::webhooks::{hook_for_delivery, require_hook};
use crate::domain::deploy::NewDeploy;
use crate::domain::webhooks::delivery::Received;
use crate::domain::webhooks::{Decision, DeliveryOutcome, HookDefinition};
use crate::store::StoreError;
use crate::store::deploys::{self, CreateDeploy};
use crate::store::webhooks::{self, Delivery, NewDelivery};

/// The largest delivery accepted, whatever the API's own body limit (GitHub caps payloads at 25
/// MB but sends pushes of thousands of commits in far less).
pub const HOOK_BODY_LIMIT: usize = 3 * 1024 * 1024;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(receive_delivery))
        .layer(axum::extract::DefaultBodyLimit::max(HOOK_BODY_LIMIT))
        .merge(OpenApiRouter::new().routes(routes!(list_deliveries)))
}

/// The answer to a delivery that deploys nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryIgnored {
    /// Why: the filter that did not match, or why the event never deploys.
    pub ignored: String,
}

/// A delivery's `202`: the deploy it queued, or why it queued none.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DeliveryAccepted {
    Deploy(DeployAccepted),
    Ignored(DeliveryIgnored),
}

/// The answer to GitHub's `ping`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPong {
    pub hook: String,
    pub ping: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Why a delivery got no deploy, and how it is counted (`None`: a server fault, not counted).
struct Refused {
    outcome: Option<DeliveryOutcome>,
    error: ApiError,
}

impl Refused {
    fn new(outcome: DeliveryOutcome, error: ApiError) -> Self {
        Self {
            outcome: Some(outcome),
            error,
        }
    }
}

impl<E: Into<ApiError>> From<E> for Refused {
    fn from(error: E) -> Self {
        Self {
            outcome: None,
            error: error.into(),
        }
    }
}

/// Receive a webhook delivery. Authenticated by its signature (`X-Hub-Signature-256`,
/// `X-Gitlab-Token`, or Standard Webhooks' `webhook-signature`), not a token; at most 3 MiB.
#[utoipa::path(post, path = "/v1/hooks/{name}", tag = "hooks", security(()),
    params(
        ("name" = String, Path),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "github: `sha256=<hex HMAC-SHA256(secret, body)>`"),
        ("X-GitHub-Event" = Option<String>, Header, description = "github: the event type"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "github: the delivery id"),
        ("X-Gitlab-Token" = Option<String>, Header, description = "gitlab: the secret token"),
        ("X-Gitlab-Event" = Option<String>, Header, description = "gitlab: the event type"),
        ("Idempotency-Key" = Option<String>, Header, description = "gitlab 17.4+: the delivery id, the same across retries"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "gitlab: the delivery id without Idempotency-Key"),
        ("webhook-id" = Option<String>, Header, description = "generic (Standard Webhooks): the delivery id"),
        ("webhook-timestamp" = Option<String>, Header, description = "generic: Unix seconds, within 5 minutes of the server's clock"),
        ("webhook-signature" = Option<String>, Header, description = "generic: `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`"),
    ),
    request_body(content = Object, description = "The sender's payload: JSON, or GitHub's form encoding (`payload=<JSON>`)"),
    responses(
        (status = 200, body = DeliveryPong, description = "GitHub's ping"),
        (status = 202, body = DeliveryAccepted, headers(("Location" = String, description = "when a deploy was queued")), description = "a deploy was queued (`idempotent-replayed: true` answers a redelivery with the deploy it queued), or `{\"ignored\": why}` when no filter matched"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "verified, but no delivery id or not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "the signature could not be verified"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "queue mode reject and the release is busy"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "the payload cannot fill the deploy (a mapped value missing, an invalid chart version)"),
    ))]
async fn receive_delivery(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let hook = hook_for_delivery(&state, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no hook {name}")))?;
    let answer = deliver(&state, &hook, &headers, request).await;
    let (outcome, result) = match answer {
        Ok((outcome, response)) => (Some(outcome), Ok(response)),
        Err(Refused { outcome, error }) => (outcome, Err(error)),
    };
    if let Some(outcome) = outcome {
        state.metrics.hook_delivery(hook.name.as_str(), outcome);
    }
    result
}

async fn deliver(
    state: &ApiState,
    hook: &HookDefinition,
    headers: &HeaderMap,
    request: Request,
) -> Result<(DeliveryOutcome, Response), Refused> {
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Refused::new(DeliveryOutcome::TooLarge, ApiError::PayloadTooLarge)
            } else {
                Refused::new(
                    DeliveryOutcome::Malformed,
                    ApiError::bad_request(rejection.body_text()),
                )
            }
        })?;
    hook.secret
        .verify(hook.provider, headers, &body)
        .map_err(|_| Refused::new(DeliveryOutcome::Unauthorized, ApiError::SignatureUnverified))?;
    let payload =
        payload(headers, &body).map_err(|error| Refused::new(DeliveryOutcome::Malformed, error))?;
    let received = Received::read(hook.provider, headers, payload).map_err(|error| {
        Refused::new(
            DeliveryOutcome::Malformed,
            ApiError::BadRequest {
                detail: "the delivery has no usable id".into(),
                errors: vec![error],
            },
        )
    })?;
    answer(state, hook, &received).await
}

/// Answers a verified delivery: with the deploy an earlier delivery of the same id queued, or by
/// what the hook decides, recording the delivery either way.
async fn answer(
    state: &ApiState,
    hook: &HookDefinition,
    received: &Received,
) -> Result<(DeliveryOutcome, Response), Refused> {
    let name = hook.name.as_str();
    if let Some(deploy_id) = webhooks::redelivered(&state.pool, name, &received.delivery_id).await?
    {
        return Ok((DeliveryOutcome::Duplicate, replay(state, deploy_id).await?));
    }
    let delivery = NewDelivery {
        hook: name,
        delivery_id: &received.delivery_id,
        event: &received.event,
        git_ref: received.facts.git_ref.as_deref(),
        commit: received.facts.commit.as_deref(),
    };
    let new = match hook.decide(received) {
        Ok(Decision::Ping) => {
            webhooks::record(&state.pool, &delivery, DeliveryOutcome::Ping, "").await?;
            let pong = DeliveryPong {
                hook: name.to_owned(),
                ping: "ok",
            };
            return Ok((
                DeliveryOutcome::Ping,
                (StatusCode::OK, axum::Json(pong)).into_response(),
            ));
        }
        Ok(Decision::Ignore(why)) => {
            webhooks::record(&state.pool, &delivery, DeliveryOutcome::Ignored, &why).await?;
            tracing::info!(hook = name, delivery_id = %received.delivery_id, event = %received.event, why, "hook delivery ignored");
            let ignored = DeliveryAccepted::Ignored(DeliveryIgnored { ignored: why });
            return Ok((
                DeliveryOutcome::Ignored,
                (StatusCode::ACCEPTED, axum::Json(ignored)).into_response(),
            ));
        }
        // Validated exactly as `POST /v1/deploys` validates its body.
        Ok(Decision::Deploy(request)) => NewDeploy::parse(*request, &state.charts),
        Err(errors) => Err(errors),
    };
    let new = match new {
        Ok(new) => new,
        Err(errors) => {
            let error = ApiError::Unprocessable {
                detail: "the delivery's payload cannot fill the hook's deploy".into(),
                errors,
            };
            return Err(reject(state, &delivery, error).await);
        }
    };
    let id = Uuid::now_v7();
    let mut tx = state.events.begin().await?;
    if !webhooks::claim(tx.conn(), &delivery, id).await? {
        // Another replica deployed this delivery while we decided: answer with its deploy.
        drop(tx);
        let deploy_id = webhooks::redelivered(&state.pool, name, &received.delivery_id)
            .await?
            .ok_or_else(|| ApiError::internal("a claimed delivery lost its deploy"))?;
        return Ok((DeliveryOutcome::Duplicate, replay(state, deploy_id).await?));
    }
    let requested_by = hook.requested_by();
    let create = CreateDeploy {
        id,
        deploy: &new,
        requested_by: &requested_by,
        idempotency: None,
    };
    match queue_deploy(state, tx, create).await {
        Ok(deploy) => Ok((DeliveryOutcome::Deployed, accepted(&deploy, false))),
        Err(error @ StoreError::QueueRejected { .. }) => {
            Err(reject(state, &delivery, error.into()).await)
        }
        Err(error) => Err(error.into()),
    }
}

/// Records why a delivery that asked for a deploy got none, so that its sender's user can see it
/// in the hook's deliveries; a redelivery tries again.
async fn reject(state: &ApiState, delivery: &NewDelivery<'_>, error: ApiError) -> Refused {
    let detail = match &error {
        ApiError::Unprocessable { detail, errors } => {
            let fields: Vec<String> = errors
                .iter()
                .map(|error| format!("{}: {}", error.field, error.message))
                .collect();
            format!("{detail}: {}", fields.join("; "))
        }
        other => other.to_string(),
    };
    tracing::info!(
        hook = delivery.hook,
        delivery_id = delivery.delivery_id,
        event = delivery.event,
        detail,
        "hook delivery rejected"
    );
    match webhooks::record(&state.pool, delivery, DeliveryOutcome::Rejected, &detail).await {
        Ok(()) => Refused::new(DeliveryOutcome::Rejected, error),
        Err(store) => store.into(),
    }
}

/// The answer given to the delivery that queued `deploy_id`.
async fn replay(state: &ApiState, deploy_id: Uuid) -> Result<Response, ApiError> {
    let deploy = deploys::get(&state.pool, deploy_id)
        .await?
        .ok_or(StoreError::DeployNotFound(deploy_id))?;
    Ok(accepted(&deploy, true))
}

/// The payload as JSON: the body, or the `payload` field of GitHub's form encoding.
fn payload(headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let payload = form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .ok_or_else(|| {
                ApiError::bad_request(
                    "a form-encoded delivery carries its JSON in the `payload` field",
                )
            })?
            .1;
        parse_json(payload.as_bytes())
    } else {
        parse_json(body)
    }
}

/// A hook's recent deliveries, newest first, with how each was answered: why a push did not
/// deploy, or which deploy it started.
#[utoipa::path(get, path = "/v1/hooks/{name}/deliveries", tag = "hooks",
    params(("name" = String, Path), DeliveriesParams),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_deliveries(
    State(state): State<ApiState>,
    auth: Auth,
    Path(name): Path<String>,
    Query(params): Query<DeliveriesParams>,
) -> Result<axum::Json<DeliveryPage>, ApiError> {
    auth.require_global_admin("hook administration")?;
    let limit = page::HOOK_DELIVERIES.limit(params.limit)?;
    let before = params
        .cursor
        .as_deref()
        .map(page::parse_cursor)
        .transpose()
        .map_err(|error| ApiError::invalid_query(vec![error]))?;
    require_hook(&state, &name).await?;
    let mut rows = webhooks::deliveries(&state.pool, &name, before, limit + 1).await?;
    let next_cursor = page::cut(&mut rows, limit, |(id, _)| *id);
    Ok(axum::Json(DeliveryPage {
        items: rows.into_iter().map(|(_, delivery)| delivery).collect(),
        next_cursor,
    }))
}
