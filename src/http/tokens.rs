//! `/v1/tokens`: mint, list and revoke API tokens (global admins only).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{Auth, mint_token};
use super::error::{ApiError, Problem};
use super::json::{Json, Path};
use super::state::ApiState;
use crate::domain::FieldError;
use crate::domain::auth::{Scope, TargetPattern};
use crate::store::tokens::{self, NewToken, TokenRecord};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// Any of `read`, `deploy`, `cancel`, `admin`.
    pub scopes: Vec<String>,
    /// `cluster/namespace/release` patterns; `*` and `?` are globs.
    pub targets: Vec<String>,
    /// When the token stops working (RFC 3339, in the future); absent: until revoked.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: Uuid,
    /// The bearer token. It is shown only in this response.
    pub token: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub targets: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first, revoked and expired tokens included.
    pub items: Vec<TokenRecord>,
}

/// Create a token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses(
        (status = 201, body = TokenCreated),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_token(
    State(state): State<ApiState>,
    auth: Auth,
    Json(request): Json<TokenRequest>,
) -> Result<(StatusCode, axum::Json<TokenCreated>), ApiError> {
    auth.require_global_admin("token administration")?;
    let mut errors = Vec::new();
    if request.name.trim().is_empty() || request.name.len() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    if request.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "must name at least one scope"));
    }
    if request.targets.is_empty() {
        errors.push(FieldError::new("targets", "must name at least one target"));
    }
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    let mut scopes = Vec::new();
    for (index, scope) in request.scopes.iter().enumerate() {
        match scope.parse::<Scope>() {
            Ok(scope) => scopes.push(scope),
            Err(message) => errors.push(FieldError::new(format!("scopes[{index}]"), message)),
        }
    }
    for (index, target) in request.targets.iter().enumerate() {
        if let Err(message) = target.parse::<TargetPattern>() {
            errors.push(FieldError::new(format!("targets[{index}]"), message));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let (id, token, digest) = mint_token();
    let scope_names: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    tokens::insert(
        &state.pool,
        NewToken {
            id,
            name: &request.name,
            secret_sha256: &digest,
            scopes: &scope_names,
            targets: &request.targets,
            created_by: &auth.0.name,
            expires_at: request.expires_at,
        },
    )
    .await?;
    tracing::info!(token_id = %id, name = %request.name, created_by = %auth.0.name, "token created");
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenCreated {
            id,
            token,
            name: request.name,
            scopes,
            targets: request.targets,
            expires_at: request.expires_at,
        }),
    ))
}

/// Every token (its name, scopes, targets, creation, expiry, last use, revocation; never its
/// secret), to find what to revoke.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses(
        (status = 200, body = TokenList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_tokens(
    State(state): State<ApiState>,
    auth: Auth,
) -> Result<axum::Json<TokenList>, ApiError> {
    auth.require_global_admin("token administration")?;
    let items = tokens::list(&state.pool).await?;
    Ok(axum::Json(TokenList { items }))
}

/// Revoke a token; it stops working at once, and its open event streams end within a second on
/// every replica.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_token(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_global_admin("token administration")?;
    let not_found = || ApiError::NotFound(format!("no active token {id}"));
    let token_id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    if tokens::revoke(&state.pool, token_id).await? {
        state.auth.forget(token_id);
        tracing::info!(%token_id, revoked_by = %auth.0.name, "token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
