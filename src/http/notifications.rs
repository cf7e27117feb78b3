//! `GET /v1/deploys/{id}/notifications`: what was sent about a deploy, and every attempt.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Auth;
use super::deploys::authorized_deploy;
use super::error::{ApiError, AuthProblems, NotFoundProblem, ParameterProblems};
use super::json::Path;
use super::state::ApiState;
use super::subscriptions::origin_of;
use crate::domain::auth::Scope;
use crate::store::notifications::{self, NotificationRecord};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(deploy_notifications))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<NotificationRecord>,
}

/// The notifications of a deploy (its own notify entries and the global subscriptions), each with
/// its attempts: time, HTTP status, latency, error.
#[utoipa::path(get, path = "/v1/deploys/{id}/notifications", tag = "notifications",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = NotificationList),
        AuthProblems, ParameterProblems, NotFoundProblem,
    ))]
async fn deploy_notifications(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<NotificationList>, ApiError> {
    let deploy = authorized_deploy(&state, &auth, &id, Scope::Read).await?;
    let items = notifications::list_for_deploy(&state.pool, deploy.id, origin_of).await?;
    Ok(axum::Json(NotificationList { items }))
}
