//! Errors as Kubernetes `Status` objects (apimachinery pkg/api/errors, kubernetes-behaviour.md §7.3).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{ResourceType, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    BadRequest(String),
    #[error("the server could not find the requested resource")]
    UnknownResource,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 for a request that is well-formed but not acceptable (not about one object's field).
    #[error("{message}")]
    Unprocessable {
        resource: ResourceType,
        name: String,
        message: String,
    },
    #[error("{0}")]
    Injected(StatusCode),
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::Store(StoreError::NotFound { .. }) | ApiError::UnknownResource => {
                StatusCode::NOT_FOUND
            }
            ApiError::Store(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) => {
                StatusCode::CONFLICT
            }
            ApiError::Store(StoreError::Invalid { .. }) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Store(StoreError::Gone { .. }) => StatusCode::GONE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Injected(code) => *code,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::Store(StoreError::NotFound { .. }) | ApiError::UnknownResource => "NotFound",
            ApiError::Store(StoreError::AlreadyExists { .. }) => "AlreadyExists",
            ApiError::Store(StoreError::Conflict { .. }) => "Conflict",
            ApiError::Store(StoreError::Invalid { .. }) | ApiError::Unprocessable { .. } => {
                "Invalid"
            }
            ApiError::Store(StoreError::Gone { .. }) => "Expired",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Injected(code) if *code == StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
            ApiError::Injected(code) if *code == StatusCode::GONE => "Expired",
            ApiError::Injected(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let named = |resource: &ResourceType, name: &str, kind: String| {
            let mut details = json!({"name": name, "kind": kind});
            if !resource.group.is_empty() {
                details["group"] = resource.group.into();
            }
            details
        };
        match self {
            ApiError::Store(
                StoreError::NotFound { resource, name }
                | StoreError::AlreadyExists { resource, name, .. }
                | StoreError::Conflict { resource, name, .. },
            ) => Some(named(resource, name, resource.resource.to_owned())),
            ApiError::Store(StoreError::Invalid {
                resource,
                name,
                cause,
            }) => {
                let mut details = named(resource, name, resource.kind.to_owned());
                details["causes"] = json!([{
                    "reason": "FieldValueInvalid",
                    "message": cause.message,
                    "field": cause.field,
                }]);
                Some(details)
            }
            ApiError::Unprocessable { resource, name, .. } => {
                Some(named(resource, name, resource.kind.to_owned()))
            }
            ApiError::Injected(code) if *code == StatusCode::TOO_MANY_REQUESTS => {
                Some(json!({"retryAfterSeconds": 1}))
            }
            _ => None,
        }
    }

    /// The `Status` object, also used as the `object` of a watch `ERROR` event.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }

    fn message(&self) -> String {
        match self {
            // What the watch cache answers for a resourceVersion it no longer holds.
            ApiError::Injected(code) if *code == StatusCode::GONE => {
                "injected fault: too old resource version".to_owned()
            }
            ApiError::Injected(code) => format!("injected fault: {code}"),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code(), Json(self.status())).into_response();
        if self.code() == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DEPLOYMENTS, FieldCause, PODS};

    #[test]
    fn not_found_names_the_resource_like_the_apiserver() {
        let error = ApiError::from(StoreError::NotFound {
            resource: DEPLOYMENTS,
            name: "web".into(),
        });
        let status = error.status();
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            status["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
    }

    #[test]
    fn an_injected_gone_is_an_expired_status() {
        let status = ApiError::Injected(StatusCode::GONE).status();
        assert_eq!(status["code"], 410);
        assert_eq!(status["reason"], "Expired");
        assert_eq!(status["status"], "Failure");
    }

    #[test]
    fn invalid_carries_the_kind_and_causes() {
        let error = ApiError::from(StoreError::Invalid {
            resource: PODS,
            name: "p".into(),
            cause: FieldCause::new("metadata.name", "Required value"),
        });
        let status = error.status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["message"],
            "Pod \"p\" is invalid: metadata.name: Required value"
        );
        assert_eq!(status["details"]["kind"], "Pod");
        assert!(status["details"].get("group").is_none());
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    }
}
