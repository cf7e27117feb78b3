//! `/openapi.json` and `/docs`, the API reference: Swagger UI reading `/openapi.json`, its files
//! vendored by `scripts/vendor-swagger-ui` and served from the binary, so that the page works
//! where there is no internet and loads nothing from elsewhere.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::Html;
use axum::routing::get;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::assets::{self, Asset, AssetSet};
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

static SWAGGER_UI: &[Asset] = include!("docs/swagger-ui/assets.rs.in");
static OWN: &[Asset] = &[Asset::new(
    "docs.js",
    "text/javascript; charset=utf-8",
    include_bytes!("docs/docs.js"),
)];

static DOCS_ASSETS: LazyLock<AssetSet> = LazyLock::new(|| AssetSet::new(&[SWAGGER_UI, OWN]));

pub fn router(openapi: OpenApi) -> Router<ApiState> {
    let pages = Router::new()
        .route(
            "/docs",
            get(|| async { Html(include_str!("docs/docs.html")) }),
        )
        .route(
            "/docs/assets/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                DOCS_ASSETS.serve(&path, &headers)
            }),
        )
        .layer(middleware::map_response(assets::page_headers));
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi) }),
        )
        .merge(pages)
}
