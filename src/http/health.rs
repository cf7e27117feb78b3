//! Liveness, readiness and Prometheus metrics; these need no token.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::state::ApiState;
use crate::store;
use crate::telemetry::{DatabaseFigures, PoolUsage};

/// `/readyz` answers within this even when the database does not: the pool would keep trying to
/// connect for its whole acquire timeout, longer than a probe waits.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    pub status: &'static str,
}

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = HealthStatus)))]
async fn healthz() -> axum::Json<HealthStatus> {
    axum::Json(HealthStatus { status: "ok" })
}

/// The database is reachable.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = HealthStatus), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(state): State<ApiState>) -> Result<axum::Json<HealthStatus>, ApiError> {
    match tokio::time::timeout(READINESS_TIMEOUT, store::ping(&state.pool)).await {
        Ok(Ok(())) => Ok(axum::Json(HealthStatus { status: "ready" })),
        Ok(Err(error)) => Err(ApiError::Unavailable(format!(
            "database unreachable: {error}"
        ))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "database unreachable: no answer within {READINESS_TIMEOUT:?}"
        ))),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let database = if state.reporter.is_held() {
        Some(DatabaseFigures {
            deploys: store::deploys::counts(&state.pool).await?,
            outbox: store::notifications::depth(&state.pool).await?,
        })
    } else {
        None
    };
    let pool = PoolUsage {
        max: state.pool.options().get_max_connections(),
        open: state.pool.size(),
        idle: state.pool.num_idle(),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(database.as_ref(), pool),
    ))
}
