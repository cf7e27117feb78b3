//! `/openapi.json` and the `/docs` reference page (Scalar, served from the binary).

use axum::Router;
use axum::routing::get;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_scalar::{Scalar, Servable};

use super::state::ApiState;

pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn router(openapi: OpenApi) -> Router<ApiState> {
    let json = openapi.clone();
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(json) }),
        )
        .merge(Scalar::with_url("/docs", openapi))
}
