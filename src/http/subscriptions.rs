//! `/v1/subscriptions`: global notification subscriptions (global admins only). Each has its own
//! signing secret, sealed at rest with the server key; URLs are shown only as their origin.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Auth;
use super::error::{
    ApiError, AuthProblems, BodyProblems, NotFoundProblem, ParameterProblems, Problem,
};
use super::json::{Json, Path};
use super::state::ApiState;
use crate::domain::FieldError;
use crate::domain::auth::TargetPattern;
use crate::domain::notify::{
    ManagedBy, NotifyFormat, NotifyUrl, Subscription, WebhookSecret, sealing_context,
};
use crate::store::notifications::{self, StoredSubscription, SubscriptionRow};

const WHAT: &str = "subscription administration";

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(
            get_subscription,
            update_subscription,
            delete_subscription
        ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    pub name: String,
    /// An http(s) URL; kept secret (answers show its scheme, host and port).
    pub url: String,
    /// Event types (`deploy.failed`), families (`deploy.*`) or `*`; default: the terminal deploy
    /// events.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub format: NotifyFormat,
    /// `cluster/namespace/release` globs of the releases whose events it receives; default `*/*/*`.
    #[serde(default)]
    #[schema(schema_with = TargetPattern::optional_list_schema)]
    pub targets: Option<Vec<String>>,
    /// Its Standard Webhooks signing secret (`whsec_…`); default: a new one, shown once in the
    /// answer.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// `PATCH`: the fields to change; absent ones stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<NotifyFormat>,
    #[schema(schema_with = TargetPattern::optional_list_schema)]
    pub targets: Option<Vec<String>>,
    /// A new signing secret (`whsec_…`).
    pub secret: Option<String>,
    /// `true` enables a subscription again, e.g. after its receiver answered 410 Gone.
    pub enabled: Option<bool>,
}

/// A subscription as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    pub name: String,
    pub managed_by: ManagedBy,
    /// Scheme, host and port of the destination; the rest of the URL is kept secret.
    pub url: String,
    pub format: NotifyFormat,
    pub events: Vec<String>,
    pub targets: Vec<String>,
    /// The configured secret that signs it (configuration subscriptions); absent: its own
    /// secret, or the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    pub enabled: bool,
    /// Why it was disabled, e.g. its receiver answered 410 Gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StoredSubscription> for SubscriptionView {
    fn from(stored: StoredSubscription) -> Self {
        SubscriptionView {
            id: stored.id,
            name: stored.name,
            managed_by: stored.managed_by,
            url: origin_of(&stored.url),
            format: stored.format,
            events: stored.events,
            targets: stored.targets,
            secret_name: stored.secret_name,
            enabled: stored.enabled,
            disabled_reason: stored.disabled_reason,
            created_by: stored.created_by,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }
}

/// What may be shown of a stored destination URL.
pub fn origin_of(url: &str) -> String {
    NotifyUrl::parse(url).map_or_else(|_| "(invalid URL)".to_owned(), |url| url.origin())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionCreated {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// The generated signing secret, shown only in this answer; absent when the request gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
}

/// The sealed form of a subscription's secret: the one given, or a new one (then returned).
fn seal_secret(
    state: &ApiState,
    id: Uuid,
    given: Option<&str>,
) -> Result<(String, Option<WebhookSecret>), ApiError> {
    let key = state.secret_key.as_ref().ok_or_else(|| {
        ApiError::invalid_fields(vec![FieldError::new(
            "secret",
            "the server cannot store secrets: it has no ROLLCALL_SECRET_KEY",
        )])
    })?;
    let (secret, generated) = match given {
        Some(text) => (
            WebhookSecret::parse(text).map_err(|message| {
                ApiError::invalid_fields(vec![FieldError::new("secret", message)])
            })?,
            false,
        ),
        None => (WebhookSecret::generate(), true),
    };
    let sealed = key.seal(&sealing_context(id), secret.expose());
    Ok((sealed, generated.then_some(secret)))
}

fn parse_subscription(
    state: &ApiState,
    name: String,
    url: &str,
    events: Option<Vec<String>>,
    format: NotifyFormat,
    targets: Option<Vec<String>>,
) -> Result<Subscription, ApiError> {
    Subscription::parse(
        name,
        url,
        events,
        format,
        targets,
        &state.notify_rules.destinations,
    )
    .map_err(ApiError::invalid_fields)
}

/// Create a global subscription.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "notifications",
    request_body = SubscriptionRequest,
    responses(
        (status = 201, body = SubscriptionCreated),
        AuthProblems, BodyProblems,
    ))]
async fn create_subscription(
    State(state): State<ApiState>,
    auth: Auth,
    Json(request): Json<SubscriptionRequest>,
) -> Result<(StatusCode, axum::Json<SubscriptionCreated>), ApiError> {
    auth.require_global_admin(WHAT)?;
    let subscription = parse_subscription(
        &state,
        request.name,
        &request.url,
        request.events,
        request.format,
        request.targets,
    )?;
    let id = Uuid::now_v7();
    let (sealed, generated) = seal_secret(&state, id, request.secret.as_deref())?;
    let row = SubscriptionRow {
        id,
        subscription: &subscription,
        secret_sealed: &sealed,
        enabled: request.enabled,
    };
    notifications::save_subscription(&state.pool, &row, &auth.0.name).await?;
    let stored = notifications::get_subscription(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::internal("the new subscription vanished"))?;
    tracing::info!(subscription_id = %id, name = %subscription.name, created_by = %auth.0.name, "subscription created");
    Ok((
        StatusCode::CREATED,
        axum::Json(SubscriptionCreated {
            subscription: stored.into(),
            secret: generated.map(|secret| secret.expose().to_owned()),
        }),
    ))
}

/// List the global subscriptions, those of the configuration file included.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "notifications",
    responses(
        (status = 200, body = SubscriptionList),
        AuthProblems,
    ))]
async fn list_subscriptions(
    State(state): State<ApiState>,
    auth: Auth,
) -> Result<axum::Json<SubscriptionList>, ApiError> {
    auth.require_global_admin(WHAT)?;
    let items = notifications::list_subscriptions(&state.pool).await?;
    Ok(axum::Json(SubscriptionList {
        items: items.into_iter().map(SubscriptionView::from).collect(),
    }))
}

fn subscription_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no subscription {id}"))
}

/// A global subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "notifications",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = SubscriptionView),
        AuthProblems, ParameterProblems, NotFoundProblem,
    ))]
async fn get_subscription(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<SubscriptionView>, ApiError> {
    auth.require_global_admin(WHAT)?;
    let stored = notifications::get_subscription(&state.pool, subscription_id(&id)?)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(stored.into()))
}

/// Change a subscription made through the API (those of the configuration file are changed
/// there): its fields, its secret, or whether it is enabled.
#[utoipa::path(patch, path = "/v1/subscriptions/{id}", tag = "notifications",
    params(("id" = Uuid, Path)),
    request_body = SubscriptionPatch,
    responses(
        (status = 200, body = SubscriptionView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "a subscription of the configuration file"),
        AuthProblems, ParameterProblems, BodyProblems, NotFoundProblem,
    ))]
async fn update_subscription(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(patch): Json<SubscriptionPatch>,
) -> Result<axum::Json<SubscriptionView>, ApiError> {
    auth.require_global_admin(WHAT)?;
    let subscription_id = subscription_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(ApiError::internal)?;
    let current = notifications::lock_subscription(&mut tx, subscription_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if current.managed_by == ManagedBy::Config {
        return Err(config_managed(&current.name));
    }
    let subscription = parse_subscription(
        &state,
        patch.name.unwrap_or(current.name),
        patch.url.as_deref().unwrap_or(&current.url),
        Some(patch.events.unwrap_or(current.events)),
        patch.format.unwrap_or(current.format),
        Some(patch.targets.unwrap_or(current.targets)),
    )?;
    let sealed = match patch.secret.as_deref() {
        Some(secret) => seal_secret(&state, subscription_id, Some(secret))?.0,
        None => current
            .secret_sealed
            .ok_or_else(|| ApiError::internal("an API subscription without its secret"))?,
    };
    let row = SubscriptionRow {
        id: subscription_id,
        subscription: &subscription,
        secret_sealed: &sealed,
        enabled: patch.enabled.unwrap_or(current.enabled),
    };
    notifications::save_subscription(&mut *tx, &row, &current.created_by).await?;
    let stored = notifications::get_subscription(&mut *tx, subscription_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    tx.commit().await.map_err(ApiError::internal)?;
    tracing::info!(%subscription_id, updated_by = %auth.0.name, "subscription updated");
    Ok(axum::Json(stored.into()))
}

fn config_managed(name: &str) -> ApiError {
    ApiError::Conflict {
        detail: format!(
            "subscription {name:?} comes from the configuration file ([[notify.subscriptions]]); change it there"
        ),
        blocking_deploy_id: None,
    }
}

/// Delete a subscription made through the API; its pending notifications are cancelled (one being
/// sent ends by its receiver's answer).
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "notifications",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "a subscription of the configuration file"),
        AuthProblems, ParameterProblems, NotFoundProblem,
    ))]
async fn delete_subscription(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_global_admin(WHAT)?;
    let subscription_id = subscription_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(ApiError::internal)?;
    let current = notifications::lock_subscription(&mut tx, subscription_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if current.managed_by == ManagedBy::Config {
        return Err(config_managed(&current.name));
    }
    notifications::delete_subscription(&mut tx, subscription_id).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    tracing::info!(%subscription_id, deleted_by = %auth.0.name, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}
