//! `/v1/hooks`: inbound webhooks created through the API (global admins only), shown beside those
//! of the configuration file, which are changed only there. A hook's secret is sealed with the
//! server's key (`ROLLCALL_SECRET_KEY`) and never returned.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Auth;
use super::error::{ApiError, Problem};
use super::json::{Json, JsonBytes, parse_json};
use super::state::ApiState;
use crate::domain::FieldError;
use crate::domain::names::HookName;
use crate::domain::sealing::ServerKey;
use crate::domain::webhooks::{HookDefinition, HookSpec};
use crate::store::webhooks::{self, StoredHook};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_hook, list_hooks))
        .routes(routes!(get_hook, update_hook, delete_hook))
}

/// Where a hook is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookSource {
    /// Through this API.
    Api,
    /// In the configuration file (`[[hooks]]`): read-only here.
    Config,
}

/// A hook as the API shows it: its definition, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookView {
    #[serde(flatten)]
    pub spec: HookSpec,
    /// Where senders deliver (`POST`); absolute when the server knows its public URL.
    pub url: String,
    pub source: HookSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HookList {
    /// Configured hooks first, then those of the API, each by name.
    pub items: Vec<HookView>,
}

/// What a sealed hook secret is bound to: moved to another hook's row, it does not open.
fn sealing_context(name: &str) -> String {
    format!("hook:{name}")
}

fn server_key(state: &ApiState) -> Result<&ServerKey, ApiError> {
    state.secret_key.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "hook secrets are stored encrypted with the server's key, and this server has none: \
             set ROLLCALL_SECRET_KEY (32 random bytes, e.g. `openssl rand -hex 32`) to manage \
             hooks through the API and verify their deliveries"
                .into(),
        )
    })
}

fn configured<'a>(state: &'a ApiState, name: &str) -> Option<&'a HookDefinition> {
    state
        .configured_hooks
        .iter()
        .find(|hook| hook.name.as_str() == name)
}

fn read_only(name: &str) -> ApiError {
    ApiError::Conflict {
        detail: format!(
            "hook {name} is defined in the server's configuration file; change it there"
        ),
        blocking_deploy_id: None,
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no hook {name}"))
}

fn hook_url(state: &ApiState, name: &str) -> String {
    let path = format!("/v1/hooks/{name}");
    match &state.public_url {
        Some(base) => base.join(&path),
        None => path,
    }
}

fn configured_view(state: &ApiState, hook: &HookDefinition) -> HookView {
    HookView {
        url: hook_url(state, hook.name.as_str()),
        spec: hook.spec.clone(),
        source: HookSource::Config,
        created_by: None,
        created_at: None,
        updated_at: None,
    }
}

fn stored_view(state: &ApiState, hook: StoredHook) -> HookView {
    HookView {
        url: hook_url(state, &hook.name),
        spec: hook.definition,
        source: HookSource::Api,
        created_by: Some(hook.created_by),
        created_at: Some(hook.created_at),
        updated_at: Some(hook.updated_at),
    }
}

/// A hook that can verify and answer deliveries: a configured one, or a stored one with its secret
/// opened.
pub async fn hook_for_delivery(
    state: &ApiState,
    name: &str,
) -> Result<Option<HookDefinition>, ApiError> {
    if let Some(hook) = configured(state, name) {
        return Ok(Some(hook.clone()));
    }
    let Some(stored) = webhooks::get(&state.pool, name).await? else {
        return Ok(None);
    };
    // A stored hook whose server lost its key: the sender retries later, the operator reads why.
    let secret = server_key(state)?
        .open(&sealing_context(name), &stored.sealed_secret)
        .map_err(|error| ApiError::internal(format!("hook {name}: {error}")))?;
    HookDefinition::parse(stored.definition, secret, "secret")
        .map(Some)
        .map_err(|errors| ApiError::internal(format!("stored hook {name} is invalid: {errors:?}")))
}

/// 404 unless a hook of this name is configured or stored.
pub async fn require_hook(state: &ApiState, name: &str) -> Result<(), ApiError> {
    if configured(state, name).is_some() || webhooks::get(&state.pool, name).await?.is_some() {
        Ok(())
    } else {
        Err(not_found(name))
    }
}

/// A 422 that names the hook (as written, cut to a name's length) beside its invalid fields.
fn invalid_hook(name: &str, errors: Vec<FieldError>) -> ApiError {
    let name: String = name.chars().take(HookName::MAX_LEN).collect();
    ApiError::Unprocessable {
        detail: format!("hook {name:?} has invalid fields"),
        errors,
    }
}

/// A definition as the API accepts it: checked whole, its target as a deploy would be.
fn checked(state: &ApiState, spec: HookSpec, secret: String) -> Result<HookDefinition, ApiError> {
    let name = spec.name.clone();
    let hook = HookDefinition::parse(spec, secret, "secret")
        .map_err(|errors| invalid_hook(&name, errors))?;
    hook.check_target(&state.charts)
        .map_err(|errors| invalid_hook(&name, errors))?;
    Ok(hook)
}

/// Create a hook. Its secret is stored sealed with the server's key and never shown again.
#[utoipa::path(post, path = "/v1/hooks", tag = "hooks", request_body = HookSpec,
    responses(
        (status = 201, body = HookView, headers(("Location" = String))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the name is taken"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "the server has no ROLLCALL_SECRET_KEY to seal secrets with"),
    ))]
async fn create_hook(
    State(state): State<ApiState>,
    auth: Auth,
    Json(mut spec): Json<HookSpec>,
) -> Result<Response, ApiError> {
    auth.require_global_admin("hook administration")?;
    let key = server_key(&state)?;
    let secret = spec
        .take_inline_secret()
        .map_err(|errors| invalid_hook(&spec.name, errors))?
        .ok_or_else(|| invalid_hook(&spec.name, vec![FieldError::new("secret", "is required")]))?;
    let hook = checked(&state, spec, secret)?;
    let name = hook.name.as_str();
    if configured(&state, name).is_some() {
        return Err(read_only(name));
    }
    let sealed = key.seal(&sealing_context(name), hook.secret.expose());
    let stored = webhooks::insert(&state.pool, &hook.spec, &sealed, &auth.0.name).await?;
    tracing::info!(hook = name, provider = hook.provider.as_str(), created_by = %auth.0.name, "hook created");
    let view = stored_view(&state, stored);
    let mut response = (StatusCode::CREATED, axum::Json(&view)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/hooks/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Every hook: those of the configuration file and those of the API.
#[utoipa::path(get, path = "/v1/hooks", tag = "hooks",
    responses(
        (status = 200, body = HookList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_hooks(
    State(state): State<ApiState>,
    auth: Auth,
) -> Result<axum::Json<HookList>, ApiError> {
    auth.require_global_admin("hook administration")?;
    let mut items: Vec<HookView> = state
        .configured_hooks
        .iter()
        .map(|hook| configured_view(&state, hook))
        .collect();
    items.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for stored in webhooks::list(&state.pool).await? {
        items.push(stored_view(&state, stored));
    }
    Ok(axum::Json(HookList { items }))
}

/// One hook.
#[utoipa::path(get, path = "/v1/hooks/{name}", tag = "hooks", params(("name" = String, Path)),
    responses(
        (status = 200, body = HookView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_hook(
    State(state): State<ApiState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<HookView>, ApiError> {
    auth.require_global_admin("hook administration")?;
    if let Some(hook) = configured(&state, &name) {
        return Ok(axum::Json(configured_view(&state, hook)));
    }
    let stored = webhooks::get(&state.pool, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(axum::Json(stored_view(&state, stored)))
}

/// Change a hook with a JSON merge patch (RFC 7396) of its definition: the fields given replace
/// those stored (`null` removes an optional one); `secret` replaces the secret. The name stays.
#[utoipa::path(patch, path = "/v1/hooks/{name}", tag = "hooks", params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "A merge patch of the hook's definition (the fields of `HookSpec`)"),
    responses(
        (status = 200, body = HookView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "a hook of the configuration file"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "the server has no ROLLCALL_SECRET_KEY to seal secrets with"),
    ))]
async fn update_hook(
    State(state): State<ApiState>,
    auth: Auth,
    Path(name): Path<String>,
    body: JsonBytes,
) -> Result<axum::Json<HookView>, ApiError> {
    auth.require_global_admin("hook administration")?;
    if configured(&state, &name).is_some() {
        return Err(read_only(&name));
    }
    let key = server_key(&state)?;
    let patch: serde_json::Value = body.parse()?;
    if !patch.is_object() {
        return Err(invalid_hook(
            &name,
            vec![FieldError::new(
                "",
                "a merge patch of a hook is a JSON object",
            )],
        ));
    }
    if patch
        .get("name")
        .is_some_and(|patched| patched != name.as_str())
    {
        return Err(invalid_hook(
            &name,
            vec![FieldError::new(
                "name",
                "cannot be changed: it is the hook's URL (create a new hook instead)",
            )],
        ));
    }
    let stored = webhooks::get(&state.pool, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let mut document = serde_json::to_value(&stored.definition).map_err(ApiError::internal)?;
    json_patch::merge(&mut document, &patch);
    let bytes = serde_json::to_vec(&document).map_err(ApiError::internal)?;
    let mut spec: HookSpec = parse_json(&bytes)?;
    let new_secret = spec
        .take_inline_secret()
        .map_err(|errors| invalid_hook(&name, errors))?;
    let secret = match &new_secret {
        Some(secret) => secret.clone(),
        None => key
            .open(&sealing_context(&name), &stored.sealed_secret)
            .map_err(|error| ApiError::internal(format!("hook {name}: {error}")))?,
    };
    let hook = checked(&state, spec, secret)?;
    let sealed = match new_secret {
        Some(_) => key.seal(&sealing_context(&name), hook.secret.expose()),
        None => stored.sealed_secret,
    };
    let updated = webhooks::update(&state.pool, &hook.spec, &sealed)
        .await?
        .ok_or_else(|| not_found(&name))?;
    tracing::info!(hook = %name, updated_by = %auth.0.name, "hook updated");
    Ok(axum::Json(stored_view(&state, updated)))
}

/// Delete a hook and its recorded deliveries; its URL answers 404 from then on.
#[utoipa::path(delete, path = "/v1/hooks/{name}", tag = "hooks", params(("name" = String, Path)),
    responses(
        (status = 204),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "a hook of the configuration file"),
    ))]
async fn delete_hook(
    State(state): State<ApiState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_global_admin("hook administration")?;
    if configured(&state, &name).is_some() {
        return Err(read_only(&name));
    }
    if webhooks::delete(&state.pool, &name).await? {
        tracing::info!(hook = %name, deleted_by = %auth.0.name, "hook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}
