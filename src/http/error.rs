//! Every error answer is RFC 9457 problem JSON carrying the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::openapi::{self, RefOr};
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

use crate::domain::FieldError;
use crate::store::StoreError;

tokio::task_local! {
    /// The `x-request-id` of the request being handled, for error bodies and logs.
    pub static REQUEST_ID: String;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A webhook delivery whose signature does not verify; deliberately says no more.
    #[error("the delivery's signature could not be verified")]
    SignatureUnverified,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict {
        detail: String,
        blocking_deploy_id: Option<Uuid>,
    },
    #[error("the request body exceeds the size limit")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    Unprocessable {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    pub request_id: String,
    /// For queue rejections: the deploy that holds the release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking_deploy_id: Option<Uuid>,
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// Query parameters that are unknown, ill-typed or out of bounds: a 400 naming each.
    pub fn invalid_query(errors: Vec<FieldError>) -> Self {
        ApiError::BadRequest {
            detail: "invalid query parameters".into(),
            errors,
        }
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        ApiError::Unprocessable {
            detail: "the request has invalid fields".into(),
            errors,
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }

    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::Unauthorized | ApiError::SignatureUnverified => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            ApiError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The problem answers of the shared extractors, declared once: each operation lists those of the
/// extractors it uses (`responses((status = 200, ...), AuthProblems, BodyProblems)`), so that the
/// document names every status a request can get.
fn problems(statuses: &[(&str, &str)]) -> BTreeMap<String, RefOr<openapi::Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let content = openapi::ContentBuilder::new()
                .schema(Some(openapi::Ref::from_schema_name("Problem")))
                .build();
            let response = openapi::ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", content)
                .build();
            ((*status).to_owned(), response.into())
        })
        .collect()
}

/// [`Auth`](super::auth::Auth): a bearer token is missing or invalid (401), or lacks the scope
/// over the release (403).
pub struct AuthProblems;

impl IntoResponses for AuthProblems {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        problems(&[
            ("401", "no valid bearer token"),
            ("403", "the token lacks the scope this needs"),
        ])
    }
}

/// A JSON body ([`Json`](super::json::Json), [`JsonBytes`](super::json::JsonBytes)): malformed
/// (400, naming line and column), over the body limit (413), not JSON (415), of the wrong shape or
/// with invalid fields (422, naming each).
pub struct BodyProblems;

impl IntoResponses for BodyProblems {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        problems(&[
            ("400", "malformed JSON, or an invalid parameter"),
            ("413", "the body exceeds the size limit"),
            ("415", "the body is not JSON"),
            ("422", "invalid fields, each named"),
        ])
    }
}

/// Path and query parameters ([`Path`](super::json::Path), [`Query`](super::json::Query)):
/// unknown, ill-typed, out of bounds or holding a NUL character, each named.
pub struct ParameterProblems;

impl IntoResponses for ParameterProblems {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        problems(&[("400", "an invalid parameter, named")])
    }
}

/// The thing the path names does not exist, or is hidden from the token.
pub struct NotFoundProblem;

impl IntoResponses for NotFoundProblem {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        problems(&[("404", "not found")])
    }
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.status_and_slug();
        // A webhook sender cannot answer a bearer challenge.
        let wants_token = matches!(self, ApiError::Unauthorized);
        let request_id = current_request_id();
        let detail = match &self {
            // The cause stays in the log, found by the request id; the client gets only the id.
            ApiError::Internal(cause) => {
                tracing::error!(%request_id, cause, "internal error");
                format!("internal error; quote request id {request_id}")
            }
            other => other.to_string(),
        };
        let (errors, blocking_deploy_id) = match self {
            ApiError::BadRequest { errors, .. } | ApiError::Unprocessable { errors, .. } => {
                (errors, None)
            }
            ApiError::Conflict {
                blocking_deploy_id, ..
            } => (Vec::new(), blocking_deploy_id),
            _ => (Vec::new(), None),
        };
        let problem = Problem {
            kind: format!("https://rollcall.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail,
            errors,
            request_id,
            blocking_deploy_id,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if wants_token {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DeployNotFound(id) => ApiError::NotFound(format!("no deploy {id}")),
            StoreError::Transition(transition) => ApiError::Conflict {
                detail: transition.to_string(),
                blocking_deploy_id: None,
            },
            StoreError::ReleaseBusy { release } => ApiError::Conflict {
                detail: format!("release {release} already has an active deploy"),
                blocking_deploy_id: None,
            },
            StoreError::QueueRejected { blocking } => ApiError::Conflict {
                detail: format!(
                    "queue mode reject: deploy {blocking} of this release is queued or running"
                ),
                blocking_deploy_id: Some(blocking),
            },
            StoreError::HookExists(name) => ApiError::Conflict {
                detail: format!("a hook named {name} already exists"),
                blocking_deploy_id: None,
            },
            StoreError::IdempotencyKeyUsed => ApiError::Unprocessable {
                detail: "the Idempotency-Key was already used with another request".into(),
                errors: Vec::new(),
            },
            other @ (StoreError::Corrupt(_) | StoreError::Database(_) | StoreError::Migrate(_)) => {
                ApiError::internal(other)
            }
        }
    }
}
