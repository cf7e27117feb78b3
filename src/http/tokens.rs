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
use super::error::{ApiError, AuthProblems, BodyProblems, NotFoundProblem, ParameterProblems};
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
    /// 1 to 100 characters, not all of them white space.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
    /// Any of `read`, `deploy`, `cancel`, `admin`.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    pub scopes: Vec<String>,
    /// `cluster/namespace/release` patterns; `*` and `?` are globs.
    #[schema(schema_with = TargetPattern::list_schema)]
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

/// What the document's `name` pattern says: 1 to 100 characters, not all white space (Unicode's
/// White_Space, as `str::trim` and the pattern's character class count it).
fn is_valid_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= 100
}

/// Create a token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses(
        (status = 201, body = TokenCreated),
        AuthProblems, BodyProblems,
    ))]
async fn create_token(
    State(state): State<ApiState>,
    auth: Auth,
    Json(request): Json<TokenRequest>,
) -> Result<(StatusCode, axum::Json<TokenCreated>), ApiError> {
    auth.require_global_admin("token administration")?;
    let mut errors = Vec::new();
    if !is_valid_name(&request.name) {
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
        AuthProblems,
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
        AuthProblems, ParameterProblems, NotFoundProblem,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's pattern for `name` and the server's check agree on every character.
    #[test]
    fn the_documented_name_pattern_is_the_check() {
        let document = serde_json::to_value(crate::http::openapi()).expect("JSON");
        let name = &document["components"]["schemas"]["TokenRequest"]["properties"]["name"];
        let pattern =
            regex::Regex::new(name["pattern"].as_str().expect("a pattern")).expect("a regex");
        for code in 0..=0x3000u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let text = c.to_string();
            assert_eq!(
                pattern.is_match(&text),
                is_valid_name(&text),
                "U+{code:04X}"
            );
        }
        assert!(!is_valid_name(&"x".repeat(101)));
        assert_eq!(name["maxLength"], 100);
    }
}
