//! The HTTP API (DESIGN §3): one router per feature, problem JSON errors, bearer auth, OpenAPI.

pub mod assets;
pub mod auth;
pub mod deploy_events;
pub mod deploys;
pub mod docs;
pub mod error;
pub mod health;
pub mod json;
pub mod notifications;
pub mod page;
pub mod releases;
pub mod revocations;
pub mod server;
pub mod state;
pub mod subscriptions;
pub mod token_cache;
pub mod tokens;
pub mod ui;
pub mod webhook_deliveries;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use docs::BearerAuth;
use error::{ApiError, REQUEST_ID};
use state::ApiState;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rollcall",
        description = "Deploy tracking for Kubernetes: helm upgrades followed to an honest verdict.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    // Beside those the operations name: the `data` of a deploy stream's `end` event.
    components(schemas(deploy_events::StreamEnd)),
    security(("bearer" = [])),
    tags(
        (name = "deploys", description = "Submit, list, inspect and cancel deploys"),
        (name = "events", description = "Deploy events as SSE or JSON pages"),
        (name = "releases", description = "Releases and their deploy history"),
        (name = "tokens", description = "API token administration"),
        (name = "notifications", description = "Outgoing notifications: global subscriptions and what was sent about a deploy"),
        (name = "hooks", description = "Inbound webhooks: CI systems and registries start deploys"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(deploys::router())
        .merge(deploy_events::router())
        .merge(releases::router())
        .merge(tokens::router())
        .merge(subscriptions::router())
        .merge(notifications::router())
        .merge(webhooks::router())
        .merge(webhook_deliveries::router())
        .merge(health::router())
}

/// The OpenAPI document the code describes (`rollcall openapi` prints it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

pub fn router(state: ApiState) -> Router {
    let (api, openapi) = api_router().split_for_parts();
    api.merge(docs::router(openapi))
        .merge(ui::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(TraceLayer::new_for_http())
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    request_context,
                ))
                .layer(CatchPanicLayer::custom(|_panic| {
                    ApiError::internal("handler panicked").into_response()
                }))
                .layer(DefaultBodyLimit::max(state.limits.body_limit)),
        )
        .with_state(state)
}

/// Makes the request id available to error bodies and counts the request by route.
async fn request_context(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = REQUEST_ID.scope(request_id, next.run(request)).await;
    state
        .metrics
        .http_request(&method, &route, response.status().as_u16());
    response
}
