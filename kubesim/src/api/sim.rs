//! The `/sim/...` endpoints: fault injection, request counters and controller pause/resume for a
//! `rollcall sim` process (the same operations as the cluster handle), outside the Kubernetes API.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::admin::{RequestCounts, delete_pod_behind_controllers};
use crate::api::ApiState;
use crate::api::error::ApiError;

#[derive(Deserialize)]
struct FailRequest {
    count: u32,
    #[serde(default = "internal_error")]
    status: u16,
    path_contains: Option<String>,
}

fn internal_error() -> u16 {
    500
}

#[derive(Deserialize)]
struct LatencyRequest {
    millis: u64,
}

#[derive(Deserialize)]
struct ScopeRequest {
    user_agent_contains: Option<String>,
}

/// `/sim/...`: the same operations as the handle, for a `rollcall sim` process.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/requests", get(requests).delete(reset_requests))
        .route("/watches/drop", post(drop_watches))
        .route("/compact", post(compact))
        .route("/faults/fail", post(fail))
        .route("/faults/latency", post(latency))
        .route("/faults/scope", post(scope))
        .route("/faults", axum::routing::delete(clear))
        .route("/pods/{namespace}/{name}/delete", post(delete_pod))
        .route("/controllers/pause", post(pause_controllers))
        .route("/controllers/resume", post(resume_controllers))
}

async fn requests(State(state): State<ApiState>) -> Json<RequestCounts> {
    Json(state.admin.request_counts())
}

async fn reset_requests(State(state): State<ApiState>) -> StatusCode {
    state.admin.reset_request_counts();
    StatusCode::NO_CONTENT
}

async fn drop_watches(State(state): State<ApiState>) -> StatusCode {
    state.admin.drop_watches();
    StatusCode::NO_CONTENT
}

async fn compact(State(state): State<ApiState>) -> Json<serde_json::Value> {
    state.store.compact();
    Json(json!({"compactedAt": state.store.revision().to_string()}))
}

async fn scope(State(state): State<ApiState>, Json(request): Json<ScopeRequest>) -> StatusCode {
    state.admin.scope_faults(request.user_agent_contains);
    StatusCode::NO_CONTENT
}

async fn fail(State(state): State<ApiState>, Json(request): Json<FailRequest>) -> Response {
    match StatusCode::from_u16(request.status) {
        Ok(status) if request.count > 0 => {
            state
                .admin
                .fail_next(request.count, status, request.path_contains);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => ApiError::BadRequest("count must be > 0 and status a valid HTTP status".into())
            .into_response(),
    }
}

async fn latency(State(state): State<ApiState>, Json(request): Json<LatencyRequest>) -> StatusCode {
    state
        .admin
        .set_latency(Duration::from_millis(request.millis));
    StatusCode::NO_CONTENT
}

async fn clear(State(state): State<ApiState>) -> StatusCode {
    state.admin.clear_faults();
    StatusCode::NO_CONTENT
}

async fn pause_controllers(State(state): State<ApiState>) -> StatusCode {
    state.controllers.pause();
    StatusCode::NO_CONTENT
}

async fn resume_controllers(State(state): State<ApiState>) -> StatusCode {
    state.controllers.resume();
    StatusCode::NO_CONTENT
}

async fn delete_pod(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match delete_pod_behind_controllers(&state.store, &namespace, &name) {
        Ok(pod) => Json(pod).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}
